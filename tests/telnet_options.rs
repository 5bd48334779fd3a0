//! Telnet option negotiation end to end: a scripted client answers the
//! portal's offers and checks the bytes, and the demo game reports what it
//! learned (`client` shows the negotiated flags).

mod support;
use support::{Client, Portal};

// The engine's own constants; this file's names for the two EORs are
// kept: `EOR` the command (239), `EOR_OPT` the option (25).
use portal::protocols::telnet::gmcp::GMCP;
use portal::protocols::telnet::mccp::COMPRESS2;
use portal::protocols::telnet::msdp::{self, MSDP};
use portal::protocols::telnet::mssp::MSSP;
use portal::protocols::telnet::naws::NAWS;
use portal::protocols::telnet::ttype::TTYPE;
use portal::protocols::telnet::{DO, DONT, ECHO, GA, IAC, MXP, NOP, SB, SE, WILL, WONT};
use portal::protocols::telnet::{EOR as EOR_OPT, EOR_MARK as EOR};

/// Text with ANSI colour escapes removed.
fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (false, c) => out.push(c),
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    out
}

fn sub(option: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![IAC, SB, option];
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(&[IAC, SE]);
    bytes
}

fn naws(width: u16, height: u16) -> Vec<u8> {
    let mut body = width.to_be_bytes().to_vec();
    body.extend_from_slice(&height.to_be_bytes());
    sub(NAWS, &body)
}

fn login(client: &mut Client, name: &str) {
    client.expect("create <name>");
    create(client, name);
}

fn create(client: &mut Client, name: &str) {
    client.send(&format!("create {name} pw123"));
    client.expect("Plaza");
}

/// Read the portal's opening offers and answer every one, agreeing only to
/// the options in `accept`, as a real client does.
fn answer_offers(client: &mut Client, accept: &[u8]) {
    let offers = client.expect_bytes(b"create <name>");
    let mut reply = Vec::new();
    for w in offers.windows(3).filter(|w| w[0] == IAC) {
        let ok = accept.contains(&w[2]);
        match w[1] {
            WILL => reply.extend_from_slice(&[IAC, if ok { DO } else { DONT }, w[2]]),
            DO => reply.extend_from_slice(&[IAC, if ok { WILL } else { WONT }, w[2]]),
            _ => {}
        }
    }
    client.send_raw(&reply);
}

#[test]
fn the_portal_offers_its_options_at_connect() {
    let portal = Portal::start("");
    let mut client = portal.client();
    client.expect_bytes(&[IAC, DO, TTYPE]);
    let offers = client.expect_bytes(b"create <name>");
    for offer in [
        [IAC, DO, NAWS],
        [IAC, WILL, GMCP],
        [IAC, WILL, MSSP],
        [IAC, WILL, COMPRESS2],
    ] {
        assert!(offers.windows(3).any(|w| w == offer), "{offer:?} offered");
    }
}

#[test]
fn ttype_mtts_and_naws_reach_the_game_and_a_resize_resyncs() {
    let portal = Portal::start("");
    let mut client = portal.client();
    answer_offers(&mut client, &[TTYPE, NAWS]);
    client.send_raw(&naws(120, 40));
    let ask = [IAC, SB, TTYPE, 1, IAC, SE];
    client.expect_bytes(&ask);
    client.send_raw(&sub(TTYPE, b"\x00MUDLET 4.17"));
    client.expect_bytes(&ask);
    client.send_raw(&sub(TTYPE, b"\x00XTERM-256COLOR"));
    client.expect_bytes(&ask);
    client.send_raw(&sub(TTYPE, b"\x00MTTS 2319"));
    create(&mut client, "anna");
    client.send("client");
    let report = plain(&client.expect("SCREENREADER"));
    assert!(report.contains("MUDLET"), "{report}");
    assert!(report.contains("Screen: 120x40"), "{report}");
    assert!(report.contains("XTERM256: yes"), "{report}");

    client.send_raw(&naws(100, 30));
    support::wait_for("the resize to reach the game", || {
        client.send("client");
        let report = client.expect("SCREENREADER");
        report.contains("Screen: 100x30").then_some(())
    });
}

#[test]
fn mccp2_output_decompresses_with_an_independent_zlib() {
    let portal = Portal::start("");
    let mut client = portal.client();
    client.send_raw(&[IAC, WONT, TTYPE, IAC, DO, COMPRESS2]);
    let start = sub(COMPRESS2, &[]);
    client.expect_bytes(&start);
    client.send("create zed pw123");
    let mut compressed = Vec::new();
    let text = support::wait_for("compressed output with the room", || {
        compressed.extend(client.take_raw());
        let text = python_inflate(&compressed);
        text.contains("The Portal Plaza").then_some(text)
    });
    assert!(text.contains("was created"), "{text}");
}

