//! SSH for `[[ssh]]` listeners (protocol key `ssh`): the host key, and the
//! transport a session worker drives.
//!
//! The SSH protocol itself is the `sunset` crate, an IO-less SSH core: no
//! async runtime, no threads of its own (`vendor/sunset`: 0.6.0 with a
//! small patch that gives a server the pty-req's size and TERM, the
//! window-change requests, a way to end the channel, and an export and
//! rebuild of an established connection). The worker owns one
//! [`SshTransport`] per connection just as it owns a rustls connection for
//! TLS: it feeds the socket's bytes in and writes what comes out
//! ([`crate::session::transport::Transport::Ssh`]). Only modern algorithms
//! are on offer (sunset's whole set: curve25519 and ML-KEM hybrid key
//! exchange, an ed25519 host key, chacha20-poly1305 or AES-256-CTR with
//! HMAC-SHA-256); nothing with SHA-1, no DSA, no RSA.
//!
//! SSH here is a transport under the terminal engine
//! ([`crate::protocols::terminal`]): it opens one session channel with a
//! shell, accepts any user name (at once, or with `[[ssh]] auth =
//! "password"` after a password, any password; the game's own login screen
//! follows; public keys are refused, and past `max_auth_attempts` of those
//! the client is cut off) and turns channel data into the plaintext the
//! session core reads. The pty-req and window-change sizes and `TERM`
//! (and `COLORTERM` if the client sends it) are handed to the worker as a
//! [`TermInfo`]; a session the portal closes ends the channel as a shell
//! that exits does ([`SshTransport::end_session`]). Until the shell is open the transport counts as
//! handshaking, so the worker's handshake deadline
//! (`limits.tls_handshake_timeout_secs`) bounds a stalled or garbage
//! client exactly as for TLS. `exec`, subsystems (sftp) and further
//! channels are refused.
//!
//! The host key is loaded by `main.rs` at start ([`load_or_create_host_key`]):
//! an ed25519 key in OpenSSH format, made on first start (mode 0600) if the
//! file is missing, its SHA-256 fingerprint logged for players to check.
//!
//! `portal upgrade` carries an established connection
//! ([`SshTransport::freeze`], called by the worker's freeze in
//! `session/worker/carry.rs`, and [`SshTransport::thaw`] in the new
//! portal): once the shell is open and the SSH library is at a quiet
//! point (no key exchange, no packet part-way in or out) its state is
//! exported (`vendor/sunset/src/carry.rs`: keys, sequence numbers,
//! channel windows) with the user and terminal information kept here, and
//! the new process rebuilds the same server connection with the
//! listener's host key, found again by its fingerprint among the config's
//! `[[ssh]]` key files ([`find_host_key`]). The client notices nothing.

use mio::net::TcpStream;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use sunset::{ChanData, ChanFail, ChanHandle, Event, Runner, ServEvent, Server, SignKey};

use crate::config::{SshAuth, SshListener};
use crate::session::transport::ReadEnd;

/// How a listener's clients get in at the SSH layer (`[[ssh]] auth` and
/// `max_auth_attempts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthPolicy {
    pub auth: SshAuth,
    /// Refused attempts before the client is cut off.
    pub max_attempts: u32,
}

impl AuthPolicy {
    pub fn of(listener: &SshListener) -> AuthPolicy {
        AuthPolicy {
            auth: listener.auth,
            max_attempts: listener.max_auth_attempts,
        }
    }
}

impl Default for AuthPolicy {
    fn default() -> AuthPolicy {
        AuthPolicy {
            auth: SshAuth::Any,
            max_attempts: 6,
        }
    }
}

/// A listener's host key, shared by its sessions.
pub struct HostKey {
    key: SignKey,
    /// `SHA256:…`, as `ssh-keygen -lf` and the OpenSSH client show it.
    pub fingerprint: String,
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostKey({})", self.fingerprint)
    }
}

/// Why the host key could not be had.
#[derive(Debug)]
pub struct HostKeyError {
    pub path: std::path::PathBuf,
    pub reason: String,
}

