//! The dummyrunner drives real players through the portal and the demo
//! game, and its counts add up.

mod support;

use std::process::Command;

#[test]
fn twenty_players_log_in_act_and_measure_lag_without_failures() {
    let portal = support::Portal::start("max_command_rate = 1000.0\n");
    let out = Command::new(env!("CARGO_BIN_EXE_dummyrunner"))
        .arg(portal.telnet.to_string())
        .args(["--clients", "20", "--duration", "3", "--interval", "0.3"])
        .args(["--connect-rate", "200", "--report-every", "1", "--json"])
        .output()
        .expect("run the dummyrunner");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dummyrunner failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    let counts = &report["counts"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or_else(|| panic!("{v} in {report}"));
    assert_eq!(n(&report["peak_connected"]), 20, "{report}");
    assert_eq!(n(&report["peak_logged_in"]), 20, "{report}");
    assert!(n(&counts["logins"]) >= 20, "{report}");
    assert!(n(&counts["actions"]) > 0, "{report}");
    assert_eq!(n(&counts["connect_failures"]), 0, "{report}");
    assert_eq!(n(&counts["login_failures"]), 0, "{report}");
    assert_eq!(n(&counts["disconnects"]), 0, "{report}");
    assert_eq!(n(&counts["throttled"]), 0, "{report}");
    assert_eq!(n(&counts["echoes_lost"]), 0, "{report}");
    assert_eq!(
        n(&counts["echoes_sent"]),
        n(&counts["echoes_answered"]),
        "{report}"
    );
    let lag = &report["lag"];
    assert!(n(&lag["count"]) > 0, "{report}");
    assert!(
        lag["p99_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{report}"
    );
    let by_kind: u64 = report["actions_by_kind"]
        .as_object()
        .expect("actions by kind")
        .values()
        .map(n)
        .sum();
    assert_eq!(by_kind, n(&counts["actions"]), "{report}");
    // Progress lines went to stderr, so stdout is only the JSON.
    assert!(stderr.contains("logged in"), "{stderr}");
}
