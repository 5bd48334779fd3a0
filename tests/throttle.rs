//! Beyond max_connection_rate, clients are queued, told so, and let in.

mod support;
use support::{Client, Portal};

#[test]
fn fast_connections_are_queued_with_a_message_then_let_in() {
    let portal = Portal::start("max_connection_rate = 2.0\n");
    let mut clients: Vec<Client> = (0..5).map(|_| portal.client()).collect();
    let queued = clients[4].expect("seconds");
    assert!(queued.contains("you are queued"), "{queued}");
    for client in clients.iter_mut() {
        client.expect("create <name>");
    }
}