/// Inflate with Python's zlib (the C library), not the portal's own.
fn python_inflate(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.bin");
    std::fs::write(&path, bytes).unwrap();
    let script = "import sys, zlib\n\
        d = zlib.decompressobj()\n\
        sys.stdout.buffer.write(d.decompress(open(sys.argv[1], 'rb').read()))\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn gmcp_round_trips_through_the_game() {
    let portal = Portal::start("");
    let mut client = portal.client();
    client.send_raw(&[IAC, DO, GMCP]);
    client.expect("create <name>");
    client.send_raw(&sub(
        GMCP,
        br#"Core.Hello {"client": "TestClient", "version": "9.1"}"#,
    ));
    client.send_raw(&sub(GMCP, br#"Core.Ping {"seq": 42}"#));
    let reply = client.expect_bytes(&[IAC, SE]);
    let body = String::from_utf8_lossy(&reply);
    assert!(body.contains("Core.Ping"), "{body}");
    assert!(body.contains("\"seq\": 42"), "{body}");
    create(&mut client, "gmcp");
    client.send("client");
    let report = client.expect("SCREENREADER");
    assert!(report.contains("TestClient"), "{report}");
}

#[test]
fn an_mxp_client_gets_game_text_escaped_and_others_get_it_as_is() {
    let portal = Portal::start("");
    let mut client = portal.client();
    client.send_raw(&[IAC, WONT, TTYPE, IAC, DO, MXP]);
    client.expect_bytes(&sub(MXP, &[]));
    let screen = client.expect("create &lt;name&gt; &lt;password&gt;");
    assert!(!screen.contains("<name>"), "{screen}");

    let mut plain_client = portal.client();
    plain_client.send_raw(&[IAC, WONT, TTYPE, IAC, DONT, MXP]);
    let screen = plain_client.expect("create <name> <password>");
    assert!(!screen.contains("&lt;"), "{screen}");
}

/// The values of an MSDP reply `VAR name VAL ARRAY_OPEN (VAL v)* ARRAY_CLOSE`,
/// checking that it is exactly that.
fn msdp_array(body: &[u8], name: &str) -> Vec<String> {
    let head = [
        &[msdp::VAR][..],
        name.as_bytes(),
        &[msdp::VAL, msdp::ARRAY_OPEN],
    ]
    .concat();
    assert!(body.starts_with(&head), "{body:?} opens the {name} array");
    let inner = &body[head.len()..];
    assert_eq!(inner.last(), Some(&msdp::ARRAY_CLOSE), "{body:?} closes it");
    let inner = &inner[..inner.len() - 1];
    assert!(inner.is_empty() || inner[0] == msdp::VAL, "{body:?}");
    inner
        .split(|b| *b == msdp::VAL)
        .skip(1)
        .map(|v| {
            assert!(v.iter().all(|b| *b > msdp::ARRAY_CLOSE), "{body:?}");
            String::from_utf8(v.to_vec()).unwrap()
        })
        .collect()
}

#[test]
fn msdp_list_is_answered_with_well_formed_arrays() {
    let portal = Portal::start("");
    let mut client = portal.client();
    client.send_raw(&[IAC, WONT, TTYPE, IAC, DO, MSDP]);
    client.expect("create <name>");
    let list = |what: &str| {
        sub(
            MSDP,
            &[&[msdp::VAR][..], b"LIST", &[msdp::VAL], what.as_bytes()].concat(),
        )
    };
    client.send_raw(&list("COMMANDS"));
    client.expect_bytes(&[IAC, SB, MSDP]);
    let reply = client.expect_bytes(&[IAC, SE]);
    let commands = msdp_array(&reply[..reply.len() - 2], "COMMANDS");
    for name in ["LIST", "REPORT", "SEND", "UNREPORT", "RESET"] {
        assert!(commands.iter().any(|c| c == name), "{name} in {commands:?}");
    }

    client.send_raw(&list("LISTS"));
    client.expect_bytes(&[IAC, SB, MSDP]);
    let reply = client.expect_bytes(&[IAC, SE]);
    let lists = msdp_array(&reply[..reply.len() - 2], "LISTS");
    assert!(
        lists.iter().any(|l| l == "REPORTABLE_VARIABLES"),
        "{lists:?}"
    );
}

/// Ask for the MSSP table and parse it (name → values).
fn mssp_table(portal: &Portal) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut client = portal.client();
    client.send_raw(&[IAC, DO, MSSP]);
    client.expect_bytes(&[IAC, SB, MSSP]);
    let body = client.expect_bytes(&[IAC, SE]);
    let body = &body[..body.len() - 2];
    assert_eq!(body.first(), Some(&1), "the table starts with MSSP_VAR");
    let mut table = std::collections::BTreeMap::new();
    for field in body.split(|b| *b == 1).skip(1) {
        let mut parts = field.split(|b| *b == 2);
        let name = String::from_utf8(parts.next().unwrap().to_vec()).unwrap();
        let values: Vec<String> = parts
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
            .collect();
        assert!(!values.is_empty(), "{name} has a value");
        table.insert(name, values);
    }
    table
}

#[test]
fn mssp_answers_with_a_well_formed_table() {
    let portal = Portal::start("");
    let table = mssp_table(&portal);
    assert_eq!(table["NAME"], ["Test Portal"]);
    assert!(table["PLAYERS"][0].parse::<u32>().is_ok(), "{table:?}");
    assert!(table["UPTIME"][0].parse::<u64>().is_ok(), "{table:?}");
    assert_eq!(table["PORT"], [portal.telnet.port().to_string()]);
    assert!(!table.contains_key("TLS"), "no TLS listener: {table:?}");
}

#[test]
fn mssp_advertises_the_tls_port_when_a_telnet_ssl_listener_is_configured() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, _) = support::tls::make_cert(dir.path(), "mssp");
    let tls = format!(
        "[[tls]]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let mut portal = Portal::start_tables("", &tls);
    let tls_port = portal.status("tls").rsplit(':').next().unwrap().to_owned();
    let mut player = portal.player("mona");
    player.send("look");
    let table = mssp_table(&portal);
    assert_eq!(table["TLS"], std::slice::from_ref(&tls_port), "{table:?}");
    assert_eq!(table["SSL"], [tls_port], "{table:?}");
    assert_eq!(table["PLAYERS"], ["1"], "{table:?}");
    assert_eq!(
        table["CODEBASE"],
        [format!("Portal {}", env!("CARGO_PKG_VERSION"))]
    );
}

