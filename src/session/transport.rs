//! The byte pipe under a session: a plain TCP socket, TLS over it, or
//! SSH over it (a shell channel's data, [`crate::ssh`]).
//!
//! Owned by the session worker, which calls [`Transport::read`] when the
//! socket is readable and [`Transport::write`] to push its output buffer.
//! For TLS the worker's thread owns the whole `rustls::ServerConnection`,
//! and for SSH the whole `sunset` runner, so no lock is ever taken around
//! either.

use crate::ssh::SshTransport;
use crate::tls::carried::{split_whole_records, CarriedTls};
use mio::net::TcpStream;
use rustls::ServerConnection;
use std::io::{self, Read, Write};

/// How a read ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// Nothing more to read now.
    WouldBlock,
    /// The peer closed the connection.
    Closed,
    /// The connection failed (for TLS: a bad handshake or record).
    Failed(String),
}

/// Plain, TLS or SSH.
pub enum Transport {
    Plain,
    Tls(Box<TlsSession>),
    /// TLS carried over `portal upgrade`: the record layer goes on from
    /// the old portal's traffic keys ([`crate::tls::carried`]).
    Carried(Box<CarriedSession>),
    Ssh(Box<SshTransport>),
}

/// A rustls connection and the ciphertext read from the socket but not
/// given to it yet: rustls is fed whole records only, so that a session
/// can be carried over an upgrade with nothing left inside rustls.
pub struct TlsSession {
    pub conn: ServerConnection,
    pub partial: Vec<u8>,
}

impl TlsSession {
    pub fn new(conn: ServerConnection) -> TlsSession {
        TlsSession {
            conn,
            partial: Vec::new(),
        }
    }
}

/// A carried TLS session and the records sealed but not yet written.
pub struct CarriedSession {
    pub tls: CarriedTls,
    pub out: Vec<u8>,
}

impl Transport {
    /// Read everything available, appending the plaintext to `data`.
    pub fn read(&mut self, stream: &mut TcpStream, data: &mut Vec<u8>) -> ReadEnd {
        match self {
            Transport::Plain => read_plain(stream, data),
            Transport::Tls(tls) => read_tls(tls, stream, data),
            Transport::Carried(carried) => read_carried(carried, stream, data),
            Transport::Ssh(ssh) => ssh.read(stream, data),
        }
    }

    /// Write as much of `out` as the socket takes; written bytes are removed.
    pub fn write(&mut self, stream: &mut TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Transport::Plain => write_plain(stream, out),
            Transport::Tls(tls) => write_tls(&mut tls.conn, stream, out),
            Transport::Carried(carried) => write_carried(carried, stream, out),
            Transport::Ssh(ssh) => ssh.write(stream, out),
        }
    }

    /// Whether something is waiting for the socket to become writable.
    pub fn wants_write(&self, out: &[u8]) -> bool {
        match self {
            Transport::Plain => !out.is_empty(),
            Transport::Tls(tls) => !out.is_empty() || tls.conn.wants_write(),
            Transport::Carried(carried) => !out.is_empty() || !carried.out.is_empty(),
            Transport::Ssh(ssh) => ssh.wants_write(out),
        }
    }

    /// True while a TLS handshake is still going on, or an SSH client
    /// has not opened its shell yet.
    pub fn is_handshaking(&self) -> bool {
        match self {
            Transport::Plain | Transport::Carried(_) => false,
            Transport::Tls(tls) => tls.conn.is_handshaking(),
            Transport::Ssh(ssh) => ssh.is_handshaking(),
        }
    }

    /// The handshake's name in log lines.
    pub fn handshake_name(&self) -> &'static str {
        match self {
            Transport::Ssh(_) => "SSH",
            _ => "TLS",
        }
    }

    /// Queue TLS close_notify, or end the SSH channel (exit-status, EOF,
    /// close): a clean end the client can tell from a cut.
    pub fn close_notify(&mut self) {
        match self {
            Transport::Tls(tls) => tls.conn.send_close_notify(),
            Transport::Carried(carried) => {
                let alert = carried.tls.close_notify();
                carried.out.extend_from_slice(&alert);
            }
            Transport::Ssh(ssh) => ssh.end_session(),
            Transport::Plain => {}
        }
    }

    /// TLS of either kind (the web engine's `secure`).
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_) | Transport::Carried(_))
    }
}

/// Bytes asked for per read call. Reads go straight into the caller's
/// buffer: a buffer on the stack would keep a page of every idle worker's
/// stack resident.
const READ_CHUNK: usize = 4096;

