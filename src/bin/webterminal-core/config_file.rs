//! `serve`'s configuration in layers: flags over `WEBTERMINAL_*` environment variables over the
//! `--config` file (TOML) over the defaults.
//!
//! clap does the layering: flags and the environment are its own, and the file's values become
//! the options' defaults, so there is one merge (clap's) and one parser per option (the one its flag
//! uses). What this module adds is reading the file strictly, before anything listens:
//!
//! - every option is the key `<id>` (its flag with `_` for `-`, plural where the flag repeats:
//!   `allowed_origins`) in the section its `--help` heading names, lower-cased with `_` for spaces
//!   (`Phone network` is `[phone_network]`);
//! - a key the section does not hold, a value of the wrong TOML type (an integer option given a
//!   string, a repeatable one given a scalar, a switch given anything but `true` or `false`) or one
//!   the option's parser refuses (a bad duration or address), and a file that cannot be read or is
//!   not TOML are each a [`ConfigError`] naming the file, the line and the key.
//!
//! [`effective`] prints what the layers add up to, as TOML a `--config` file can hold, with secrets
//! redacted.

use clap::builder::ValueParser;
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// The options of `serve` that are not configuration themselves.
const NOT_IN_FILE: [&str; 3] = ["config", "print_config", "help"];

/// What a secret is printed as.
const REDACTED: &str = "REDACTED";

/// A configuration the core will not start with. Exit code 2, as for a bad flag.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file cannot be read.
    #[error("{path}: cannot read the config file: {source}", path = .path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Something in the file is wrong: its syntax (no key), or a key or its value.
    #[error("{path}, line {line}{key}: {message}", path = .path.display(),
            key = .key.as_deref().map(|k| format!(", key {k}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: usize,
        key: Option<String>,
        message: String,
    },
    /// The layers add up to something inconsistent (one of a pair of options without the other).
    #[error("{0}")]
    Inconsistent(String),
}

/// How a file value is written for an option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `true` or `false` (a flag without a value).
    Switch,
    /// A TOML integer.
    Integer,
    /// A TOML string.
    Text,
    /// A TOML array of strings (a repeatable flag).
    List,
}

impl Kind {
    fn of(arg: &Arg) -> Kind {
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => Kind::Switch,
            ArgAction::Append => Kind::List,
            _ if is_integer(arg.get_value_parser()) => Kind::Integer,
            _ => Kind::Text,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Switch => "true or false",
            Kind::Integer => "an integer",
            Kind::Text => "a string",
            Kind::List => "an array of strings",
        }
    }
}

fn is_integer(parser: &ValueParser) -> bool {
    let integers: [ValueParser; 6] = [
        clap::value_parser!(usize).into(),
        clap::value_parser!(u64).into(),
        clap::value_parser!(u32).into(),
        clap::value_parser!(u16).into(),
        clap::value_parser!(i64).into(),
        clap::value_parser!(i32).into(),
    ];
    integers.iter().any(|p| p.type_id() == parser.type_id())
}

/// The config file section an option belongs to: its help heading, lower-cased, `_` for spaces.
pub(crate) fn section_of(arg: &Arg) -> Option<String> {
    arg.get_help_heading()
        .map(|heading| heading.to_lowercase().replace(' ', "_"))
}

/// The options that are configuration: every argument of `serve` but `--config` itself.
fn options(serve: &Command) -> impl Iterator<Item = &Arg> {
    serve
        .get_arguments()
        .filter(|arg| !NOT_IN_FILE.contains(&arg.get_id().as_str()))
}

/// Parses `argv` (the whole command line, binary name first) with `serve`'s `--config` file, when
/// one is given by flag or by `WEBTERMINAL_CONFIG`, as the defaults of `serve`'s options.
///
/// # Errors
/// [`CliError::Config`] for a file that cannot be read or holds a bad key or value, and
/// [`CliError::Usage`] for a bad flag or variable (each exits 2).
pub(crate) fn matches_with_file(
    command: Command,
    argv: &[OsString],
) -> Result<ArgMatches, CliError> {
    let first = command.clone().try_get_matches_from(argv)?;
    let file = first
        .subcommand_matches("serve")
        .and_then(|serve| serve.get_one::<PathBuf>("config"));
    let Some(path) = file else {
        return Ok(first);
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
        path: path.clone(),
        source,
    })?;
    let serve = command
        .find_subcommand("serve")
        .expect("the CLI has a serve command");
    let defaults = read(serve, path, &text)?;
    let command = command.mut_subcommand("serve", |mut serve| {
        for (id, values) in defaults {
            serve = serve.mut_arg(id, |arg| arg.default_values(values));
        }
        serve
    });
    Ok(command.try_get_matches_from(argv)?)
}

