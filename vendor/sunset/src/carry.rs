//! (portal patch) Carrying an established server connection to another
//! process: [`Runner::export_server`] gives its state as bytes at a quiet
//! point, [`Runner::new_server_from_export`] makes a working server
//! `Runner` from them. The peer sees nothing: the same keys, sequence
//! numbers and channels go on.
//!
//! Quiet means: the first key exchange done and no re-key under way,
//! the user authenticated, every channel an open session channel (not
//! being opened or closed), no packet part-way in or out, no event
//! waiting for the application. Otherwise `Error::NotQuiet`, and the
//! caller may try again shortly.
//!
//! What is kept: the session id, the peer's version line (a re-key hashes
//! it), the user name, the keys each direction's cipher and MAC were made
//! from (with an AES-CTR keystream position), the sequence numbers and
//! re-key counters, and each channel's numbers, windows and EOF state.
//! The host key's public half is kept too, and the rebuilt connection
//! must be given the same key: a later re-key signs with it.
//!
//! The bytes, all integers big-endian:
//!
//! ```text
//! "SUNSETSV" version(u8 = 1)
//! hostkey(u8 len, bytes: the SSH encoding of the public key)
//! sess_id(u8 len, bytes)  peer version(u8 len, bytes)  user(u8 len, bytes)
//! strict_kex(u8) seq_encrypt(u32) seq_decrypt(u32)
//! rekey_blocks_out(u32) rekey_blocks_in(u32)
//! 2 x keys: cipher(u8) key(64) iv(32) integ(u8) integ_key(32) stream_pos(u64)
//! channels(u8 count), each:
//!   num send_num recv_max_packet recv_window send_max_packet send_window
//!   pending_adjust full_window (u32 each)  flags(u8: 1 recv_eof, 2 sent_eof,
//!   4 open_confirmed, 8 app_done)
//! ```
//!
//! Decoding reads only what the length bytes say and checks every bound:
//! corrupt bytes give `Error::BadExport`, never a panic.

#[allow(unused_imports)]
use {
    crate::error::{Error, Result, TrapBug},
    log::{debug, error, info, log, trace, warn},
};

use alloc::vec::Vec;

use crate::*;
use channel::{ChannelExport, Channels};
use conn::Conn;
use encrypt::{KeyMaterial, KeyState, KeyStateExport};
use runner::Runner;
use traffic::{TrafIn, TrafOut};

const MAGIC: &[u8; 8] = b"SUNSETSV";
const VERSION: u8 = 1;
const KEY_LEN: usize = 64;
const IV_LEN: usize = 32;

/// The host key's public half as the SSH encoding.
fn hostkey_blob(key: &SignKey) -> Result<heapless::Vec<u8, 255>> {
    let mut buf = [0u8; 255];
    let n = sshwire::write_ssh(&mut buf, &key.pubkey())?;
    heapless::Vec::from_slice(&buf[..n]).map_err(|_| Error::BadKey)
}

impl<'a> Runner<'a, server::Server> {
    /// The state of this established connection as bytes (see the module
    /// docs), or `Error::NotQuiet` when it is not at a point it can be
    /// taken. `host_key` is the key the connection was made with.
    pub fn export_server(&self, host_key: &SignKey) -> Result<Vec<u8>> {
        let (conn, keys) = self.quiet_parts()?;
        if keys.is_send_cleartext() {
            return Err(Error::NotQuiet { why: "no keys yet" });
        }
        let (sess_id, version, user) = conn.export_parts()?;
        let channels = conn.channels.export()?;
        let keys = keys.export();
        let mut w = Vec::new();
        w.extend_from_slice(MAGIC);
        w.push(VERSION);
        put_bytes(&mut w, &hostkey_blob(host_key)?)?;
        put_bytes(&mut w, sess_id)?;
        put_bytes(&mut w, version)?;
        put_bytes(&mut w, user)?;
        w.push(keys.strict_kex as u8);
        for n in [
            keys.seq_encrypt,
            keys.seq_decrypt,
            keys.rekey_blocks_out,
            keys.rekey_blocks_in,
        ] {
            w.extend_from_slice(&n.to_be_bytes());
        }
        put_keys(&mut w, &keys.enc, keys.enc_pos);
        put_keys(&mut w, &keys.dec, keys.dec_pos);
        w.push(channels.len() as u8);
        for c in &channels {
            put_channel(&mut w, c);
        }
        Ok(w)
    }
}

