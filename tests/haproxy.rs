//! A real HAProxy (Debian's package; `scripts/test` installs it) in front of
//! the portal: `send-proxy-v2` to the telnet listener, `send-proxy` to the
//! web listener, a proxy sending from an address the portal does not
//! trust, and HAProxy terminating TLS in front of plain telnet. Clients
//! connect from other loopback addresses (127.0.0.2 and up) than HAProxy
//! (127.0.0.1), so the address the game and `portal status` see shows
//! which one got through. Skipped, loudly, only where `haproxy` is not
//! installed.

mod support;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::web::{self, Options};
use support::{tls, wait_for, Client, Portal};

/// The HAProxy child; killed by its pid when dropped.
struct HaProxy {
    child: Child,
    telnet_v2: SocketAddr,
    web_v1: SocketAddr,
    untrusted: SocketAddr,
    tls_front: SocketAddr,
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `haproxy` program: on the PATH, or where Debian puts it
/// (`/usr/sbin`, not on every user's PATH); `None`, said loudly, where it
/// is not installed.
fn haproxy_program() -> Option<PathBuf> {
    let runs = |program: &Path| {
        Command::new(program)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let found = [Path::new("haproxy"), Path::new("/usr/sbin/haproxy")]
        .into_iter()
        .find(|p| runs(p))
        .map(Path::to_path_buf);
    if found.is_none() {
        // Straight to stderr, past the test harness's capture: a skip
        // must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: haproxy is not installed here; bash scripts/test installs it \
             (or: sudo apt-get install -y haproxy)"
        );
    }
    found
}

/// Free loopback ports: bound on port 0, then closed for HAProxy to take
/// (another process may grab one first: the caller retries).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind port 0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("address").port())
        .collect()
}

/// Whether something listens on TCP `port` (from /proc, so probing makes
/// no connection through the proxy).
fn listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let want = format!(":{port:04X}");
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() > 3 && fields[1].ends_with(&want) && fields[3] == "0A"
    })
}

/// Start HAProxy in front of `portal`, with `pem` (certificate and key)
/// for its TLS frontend; retries with new ports if one was taken.
fn start_haproxy(program: &Path, portal: &Portal, pem: &Path) -> HaProxy {
    for _ in 0..5 {
        let ports = free_ports(4);
        let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], ports[i]));
        let config = format!(
            "global\n    maxconn 200\n\
             defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n    timeout server 60s\n\
             listen telnet_v2\n    bind {t}\n    server portal {telnet} send-proxy-v2\n\
             listen web_v1\n    bind {w}\n    server portal {web} send-proxy\n\
             listen untrusted\n    bind {u}\n    server portal {telnet} send-proxy-v2 source 127.0.0.5\n\
             listen tls_front\n    bind {s} ssl crt {pem}\n    server portal {telnet} send-proxy-v2\n",
            t = addr(0),
            w = addr(1),
            u = addr(2),
            s = addr(3),
            telnet = portal.telnet,
            web = portal.web,
            pem = pem.display(),
        );
        let path = portal.path("haproxy.cfg");
        std::fs::write(&path, config).expect("write haproxy.cfg");
        let stderr = std::fs::File::create(portal.path("haproxy.log")).expect("haproxy log");
        let child = Command::new(program)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start haproxy");
        let mut proxy = HaProxy {
            child,
            telnet_v2: addr(0),
            web_v1: addr(1),
            untrusted: addr(2),
            tls_front: addr(3),
        };
        let up = wait_for("haproxy to listen or exit", || {
            if let Ok(Some(_)) = proxy.child.try_wait() {
                return Some(false);
            }
            ports.iter().all(|p| listening(*p)).then_some(true)
        });
        if up {
            return proxy;
        }
        let log = std::fs::read_to_string(portal.path("haproxy.log")).unwrap_or_default();
        eprintln!("haproxy did not start (a port taken?), retrying: {log}");
    }
    panic!("haproxy would not start");
}

/// A portal whose telnet and web listeners require PROXY headers from
/// 127.0.0.1 (HAProxy), and HAProxy in front; `None` without haproxy.
fn setup() -> Option<(Portal, HaProxy, Vec<u8>)> {
    let program = haproxy_program()?;
    let portal = Portal::start_edited("", |text| {
        let required = "proxy_protocol = \"required\"";
        let text = text.replacen("[telnet]\n", &format!("[telnet]\n{required}\n"), 1);
        let text = text.replacen("[web]\n", &format!("[web]\n{required}\n"), 1);
        format!("{text}\n[proxy]\ntrusted_proxies = [\"127.0.0.1\"]\n")
    });
    let (cert, key, der) = tls::make_cert(portal.dir.path(), "haproxy");
    let mut pem = std::fs::read(cert).expect("read cert");
    pem.extend(std::fs::read(key).expect("read key"));
    let pem_path = portal.path("haproxy.pem");
    std::fs::write(&pem_path, pem).expect("write pem");
    let proxy = start_haproxy(&program, &portal, &pem_path);
    Some((portal, proxy, der))
}

