//! SIGHUP re-reads portal.conf: a new limit reaches players already
//! connected; a broken file keeps the running config and the log says why.

mod support;
use support::{Client, Portal};

/// Ten commands in one write: far over a rate of 2/s, well under 1000/s.
fn flood(player: &mut Client) {
    let lines: String = (0..10).map(|i| format!("echo flood-{i}\r\n")).collect();
    player.send_raw(lines.as_bytes());
}

fn rewrite_config(portal: &Portal, from: &str, to: &str) {
    let text = std::fs::read_to_string(&portal.conf).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(&portal.conf, text.replace(from, to)).unwrap();
}

#[test]
fn sighup_lowers_the_command_rate_for_a_connected_player() {
    let portal = Portal::start("max_command_rate = 1000.0\n");
    let mut anna = portal.player("anna");
    flood(&mut anna);
    let seen = anna.expect("flood-9");
    assert!(!seen.contains("too fast"), "no limit yet: {seen}");

    rewrite_config(
        &portal,
        "max_command_rate = 1000.0",
        "max_command_rate = 2.0",
    );
    portal.signal(libc::SIGHUP);
    portal.wait_log("config reloaded");
    flood(&mut anna);
    anna.expect("You are sending commands too fast");
    assert!(
        portal.status_report().value("limits", "max_command_rate") == Some("2"),
        "status shows the limit in force"
    );
}

#[test]
fn sighup_with_a_broken_file_keeps_the_running_config_and_logs_why() {
    let mut portal = Portal::start("max_command_rate = 1000.0\n");
    let mut anna = portal.player("anna");

    rewrite_config(
        &portal,
        "max_command_rate = 1000.0",
        "max_command_rate = \"slow\"",
    );
    portal.signal(libc::SIGHUP);
    portal.wait_log("config reload refused");
    let log = portal.log();
    let line = log
        .lines()
        .find(|l| l.contains("config reload refused"))
        .unwrap();
    assert!(
        line.contains(&portal.conf.display().to_string()),
        "names the file: {line}"
    );
    assert!(
        line.contains("limits.max_command_rate"),
        "names the key: {line}"
    );
    assert!(line.contains("wrong type"), "says why: {line}");

    flood(&mut anna);
    let seen = anna.expect("flood-9");
    assert!(
        !seen.contains("too fast"),
        "old limit still in force: {seen}"
    );
    assert!(portal.child.try_wait().unwrap().is_none(), "still running");
    let status = portal.status_report();
    assert_eq!(status.number("config", "failed_reloads"), 1);
    assert_eq!(status.value("limits", "max_command_rate"), Some("1000"));
}

#[test]
fn sighup_can_raise_the_log_level() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("portal.conf");
    let text =
        support::base_config(dir.path(), true).replace("level = \"debug\"", "level = \"info\"");
    std::fs::write(&conf, &text).unwrap();
    let portal = Portal::launch(dir, &conf);
    let mut probe = portal.client();
    probe.expect("create <name>");
    drop(probe);
    assert!(!portal.log().contains("[DEBUG]"), "info level at start");
    std::fs::write(&conf, text.replace("level = \"info\"", "level = \"debug\"")).unwrap();
    portal.signal(libc::SIGHUP);
    portal.wait_log("config reloaded");
    let mut probe = portal.client();
    probe.expect("create <name>");
    probe.send("quit");
    probe.expect_closed();
    portal.wait_log("[DEBUG]");
}
