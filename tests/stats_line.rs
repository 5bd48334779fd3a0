//! `[log] stats_interval_secs`: a periodic stats line in the log.

mod support;
use support::Portal;

#[test]
fn the_log_gets_a_stats_line_at_the_configured_interval() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("portal.conf");
    let text = support::base_config(dir.path(), true).replace(
        "level = \"debug\"",
        "level = \"debug\"\nstats_interval_secs = 1",
    );
    std::fs::write(&conf, text).unwrap();
    let portal = Portal::launch(dir, &conf);
    let mut anna = portal.player("anna");
    anna.send("echo busy");
    anna.expect("busy");
    support::wait_for("a stats line counting anna", || {
        portal
            .log()
            .lines()
            .any(|l| l.contains("stats: sessions 1, logged in 1, commands/s"))
            .then_some(())
    });
    let log = portal.log();
    let line = log.lines().rev().find(|l| l.contains("stats: ")).unwrap();
    for part in ["bytes/s in", "out", "held input 0", "queued connections 0"] {
        assert!(line.contains(part), "{line}");
    }
}
