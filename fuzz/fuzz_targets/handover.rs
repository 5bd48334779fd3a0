//! What a new portal reads after `portal upgrade`: the hand-over file, a
//! session core, the AMP writer's state, a carried TLS session, a carried
//! SSH connection (`TransportState::Ssh`'s bytes, thawed with a fixed
//! host key) and an AJAX session's long-poll state. Invariants: no input panics; a file that
//! decodes encodes to bytes that decode and encode to the same bytes; a
//! carried TLS session likewise. Inputs starting with an odd byte are
//! taken as they are; the others patch a valid file (and a valid core), so
//! the fuzzer reaches past the headers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal::amp::outbox::Outbox;
use portal::config::Config;
use portal::protocols::ajax::{LongPoll, Timing};
use portal::session::core::Core;
use portal::ssh::{host_key_from_text, AuthPolicy, HostKey, SshTransport};
use portal::tls::carried::CarriedTls;
use portal::upgrade::format::{AmpState, Handover, ListenerState, SessionState, TransportState};
use portal::wire::session::Session;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// A host key made for this target only (never used by a listener).
const FUZZ_HOST_KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBHWjDpn1B1VvJVcISOsx0GhJHalboQAHNekgGwLTyfOQAAAJCqqdpGqqna
RgAAAAtzc2gtZWQyNTUxOQAAACBHWjDpn1B1VvJVcISOsx0GhJHalboQAHNekgGwLTyfOQ
AAAEAS+nvKkSUUzb0BPQ3stgqJSJt/v4qxfVzwtxaAWXKST0daMOmfUHVW8lVwhI6zHQaE
kdqVuhAAc16SAbAtPJ85AAAACWZ1enogb25seQECAwQ=
-----END OPENSSH PRIVATE KEY-----
";

fn host_key() -> Arc<HostKey> {
    static KEY: OnceLock<Arc<HostKey>> = OnceLock::new();
    KEY.get_or_init(|| Arc::new(host_key_from_text(FUZZ_HOST_KEY).expect("the fuzz key parses")))
        .clone()
}

fn valid_file() -> Vec<u8> {
    let handover = Handover {
        started_unix: 1.0,
        next_sessid: 9,
        listeners: vec![ListenerState {
            fd: 5,
            protocol_key: "telnet".into(),
            tls_index: None,
            ssh_index: None,
        }],
        sessions: vec![SessionState {
            fd: 7,
            record: Session::init_session(3, "telnet", "127.0.0.1:4000"),
            registered: true,
            transport: TransportState::Plain,
            address: "127.0.0.1:4000".parse().unwrap(),
            counted_ip: None,
            recount_at_register: false,
            core: vec![1, 2, 3],
            unsent: Vec::new(),
        }],
        amp: AmpState {
            listener_fd: 6,
            ..Default::default()
        },
        ..Default::default()
    };
    handover.encode().unwrap()
}

/// `base` with `patch` written over it from an offset the patch names.
fn patched(base: &[u8], patch: &[u8]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    let Some((&at, rest)) = patch.split_first() else {
        return bytes;
    };
    let at = usize::from(at) % bytes.len().max(1);
    for (i, b) in rest.iter().enumerate() {
        match bytes.get_mut(at + i) {
            Some(slot) => *slot = *b,
            None => bytes.push(*b),
        }
    }
    bytes
}

fuzz_target!(|data: &[u8]| {
    let config = Arc::new(Config::default());
    let now = Instant::now();
    let raw = data.first().is_some_and(|b| b & 1 == 1);
    let file = if raw {
        data.to_vec()
    } else {
        patched(&valid_file(), data.get(1..).unwrap_or_default())
    };
    if let Ok(handover) = Handover::decode(&file) {
        let again = handover.encode().expect("a decoded hand-over encodes");
        let back = Handover::decode(&again).expect("and decodes again");
        assert_eq!(back.encode().unwrap(), again);
    }
    let _ = Core::thaw(data, config.clone(), now);
    let _ = Outbox::thaw(data, config.clone(), now);
    let timing = Timing {
        receive_timeout: Duration::from_secs(60),
        keepalive: Duration::from_secs(30),
    };
    let _ = LongPoll::<()>::thaw(data, timing, now);
    let _ = SshTransport::thaw(data, host_key(), AuthPolicy::default());
    if let Ok(tls) = CarriedTls::decode(data) {
        let again = tls.encode();
        let back = CarriedTls::decode(&again).expect("a carried session re-decodes");
        assert_eq!(back.encode(), again);
    }
});
