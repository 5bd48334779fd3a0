//! The Prometheus text exposition format (version 0.0.4), written by hand
//! from a [`Snapshot`]: pure, so its tests check the text without a portal.
//!
//! Every family gets `# HELP` and `# TYPE`; counters end in `_total`;
//! labels come only from small fixed sets (protocol, refusal reason, game
//! and link state), never from a session, so the number of series stays
//! bounded however many players connect.

use super::histogram::{HistogramSnapshot, BOUNDS};
use super::Snapshot;
use crate::amp::inbox::LinkState;
use crate::stats::{GameState, RefuseReason};
use std::fmt::Write as _;

/// The Content-Type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const GAME_STATES: [GameState; 6] = [
    GameState::External,
    GameState::Starting,
    GameState::Running,
    GameState::Restarting,
    GameState::Down,
    GameState::Stopped,
];

const LINK_STATES: [LinkState; 3] = [LinkState::Down, LinkState::Linked, LinkState::Ready];

/// The whole `/metrics` answer.
pub fn render(s: &Snapshot) -> String {
    let mut out = Text::default();
    sessions(&mut out, s);
    connections(&mut out, s);
    traffic(&mut out, s);
    game(&mut out, s);
    link(&mut out, s);
    out.0
}

fn sessions(out: &mut Text, s: &Snapshot) {
    out.family(
        "portal_sessions",
        "gauge",
        "Sessions open now, by protocol.",
    );
    for (protocol, count) in &s.sessions_by_protocol {
        out.sample("portal_sessions", &[("protocol", protocol)], *count as f64);
    }
    out.single(
        "portal_sessions_logged_in",
        "gauge",
        "Sessions whose player is logged in to the game.",
        s.logged_in as f64,
    );
    out.single(
        "portal_session_threads",
        "gauge",
        "Session worker threads running now.",
        s.workers as f64,
    );
}

fn connections(out: &mut Text, s: &Snapshot) {
    let c = &s.counters;
    out.single(
        "portal_connections_accepted_total",
        "counter",
        "Connections accepted on the player listeners.",
        c.connections_accepted as f64,
    );
    out.single(
        "portal_connections_queued_total",
        "counter",
        "Connections that waited in the connection queue (over max_connection_rate).",
        c.connections_throttled as f64,
    );
    out.single(
        "portal_connection_queue_length",
        "gauge",
        "Connections waiting in the connection queue now.",
        c.connections_queued_now as f64,
    );
    let name = "portal_connections_refused_total";
    out.family(name, "counter", "Connections turned away, by reason.");
    for (reason, count) in RefuseReason::ALL.iter().zip(s.refused) {
        out.sample(name, &[("reason", reason.name())], count as f64);
    }
    out.single(
        "portal_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed or timed out.",
        s.tls_handshake_failures as f64,
    );
}

fn traffic(out: &mut Text, s: &Snapshot) {
    let c = &s.counters;
    let counters = [
        (
            "portal_bytes_received_total",
            "Bytes read from players' connections.",
            c.bytes_in,
        ),
        (
            "portal_bytes_sent_total",
            "Bytes written to players' connections.",
            c.bytes_out,
        ),
        (
            "portal_commands_received_total",
            "Commands from players passed on towards the game.",
            c.commands,
        ),
        (
            "portal_commands_refused_total",
            "Commands from players refused by max_command_rate.",
            c.commands_refused,
        ),
        (
            "portal_commands_sent_total",
            "Output commands from the game delivered to sessions.",
            c.commands_out,
        ),
        (
            "portal_config_reloads_total",
            "Configuration reloads applied.",
            c.config_reloads,
        ),
        (
            "portal_config_reload_failures_total",
            "Configuration reloads refused (bad file).",
            c.config_reload_failures,
        ),
    ];
    for (name, help, value) in counters {
        out.single(name, "counter", help, value as f64);
    }
}

fn game(out: &mut Text, s: &Snapshot) {
    let name = "portal_game_state";
    out.family(
        name,
        "gauge",
        "The game process's state as the portal sees it (1 for the current one).",
    );
    for state in GAME_STATES {
        let value = if state == s.game_state { 1.0 } else { 0.0 };
        out.sample(name, &[("state", state.name())], value);
    }
    out.single(
        "portal_game_restarts_total",
        "counter",
        "Game starts after the first (reloads and crash restarts).",
        s.game_restarts as f64,
    );
    out.single(
        "portal_game_crashes_total",
        "counter",
        "Times the game exited without being asked.",
        s.game_crashes as f64,
    );
    out.single(
        "portal_start_time_seconds",
        "gauge",
        "When the portal started, in Unix seconds.",
        s.start_time_unix.floor(),
    );
}

