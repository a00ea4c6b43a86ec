//! The systemd unit shipped in `contrib/systemd/` is one systemd accepts as it is: `systemd-analyze
//! verify` (Debian's `systemd` package, installed by `scripts/install-test-tools`) reports nothing
//! about it — no unknown key, no bad value — with `ExecStart` pointed at the binary under test,
//! since verify also checks that the program exists. The unit's hardening and reload are checked
//! to be there, so that a later edit cannot drop them unnoticed.

use std::process::Command;

const UNIT: &str = include_str!("../contrib/systemd/webterminal-core.service");

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let analyze = std::env::var("SYSTEMD_ANALYZE").unwrap_or_else(|_| "systemd-analyze".into());
    let binary = env!("CARGO_BIN_EXE_webterminal-core");
    assert!(
        UNIT.contains("ExecStart=/usr/local/bin/webterminal-core serve --config "),
        "the unit starts serve with a config file"
    );
    let unit = UNIT.replace("/usr/local/bin/webterminal-core", binary);
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("webterminal-core.service");
    std::fs::write(&path, unit).unwrap();
    let output = Command::new(&analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("{analyze}: {e} (scripts/install-test-tools installs it)"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let about_the_unit: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("webterminal-core.service"))
        .collect();
    assert!(
        output.status.success() && about_the_unit.is_empty(),
        "systemd-analyze verify: {:?}\n{stderr}",
        output.status
    );
}

#[test]
fn the_unit_is_hardened_and_reloads_with_sighup() {
    for directive in [
        "DynamicUser=yes",
        "StateDirectory=webterminal-core",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LimitNOFILE=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RestartPreventExitStatus=2",
    ] {
        assert!(
            UNIT.lines().any(|line| line.starts_with(directive)),
            "{directive} in the unit"
        );
    }
}