impl fmt::Display for HostKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SSH host key {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for HostKeyError {}

/// Read the ed25519 host key at `path`, or make one there (OpenSSH
/// format, mode 0600) if there is no file. Returns whether it was made.
pub fn load_or_create_host_key(path: &Path) -> Result<(Arc<HostKey>, bool), HostKeyError> {
    let fail = |reason: String| HostKeyError {
        path: path.to_owned(),
        reason,
    };
    let (text, made) = match std::fs::read_to_string(path) {
        Ok(text) => (text, false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            (create_host_key(path).map_err(fail)?, true)
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    let key = host_key_from_text(&text).map_err(fail)?;
    Ok((Arc::new(key), made))
}

/// Parse an OpenSSH private key file's text (ed25519 only).
pub fn host_key_from_text(text: &str) -> Result<HostKey, String> {
    let parsed = ssh_key::PrivateKey::from_openssh(text)
        .map_err(|e| format!("not an OpenSSH private key ({e})"))?;
    if parsed.algorithm() != ssh_key::Algorithm::Ed25519 {
        return Err(format!(
            "a {} key; only ed25519 host keys are used",
            parsed.algorithm()
        ));
    }
    if parsed.is_encrypted() {
        return Err("the key has a passphrase; a host key must have none".into());
    }
    let fingerprint = parsed
        .public_key()
        .fingerprint(ssh_key::HashAlg::Sha256)
        .to_string();
    let key = SignKey::from_openssh(text).map_err(|e| format!("unusable key ({e})"))?;
    Ok(HostKey { key, fingerprint })
}

/// The host key among `listeners`' key files whose fingerprint is
/// `fingerprint` (the listener a carried session was made on), with that
/// listener's auth policy. Files are only read, never made.
pub fn find_host_key(
    listeners: &[SshListener],
    fingerprint: &str,
) -> Result<(Arc<HostKey>, AuthPolicy), String> {
    for entry in listeners {
        let Ok(text) = std::fs::read_to_string(&entry.host_key) else {
            continue;
        };
        if let Ok(key) = host_key_from_text(&text) {
            if key.fingerprint == fingerprint {
                return Ok((Arc::new(key), AuthPolicy::of(entry)));
            }
        }
    }
    Err(format!(
        "no [[ssh]] listener has the host key {fingerprint}"
    ))
}

/// Make a new ed25519 key file at `path` (never over an existing file);
/// returns its text.
fn create_host_key(path: &Path) -> Result<String, String> {
    let key = SignKey::generate(sunset::KeyType::Ed25519, None)
        .map_err(|e| format!("cannot generate a key ({e})"))?;
    let SignKey::Ed25519(signing) = &key else {
        return Err("the SSH library made a key of another type".into());
    };
    let mut pair = [0u8; 64];
    pair[..32].copy_from_slice(&signing.to_bytes());
    pair[32..].copy_from_slice(&signing.verifying_key().to_bytes());
    let keypair = ssh_key::private::Ed25519Keypair::from_bytes(&pair)
        .map_err(|e| format!("cannot encode the key ({e})"))?;
    let mut private = ssh_key::PrivateKey::from(keypair);
    private.set_comment("portal host key");
    let text = private
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(|e| format!("cannot encode the key ({e})"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot make its folder ({e})"))?;
    }
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create it ({e})"))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write it ({e})"))?;
    Ok(text.to_string())
}

/// Bytes asked for per socket read.
const READ_CHUNK: usize = 4096;

/// What the client told about its terminal: `TERM` (from the pty-req or
/// the environment), `COLORTERM`, and its size in columns and rows (from
/// the pty-req and window-change; 0 when not told).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TermInfo {
    pub term: String,
    pub colorterm: String,
    pub width: u16,
    pub height: u16,
}

/// One SSH connection's protocol state, owned by its worker.
pub struct SshTransport {
    runner: Box<Runner<'static, Server>>,
    host_key: Arc<HostKey>,
    /// Socket bytes the runner has not taken yet.
    pending_in: Vec<u8>,
    /// The session channel, once the client opened it.
    channel: Option<ChanHandle>,
    /// The shell started: the handshake is over.
    shell: bool,
    /// What the client said about its terminal, not yet handed on.
    term: Option<TermInfo>,
    term_seen: TermInfo,
    user: Option<String>,
    policy: AuthPolicy,
    /// Authentication attempts refused so far.
    refused: u32,
}

impl SshTransport {
    /// A transport letting any user name in at once.
    pub fn new(host_key: Arc<HostKey>) -> SshTransport {
        SshTransport::with_policy(host_key, AuthPolicy::default())
    }

