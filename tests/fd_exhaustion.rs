//! Running out of file descriptors (the portal started with a low hard
//! limit) refuses extra clients with a message and keeps serving the rest.
//! Alone in its file: it needs the machine quiet to be deterministic.

mod support;
use std::time::{Duration, Instant};
use support::{wait_for, Client, Portal};

#[test]
fn running_out_of_descriptors_refuses_extra_clients_only() {
    let portal = Portal::start_with_fd_limit("", 64);
    let mut player = portal.player("keeper");
    let mut extras: Vec<Client> = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let mut c = portal.client();
        let first = wait_for("a first answer", || {
            c.pump();
            let text = c.text();
            (text.contains("create <name>") || text.contains("full") || !c.pump()).then_some(text)
        });
        if first.contains("create <name>") {
            extras.push(c);
        } else {
            refused += 1;
        }
    }
    assert!(refused > 0, "some clients were refused");
    assert!(!extras.is_empty(), "some got in before the limit");
    player.send("echo keeper-still-plays");
    player.expect("keeper-still-plays");
    drop(extras);
    wait_for("room for a new client", || {
        let mut c = portal.client();
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until && !c.text().contains("create <name>") {
            if !c.pump() {
                break;
            }
        }
        c.text().contains("create <name>").then_some(())
    });
    portal.wait_log("refused");
}
