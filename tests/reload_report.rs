//! `portal reload` names the changed keys that wait for a restart, once:
//! reloading the same file again does not warn about them again.

mod support;
use support::Portal;

fn rewrite_config(portal: &Portal, from: &str, to: &str) {
    let text = std::fs::read_to_string(&portal.conf).unwrap();
    assert!(text.contains(from), "{text}");
    std::fs::write(&portal.conf, text.replace(from, to)).unwrap();
}

#[test]
fn reload_prints_restart_only_keys_once() {
    let portal = Portal::start("max_command_rate = 1000.0\n");
    rewrite_config(
        &portal,
        "[web]\nlisten = [\"127.0.0.1:0\"]",
        "[web]\nlisten = [\"127.0.0.1:0\", \"127.0.0.2:0\"]",
    );
    let first = portal.cli(&["reload"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(first.stdout.contains("configuration reloaded"), "{first:?}");
    assert!(
        first
            .stdout
            .contains("NOT APPLIED until the portal restarts")
            && first.stdout.contains("web.listen"),
        "{first:?}"
    );

    let again = portal.cli(&["reload"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("configuration reloaded"), "{again:?}");
    assert!(
        !again.stdout.contains("web.listen"),
        "no re-warning: {again:?}"
    );
    let warnings = portal
        .log()
        .lines()
        .filter(|l| l.contains("`web.listen` changed"))
        .count();
    assert_eq!(warnings, 1, "logged once");
    let status = portal.status_report();
    assert_eq!(status.words("restart_pending"), ["web.listen"]);

    // Changed back to the running value: nothing waits any more.
    rewrite_config(
        &portal,
        "[web]\nlisten = [\"127.0.0.1:0\", \"127.0.0.2:0\"]",
        "[web]\nlisten = [\"127.0.0.1:0\"]",
    );
    let back = portal.cli(&["reload"]);
    assert!(!back.stdout.contains("web.listen"), "{back:?}");
    assert!(portal.status_report().words("restart_pending").is_empty());
}