/// Each option `text` sets, with its values as its flag would take them.
fn read(
    serve: &Command,
    path: &Path,
    text: &str,
) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
    let invalid = |span: Range<usize>, key: Option<String>, message: String| ConfigError::Invalid {
        path: path.to_owned(),
        line: line_of(text, span.start),
        key,
        message,
    };
    let table = DeTable::parse(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        invalid(span, None, e.message().to_owned())
    })?;
    let mut set = Vec::new();
    for (section, entries) in table.get_ref() {
        let section_name = section.get_ref().as_ref();
        let Some(entries) = entries.get_ref().as_table() else {
            return Err(invalid(
                section.span(),
                Some(section_name.to_owned()),
                format!(
                    "every option belongs in a section, such as [listener]{}",
                    hint(serve, section_name)
                ),
            ));
        };
        for (key, value) in entries {
            let dotted = format!("{section_name}.{}", key.get_ref());
            let arg = options(serve).find(|arg| arg.get_id() == key.get_ref().as_ref());
            let Some(arg) = arg.filter(|arg| section_of(arg).as_deref() == Some(section_name))
            else {
                let message = match arg.and_then(section_of) {
                    Some(home) => format!("unknown key: {} belongs in [{home}]", key.get_ref()),
                    None if sections(serve).any(|s| s == section_name) => "unknown key".to_owned(),
                    None => format!(
                        "unknown key: there is no section [{section_name}] (sections: {})",
                        sections(serve).collect::<Vec<_>>().join(", ")
                    ),
                };
                return Err(invalid(key.span(), Some(dotted), message));
            };
            let values = values_of(arg, value)
                .map_err(|message| invalid(value.span(), Some(dotted.clone()), message))?;
            set.push((arg.get_id().to_string(), values));
        }
    }
    Ok(set)
}

/// The sections the file may hold, in `--help`'s order, without repeats.
fn sections(serve: &Command) -> impl Iterator<Item = String> + '_ {
    let mut seen = Vec::new();
    options(serve)
        .filter_map(section_of)
        .filter(move |section| {
            let new = !seen.contains(section);
            if new {
                seen.push(section.clone());
            }
            new
        })
}

/// For a key written outside any section: the section it belongs in, if it is an option.
fn hint(serve: &Command, key: &str) -> String {
    options(serve)
        .find(|arg| arg.get_id() == key)
        .and_then(section_of)
        .map(|section| format!(": {key} belongs in [{section}]"))
        .unwrap_or_default()
}

/// `value` as the strings `arg`'s flag would be given, checked by the flag's own parser.
fn values_of(arg: &Arg, value: &Spanned<DeValue>) -> Result<Vec<String>, String> {
    let kind = Kind::of(arg);
    let wrong_type = || {
        format!(
            "must be {}, not {}",
            kind.name(),
            value.get_ref().type_str()
        )
    };
    let values = match (kind, value.get_ref()) {
        (Kind::Switch, DeValue::Boolean(b)) => return Ok(vec![b.to_string()]),
        (Kind::Integer, DeValue::Integer(i)) => {
            let n =
                i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| "too large".to_owned())?;
            vec![n.to_string()]
        }
        (Kind::Text, DeValue::String(s)) => vec![s.to_string()],
        (Kind::List, DeValue::Array(items)) => items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::String(s) => Ok(s.to_string()),
                other => Err(format!(
                    "must be an array of strings, not of {}",
                    other.type_str()
                )),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(wrong_type()),
    };
    for value in &values {
        check(arg, value)?;
    }
    Ok(values)
}

/// Runs `value` through `arg`'s value parser, as if given as its flag.
fn check(arg: &Arg, value: &str) -> Result<(), String> {
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|v| v.get_name().to_owned())
        .collect();
    if !possible.is_empty() && !possible.iter().any(|p| p == value) {
        return Err(format!("{value:?} is not one of {}", possible.join(", ")));
    }
    // The parser alone, on a one-option command: no environment, no relations to other options.
    let probe = Arg::new("value")
        .long("value")
        .value_parser(arg.get_value_parser().clone())
        .action(ArgAction::Set);
    let command = Command::new("probe").arg(probe);
    match command.try_get_matches_from(["probe", "--value", value]) {
        Ok(_) => Ok(()),
        Err(e) => Err(match std::error::Error::source(&e) {
            Some(reason) => reason.to_string(),
            None => e
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned(),
        }),
    }
}

/// The 1-based line of byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Why the command line could not be read: a bad flag or variable (clap's error, which prints
/// itself and exits 2), or a bad config file.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A flag or a `WEBTERMINAL_*` variable clap refused (or `--help`, `--version`).
    Usage(clap::Error),
    /// The `--config` file.
    Config(ConfigError),
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::Config(e)
    }
}

