//! `serve`'s configuration against the real binary: every option as a flag, a `WEBTERMINAL_*`
//! variable or a key of the `--config` file (TOML) gives the same effective configuration
//! (`--print-config`); flags beat variables, variables beat the file, the file beats the defaults,
//! key by key; every kind of mistake in the file exits 2 naming the file, the line and the key,
//! before anything listens; and `docs/webterminal.example.toml` holds every option with its
//! default.

#[path = "support/binary.rs"]
mod binary;

use std::io::Write as _;
use std::process::Output;

/// One option set three ways.
struct Setting {
    section: &'static str,
    key: &'static str,
    /// The flag and its values (a repeatable flag given once per value).
    flag: &'static str,
    values: &'static [&'static str],
    /// As TOML in the file and in `--print-config`.
    toml: &'static str,
}

impl Setting {
    fn flags(&self) -> Vec<String> {
        if self.toml == "true" {
            return vec![self.flag.into()];
        }
        self.values
            .iter()
            .flat_map(|v| [self.flag.to_owned(), (*v).to_owned()])
            .collect()
    }

    fn variable(&self) -> (String, String) {
        (
            format!("WEBTERMINAL_{}", self.key.to_uppercase()),
            self.values.join(","),
        )
    }

    fn printed(&self) -> String {
        format!("{} = {}", self.key, self.toml)
    }
}

/// A value other than the default for options of every kind and section.
const SETTINGS: [Setting; 14] = [
    Setting {
        section: "listener",
        key: "listen",
        flag: "--listen",
        values: &["127.0.0.1:50999"],
        toml: "\"127.0.0.1:50999\"",
    },
    Setting {
        section: "listener",
        key: "allowed_origins",
        flag: "--allowed-origin",
        values: &["https://a.example", "https://b.example"],
        toml: "[\"https://a.example\", \"https://b.example\"]",
    },
    Setting {
        section: "listener",
        key: "idle_timeout",
        flag: "--idle-timeout",
        values: &["0"],
        toml: "\"0\"",
    },
    Setting {
        section: "listener",
        key: "max_connections",
        flag: "--max-connections",
        values: &["100"],
        toml: "100",
    },
    Setting {
        section: "calls",
        key: "ring_timeout",
        flag: "--ring-timeout",
        values: &["2s"],
        toml: "\"2s\"",
    },
    Setting {
        section: "limits",
        key: "max_terminals",
        flag: "--max-terminals",
        values: &["500"],
        toml: "500",
    },
    Setting {
        section: "auth",
        key: "issuer",
        flag: "--issuer",
        values: &["https://auth.example"],
        toml: "\"https://auth.example\"",
    },
    Setting {
        section: "records",
        key: "records",
        flag: "--records",
        values: &["none"],
        toml: "\"none\"",
    },
    Setting {
        section: "routing",
        key: "routing",
        flag: "--routing",
        values: &["/etc/webterminal-core/routing.toml"],
        toml: "\"/etc/webterminal-core/routing.toml\"",
    },
    Setting {
        section: "redis",
        key: "redis_queue",
        flag: "--redis-queue",
        values: &["20000"],
        toml: "20000",
    },
    Setting {
        section: "phone_network",
        key: "phone_network",
        flag: "--phone-network",
        values: &["none"],
        toml: "\"none\"",
    },
    Setting {
        section: "logs",
        key: "log_format",
        flag: "--log-format",
        values: &["json"],
        toml: "\"json\"",
    },
    Setting {
        section: "logs",
        key: "log_personal_data",
        flag: "--log-personal-data",
        values: &["true"],
        toml: "true",
    },
    Setting {
        section: "metrics",
        key: "metrics_listen",
        flag: "--metrics-listen",
        values: &["127.0.0.1:9464"],
        toml: "\"127.0.0.1:9464\"",
    },
];

/// `webterminal-core serve` with `args` and only the variables `env` (none inherited).
fn serve(args: &[String], env: &[(String, String)]) -> Output {
    env.iter()
        .fold(
            binary::run("serve").args(args).env_clear(),
            |run, (k, v)| run.env(k, v),
        )
        .output()
}

