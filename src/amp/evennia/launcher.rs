//! Evennia's launcher (`evennia start|reload|reset|stop|sstop|status|info`)
//! on the AMP port, one short-lived thread per launcher connection.
//!
//! The launcher asks `MsgStatus` (answered with Evennia's status tuple:
//! portal running, server running, both pids, both info dicts) and sends
//! `MsgLauncher2Portal` instructions: SSTART (start the Server with the
//! command it gives), SRELOAD, SRESET, SSHUTD (stop the Server only),
//! PSHUTD (stop everything). The portal acts through its main loop and
//! supervisor, the same paths SIGUSR1 and the game's own `reload` take,
//! and when the Server has (dis)connected it pushes a `MsgStatus` to the
//! launcher, which waits for that to print "... Server reloaded." and
//! the like.

use crate::amp::evennia::boxes::{self, AmpBox, Decoded};
use crate::amp::evennia::mapping::{self, op, FromPeer};
use crate::amp::evennia::pickle::{self, Limits, Py};
use crate::shared::{Control, Shared};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a waiting launcher looks at the Server's state.
const POLL: Duration = Duration::from_millis(50);
/// A launcher connection idle this long is closed.
const IDLE_LIMIT: Duration = Duration::from_secs(600);
/// Largest box a launcher may send.
const MAX_BOX: usize = 1 << 20;

/// What the launcher waits to be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// The Server linked and synced (after SSTART).
    Connected,
    /// The Server linked at `epoch` went away (after SRELOAD, SSHUTD…).
    Gone { epoch: u64 },
}

