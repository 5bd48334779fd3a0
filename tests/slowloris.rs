//! 200 slowloris clients (a byte at a time, never a whole line) do not slow
//! an honest player down. Alone in its file so its timing is its own.

mod support;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::Portal;

#[test]
fn slowloris_clients_do_not_slow_an_honest_player() {
    let portal = Portal::start("");
    let mut honest = portal.player("honest");
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(portal.telnet).unwrap())
        .collect();
    let mut rtts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut round = 0;
    while Instant::now() < deadline && rtts.len() < 40 {
        for s in slow.iter_mut() {
            let _ = s.write_all(b"l");
        }
        round += 1;
        let started = Instant::now();
        honest.send(&format!("echo rtt-{round}"));
        honest.expect(&format!("rtt-{round}\r\n"));
        rtts.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    rtts.sort();
    let median = rtts[rtts.len() / 2];
    println!(
        "honest round trip with 200 slowloris clients: median {median:?}, max {:?}",
        rtts.last()
    );
    assert!(median < Duration::from_millis(50), "median {median:?}");
}