/// The effective configuration printed for `args` and `env`.
fn print_config(args: &[String], env: &[(String, String)]) -> String {
    let mut args = args.to_vec();
    args.push("--print-config".into());
    let output = serve(&args, env);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A config file holding `text`.
fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

/// The file setting each of `settings`, in its section (each section once, as TOML wants).
fn file_of<'a>(settings: impl IntoIterator<Item = &'a Setting>) -> String {
    let mut sections: Vec<(&str, String)> = Vec::new();
    for s in settings {
        let line = format!("{} = {}\n", s.key, s.toml);
        match sections.iter_mut().find(|(name, _)| *name == s.section) {
            Some((_, lines)) => lines.push_str(&line),
            None => sections.push((s.section, line)),
        }
    }
    sections
        .iter()
        .map(|(name, lines)| format!("[{name}]\n{lines}"))
        .collect()
}

fn config_arg(file: &tempfile::NamedTempFile) -> Vec<String> {
    vec![
        "--config".into(),
        file.path().to_string_lossy().into_owned(),
    ]
}

#[test]
fn flags_variables_and_the_file_give_the_same_configuration() {
    let flags: Vec<String> = SETTINGS.iter().flat_map(Setting::flags).collect();
    let variables: Vec<(String, String)> = SETTINGS.iter().map(Setting::variable).collect();
    let file = config_file(&file_of(&SETTINGS));

    let by_flags = print_config(&flags, &[]);
    let by_variables = print_config(&[], &variables);
    let by_file = print_config(&config_arg(&file), &[]);
    assert_eq!(by_flags, by_variables, "flags and variables");
    assert_eq!(by_flags, by_file, "flags and the file");
    for setting in &SETTINGS {
        let section = format!("[{}]", setting.section);
        let after = &by_flags[by_flags.find(&section).expect("the section")..];
        assert!(
            after.lines().any(|line| line == setting.printed()),
            "{} in [{}]:\n{by_flags}",
            setting.printed(),
            setting.section
        );
    }
    assert_ne!(by_flags, print_config(&[], &[]), "the defaults differ");
}

#[test]
fn flags_beat_variables_beat_the_file_beat_the_defaults_key_by_key() {
    // Three values of one option each: in the file, in a variable and as a flag.
    let layers = [
        ("ring_timeout", "calls", ["\"2s\"", "3s", "4s"]),
        ("max_terminals", "limits", ["200", "300", "400"]),
        ("issuer", "auth", ["\"file\"", "env", "flag"]),
    ];
    let default_of = |key: &str| {
        let defaults = print_config(&[], &[]);
        let prefix = format!("{key} ");
        defaults
            .lines()
            .find(|l| l.starts_with(&prefix) || *l == format!("# {key} is not set"))
            .unwrap()
            .to_owned()
    };
    // Every key set in the file; the first key also by a variable and a flag, the second also by
    // a variable, the third by the file alone: each line shows the layer that should win.
    let mut text = String::new();
    for (key, section, [file, _, _]) in layers {
        text.push_str(&format!("[{section}]\n{key} = {file}\n"));
    }
    let file = config_file(&text);
    let mut args = config_arg(&file);
    args.extend(["--ring-timeout".into(), "4s".into()]);
    let env = [
        ("WEBTERMINAL_RING_TIMEOUT".to_owned(), "3s".to_owned()),
        ("WEBTERMINAL_MAX_TERMINALS".to_owned(), "300".to_owned()),
    ];
    let printed = print_config(&args, &env);
    for want in [
        "ring_timeout = \"4s\"",
        "max_terminals = 300",
        "issuer = \"file\"",
    ] {
        assert!(printed.lines().any(|l| l == want), "{want}:\n{printed}");
    }
    assert!(
        printed
            .lines()
            .any(|l| l == default_of("negotiation_timeout")),
        "an option nobody set keeps its default:\n{printed}"
    );
    // Each layer alone over the defaults.
    for (key, section, [file, env, flag]) in layers {
        let flag_name = format!("--{}", key.replace('_', "-"));
        let variable = format!("WEBTERMINAL_{}", key.to_uppercase());
        let only_file = config_file(&format!("[{section}]\n{key} = {file}\n"));
        let text = |v: &str| {
            if v.parse::<i64>().is_ok() {
                format!("{key} = {v}")
            } else {
                format!("{key} = \"{v}\"")
            }
        };
        let cases = [
            (vec![], vec![], default_of(key)),
            (config_arg(&only_file), vec![], format!("{key} = {file}")),
            (
                config_arg(&only_file),
                vec![(variable.clone(), env.to_owned())],
                text(env),
            ),
            (
                [config_arg(&only_file), vec![flag_name.clone(), flag.into()]].concat(),
                vec![(variable.clone(), env.to_owned())],
                text(flag),
            ),
        ];
        for (args, env, want) in cases {
            let printed = print_config(&args, &env);
            assert!(
                printed.lines().any(|l| l == want),
                "{args:?} {env:?}: {want}:\n{printed}"
            );
        }
    }
}

