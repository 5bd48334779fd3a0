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

fn run_json(args: &[String]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_dummyrunner"))
        .args(args)
        .arg("--json")
        .output()
        .expect("run the dummyrunner");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dummyrunner failed: {stderr}");
    serde_json::from_slice(&out.stdout).expect("JSON summary")
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[test]
fn raw_mode_round_trips_through_the_bare_echo_baseline() {
    use std::io::BufRead;
    let mut echo = Command::new(env!("CARGO_BIN_EXE_bare_echo"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start bare_echo");
    let mut line = String::new();
    std::io::BufReader::new(echo.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("its address");
    let addr = line.trim().rsplit(' ').next().expect("address").to_owned();
    let mut args = strings(&["--raw", "--clients", "10", "--duration", "2"]);
    args.extend(strings(&["--interval", "0.05", "--profile", "echo=1"]));
    args.push(addr);
    let report = run_json(&args);
    let _ = echo.kill();
    let _ = echo.wait();
    let c = &report["counts"];
    assert_eq!(c["logged_in"], 10, "{report}");
    assert!(c["measured_answers"].as_u64().unwrap() > 100, "{report}");
    assert_eq!(c["echoes_lost"], 0, "{report}");
    assert_eq!(c["echoes_sent"], c["echoes_answered"], "{report}");
    assert!(report["answered_per_s"].as_f64().unwrap() > 0.0, "{report}");
}

#[test]
fn churn_mode_counts_login_screens_and_hangs_up() {
    let portal = support::Portal::start("max_connection_rate = 10000.0\n");
    let mut args = strings(&["--churn", "--clients", "5", "--duration", "2"]);
    args.extend(strings(&[
        "--connect-rate",
        "100000",
        "--report-every",
        "1",
    ]));
    args.push(portal.telnet.to_string());
    let report = run_json(&args);
    let c = &report["counts"];
    // Each of the 5 clients connected more than once.
    assert!(c["screens"].as_u64().unwrap() > 5, "{report}");
    assert_eq!(c["screens"], c["measured_screens"], "{report}");
    assert_eq!(c["connect_failures"], 0, "{report}");
    assert_eq!(c["logins"], 0, "{report}");
    assert!(
        report["connections_per_s"].as_f64().unwrap() > 2.5,
        "{report}"
    );
    assert!(
        report["screen_time"]["count"].as_u64().unwrap() > 5,
        "{report}"
    );
}

#[test]
fn restart_signal_every_player_answered_again_and_nothing_lost() {
    let portal = support::Portal::start("max_command_rate = 1000.0\n");
    let signal = format!("{}:USR1:1", portal.child.id());
    let mut args = strings(&["--clients", "10", "--duration", "3", "--interval", "0.5"]);
    args.extend(strings(&["--profile", "echo=1", "--wait-logins", "30"]));
    args.extend(strings(&["--drain", "20", "--signal", &signal]));
    args.push(portal.telnet.to_string());
    let report = run_json(&args);
    let s = &report["signal"];
    assert_eq!(s["players_answered"], 10, "{report}");
    assert_eq!(s["players_unanswered"], 0, "{report}");
    // The burst at the signal: at least one echo per player after it.
    assert!(
        s["after_signal_lag"]["count"].as_u64().unwrap() >= 10,
        "{report}"
    );
    assert_eq!(report["counts"]["echoes_lost"], 0, "{report}");
    assert_eq!(report["counts"]["disconnects"], 0, "{report}");
    assert!(report["login_wait_s"].as_f64().unwrap() >= 0.0, "{report}");
}
