//! `bare_echo`: a benchmark baseline only, not part of the portal.
//!
//! The floor of the portal's design: a mio poll loop accepts sockets and
//! hands each one to its own thread, which owns a small `mio::Poll` holding
//! the socket and a `mio::Waker` (so a connection costs the same three
//! descriptors and one thread as a portal session), and writes every line it
//! reads straight back on the same socket. No telnet, no game, no AMP link:
//! `scripts/bench` drives it with `dummyrunner --raw` and reports the
//! portal's memory and CPU per round trip as a ratio to this.
//!
//! ```text
//! bare_echo [--listen ADDR] [--stack-kib N]   (127.0.0.1:0, 128)
//! ```
//!
//! It prints `listening on ADDR` on stdout once bound and runs until killed.

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::io::{self, Read, Write};
use std::net::SocketAddr;

const LISTENER: Token = Token(0);
const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);

fn main() {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let mut stack_kib = 128usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            return;
        }
        let Some(value) = args.next() else {
            usage(&format!("{arg} needs a value"));
        };
        match arg.as_str() {
            "--listen" => {
                listen = value
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("bad address {value:?}")))
            }
            "--stack-kib" => {
                stack_kib = value
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("bad size {value:?}")))
            }
            _ => usage(&format!("unknown option {arg:?}")),
        }
    }
    // Silent, as before: the benchmark reads only `listening on`.
    let _ = portal::limits::raise_file_limit();
    if let Err(e) = serve(listen, stack_kib.max(64) * 1024) {
        eprintln!("bare_echo: {e}");
        std::process::exit(1);
    }
}

const USAGE: &str = "\
usage: bare_echo [options]   (a bare line echo server, the benchmark baseline)

  --listen ADDR      where to listen (127.0.0.1:0, a free port)
  --stack-kib N      stack of each connection's thread, at least 64 (128)
  -h, --help         this text";

fn usage(problem: &str) -> ! {
    eprintln!("bare_echo: {problem}\n{USAGE}");
    std::process::exit(2);
}

fn serve(addr: SocketAddr, stack: usize) -> io::Result<()> {
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    io::stdout().flush()?;
    let mut events = Events::with_capacity(256);
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    let spawned = std::thread::Builder::new()
                        .stack_size(stack)
                        .spawn(move || {
                            let _ = echo(stream);
                        });
                    if let Err(e) = spawned {
                        eprintln!("bare_echo: cannot start a thread: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of descriptors: back off instead of spinning.
                    eprintln!("bare_echo: accept: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    break;
                }
            }
        }
    }
}

/// One connection: write every complete line back until the peer closes.
fn echo(mut stream: TcpStream) -> io::Result<()> {
    let mut poll = Poll::new()?;
    // Held like a portal worker's waker; nothing wakes it here.
    let _waker = Waker::new(poll.registry(), WAKER)?;
    poll.registry()
        .register(&mut stream, SOCKET, Interest::READABLE)?;
    let mut events = Events::with_capacity(4);
    let mut input: Vec<u8> = Vec::new();
    let mut output: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut writable_wanted = false;
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    input.extend_from_slice(&buf[..n]);
                    if let Some(end) = input.iter().rposition(|&b| b == b'\n') {
                        output.extend(input.drain(..=end));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        while !output.is_empty() {
            match stream.write(&output) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    output.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let want = !output.is_empty();
        if want != writable_wanted {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            poll.registry().reregister(&mut stream, SOCKET, interest)?;
            writable_wanted = want;
        }
    }
}