/// A TCP connection to `to` from the loopback address `source`.
fn connect_from(source: Ipv4Addr, to: SocketAddr) -> TcpStream {
    support::ajax::connect_from(source, to)
        .unwrap_or_else(|e| panic!("connect to {to} from {source}: {e}"))
}

fn wait_status_lists(portal: &Portal, ip: &str) -> Vec<String> {
    wait_for(&format!("`portal status` to list {ip}"), || {
        let words = portal.status_report().words("addresses").to_vec();
        words.iter().any(|w| w == ip).then_some(words)
    })
}

/// Wait for a line of the game's log holding both `what` and `from`.
fn wait_game_log(portal: &Portal, what: &str, from: &str) {
    wait_for(&format!("the game to log {what:?} {from:?}"), || {
        let log = portal.game_log();
        log.lines()
            .any(|l| l.contains(what) && l.contains(from))
            .then_some(())
    });
}

#[test]
fn behind_haproxy_send_proxy_v2_the_game_and_status_see_the_real_telnet_client() {
    let Some((portal, proxy, _)) = setup() else {
        return;
    };
    let mut anna = Client::over(connect_from(Ipv4Addr::new(127, 0, 0, 2), proxy.telnet_v2));
    anna.expect("create <name>");
    anna.send("create anna pw123");
    anna.expect("The Portal Plaza");
    let words = wait_status_lists(&portal, "127.0.0.2");
    assert!(
        !words.contains(&"127.0.0.1".to_owned()),
        "HAProxy's own address: {words:?}"
    );
    wait_game_log(&portal, "created account anna", "from 127.0.0.2:");
    portal.wait_log("via proxy 127.0.0.1:");
    portal.wait_log("(PROXY v2)");
}

#[test]
fn behind_haproxy_send_proxy_the_web_client_keeps_its_address() {
    let Some((portal, proxy, _)) = setup() else {
        return;
    };
    let stream = connect_from(Ipv4Addr::new(127, 0, 0, 3), proxy.web_v1);
    let mut client =
        web::try_connect_on(stream, proxy.web_v1, &Options::default()).expect("websocket");
    client.create("wendy");
    wait_status_lists(&portal, "127.0.0.3");
    wait_game_log(&portal, "created account wendy", "from 127.0.0.3:");
    portal.wait_log("(PROXY v1)");
    portal.wait_log("websocket from 127.0.0.3:");
}

#[test]
fn a_haproxy_sending_from_an_untrusted_address_is_refused() {
    let Some((portal, proxy, _)) = setup() else {
        return;
    };
    let mut client = Client::over(connect_from(Ipv4Addr::new(127, 0, 0, 2), proxy.untrusted));
    let text = client.expect_closed();
    assert!(!text.contains("create <name>"), "{text:?}");
    portal.wait_log("127.0.0.5 is not in proxy.trusted_proxies");
    assert_eq!(portal.sessions(), 0);
    let refused = portal.status_report().number("connections", "refused");
    assert!(refused >= 1, "refused {refused}");
}

#[test]
fn a_tls_terminating_haproxy_in_front_of_plain_telnet_works() {
    let Some((portal, proxy, der)) = setup() else {
        return;
    };
    let sock = connect_from(Ipv4Addr::new(127, 0, 0, 4), proxy.tls_front);
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let name = "localhost".try_into().expect("name");
    let conn = rustls::ClientConnection::new(tls::client_config(&der), name).expect("client");
    let mut stream = rustls::StreamOwned::new(conn, sock);
    let text = tls::read_until(&mut stream, "create <name>");
    assert!(text.contains("create <name>"), "{text:?}");
    stream
        .write_all(b"create tina pw123\r\n")
        .expect("write over TLS");
    let text = tls::read_until(&mut stream, "The Portal Plaza");
    assert!(text.contains("The Portal Plaza"), "{text:?}");
    wait_status_lists(&portal, "127.0.0.4");
    wait_game_log(&portal, "created account tina", "from 127.0.0.4:");
}