    pub fn with_policy(host_key: Arc<HostKey>, policy: AuthPolicy) -> SshTransport {
        SshTransport {
            runner: Box::new(Runner::new_server_owned()),
            host_key,
            pending_in: Vec::new(),
            channel: None,
            shell: false,
            term: None,
            term_seen: TermInfo::default(),
            user: None,
            policy,
            refused: 0,
        }
    }

    /// Until the shell is open.
    pub fn is_handshaking(&self) -> bool {
        !self.shell
    }

    /// The user name the client logged in with (any is accepted).
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// New terminal information from the client, once.
    pub fn take_term(&mut self) -> Option<TermInfo> {
        self.term.take()
    }

    /// End the shell as a program that exits does (exit-status 0, EOF,
    /// close): the client leaves cleanly. The caller writes it out.
    pub fn end_session(&mut self) {
        if let (true, Some(channel)) = (self.shell, &self.channel) {
            if let Err(e) = self.runner.end_session(channel, 0) {
                log::debug!("SSH channel close: {e}");
            }
        }
    }

    /// Whether the connection is at a point [`SshTransport::freeze`] can
    /// take it: shell open, nothing part-way in the SSH library (key
    /// exchange, a packet, an event), no input waiting to be fed. If not,
    /// why; reading and writing on usually brings it there soon.
    pub fn quiet(&self) -> Result<(), String> {
        self.freeze().map(drop)
    }

    /// This connection's state for `portal upgrade`, to go on in a new
    /// process with [`SshTransport::thaw`] (see [`CARRY_VERSION`] for the
    /// bytes). Refused (with why) unless the shell is open and the SSH
    /// library is at a quiet point ([`sunset::Runner::export_server`]).
    pub fn freeze(&self) -> Result<Vec<u8>, String> {
        let Some(channel) = self.channel.as_ref().filter(|_| self.shell) else {
            return Err("its SSH shell was not open yet".into());
        };
        if !self.pending_in.is_empty() {
            return Err("SSH input is waiting to be read".into());
        }
        let sunset = self
            .runner
            .export_server(&self.host_key.key)
            .map_err(|e| format!("the SSH library: {e}"))?;
        let carried = Carried {
            sunset,
            channel: channel.num().0,
            fingerprint: self.host_key.fingerprint.clone(),
            user: self.user.clone(),
            term_seen: self.term_seen.clone(),
            term: self.term.clone(),
            refused: self.refused,
        };
        let out = vec![CARRY_VERSION];
        postcard::to_extend(&carried, out).map_err(|e| e.to_string())
    }

    /// The host key fingerprint a frozen state was made with (to find the
    /// listener's key in the new portal's config). Only the envelope is
    /// decoded; the SSH library's part is checked by
    /// [`SshTransport::thaw`].
    pub fn frozen_fingerprint(bytes: &[u8]) -> Result<String, String> {
        Ok(decode_carried(bytes)?.fingerprint)
    }

    /// The connection [`SshTransport::freeze`] gave, going on with
    /// `host_key` (which must be the key it was made with) and `policy`.
    /// Corrupt or hostile bytes give an error: they are bounded
    /// ([`MAX_CARRIED`]) and every part is checked.
    pub fn thaw(
        bytes: &[u8],
        host_key: Arc<HostKey>,
        policy: AuthPolicy,
    ) -> Result<SshTransport, String> {
        let carried = decode_carried(bytes)?;
        if carried.fingerprint != host_key.fingerprint {
            return Err("made with another host key".into());
        }
        let (runner, handles) = Runner::new_server_from_export(&carried.sunset, &host_key.key)
            .map_err(|e| format!("the SSH library: {e}"))?;
        let channel = handles
            .into_iter()
            .find(|h| h.num().0 == carried.channel)
            .ok_or("its session channel is not among the open ones")?;
        let clip = |t: &TermInfo| t.term.len() <= 256 && t.colorterm.len() <= 256;
        if !clip(&carried.term_seen) || !carried.term.as_ref().is_none_or(clip) {
            return Err("terminal names past their bounds".into());
        }
        if carried.user.as_ref().is_some_and(|u| u.len() > 256) {
            return Err("a user name past its bound".into());
        }
        Ok(SshTransport {
            runner: Box::new(runner),
            host_key,
            pending_in: Vec::new(),
            channel: Some(channel),
            shell: true,
            term: carried.term,
            term_seen: carried.term_seen,
            user: carried.user,
            policy,
            refused: carried.refused,
        })
    }

