use super::*;

fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(0x20 | command);
    out.push(family);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn v2_tcp4(src: [u8; 4], sport: u16) -> Vec<u8> {
    let mut body = src.to_vec();
    body.extend_from_slice(&[10, 0, 0, 1]);
    body.extend_from_slice(&sport.to_be_bytes());
    body.extend_from_slice(&4000u16.to_be_bytes());
    v2(1, 0x11, &body)
}

fn header(bytes: &[u8]) -> Header {
    match parse(bytes) {
        Parsed::Header(h) => h,
        other => panic!("not a header: {other:?}"),
    }
}

fn addr(text: &str) -> Option<SocketAddr> {
    Some(text.parse().unwrap())
}

#[test]
fn v1_examples_from_the_specification() {
    let h = header(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /");
    assert_eq!(h.len, 47);
    assert_eq!(h.version, 1);
    assert_eq!(h.source, addr("192.168.0.1:56324"));
    let line = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 23\r\n";
    assert_eq!(header(line).source, addr("[2001:db8::1]:4000"));
    assert_eq!(header(b"PROXY UNKNOWN\r\n").source, None);
    // The worst case the specification gives: 107 bytes.
    let worst = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(worst.len(), 107);
    assert_eq!(header(worst).len, 107);
}

#[test]
fn v1_malformed_lines_are_refused() {
    let bad: &[&[u8]] = &[
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rx",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 ::1 ::1 1 2\r\n",
        b"PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UNKNOWN x\ny\r\n",
        // An LF before the first CR, with the CR's LF still to come (found
        // by the fuzzer: a prefix was refused, the whole said incomplete).
        b"PROXY ?UNK\n;\r",
    ];
    for line in bad {
        assert!(
            matches!(parse(line), Parsed::Invalid(_)),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    let long = [b"PROXY UNKNOWN ".as_slice(), &[b'a'; 120]].concat();
    assert_eq!(parse(&long), Parsed::Invalid(ProxyError::TooLong));
}

#[test]
fn other_first_bytes_are_no_signature() {
    for start in [
        b"GET / HTTP/1.1\r\n".as_slice(),
        b"\x16\x03\x01",
        b"PROXZ",
        b"\r\n\r\nx",
    ] {
        assert_eq!(parse(start), Parsed::Invalid(ProxyError::NoSignature));
    }
}

#[test]
fn v2_tcp4_tcp6_local_and_unspec() {
    let h = header(&v2_tcp4([203, 0, 113, 7], 5555));
    assert_eq!((h.len, h.version), (28, 2));
    assert_eq!(h.source, addr("203.0.113.7:5555"));
    let mut body = vec![0u8; 36];
    body[0] = 0x20;
    body[1] = 0x01;
    body[15] = 1;
    body[32..34].copy_from_slice(&6000u16.to_be_bytes());
    assert_eq!(header(&v2(1, 0x21, &body)).source, addr("[2001::1]:6000"));
    // LOCAL (a health check): the connection's own address stands.
    let mut local = v2_tcp4([1, 2, 3, 4], 1);
    local[12] = 0x20;
    assert_eq!(header(&local).source, None);
    assert_eq!(header(&v2(1, 0x00, &[])).source, None);
    // TLVs after the addresses belong to the header.
    let mut with_tlv = v2_tcp4([9, 9, 9, 9], 9);
    with_tlv[15] += 4;
    with_tlv.extend_from_slice(&[0x04, 0, 1, 0, b'x']);
    assert_eq!(header(&with_tlv).len, 32);
}

#[test]
fn v2_malformed_heads_are_refused() {
    let mut version = v2_tcp4([1, 1, 1, 1], 1);
    version[12] = 0x11;
    let mut command = v2_tcp4([1, 1, 1, 1], 1);
    command[12] = 0x22;
    let mut family = v2_tcp4([1, 1, 1, 1], 1);
    family[13] = 0x41;
    let mut dgram = v2_tcp4([1, 1, 1, 1], 1);
    dgram[13] = 0x12;
    let short = v2(1, 0x11, &[1, 2, 3]);
    for bad in [version, command, family, dgram, short] {
        assert!(matches!(
            parse(&bad),
            Parsed::Invalid(ProxyError::BadBinary(_))
        ));
    }
}

#[test]
fn incomplete_says_how_much_more_without_overshooting() {
    let whole = v2_tcp4([203, 0, 113, 7], 5555);
    for cut in 0..whole.len() {
        let Parsed::Incomplete { need } = parse(&whole[..cut]) else {
            panic!("cut {cut}: not incomplete");
        };
        assert!(
            need >= 1 && cut + need <= whole.len(),
            "cut {cut} need {need}"
        );
    }
    let line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    for cut in 0..line.len() {
        let Parsed::Incomplete { need } = parse(&line[..cut]) else {
            panic!("cut {cut}: not incomplete");
        };
        assert!(
            need >= 1 && cut + need <= line.len(),
            "cut {cut} need {need}"
        );
    }
}

#[test]
fn the_reader_reads_exactly_the_header_then_stops() {
    let now = Instant::now();
    let mut whole = v2_tcp4([203, 0, 113, 7], 5555);
    whole.extend_from_slice(b"\x16\x03\x01 the ClientHello");
    let mut reader = HeaderReader::new(now, Duration::from_secs(5));
    let mut taken = 0;
    while let Step::Read(n) = reader.step().clone() {
        let chunk = &whole[taken..taken + n];
        taken += n;
        reader.push(chunk);
    }
    assert_eq!(taken, 28);
    let Step::Done(h) = reader.step() else {
        panic!("{:?}", reader.step());
    };
    assert_eq!(h.source, addr("203.0.113.7:5555"));
}

#[test]
fn the_reader_fails_on_a_slow_header_a_close_or_garbage() {
    let now = Instant::now();
    let mut slow = HeaderReader::new(now, Duration::from_secs(5));
    slow.push(b"PROXY TCP4");
    assert!(matches!(
        slow.handle_timeout(now + Duration::from_secs(4)),
        Step::Read(_)
    ));
    let failed = slow.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(
        failed,
        &Step::Failed(ProxyError::TimedOut(Duration::from_secs(5)))
    );
    let mut closed = HeaderReader::new(now, Duration::from_secs(5));
    assert_eq!(closed.push(b""), &Step::Failed(ProxyError::Closed));
    let mut garbage = HeaderReader::new(now, Duration::from_secs(5));
    assert_eq!(
        garbage.push(b"look"),
        &Step::Failed(ProxyError::NoSignature)
    );
    // A whole header is not undone by the clock.
    let mut done = HeaderReader::new(now, Duration::from_secs(5));
    done.push(b"PROXY UNKNOWN\r\n");
    assert!(matches!(
        done.handle_timeout(now + Duration::from_secs(60)),
        Step::Done(_)
    ));
}

#[test]
fn networks_match_by_prefix() {
    let nets = vec![
        "10.0.0.0/8".to_owned(),
        "2001:db8::/32".to_owned(),
        "192.0.2.7".to_owned(),
    ];
    let yes = [
        "10.200.1.1",
        "2001:db8:1::5",
        "192.0.2.7",
        "::ffff:10.1.1.1",
    ];
    let no = ["11.0.0.1", "2001:db9::1", "192.0.2.8", "127.0.0.1"];
    for ip in yes {
        assert!(in_networks(ip.parse().unwrap(), &nets), "{ip}");
    }
    for ip in no {
        assert!(!in_networks(ip.parse().unwrap(), &nets), "{ip}");
    }
    assert!(in_networks(
        "8.8.8.8".parse().unwrap(),
        &["0.0.0.0/0".to_owned()]
    ));
    for bad in ["10.0.0.0/33", "nope", "::1/129", "10.0.0.0/x"] {
        assert!(parse_network(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_rightmost_untrusted_hop_is_the_client() {
    let trusted = vec!["127.0.0.1".to_owned(), "10.0.0.0/8".to_owned()];
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    // A client that forged a first hop: the proxies' own word wins.
    let hops = x_forwarded_for_hops("6.6.6.6, 203.0.113.7, 10.1.1.1");
    assert_eq!(forwarded_client(peer, &hops, &trusted), ip("203.0.113.7"));
    // From an untrusted peer the header is ignored.
    let stranger: IpAddr = "198.51.100.1".parse().unwrap();
    assert_eq!(forwarded_client(stranger, &hops, &trusted), None);
    // Every hop trusted: the leftmost is the best known.
    let inner = x_forwarded_for_hops("10.2.2.2, 10.1.1.1");
    assert_eq!(forwarded_client(peer, &inner, &trusted), ip("10.2.2.2"));
    let forwarded = forwarded_hops("for=192.0.2.43, for=\"[2001:db8:cafe::17]:4711\";proto=https");
    assert_eq!(
        forwarded_client(peer, &forwarded, &trusted),
        ip("2001:db8:cafe::17")
    );
    // An unknown hop ends the walk at the last address known.
    let unknown = forwarded_hops("for=192.0.2.43, for=unknown");
    assert_eq!(forwarded_client(peer, &unknown, &trusted), None);
}
