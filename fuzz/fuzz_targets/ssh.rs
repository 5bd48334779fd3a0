//! The SSH transport (sunset's server state machine with the portal's
//! event handling) fed bytes a peer controls, before and after a valid
//! version line. Invariants: no panic; the portal's first bytes are its
//! own version line; channel data never appears and no shell opens
//! without a completed key exchange (random bytes cannot forge one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portal::ssh::SshTransport;
use portal_fuzz::chunks;
use std::sync::{Arc, OnceLock};

fn host_key() -> Arc<portal::ssh::HostKey> {
    static KEY: OnceLock<Arc<portal::ssh::HostKey>> = OnceLock::new();
    KEY.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("portal-fuzz-ssh-{}", std::process::id()));
        let path = dir.join("host_key");
        let (key, _) = portal::ssh::load_or_create_host_key(&path).expect("a host key");
        key
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let [seed, prefix, input @ ..] = data else {
        return;
    };
    let mut ssh = SshTransport::new(host_key());
    let mut plain = Vec::new();
    let mut sent = Vec::new();
    if prefix & 1 == 1 {
        let _ = ssh.receive(b"SSH-2.0-OpenSSH_9.2p1\r\n", &mut plain);
    }
    for read in chunks(input, *seed) {
        let result = ssh.receive(read, &mut plain);
        sent.extend_from_slice(&ssh.take_output());
        if result.is_err() {
            // The worker closes the connection here.
            break;
        }
    }
    if !sent.is_empty() {
        assert!(
            sent.starts_with(b"SSH-2.0-"),
            "first bytes: {:?}",
            &sent[..sent.len().min(16)]
        );
    }
    assert!(ssh.is_handshaking(), "random bytes opened a shell");
    assert!(plain.is_empty(), "channel data without a handshake");
});