#[test]
fn the_password_is_not_echoed() {
    let portal = Portal::start("");
    let mut client = portal.client();
    client.expect("create <name>");
    client.send("create");
    client.expect("Name:");
    client.send("secretive");
    let seen = client.expect_bytes(b"Password:");
    assert!(
        seen.windows(3).any(|w| w == [IAC, WILL, ECHO]),
        "echo turned off"
    );
    client.send_raw(&[IAC, DO, ECHO]);
    client.send("hunter22");
    client.expect_bytes(&[IAC, WONT, ECHO]);
    client.expect("was created");
}

#[test]
fn prompts_end_with_ga_or_with_eor_once_agreed() {
    let portal = Portal::start("");
    let mut plain = portal.client();
    login(&mut plain, "gaga");
    plain.expect_bytes(&[b'>', b' ', IAC, GA]);

    let mut eor = portal.client();
    eor.send_raw(&[IAC, DO, EOR_OPT]);
    login(&mut eor, "eorer");
    eor.expect_bytes(&[b'>', b' ', IAC, EOR]);
}

#[test]
fn colour_follows_the_client_and_screenreader_strips_it() {
    let portal = Portal::start("");
    let mut client = portal.client();
    client.send_raw(&[IAC, WONT, TTYPE]);
    login(&mut client, "colourful");
    client.send("look");
    let look = client.expect("Exits");
    assert!(look.contains("\x1b["), "ANSI colour by default: {look:?}");
    client.send("screenreader on");
    client.expect("now on");
    client.send("look");
    let look = client.expect("Exits");
    assert!(
        !look.contains('\x1b'),
        "no escapes for a screen reader: {look:?}"
    );
}

#[test]
fn http_on_the_telnet_port_gets_a_plain_answer_and_is_closed() {
    let portal = Portal::start("");
    let mut browser = portal.client();
    browser.send_raw(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let answer = browser.expect_closed();
    assert!(answer.contains("MUD client"), "{answer}");
    portal.wait_log("HTTP request on a telnet port");
    let mut player = portal.client();
    player.expect("create <name>");
}

#[test]
fn idle_clients_get_nop_keepalives() {
    let portal = Portal::start_sections("", "keepalive_secs = 1\n");
    let mut client = portal.client();
    client.expect("create <name>");
    client.expect_bytes(&[IAC, NOP]);
}

#[test]
fn refused_options_are_not_answered_twice() {
    let portal = Portal::start("");
    let mut client = portal.client();
    // An option nobody offered: refused once, a repeat of the refusal is
    // not answered again (RFC 1143: no loops).
    client.send_raw(&[IAC, WILL, 99]);
    client.expect_bytes(&[IAC, DONT, 99]);
    client.send_raw(&[IAC, WONT, 99, IAC, WONT, 99]);
    client.expect("create <name>");
    let rest = client.take_raw();
    assert!(!rest.windows(3).any(|w| w == [IAC, DONT, 99]), "{rest:?}");
}