#[test]
fn every_kind_of_mistake_exits_2_naming_file_line_and_key_and_listens_on_nothing() {
    // The core is told to listen on a port the test holds: had it tried, it would fail otherwise.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = held.local_addr().unwrap().to_string();
    let directory = tempfile::tempdir().unwrap();
    let missing = directory.path().join("missing.toml");
    let cases: [(&str, &str, &str); 6] = [
        (
            "[calls]\nring_timeout = \"1s\"\nreconnect_graze = \"5s\"\n",
            "line 3",
            "key calls.reconnect_graze: unknown key",
        ),
        (
            "[limits]\n# how many\nmax_terminals = \"many\"\n",
            "line 3",
            "key limits.max_terminals: must be an integer, not string",
        ),
        (
            "[calls]\nring_timeout = \"10 seconds\"\n",
            "line 2",
            "key calls.ring_timeout: \"10 seconds\": write whole numbers with a unit",
        ),
        (
            "[metrics]\nmetrics_listen = \"localhost\"\n",
            "line 2",
            "key metrics.metrics_listen: invalid socket address",
        ),
        (
            "[logs]\nlog_personal_data = 1\n",
            "line 2",
            "key logs.log_personal_data: must be true or false, not integer",
        ),
        (
            "[listener]\nthreads = 2\n[listener]\n",
            "line 3",
            "duplicate",
        ),
    ];
    for (text, line, message) in cases {
        let file = config_file(text);
        let mut args = config_arg(&file);
        args.extend([
            "--listen".into(),
            listen.clone(),
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
        ]);
        let output = serve(&args, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{text:?}: {stderr}");
        let path = file.path().to_string_lossy();
        let want = format!("{path}, {line}");
        assert!(stderr.contains(&want), "{text:?}: {want:?} in {stderr}");
        assert!(
            stderr.contains(message),
            "{text:?}: {message:?} in {stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "it printed nothing, so listened on nothing"
        );
    }
    for unreadable in [missing.as_path(), directory.path()] {
        let args = [
            "--config".into(),
            unreadable.to_string_lossy().into_owned(),
            "--listen".into(),
            listen.clone(),
        ];
        let output = serve(&args, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{unreadable:?}: {stderr}");
        let want = format!("{}: cannot read the config file", unreadable.display());
        assert!(stderr.contains(&want), "{want:?} in {stderr}");
    }
    drop(held);
}

#[test]
fn the_example_file_holds_every_option_at_its_default() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/webterminal.example.toml");
    let defaults = print_config(&[], &[]);
    let from_example = print_config(&["--config".into(), example.into()], &[]);
    assert_eq!(from_example, defaults, "the example sets only defaults");
    let text = std::fs::read_to_string(example).unwrap();
    for line in defaults
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("# webterminal") && !l.starts_with("# over"))
    {
        let key = line
            .trim_start_matches("# ")
            .split([' ', '='])
            .next()
            .unwrap();
        if line.starts_with('[') {
            assert!(text.contains(line), "section {line} in the example");
            continue;
        }
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{key} = "))
                    || l.starts_with(&format!("# {key} = "))),
            "{key} in the example"
        );
    }
}