fn read_plain(stream: &mut TcpStream, data: &mut Vec<u8>) -> ReadEnd {
    loop {
        let start = data.len();
        data.resize(start + READ_CHUNK, 0);
        let read = stream.read(&mut data[start..]);
        data.truncate(start + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => return ReadEnd::Closed,
            // A short read emptied the socket: the worker's poll is
            // level-triggered and reports anything that arrives later, so
            // the read that would only say WouldBlock is saved.
            Ok(n) if n < READ_CHUNK => return ReadEnd::WouldBlock,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadEnd::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return ReadEnd::Failed(e.to_string()),
        }
    }
}

fn read_tls(tls: &mut TlsSession, stream: &mut TcpStream, data: &mut Vec<u8>) -> ReadEnd {
    loop {
        let start = tls.partial.len();
        tls.partial.resize(start + READ_CHUNK, 0);
        let read = stream.read(&mut tls.partial[start..]);
        tls.partial.truncate(start + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => {
                take_plaintext(&mut tls.conn, data);
                return ReadEnd::Closed;
            }
            Ok(n) => {
                if let Some(end) = feed_whole_records(tls, data) {
                    return end;
                }
                // A short read emptied the socket (see `read_plain`).
                if n < READ_CHUNK {
                    return ReadEnd::WouldBlock;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadEnd::WouldBlock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return ReadEnd::Failed(e.to_string()),
        }
    }
}

/// Give rustls the whole records read so far, one `process_new_packets`
/// each time; the partial record after them waits for more bytes.
fn feed_whole_records(tls: &mut TlsSession, data: &mut Vec<u8>) -> Option<ReadEnd> {
    let whole = split_whole_records(&tls.partial);
    let mut offered = &tls.partial[..whole];
    let mut result = None;
    while !offered.is_empty() {
        match tls.conn.read_tls(&mut offered) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                result = Some(ReadEnd::Failed(e.to_string()));
                break;
            }
        }
        if let Err(e) = tls.conn.process_new_packets() {
            // rustls queued an alert; the caller flushes it and closes.
            result = Some(ReadEnd::Failed(e.to_string()));
            break;
        }
        if take_plaintext(&mut tls.conn, data) {
            result = Some(ReadEnd::Closed);
            break;
        }
    }
    let used = whole - offered.len();
    tls.partial.drain(..used);
    if result.is_none() && tls.partial.len() > MAX_PARTIAL {
        result = Some(ReadEnd::Failed("a TLS record larger than allowed".into()));
    }
    result
}

/// A partial record is at most one record: 16 KiB plus overhead.
const MAX_PARTIAL: usize = 18 * 1024 + 5;

fn read_carried(
    carried: &mut CarriedSession,
    stream: &mut TcpStream,
    data: &mut Vec<u8>,
) -> ReadEnd {
    let mut raw = Vec::new();
    let end = read_plain(stream, &mut raw);
    match carried.tls.open(&raw) {
        Ok(opened) => {
            data.extend_from_slice(&opened.data);
            if opened.closed.is_some() {
                return ReadEnd::Closed;
            }
        }
        Err(e) => return ReadEnd::Failed(e.to_string()),
    }
    end
}

fn write_carried(
    carried: &mut CarriedSession,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    if !out.is_empty() {
        let sealed = carried
            .tls
            .seal(out)
            .map_err(|e| io::Error::other(e.to_string()))?;
        carried.out.extend_from_slice(&sealed);
        out.clear();
    }
    write_plain(stream, &mut carried.out)
}

/// Move decrypted bytes into `data`; true once the peer sent close_notify.
fn take_plaintext(conn: &mut ServerConnection, data: &mut Vec<u8>) -> bool {
    loop {
        let start = data.len();
        data.resize(start + READ_CHUNK, 0);
        let read = conn.reader().read(&mut data[start..]);
        data.truncate(start + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

fn write_plain(stream: &mut TcpStream, out: &mut Vec<u8>) -> io::Result<()> {
    let mut written = 0;
    let result = loop {
        if written == out.len() {
            break Ok(());
        }
        match stream.write(&out[written..]) {
            Ok(0) => break Ok(()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => break Err(e),
        }
    };
    out.drain(..written);
    result
}

fn write_tls(
    conn: &mut ServerConnection,
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    if !out.is_empty() {
        let taken = conn.writer().write(out)?;
        out.drain(..taken);
    }
    while conn.wants_write() {
        match conn.write_tls(stream) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