impl From<clap::Error> for CliError {
    fn from(e: clap::Error) -> Self {
        CliError::Usage(e)
    }
}

/// Options whose values make sense only together; clap's `requires` does not see the file's.
const PAIRS: [(&str, &str); 1] = [("tls_cert", "tls_key")];

/// Checks what the layers add up to for `serve`: both options of each pair, or neither.
///
/// # Errors
/// [`ConfigError::Inconsistent`] naming the option missing.
pub(crate) fn check_pairs(serve: &ArgMatches) -> Result<(), ConfigError> {
    for (a, b) in PAIRS {
        let (has_a, has_b) = (serve.contains_id(a), serve.contains_id(b));
        if has_a != has_b {
            let (given, missing) = if has_a { (a, b) } else { (b, a) };
            return Err(ConfigError::Inconsistent(format!(
                "{given} is set but {missing} is not: give both or neither"
            )));
        }
    }
    Ok(())
}

/// The effective configuration of `serve` (its command and what was parsed), as TOML a `--config`
/// file can hold: every option in its section in `--help`'s order, an option with no value as a
/// comment, and secrets (the options whose environment values `--help` hides) redacted — a URL's
/// password only, so that its host stays readable.
pub(crate) fn effective(serve: &Command, matches: &ArgMatches) -> String {
    let mut out = String::from(
        "# webterminal-core serve: the effective configuration (flags over WEBTERMINAL_* variables\n\
         # over the config file over defaults). Secrets are redacted.\n",
    );
    for section in sections(serve) {
        let _ = write!(out, "\n[{section}]\n");
        for arg in options(serve).filter(|arg| section_of(arg).as_deref() == Some(&section)) {
            let id = arg.get_id().as_str();
            let values: Vec<String> = matches
                .get_raw(id)
                .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let values: Vec<String> = if arg.is_hide_env_values_set() {
                values.iter().map(|v| redact(v)).collect()
            } else {
                values
            };
            let _ = match (Kind::of(arg), values.as_slice()) {
                (Kind::List, values) => {
                    writeln!(out, "{id} = {}", toml::Value::from(values.to_vec()))
                }
                (_, []) => writeln!(out, "# {id} is not set"),
                (Kind::Switch | Kind::Integer, [value, ..]) => writeln!(out, "{id} = {value}"),
                (Kind::Text, [value, ..]) => {
                    writeln!(out, "{id} = {}", toml::Value::from(value.as_str()))
                }
            };
        }
    }
    out
}