fn link(out: &mut Text, s: &Snapshot) {
    let name = "portal_amp_link_state";
    out.family(
        name,
        "gauge",
        "The link to the game (1 for the current state).",
    );
    for state in LINK_STATES {
        let value = if state == s.link_state { 1.0 } else { 0.0 };
        out.sample(name, &[("state", state.name())], value);
    }
    out.single(
        "portal_amp_queue_frames",
        "gauge",
        "Input frames encoded for the game and not yet written to its socket.",
        s.amp_queue_frames as f64,
    );
    out.single(
        "portal_amp_queue_bytes",
        "gauge",
        "Bytes waiting for the game's socket.",
        s.amp_queue_bytes as f64,
    );
    out.single(
        "portal_held_input_commands",
        "gauge",
        "Player commands held while the game is away or not keeping up.",
        s.held_input as f64,
    );
    out.histogram(
        "portal_input_to_game_seconds",
        "From a player's command reaching the portal to its last byte written to the game.",
        &s.input_to_game,
    );
    out.histogram(
        "portal_game_to_client_seconds",
        "From game output read off the link to its last byte written to the player's socket.",
        &s.game_to_client,
    );
}

/// The text being written.
#[derive(Default)]
struct Text(String);

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// A family of one unlabelled sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", escape_label(value)))
                .collect();
            let _ = write!(self.0, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.0, " {}", number(value));
    }

    fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let cumulative = h.cumulative();
        for (bound, count) in BOUNDS.iter().zip(cumulative) {
            self.sample(&bucket, &[("le", &number(*bound))], count as f64);
        }
        self.sample(&bucket, &[("le", "+Inf")], h.count() as f64);
        self.sample(&format!("{name}_sum"), &[], h.sum_secs());
        self.sample(&format!("{name}_count"), &[], h.count() as f64);
    }
}

/// A sample value as Go's `strconv` would read it.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{value}")
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::format_check as prometheus;
    use crate::metrics::histogram::Histogram;
    use std::time::Duration;

    fn busy() -> Snapshot {
        let mut s = Snapshot {
            sessions_by_protocol: vec![
                ("telnet".into(), 3),
                ("telnet/ssl".into(), 1),
                ("webclient/websocket".into(), 0),
            ],
            logged_in: 2,
            game_state: GameState::Running,
            link_state: LinkState::Ready,
            ..Snapshot::default()
        };
        s.counters.connections_accepted = 9;
        s.counters.commands = 42;
        s.refused[RefuseReason::QueueFull as usize] = 5;
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe_n(Duration::from_secs(30), 2);
        s.input_to_game = h.snapshot();
        s
    }

    #[test]
    fn the_text_passes_a_strict_format_check() {
        let quiet = Snapshot {
            sessions_by_protocol: crate::metrics::with_known_protocols(Default::default()),
            ..Snapshot::default()
        };
        for snapshot in [quiet, busy()] {
            let text = render(&snapshot);
            if let Err(e) = prometheus::parse(&text) {
                panic!("{e}\n{text}");
            }
        }
    }

    #[test]
    fn values_and_labels_come_out_where_they_belong() {
        let families = prometheus::parse(&render(&busy())).unwrap();
        let get = |name: &str, labels: &[(&str, &str)]| {
            prometheus::value(&families, name, labels).unwrap_or_else(|| panic!("{name}"))
        };
        assert_eq!(get("portal_sessions", &[("protocol", "telnet/ssl")]), 1.0);
        assert_eq!(get("portal_sessions_logged_in", &[]), 2.0);
        assert_eq!(get("portal_commands_received_total", &[]), 42.0);
        let full = [("reason", "queue_full")];
        assert_eq!(get("portal_connections_refused_total", &full), 5.0);
        let rate = [("reason", "address_rate")];
        assert_eq!(get("portal_connections_refused_total", &rate), 0.0);
        assert_eq!(get("portal_game_state", &[("state", "running")]), 1.0);
        assert_eq!(get("portal_game_state", &[("state", "down")]), 0.0);
        assert_eq!(get("portal_amp_link_state", &[("state", "ready")]), 1.0);
        let name = "portal_input_to_game_seconds_bucket";
        assert_eq!(get(name, &[("le", "0.0005")]), 1.0);
        assert_eq!(get(name, &[("le", "10")]), 1.0);
        assert_eq!(get(name, &[("le", "+Inf")]), 3.0);
        assert_eq!(get("portal_input_to_game_seconds_count", &[]), 3.0);
        assert_eq!(get("portal_input_to_game_seconds_sum", &[]), 60.0003);
    }

    #[test]
    fn label_values_are_escaped() {
        let s = Snapshot {
            sessions_by_protocol: vec![("odd\"key\\\n".into(), 1)],
            ..Snapshot::default()
        };
        let text = render(&s);
        assert!(text.contains(r#"portal_sessions{protocol="odd\"key\\\n"} 1"#));
        let families = prometheus::parse(&text).unwrap();
        let key = [("protocol", "odd\"key\\\n")];
        assert_eq!(
            prometheus::value(&families, "portal_sessions", &key),
            Some(1.0)
        );
    }

    #[test]
    fn numbers_read_back_as_go_reads_them() {
        assert_eq!(number(0.0), "0");
        assert_eq!(number(0.00025), "0.00025");
        assert_eq!(number(12345678901.0), "12345678901");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
    }
}
