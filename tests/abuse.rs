//! Abuse limits: per-address caps, login-stage timeout, a client that never
//! reads. Honest players keep playing through all of them.

mod support;
use std::io::Write;
use std::time::{Duration, Instant};
use support::{wait_for, Portal};

#[test]
fn a_per_address_session_cap_refuses_with_a_message() {
    let portal = Portal::start("ip_allowlist = []\nmax_sessions_per_ip = 2\n");
    let mut first = portal.client();
    first.expect("create <name>");
    let mut second = portal.client();
    second.expect("create <name>");
    let mut third = portal.client();
    let told = third.expect_closed();
    assert!(
        told.contains("Too many connections from your address"),
        "{told}"
    );
    drop(first);
    let mut again = wait_for("a slot to free up", || {
        let mut c = portal.client();
        let text = String::from_utf8_lossy(&c.expect_bytes(b"\n")).into_owned();
        (!text.contains("Too many")).then_some(c)
    });
    again.expect("create <name>");
    second.send("look");
    second.expect("create <name>");
}

#[test]
fn a_client_that_never_logs_in_is_closed_and_a_player_stays() {
    let portal = Portal::start("login_timeout_secs = 2\n");
    let mut player = portal.player("patient");
    let mut lurker = portal.client();
    lurker.expect("create <name>");
    let told = lurker.expect_closed();
    assert!(told.contains("took too long to log in"), "{told}");
    player.send("echo still-in");
    player.expect("still-in");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_client_that_never_reads_is_cut_off_at_its_buffer_cap() {
    let portal = Portal::start("output_buffer_bytes = 65536\nmax_command_rate = 100000.0\n");
    let mut honest = portal.player("honest");
    let mut sink = portal.player("sink");
    let long = "x".repeat(2000);
    let line = format!("echo {long}\r\n");
    // The sink sends commands with big replies and never reads them; the
    // kernel's buffers fill, then the portal's capped buffer, then it is cut.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0;
    while !portal.log().contains("client is not reading") && Instant::now() < deadline {
        if sink.stream.write_all(line.repeat(50).as_bytes()).is_err() {
            break;
        }
        sent += 50;
        if sent % 1000 == 0 {
            honest.send("echo ping");
            honest.expect("ping");
        }
    }
    portal.wait_log("client is not reading");
    assert!(
        rss_kib(portal.child.id()) < 200 * 1024,
        "portal memory stays bounded"
    );
    honest.send("echo after-the-sink");
    honest.expect("after-the-sink");
}