    /// Bytes from the peer, without a socket (the fuzz target's way in):
    /// run the protocol and append channel data to `data`. The answers
    /// wait in [`SshTransport::take_output`].
    pub fn receive(&mut self, bytes: &[u8], data: &mut Vec<u8>) -> Result<(), String> {
        self.pending_in.extend_from_slice(bytes);
        self.run(data)
    }

    /// What the protocol has for the peer (the fuzz target's way out).
    pub fn take_output(&mut self) -> Vec<u8> {
        let out = self.runner.output_buf().to_vec();
        self.runner.consume_output(out.len());
        out
    }

    /// Read the socket, run the protocol, append channel data to `data`
    /// and write the protocol's answers.
    pub fn read(&mut self, stream: &mut TcpStream, data: &mut Vec<u8>) -> ReadEnd {
        let end = self.read_socket(stream);
        if let Err(reason) = self.run(data) {
            let _ = self.flush(stream);
            return ReadEnd::Failed(reason);
        }
        if let Err(e) = self.flush(stream) {
            return ReadEnd::Failed(e.to_string());
        }
        end
    }

    /// Send `out` as channel data (as much as the channel window takes;
    /// nothing before the shell is open) and write to the socket.
    pub fn write(&mut self, stream: &mut TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
        if let (true, Some(channel)) = (self.shell, &self.channel) {
            let mut sent = 0;
            while sent < out.len() {
                match self
                    .runner
                    .write_channel(channel, ChanData::Normal, &out[sent..])
                {
                    Ok(0) => break,
                    Ok(n) => sent += n,
                    Err(e) => return Err(io::Error::other(e.to_string())),
                }
                // Packets queued: push them out before the next one.
                flush_runner(&mut self.runner, stream)?;
            }
            out.drain(..sent);
        }
        let mut ignored = Vec::new();
        self.run(&mut ignored).map_err(io::Error::other)?;
        self.flush(stream)
    }

    /// Whether something waits for the socket to become writable: the
    /// protocol's own output, or channel data the window has room for.
    pub fn wants_write(&self, out: &[u8]) -> bool {
        if self.runner.is_output_pending() {
            return true;
        }
        let Some(channel) = self.channel.as_ref().filter(|_| self.shell) else {
            return false;
        };
        let room = self.runner.write_channel_ready(channel, ChanData::Normal);
        !out.is_empty() && matches!(room, Ok(Some(n)) if n > 0)
    }

