//! The old portal's side of an upgrade: the handshake, the freeze in order
//! (reader, workers, writer, supervisor), the hand-over, the exec. Called
//! by the main loop ([`crate::acceptor`]), which owns the listeners and the
//! connection queue; returns only when the upgrade did not happen, after
//! every frozen thread has carried on.

use crate::amp::inbox::ToWriter;
use crate::shared::Shared;
use crate::supervisor::{ExecJob, Supervisor};
use crate::upgrade::format::{
    AjaxState, AmpState, Dropped, Handover, ListenerState, QueuedState, SessionState,
};
use crate::upgrade::{check, exec, Frozen};
use crossbeam_channel::Sender;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest the new binary may take to answer the handshake.
const CHECK_LIMIT: Duration = Duration::from_secs(10);
/// Longest any one thread may take to freeze.
const FREEZE_LIMIT: Duration = Duration::from_secs(5);

/// What the main loop gives the hand-over.
pub struct Parts<'a> {
    pub listeners: Vec<ListenerState>,
    pub queued: Vec<QueuedState>,
    pub supervisor: Option<&'a Supervisor>,
    /// The new portal's arguments (after its program name).
    pub args: Vec<String>,
    /// The AMP listener's descriptor.
    pub amp_listener: i32,
}

/// Upgrade to `binary`. Returns why it did not happen (the old portal
/// carries on); on success the process is replaced and this never returns.
pub fn hand_over(
    shared: &Arc<Shared>,
    binary: &Path,
    parts: Parts<'_>,
    reply: Option<&Sender<String>>,
) -> String {
    let config_args = parts.args.get(1..).unwrap_or_default();
    if let Err(e) = check::handshake(binary, config_args, CHECK_LIMIT) {
        return format!("{} refused: {e}", binary.display());
    }
    log::info!(
        "upgrade: {} passed the hand-over check; freezing",
        binary.display()
    );
    shared.upgrades.begin();
    let supervisor = parts.supervisor;
    let why = freeze_and_exec(shared, binary, parts, reply);
    shared.upgrades.call_off();
    if let Some(supervisor) = supervisor {
        supervisor.carry_on();
    }
    why
}

fn freeze_and_exec(
    shared: &Arc<Shared>,
    binary: &Path,
    parts: Parts<'_>,
    reply: Option<&Sender<String>>,
) -> String {
    let began = Instant::now();
    let Some(link) = shared.upgrades.parked_reader(FREEZE_LIMIT) else {
        return "the AMP reader did not stop in time".into();
    };
    let workers = match freeze_workers(shared) {
        Ok(frozen) => frozen,
        Err(why) => return why,
    };
    let (tx, rx) = crossbeam_channel::bounded(1);
    shared.amp.send(ToWriter::Freeze(tx));
    let Ok(writer) = rx.recv_timeout(FREEZE_LIMIT) else {
        return "the AMP writer did not stop in time".into();
    };
    if writer.link != link.as_ref().map(|l| l.id) {
        return "the game's link changed during the freeze".into();
    }
    let game = match parts.supervisor {
        Some(supervisor) => match supervisor.freeze(FREEZE_LIMIT) {
            Some(frozen) => frozen,
            None => return "the supervisor did not stop in time".into(),
        },
        None => crate::supervisor::Frozen {
            game: None,
            exec_here: false,
        },
    };
    let outcome = shared.upgrades.outcome();
    let handover = Handover {
        started_unix: shared.started_unix(),
        upgrades: outcome.upgrades + 1,
        began_unix_micros: (crate::wire::session::unix_now() * 1e6) as u64,
        next_sessid: shared.registry.next_sessid(),
        listeners: parts.listeners,
        queued: parts.queued,
        sessions: workers.sessions,
        amp: AmpState {
            listener_fd: parts.amp_listener,
            link,
            outbox: writer.outbox,
        },
        game: game.game,
        dropped: workers.dropped,
        evennia: (shared.config().amp.dialect == crate::config::Dialect::Evennia)
            .then(|| shared.evennia.carry()),
        ajax: workers.ajax,
        bots: workers.bots,
    };
    let bytes = match handover.encode() {
        Ok(bytes) => bytes,
        Err(e) => return format!("cannot encode the hand-over: {e}"),
    };
    let fds = handover.fds();
    let summary = format!(
        "handing {} sessions to {} ({} not carried, {} bytes, frozen in {:.0?})",
        handover.sessions.len() + handover.ajax.len(),
        binary.display(),
        handover.dropped.len(),
        bytes.len(),
        began.elapsed()
    );
    log::info!("upgrade: {summary}");
    if let Some(reply) = reply {
        let _ = reply.send(format!("ok: {summary}\n"));
    }
    let error = match (parts.supervisor, game.exec_here) {
        (Some(supervisor), true) => supervisor.exec(ExecJob {
            binary: binary.to_owned(),
            args: parts.args,
            bytes,
            fds,
            failed: crossbeam_channel::bounded(1).0,
        }),
        _ => {
            let env = shared.upgrades.exec_env.get().cloned().unwrap_or_default();
            exec::exec(binary, &parts.args, &env, &bytes, &fds)
        }
    };
    format!("cannot start {}: {error}", binary.display())
}

/// Ask every worker to freeze; their states, and the sessions they could
/// not carry. Fails if a live worker does not answer in time.
/// The workers' answers to a freeze.
#[derive(Default)]
struct FrozenWorkers {
    sessions: Vec<SessionState>,
    ajax: Vec<AjaxState>,
    dropped: Vec<Dropped>,
    bots: Vec<crate::session::irc::BotConfig>,
}

fn freeze_workers(shared: &Shared) -> Result<FrozenWorkers, String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let workers = shared.upgrades.workers();
    for (_, handle) in &workers {
        handle.freeze(tx.clone());
    }
    let bots = shared.bots.handles();
    for handle in &bots {
        handle.freeze(tx.clone());
    }
    drop(tx);
    let mut bots_waiting = bots.len();
    let mut waiting: HashSet<u64> = workers.iter().map(|(id, _)| *id).collect();
    let mut frozen = FrozenWorkers::default();
    let deadline = Instant::now() + FREEZE_LIMIT;
    while !waiting.is_empty() || bots_waiting > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(50))) {
            Ok(Frozen::Session(state)) => {
                waiting.remove(&state.record.sessid);
                frozen.sessions.push(*state);
            }
            Ok(Frozen::Ajax(state)) => {
                waiting.remove(&state.record.sessid);
                frozen.ajax.push(*state);
            }
            Ok(Frozen::Dropped(d)) => {
                waiting.remove(&d.sessid);
                frozen.dropped.push(d);
            }
            Ok(Frozen::Ended(sessid)) => {
                waiting.remove(&sessid);
            }
            Ok(Frozen::Bot(config)) => {
                bots_waiting = bots_waiting.saturating_sub(1);
                frozen.bots.push(*config);
            }
            Err(_) => {
                // Workers that ended without answering are gone: fine.
                let live: HashSet<u64> = shared
                    .upgrades
                    .workers()
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect();
                waiting.retain(|id| live.contains(id));
                if Instant::now() >= deadline && !waiting.is_empty() {
                    return Err(format!("{} sessions did not freeze in time", waiting.len()));
                }
            }
        }
    }
    Ok(frozen)
}