impl Runner<'static, server::Server> {
    /// A server connection from [`Runner::export_server`]'s bytes, going
    /// on where that one stopped, and the handles of its open channels.
    /// `host_key` must be the key the exported connection had.
    pub fn new_server_from_export(
        bytes: &[u8],
        host_key: &SignKey,
    ) -> Result<(Self, heapless::Vec<ChanHandle, { config::MAX_CHANNELS }>)> {
        let mut r = Reader { rest: bytes };
        if r.take(MAGIC.len())? != MAGIC || r.u8()? != VERSION {
            return Err(Error::BadExport { why: "not an exported server state" });
        }
        if r.bytes()? != hostkey_blob(host_key)?.as_slice() {
            return Err(Error::BadExport { why: "another host key" });
        }
        let sess_id = r.bytes()?;
        let version = r.bytes()?;
        let user = r.bytes()?;
        let strict_kex = r.flag()?;
        let (seq_encrypt, seq_decrypt) = (r.u32()?, r.u32()?);
        let (rekey_blocks_out, rekey_blocks_in) = (r.u32()?, r.u32()?);
        let (enc, enc_pos) = r.keys()?;
        let (dec, dec_pos) = r.keys()?;
        let count = r.u8()? as usize;
        if count > config::MAX_CHANNELS {
            return Err(Error::BadExport { why: "too many channels" });
        }
        let mut list =
            heapless::Vec::<ChannelExport, { config::MAX_CHANNELS }>::new();
        for _ in 0..count {
            list.push(r.channel()?)
                .map_err(|_| Error::BadExport { why: "channels" })?;
        }
        if !r.rest.is_empty() {
            return Err(Error::BadExport { why: "bytes after the end" });
        }
        let keys = KeyState::import(&KeyStateExport {
            enc,
            enc_pos,
            dec,
            dec_pos,
            seq_encrypt,
            seq_decrypt,
            strict_kex,
            rekey_blocks_out,
            rekey_blocks_in,
        })
        .map_err(|_| Error::BadExport { why: "the keys" })?;
        if keys.is_send_cleartext() {
            return Err(Error::BadExport { why: "no keys" });
        }
        let channels = Channels::import(&list)?;
        let conn = Conn::import(sess_id, version, user, channels)?;
        let mut handles = heapless::Vec::new();
        for c in &list {
            // At most MAX_CHANNELS, checked above.
            let _ = handles.push(ChanHandle(channel::ChanNum(c.num)));
        }
        let runner = Runner::from_parts(
            conn,
            TrafIn::new_owned(),
            TrafOut::new_owned(),
            keys,
        );
        Ok((runner, handles))
    }
}

/// A length byte then `b`: the session id (32), the version (253) and the
/// host key blob (255) always fit; a user name of 256 bytes (allowed
/// with `larger`) does not, and such a connection is not exported.
fn put_bytes(w: &mut Vec<u8>, b: &[u8]) -> Result<()> {
    let n = u8::try_from(b.len())
        .map_err(|_| Error::BadExport { why: "a field over 255 bytes" })?;
    w.push(n);
    w.extend_from_slice(b);
    Ok(())
}

fn put_keys(w: &mut Vec<u8>, m: &KeyMaterial, pos: u64) {
    w.push(m.cipher);
    w.extend_from_slice(&m.key);
    w.extend_from_slice(&m.iv);
    w.push(m.integ);
    w.extend_from_slice(&m.integ_key);
    w.extend_from_slice(&pos.to_be_bytes());
}

fn put_channel(w: &mut Vec<u8>, c: &ChannelExport) {
    for n in [
        c.num,
        c.send_num,
        c.recv_max_packet,
        c.recv_window,
        c.send_max_packet,
        c.send_window,
        c.pending_adjust,
        c.full_window,
    ] {
        w.extend_from_slice(&n.to_be_bytes());
    }
    let flags = c.recv_eof as u8
        | (c.sent_eof as u8) << 1
        | (c.open_confirmed as u8) << 2
        | (c.app_done as u8) << 3;
    w.push(flags);
}

/// Bounded reading of the exported bytes.
struct Reader<'b> {
    rest: &'b [u8],
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8]> {
        if n > self.rest.len() {
            return Err(Error::BadExport { why: "truncated" });
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn flag(&mut self) -> Result<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::BadExport { why: "a flag" }),
        }
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn bytes(&mut self) -> Result<&'b [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }

    fn keys(&mut self) -> Result<(KeyMaterial, u64)> {
        let mut m = KeyMaterial::cleartext();
        m.cipher = self.u8()?;
        m.key.copy_from_slice(self.take(KEY_LEN)?);
        m.iv.copy_from_slice(self.take(IV_LEN)?);
        m.integ = self.u8()?;
        m.integ_key.copy_from_slice(self.take(32)?);
        Ok((m, self.u64()?))
    }

    fn channel(&mut self) -> Result<ChannelExport> {
        let mut n = [0u32; 8];
        for v in n.iter_mut() {
            *v = self.u32()?;
        }
        let flags = self.u8()?;
        if flags > 0b1111 {
            return Err(Error::BadExport { why: "channel flags" });
        }
        let [
            num,
            send_num,
            recv_max_packet,
            recv_window,
            send_max_packet,
            send_window,
            pending_adjust,
            full_window,
        ] = n;
        Ok(ChannelExport {
            num,
            send_num,
            recv_max_packet,
            recv_window,
            send_max_packet,
            send_window,
            pending_adjust,
            full_window,
            recv_eof: flags & 1 != 0,
            sent_eof: flags & 2 != 0,
            open_confirmed: flags & 4 != 0,
            app_done: flags & 8 != 0,
        })
    }
}
