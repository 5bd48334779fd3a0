//! The pid file: a stale one is replaced, a live portal's is respected.

mod support;
use support::Portal;

fn config_in(dir: &std::path::Path) -> std::path::PathBuf {
    let conf = dir.join("portal.conf");
    let text = support::base_config(dir, true) + "\n[limits]\nmax_connection_rate = 1000.0\n";
    std::fs::write(&conf, text).unwrap();
    conf
}

#[test]
fn a_stale_pid_file_is_logged_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config_in(dir.path());
    let dead = support::dead_pid();
    std::fs::write(dir.path().join("portal.pid"), format!("{dead}\n")).unwrap();
    let mut portal = Portal::launch(dir, &conf);
    portal.wait_log("stale pid file");
    assert!(portal
        .log()
        .contains(&format!("no process with pid {dead}")));
    let written = std::fs::read_to_string(portal.path("portal.pid")).unwrap();
    assert_eq!(written.trim(), portal.child.id().to_string());
    let mut anna = portal.client();
    anna.expect("create <name>");
    portal.signal(libc::SIGTERM);
    assert_eq!(portal.wait_exit(), Some(0));
    assert!(!portal.path("portal.pid").exists());
}

#[test]
fn a_second_portal_on_a_live_pid_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config_in(dir.path());
    let mut portal = Portal::launch(dir, &conf);
    let first = portal.child.id();
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_portal"))
        .arg("--config")
        .arg(&conf)
        .current_dir(portal.dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("already running with pid {first}")),
        "{stderr}"
    );
    assert!(
        portal.child.try_wait().unwrap().is_none(),
        "first one untouched"
    );
    let written = std::fs::read_to_string(portal.path("portal.pid")).unwrap();
    assert_eq!(written.trim(), first.to_string(), "pid file kept");
    assert_eq!(portal.status_report().first("portal"), "running");
}