    fn read_socket(&mut self, stream: &mut TcpStream) -> ReadEnd {
        let mut chunk = vec![0u8; READ_CHUNK];
        // The runner takes input only as fast as it can answer: keep
        // reading while it has room, and leave the rest in the socket.
        while self.pending_in.len() < READ_CHUNK {
            match stream.read(&mut chunk) {
                Ok(0) => {
                    self.runner.close_input();
                    return ReadEnd::Closed;
                }
                Ok(n) => {
                    self.pending_in.extend_from_slice(&chunk[..n]);
                    if n < READ_CHUNK {
                        return ReadEnd::WouldBlock;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadEnd::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return ReadEnd::Failed(e.to_string()),
            }
        }
        ReadEnd::WouldBlock
    }

    /// Feed pending input and answer events until the runner has nothing
    /// more to do.
    fn run(&mut self, data: &mut Vec<u8>) -> Result<(), String> {
        for _ in 0..10_000 {
            let fed = self.feed()?;
            let progressed = self.progress()?;
            let read = self.read_channel(data)?;
            if !fed && !progressed && !read {
                return Ok(());
            }
        }
        Err("the SSH state machine did not settle".into())
    }

    fn feed(&mut self) -> Result<bool, String> {
        if self.pending_in.is_empty() || !self.runner.is_input_ready() {
            return Ok(false);
        }
        let taken = self
            .runner
            .input(&self.pending_in)
            .map_err(|e| e.to_string())?;
        self.pending_in.drain(..taken);
        Ok(taken > 0)
    }

    /// Channel data into `data`; true if any came.
    fn read_channel(&mut self, data: &mut Vec<u8>) -> Result<bool, String> {
        let Some((_, kind, _)) = self.runner.read_channel_ready() else {
            return Ok(false);
        };
        let Some(channel) = &self.channel else {
            return Err("channel data before a channel".into());
        };
        if kind != ChanData::Normal {
            self.runner
                .discard_read_channel(channel)
                .map_err(|e| e.to_string())?;
            return Ok(true);
        }
        let mut buf = vec![0u8; READ_CHUNK];
        let n = self
            .runner
            .read_channel(channel, ChanData::Normal, &mut buf)
            .map_err(|e| e.to_string())?;
        data.extend_from_slice(&buf[..n]);
        Ok(n > 0)
    }

    /// One step of the runner; true if it did something.
    fn progress(&mut self) -> Result<bool, String> {
        let event = self.runner.progress().map_err(|e| e.to_string())?;
        let serv = match event {
            Event::None => return Ok(false),
            Event::Progressed | Event::Cli(_) => return Ok(true),
            Event::Serv(serv) => serv,
        };
        let done: sunset::Result<()> = match serv {
            ServEvent::Hostkeys(h) => h.hostkeys(&[&self.host_key.key]),
            ServEvent::FirstAuth(auth) => {
                self.user = auth.username().ok().map(str::to_owned);
                match self.policy.auth {
                    SshAuth::Any => auth.allow(),
                    // The client tries its keys (refused, counted), then
                    // asks its player for a password.
                    SshAuth::Password => auth.reject(),
                }
            }
            ServEvent::PasswordAuth(auth) => {
                self.user = auth.username().ok().map(str::to_owned);
                auth.allow()
            }
            ServEvent::PubkeyAuth(auth) => {
                self.refused += 1;
                if self.refused > self.policy.max_attempts {
                    return Err(format!(
                        "too many authentication attempts ({} refused)",
                        self.refused
                    ));
                }
                auth.reject()
            }
            ServEvent::Authenticated | ServEvent::PollAgain => Ok(()),
            ServEvent::OpenSession(open) => {
                if self.channel.is_some() {
                    open.reject(ChanFail::SSH_OPEN_ADMINISTRATIVELY_PROHIBITED)
                } else {
                    open.accept().map(|channel| self.channel = Some(channel))
                }
            }
            ServEvent::SessionShell(shell) => {
                let ours = self.channel.as_ref().map(|c| c.num()) == Some(shell.channel());
                if ours && !self.shell {
                    self.shell = true;
                    shell.succeed()
                } else {
                    shell.fail()
                }
            }
            ServEvent::SessionExec(request) | ServEvent::SessionSubsystem(request) => {
                request.fail()
            }
            ServEvent::SessionPty(pty) => {
                let term = pty.term().unwrap_or_default();
                self.term_seen.term = term.chars().take(64).collect();
                note_size(&mut self.term_seen, &mut self.term, pty.size());
                pty.succeed()
            }
            ServEvent::SessionWinChange(change) => {
                note_size(&mut self.term_seen, &mut self.term, change.size());
                change.succeed()
            }
            ServEvent::SessionEnv(env) => {
                let name = env.name().unwrap_or_default().to_owned();
                let value = env.value().unwrap_or_default().chars().take(64).collect();
                note_env(&mut self.term_seen, &mut self.term, &name, value);
                env.succeed()
            }
            ServEvent::Defunct => return Err("the SSH session ended".into()),
        };
        done.map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// Write the runner's output to the socket (what the socket takes).
    fn flush(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        flush_runner(&mut self.runner, stream)
    }
}

/// The first byte of [`SshTransport::freeze`]'s bytes; then postcard of
/// `Carried`. Bumped whenever the encoding changes.
pub const CARRY_VERSION: u8 = 1;

/// The largest frozen SSH state read (the SSH library's part is under
/// 1 KiB; names are capped at 256 bytes).
pub const MAX_CARRIED: usize = 8 * 1024;

/// An SSH connection as `portal upgrade` carries it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Carried {
    /// [`sunset::Runner::export_server`]'s bytes: keys, sequence numbers,
    /// the session id, the channels.
    sunset: Vec<u8>,
    /// The session channel's number.
    channel: u32,
    /// The host key's `SHA256:` fingerprint.
    fingerprint: String,
    user: Option<String>,
    term_seen: TermInfo,
    /// Terminal information not yet handed to the worker.
    term: Option<TermInfo>,
    refused: u32,
}

fn decode_carried(bytes: &[u8]) -> Result<Carried, String> {
    let (&version, body) = bytes.split_first().ok_or("no SSH state")?;
    if bytes.len() > MAX_CARRIED {
        return Err(format!(
            "SSH state of {} bytes is over the {MAX_CARRIED} allowed",
            bytes.len()
        ));
    }
    if version != CARRY_VERSION {
        return Err(format!(
            "SSH state version {version}, this portal reads {CARRY_VERSION}"
        ));
    }
    let (carried, rest) =
        postcard::take_from_bytes::<Carried>(body).map_err(|e| format!("SSH state: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("SSH state: {} bytes after the end", rest.len()));
    }
    Ok(carried)
}

/// Keep `TERM`/`COLORTERM` from the client's environment requests.
fn note_env(seen: &mut TermInfo, pending: &mut Option<TermInfo>, name: &str, value: String) {
    match name {
        "TERM" => seen.term = value,
        "COLORTERM" => seen.colorterm = value,
        _ => return,
    }
    *pending = Some(seen.clone());
}

/// Keep a terminal size from a pty-req or window-change.
fn note_size(
    seen: &mut TermInfo,
    pending: &mut Option<TermInfo>,
    size: sunset::Result<(u32, u32)>,
) {
    if let Ok((cols, rows)) = size {
        let clamp = |n: u32| u16::try_from(n).unwrap_or(u16::MAX);
        seen.width = clamp(cols);
        seen.height = clamp(rows);
    }
    *pending = Some(seen.clone());
}

fn flush_runner(runner: &mut Runner<'static, Server>, stream: &mut TcpStream) -> io::Result<()> {
    loop {
        let out = runner.output_buf();
        if out.is_empty() {
            return Ok(());
        }
        match stream.write(out) {
            Ok(0) => return Ok(()),
            Ok(n) => runner.consume_output(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};
    use sunset::{CliEvent, Client};

    /// sunset's own client, on the far end of a loopback socket.
    struct TestClient {
        runner: Box<Runner<'static, Client>>,
        socket: std::net::TcpStream,
        /// Socket bytes the runner has not taken yet.
        pending: Vec<u8>,
        channel: Option<ChanHandle>,
        authed: bool,
        shell: bool,
        received: Vec<u8>,
    }

    impl TestClient {
        /// Run the client's events, move its output to the socket and
        /// the socket's bytes in; true if anything moved.
        fn step(&mut self) -> bool {
            let mut moved = self.events();
            let out = self.runner.output_buf().to_vec();
            if !out.is_empty() {
                self.socket.write_all(&out).unwrap();
                self.runner.consume_output(out.len());
                moved = true;
            }
            let mut buf = [0u8; 4096];
            match self.socket.read(&mut buf) {
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("client socket: {e}"),
            }
            while !self.pending.is_empty() && self.runner.is_input_ready() {
                let taken = self.runner.input(&self.pending).unwrap();
                self.pending.drain(..taken);
                moved |= taken > 0;
                moved |= self.events();
                if taken == 0 {
                    break;
                }
            }
            if let (Some(channel), Some(_)) = (&self.channel, self.runner.read_channel_ready()) {
                let n = self
                    .runner
                    .read_channel(channel, ChanData::Normal, &mut buf)
                    .unwrap();
                self.received.extend_from_slice(&buf[..n]);
                moved |= n > 0;
            }
            moved
        }

        fn events(&mut self) -> bool {
            let mut moved = false;
            loop {
                let mut open = false;
                match self.runner.progress().unwrap() {
                    Event::None => break,
                    Event::Cli(CliEvent::Hostkey(h)) => h.accept().unwrap(),
                    Event::Cli(CliEvent::Username(u)) => u.username("alice").unwrap(),
                    Event::Cli(CliEvent::Password(p)) => p.password("pw").unwrap(),
                    Event::Cli(CliEvent::Pubkey(k)) => k.skip().unwrap(),
                    Event::Cli(CliEvent::Authenticated) => open = true,
                    Event::Cli(CliEvent::SessionOpened(mut opener)) => {
                        opener.shell().unwrap();
                        self.shell = true;
                    }
                    Event::Cli(CliEvent::Defunct) => panic!("the client's connection ended"),
                    _ => {}
                }
                moved = true;
                if open && !self.authed {
                    self.authed = true;
                    self.channel = Some(self.runner.open_client_session().unwrap());
                }
            }
            moved
        }

        /// Channel data out, as much as the window and buffer take.
        fn send(&mut self, bytes: &[u8]) -> usize {
            let channel = self.channel.as_ref().unwrap();
            self.runner
                .write_channel(channel, ChanData::Normal, bytes)
                .unwrap()
        }
    }

    /// A server transport and a client connected on loopback, with what
    /// the server has read (`data`) and has still to send (`out`).
    struct Link {
        server: SshTransport,
        stream: TcpStream,
        client: TestClient,
        data: Vec<u8>,
        out: Vec<u8>,
    }

    impl Link {
        fn connected(host_key: Arc<HostKey>) -> Link {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let socket = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (accepted, _) = listener.accept().unwrap();
            accepted.set_nonblocking(true).unwrap();
            socket.set_nonblocking(true).unwrap();
            let client = TestClient {
                runner: Box::new(Runner::new_client_owned()),
                socket,
                pending: Vec::new(),
                channel: None,
                authed: false,
                shell: false,
                received: Vec::new(),
            };
            Link {
                server: SshTransport::new(host_key),
                stream: TcpStream::from_std(accepted),
                client,
                data: Vec::new(),
                out: Vec::new(),
            }
        }

        /// Through the handshake, then one more round (the shell open).
        fn shell_open(&mut self) {
            self.drive(|s, _, _| !s.is_handshaking());
            self.drive(|_, _, _| true);
        }

        /// Drive both ends (one round at least) until `done` (or fail after
        /// 10 s): the server's channel data lands in `data`, `out` is sent
        /// as channel data.
        fn drive(&mut self, done: impl Fn(&SshTransport, &TestClient, &[u8]) -> bool) {
            let Link {
                server,
                stream,
                client,
                data,
                out,
            } = self;
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut first = true;
            while std::mem::take(&mut first) || !done(server, client, data) {
                assert!(
                    Instant::now() < deadline,
                    "stalled: {data:?} {:?}",
                    client.received
                );
                let mut moved = client.step();
                let before = data.len();
                match server.read(stream, data) {
                    ReadEnd::WouldBlock => {}
                    other => panic!("server read: {other:?}"),
                }
                let queued = out.len();
                server.write(stream, out).unwrap();
                moved |= data.len() > before || out.len() < queued;
                if !moved {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    fn test_key() -> Arc<HostKey> {
        let dir = tempfile::tempdir().unwrap();
        load_or_create_host_key(&dir.path().join("key")).unwrap().0
    }

    #[test]
    fn a_frozen_connection_goes_on_in_a_thawed_transport() {
        let key = test_key();
        let mut link = Link::connected(key.clone());
        link.shell_open();
        assert_eq!(link.client.send(b"look\r"), 5);
        link.drive(|_, _, d| d == b"look\r");
        link.out.extend_from_slice(b"You see a room.\r\n");
        link.drive(|_, c, _| c.received == b"You see a room.\r\n");

        let frozen = link.server.freeze().unwrap();
        assert_eq!(
            SshTransport::frozen_fingerprint(&frozen).unwrap(),
            key.fingerprint
        );
        link.server = SshTransport::thaw(&frozen, key, AuthPolicy::default()).unwrap();
        assert!(!link.server.is_handshaking());
        assert_eq!(link.server.user(), Some("alice"));

        // Both ways, more than a channel window's worth (1000 bytes): the
        // sequence numbers, keys and windows all went on.
        link.data.clear();
        link.client.received.clear();
        let typed: Vec<u8> = (0..3000).map(|i| b'a' + (i % 26) as u8).collect();
        let mut sent = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while sent < typed.len() {
            assert!(
                Instant::now() < deadline,
                "sent {sent}, the server has {}",
                link.data.len()
            );
            sent += link.client.send(&typed[sent..]);
            link.drive(|_, c, _| !c.runner.is_output_pending());
        }
        link.drive(|_, _, d| d.len() >= typed.len());
        assert_eq!(link.data, typed);
        link.out.extend_from_slice(&typed);
        link.drive(|_, c, _| c.received.len() >= typed.len());
        assert_eq!(link.client.received, typed);
    }

    #[test]
    fn a_connection_is_not_frozen_before_its_shell_or_mid_packet() {
        let key = test_key();
        let mut link = Link::connected(key.clone());
        assert!(link.server.freeze().is_err(), "nothing yet");
        link.drive(|_, c, _| c.authed);
        link.shell_open();
        // Half a packet in: the library is part-way through it.
        assert_eq!(link.client.send(b"hello"), 5);
        link.client.events();
        let packet = link.client.runner.output_buf().to_vec();
        link.client.runner.consume_output(packet.len());
        link.client
            .socket
            .write_all(&packet[..packet.len() / 2])
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while link.server.quiet().is_ok() {
            assert!(Instant::now() < deadline, "the half packet never arrived");
            let _ = link.server.read(&mut link.stream, &mut link.data);
        }
        let why = link.server.quiet().unwrap_err();
        assert!(why.contains("not quiet"), "{why}");
        link.client
            .socket
            .write_all(&packet[packet.len() / 2..])
            .unwrap();
        link.drive(|_, _, d| d == b"hello");
        assert!(link.server.quiet().is_ok());
    }

    #[test]
    fn a_frozen_state_is_refused_with_another_key_or_corrupt() {
        let key = test_key();
        let mut link = Link::connected(key.clone());
        link.shell_open();
        let frozen = link.server.freeze().unwrap();
        let policy = AuthPolicy::default();
        let other = test_key();
        let e = SshTransport::thaw(&frozen, other, policy).err().unwrap();
        assert!(e.contains("another host key"), "{e}");
        for cut in 0..frozen.len() {
            assert!(SshTransport::thaw(&frozen[..cut], key.clone(), policy).is_err());
        }
        for i in 0..frozen.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut corrupt = frozen.clone();
                corrupt[i] ^= flip;
                // Key bytes may flip into other keys that still decode:
                // what matters is that nothing panics.
                let _ = SshTransport::thaw(&corrupt, key.clone(), policy);
            }
        }
        let mut long = frozen.clone();
        long.resize(MAX_CARRIED + 1, 0);
        let e = SshTransport::thaw(&long, key.clone(), policy)
            .err()
            .unwrap();
        assert!(e.contains("over the"), "{e}");
        let mut version = frozen;
        version[0] = CARRY_VERSION + 1;
        assert!(SshTransport::thaw(&version, key, policy).is_err());
    }

    #[test]
    fn a_missing_host_key_is_made_once_with_mode_0600_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/ssh_host_ed25519_key");
        let (made, created) = load_or_create_host_key(&path).unwrap();
        assert!(created);
        assert!(made.fingerprint.starts_with("SHA256:"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
        let (again, created) = load_or_create_host_key(&path).unwrap();
        assert!(!created, "the existing key is kept");
        assert_eq!(again.fingerprint, made.fingerprint);
    }

    #[test]
    fn a_file_that_is_not_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "hello").unwrap();
        let e = load_or_create_host_key(&path).unwrap_err();
        assert!(e.to_string().contains("not an OpenSSH private key"), "{e}");
    }
}