/// A secret as printed: a URL with its password replaced, anything else replaced whole.
fn redact(secret: &str) -> String {
    if let Some((scheme, rest)) = secret.split_once("://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        return match authority.rsplit_once('@') {
            Some((user_info, host)) => {
                let user = user_info
                    .split_once(':')
                    .map_or(user_info, |(user, _)| user);
                format!("{scheme}://{user}:{REDACTED}@{host}{path}")
            }
            None => secret.to_owned(),
        };
    }
    REDACTED.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::CommandFactory;
    use std::io::Write as _;

    fn serve() -> Command {
        let mut command = Cli::command();
        command.build();
        command.find_subcommand("serve").unwrap().clone()
    }

    fn read_text(text: &str) -> Result<Vec<(String, Vec<String>)>, String> {
        read(&serve(), Path::new("wt.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn every_option_has_a_section_and_a_variable_named_after_it() {
        for arg in options(&serve()) {
            let id = arg.get_id().as_str();
            assert!(section_of(arg).is_some(), "{id} has no section");
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            assert_eq!(
                env.as_deref(),
                Some(format!("WEBTERMINAL_{}", id.to_uppercase()).as_str()),
                "{id}'s variable"
            );
        }
    }

    #[test]
    fn values_are_read_as_their_flags_would_be() {
        let set = read_text(
            "[calls]\nring_timeout = \"2s\"\n[limits]\nmax_terminals = 1_000\n\
             [listener]\nallowed_origins = [\"https://a.example\", \"https://b.example\"]\n\
             [logs]\nlog_personal_data = true\n[phone_network]\nphone_network = \"none\"\n",
        )
        .unwrap();
        let get = |id: &str| set.iter().find(|(k, _)| k == id).unwrap().1.clone();
        assert_eq!(get("ring_timeout"), ["2s"]);
        assert_eq!(get("max_terminals"), ["1000"]);
        assert_eq!(
            get("allowed_origins"),
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(get("log_personal_data"), ["true"]);
        assert_eq!(get("phone_network"), ["none"]);
    }

    #[test]
    fn every_mistake_names_the_line_and_the_key() {
        for (text, want) in [
            ("[calls]\n\nring_timeout = \"5x\"\n", "line 3, key calls.ring_timeout: \"5x\""),
            ("[calls]\nmax_terminals = 5\n", "line 2, key calls.max_terminals: unknown key: max_terminals belongs in [limits]"),
            ("[limits]\nmax_terminalz = 5\n", "line 2, key limits.max_terminalz: unknown key"),
            ("[limit]\nmax_terminals = 5\n", "line 2, key limit.max_terminals: unknown key: max_terminals belongs in [limits]"),
            ("[limit]\nfoo = 5\n", "line 2, key limit.foo: unknown key: there is no section [limit] (sections: listener,"),
            ("ring_timeout = \"1s\"\n", "line 1, key ring_timeout: every option belongs in a section, such as [listener]: ring_timeout belongs in [calls]"),
            ("[limits]\nmax_terminals = \"lots\"\n", "line 2, key limits.max_terminals: must be an integer, not string"),
            ("[listener]\nlisten = \"localhost:x\"\n", "line 2, key listener.listen: invalid socket address"),
            ("[listener]\nallowed_origins = \"https://a\"\n", "line 2, key listener.allowed_origins: must be an array of strings"),
            ("[logs]\nlog_personal_data = \"yes\"\n", "line 2, key logs.log_personal_data: must be true or false"),
            ("[phone_network]\nphone_network = \"pstn\"\n", "line 2, key phone_network.phone_network: \"pstn\" is not one of sim, none"),
            ("[redis]\nredis_queue = 5\n", "line 2, key redis.redis_queue: 5 is not in 10000.."),
            ("[calls]\nring_timeout = \n", "wt.toml, line 2: "),
        ] {
            let error = read_text(text).unwrap_err();
            assert!(error.starts_with("wt.toml, "), "{error}");
            assert!(error.contains(want), "{text:?}: {error:?} lacks {want:?}");
        }
    }

    #[test]
    fn the_file_is_beneath_flags_and_the_defaults_beneath_it() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(
            file,
            "[calls]\nring_timeout = \"2s\"\nnegotiation_timeout = \"3s\""
        )
        .unwrap();
        let argv: Vec<OsString> = ["webterminal-core", "serve", "--config"]
            .into_iter()
            .map(OsString::from)
            .chain([file.path().as_os_str().to_owned()])
            .chain(["--negotiation-timeout".into(), "4s".into()])
            .collect();
        let matches = matches_with_file(Cli::command(), &argv).unwrap();
        let serve = matches.subcommand_matches("serve").unwrap();
        let get = |id| *serve.get_one::<std::time::Duration>(id).unwrap();
        assert_eq!(
            get("ring_timeout"),
            std::time::Duration::from_secs(2),
            "the file"
        );
        assert_eq!(
            get("negotiation_timeout"),
            std::time::Duration::from_secs(4),
            "the flag"
        );
        assert_eq!(
            get("reconnect_grace"),
            std::time::Duration::from_secs(15),
            "the default"
        );
    }

    #[test]
    fn secrets_are_redacted_and_urls_keep_their_host() {
        assert_eq!(redact("s3cret"), REDACTED);
        assert_eq!(
            redact("redis://:pw@10.0.0.1:6379/2"),
            "redis://:REDACTED@10.0.0.1:6379/2"
        );
        assert_eq!(
            redact("redis://app:pw@host/0"),
            "redis://app:REDACTED@host/0"
        );
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn the_effective_configuration_reads_back_the_same() {
        let argv: Vec<OsString> = [
            "webterminal-core",
            "serve",
            "--ring-timeout",
            "2s",
            "--allowed-origin",
            "https://a.example",
            "--public-key",
            "k.pem",
            "--log-format",
            "json",
            "--log-personal-data",
            "--jwt-secret",
            "x",
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        let matches = Cli::command().try_get_matches_from(&argv).unwrap();
        let printed = effective(&serve(), matches.subcommand_matches("serve").unwrap());
        assert!(
            printed.contains("\n[calls]\nring_timeout = \"2s\"\n"),
            "{printed}"
        );
        assert!(printed.contains("jwt_secret = \"REDACTED\""), "{printed}");
        assert!(printed.contains("# tls_cert is not set"), "{printed}");
        assert!(printed.contains("log_personal_data = true"), "{printed}");
        let set = read_text(&printed).unwrap();
        assert!(set.contains(&("allowed_origins".into(), vec!["https://a.example".into()])));
        assert!(set.contains(&("max_terminals".into(), vec!["1000000".into()])));
    }
}