/// Serve one launcher connection until it closes; `buf` holds what was
/// read of it already.
pub fn serve(shared: &Arc<Shared>, mut stream: TcpStream, mut buf: Vec<u8>) {
    let mut waits: Vec<Wait> = Vec::new();
    let mut asks = 0u64;
    let mut chunk = [0u8; 4096];
    let mut last_heard = Instant::now();
    if stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    loop {
        loop {
            match boxes::decode(&buf, MAX_BOX) {
                Decoded::NeedMore => break,
                Decoded::Invalid { reason } => {
                    return log::warn!("AMP: the Evennia launcher sent junk ({reason})")
                }
                Decoded::Box { amp_box, used } => {
                    buf.drain(..used);
                    let reply = handle(shared, &amp_box, &mut waits);
                    if let Some(reply) = reply {
                        if send(&mut stream, &reply).is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if tell_waiters(shared, &mut stream, &mut waits, &mut asks).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                last_heard = Instant::now();
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {
                if last_heard.elapsed() > IDLE_LIMIT {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

fn send(stream: &mut TcpStream, b: &AmpBox) -> io::Result<()> {
    stream.write_all(&b.encode())
}

/// Act on one box from the launcher; the answer to send, if any.
fn handle(shared: &Shared, amp_box: &AmpBox, waits: &mut Vec<Wait>) -> Option<AmpBox> {
    let incoming = mapping::decode_box(amp_box, MAX_BOX);
    let ask = incoming.ask;
    let result = match incoming.what {
        Ok(FromPeer::Status) => {
            let mut answer = AmpBox::answer(ask.as_deref().unwrap_or_default());
            answer.insert("status", pickle::encode(&status(shared)));
            return ask.map(|_| answer);
        }
        Ok(FromPeer::Launcher {
            operation,
            arguments,
        }) => instruct(shared, operation, &arguments, waits),
        Ok(FromPeer::Answer { .. } | FromPeer::Failed { .. }) => Ok(()),
        Ok(other) => Err(("UNHANDLED", format!("not a launcher command: {other:?}"))),
        Err(e) => Err(("EXCEPTION", e.to_string())),
    };
    let ask = ask?;
    Some(match result {
        Ok(()) => AmpBox::answer(&ask),
        Err((code, why)) => {
            log::warn!("AMP: Evennia launcher request refused: {why}");
            AmpBox::error(&ask, code, &why)
        }
    })
}

/// Carry out one launcher instruction.
fn instruct(
    shared: &Shared,
    operation: u8,
    arguments: &[u8],
    waits: &mut Vec<Wait>,
) -> Result<(), (&'static str, String)> {
    let connected = shared.evennia.epoch();
    let gone = |waits: &mut Vec<Wait>| {
        if let Some(epoch) = connected {
            waits.push(Wait::Gone { epoch });
        }
    };
    match operation {
        op::SSTART => {
            let command = server_command(arguments)?;
            log::info!("AMP: the Evennia launcher asks to start the Server");
            shared.evennia.set_command(command);
            waits.push(Wait::Connected);
            shared.request(Control::StartGame);
        }
        op::SRELOAD | op::SRESET => {
            let (control, what) = if operation == op::SRELOAD {
                (Control::ReloadGame, "reload")
            } else {
                (Control::ResetGame, "reset")
            };
            log::info!("AMP: the Evennia launcher asks to {what} the Server");
            if connected.is_some() {
                gone(waits);
                shared.request(control);
            } else {
                waits.push(Wait::Connected);
                shared.request(Control::StartGame);
            }
        }
        op::SSHUTD => {
            log::info!("AMP: the Evennia launcher asks to stop the Server");
            gone(waits);
            shared.request(Control::StopGame);
        }
        op::PSHUTD => {
            log::info!("AMP: the Evennia launcher asks to stop the portal");
            shared.request(Control::Shutdown);
        }
        other => return Err(("EXCEPTION", format!("operation {other} not recognized"))),
    }
    Ok(())
}

/// The launcher's pickled `[twistd, --python=…server.py, …]`.
fn server_command(arguments: &[u8]) -> Result<Vec<String>, (&'static str, String)> {
    let bad = |why: String| ("EXCEPTION", format!("SSTART arguments: {why}"));
    let value = pickle::decode(arguments, &Limits::default()).map_err(|e| bad(e.to_string()))?;
    let (Py::List(items) | Py::Tuple(items)) = value else {
        return Err(bad("not a list".into()));
    };
    let command: Vec<String> = items
        .iter()
        .filter_map(|item| match item {
            Py::Str(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    if command.is_empty() || command.len() != items.len() {
        return Err(bad("not a list of strings".into()));
    }
    Ok(command)
}

/// Push a status to the launcher for each wait that is over.
fn tell_waiters(
    shared: &Shared,
    stream: &mut TcpStream,
    waits: &mut Vec<Wait>,
    asks: &mut u64,
) -> io::Result<()> {
    if waits.is_empty() {
        return Ok(());
    }
    let now = shared
        .evennia
        .epoch()
        .filter(|_| shared.link.state() == crate::amp::inbox::LinkState::Ready);
    let before = waits.len();
    waits.retain(|wait| match wait {
        Wait::Connected => now.is_none(),
        Wait::Gone { epoch } => shared.evennia.epoch() == Some(*epoch),
    });
    for _ in waits.len()..before {
        *asks += 1;
        let mut b = AmpBox::command("MsgStatus", Some(&format!("p{asks}")));
        b.insert("status", pickle::encode(&status(shared)));
        send(stream, &b)?;
    }
    Ok(())
}

/// Evennia's status tuple: `(portal_running, server_running, portal_pid,
/// server_pid, portal_info, server_info)`.
fn status(shared: &Shared) -> Py {
    let (pid, info) = shared.evennia.get();
    let running = shared.evennia.epoch().is_some();
    Py::Tuple(vec![
        Py::Bool(true),
        Py::Bool(running),
        Py::Int(i64::from(std::process::id())),
        pid.filter(|_| running).map_or(Py::None, Py::Int),
        portal_info(shared),
        info.filter(|_| running).unwrap_or(Py::Dict(Vec::new())),
    ])
}

/// The portal's info dict, with every key the launcher's `info` prints.
fn portal_info(shared: &Shared) -> Py {
    let config = shared.config();
    let s = |t: &str| Py::Str(t.to_owned());
    let list = |items: Vec<String>| Py::List(items.into_iter().map(Py::Str).collect());
    let tls = |web: bool| {
        config
            .tls
            .iter()
            .filter(|t| (t.serve == crate::config::Serve::Web) == web)
            .map(|t| {
                format!(
                    "{}: {}",
                    if web { "webclient+tls" } else { "telnet+ssl" },
                    t.listen
                )
            })
            .collect::<Vec<_>>()
    };
    let mut web: Vec<String> = config
        .web
        .listen
        .iter()
        .map(|a| format!("webclient: {a}"))
        .collect();
    web.extend(tls(true));
    let pairs = vec![
        (s("servername"), s(&config.portal.name)),
        (
            s("version"),
            Py::Str(format!("(portal {})", env!("CARGO_PKG_VERSION"))),
        ),
        (
            s("telnet"),
            list(
                config
                    .telnet
                    .listen
                    .iter()
                    .map(|a| format!("telnet: {a}"))
                    .collect(),
            ),
        ),
        (s("telnet_ssl"), list(tls(false))),
        (s("ssh"), list(Vec::new())),
        (s("webserver_proxy"), list(Vec::new())),
        (s("webclient"), list(web)),
        (s("webserver_internal"), list(Vec::new())),
        (s("amp"), Py::Str(format!("amp: {}", config.amp.listen))),
    ];
    Py::Dict(pairs)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sstart_command_is_a_pickled_list_of_strings() {
        let list = Py::List(vec![
            Py::Str("twistd".into()),
            Py::Str("--python=/x/server.py".into()),
        ]);
        let command = server_command(&pickle::encode(&list)).unwrap();
        assert_eq!(command, ["twistd", "--python=/x/server.py"]);
        for bad in [
            pickle::encode(&Py::Str("twistd".into())),
            pickle::encode(&Py::List(vec![Py::Int(1)])),
            pickle::encode(&Py::List(vec![])),
            b"junk".to_vec(),
        ] {
            assert!(server_command(&bad).is_err());
        }
    }
}
