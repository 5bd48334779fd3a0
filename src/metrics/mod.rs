//! Prometheus metrics: `/metrics` in the text exposition format on a
//! listener of its own (`[metrics] listen`, off by default).
//!
//! - [`histogram`]: the two latency histograms (atomics, recorded by the
//!   AMP writer and the session workers into [`crate::stats::Stats`]);
//! - [`Snapshot`] and [`collect`]: every value `/metrics` shows, read from
//!   the counters, the registry, the supervisor's record and the AMP
//!   writer's published link status;
//! - [`mod@render`]: a snapshot as Prometheus text, pure;
//! - [`server`]: the `metrics` thread answering scrapes.
//!
//! The text format is written by hand rather than with a client crate:
//! the portal already keeps its counters as atomics for `portal status`
//! and the stats line, so a registry crate would mean a second copy of
//! each (or wrapping all of them), and its HTTP side would still have to
//! be written or pulled in with an async runtime; the format itself is a
//! page of code checked by the tests. `main.rs` starts the server.

pub mod histogram;
pub mod render;
pub mod server;

/// The end-to-end tests' strict reader of the text format, for the unit
/// tests of [`mod@render`].
#[cfg(test)]
#[path = "../../tests/support/prometheus.rs"]
mod format_check;

use crate::amp::inbox::LinkState;
use crate::session::worker::WEB_PROTOCOL_KEY;
use crate::shared::Shared;
use crate::stats::{Counters, GameState, RefuseReason};
use histogram::HistogramSnapshot;

pub use render::render;

/// Protocols listed even with no session, so their series always exist.
const KNOWN_PROTOCOLS: [&str; 6] = [
    "telnet",
    "telnet/ssl",
    WEB_PROTOCOL_KEY,
    crate::protocols::ajax::PROTOCOL_KEY,
    "ssh",
    crate::session::irc::SESSION_PROTOCOL_KEY,
];

/// Every value `/metrics` shows, read at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub counters: Counters,
    /// Refused connections, in [`RefuseReason::ALL`]'s order.
    pub refused: [u64; RefuseReason::ALL.len()],
    pub tls_handshake_failures: u64,
    /// Sessions per protocol key, the known ones first.
    pub sessions_by_protocol: Vec<(String, usize)>,
    pub logged_in: usize,
    pub workers: u64,
    pub game_state: GameState,
    pub game_restarts: u64,
    pub game_crashes: u64,
    pub start_time_unix: f64,
    pub link_state: LinkState,
    pub held_input: usize,
    pub amp_queue_frames: usize,
    pub amp_queue_bytes: usize,
    pub input_to_game: HistogramSnapshot,
    pub game_to_client: HistogramSnapshot,
}

/// Read every value from the portal's owners.
pub fn collect(shared: &Shared) -> Snapshot {
    let stats = &shared.stats;
    let game = stats.game();
    let (amp_queue_frames, amp_queue_bytes) = shared.link.queued();
    Snapshot {
        counters: stats.snapshot(),
        refused: stats.refused_by_reason(),
        tls_handshake_failures: crate::tls::handshake_failures(),
        sessions_by_protocol: with_known_protocols(shared.registry.sessions_by_protocol()),
        logged_in: shared.registry.count_loggedin(false),
        workers: stats.live_workers(),
        game_state: game.state,
        game_restarts: game.restarts,
        game_crashes: game.crashes,
        start_time_unix: shared.started_unix(),
        link_state: shared.link.state(),
        held_input: shared.link.held(),
        amp_queue_frames,
        amp_queue_bytes,
        input_to_game: stats.input_to_game.snapshot(),
        game_to_client: stats.game_to_client.snapshot(),
    }
}

/// The known protocols (0 when none is open), then any others.
fn with_known_protocols(
    mut counts: std::collections::BTreeMap<String, usize>,
) -> Vec<(String, usize)> {
    let mut list: Vec<(String, usize)> = KNOWN_PROTOCOLS
        .iter()
        .map(|key| (key.to_string(), counts.remove(*key).unwrap_or(0)))
        .collect();
    list.extend(counts);
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_format_check_refuses_what_prometheus_or_promtool_would() {
        let good = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n";
        assert!(format_check::parse(good).is_ok());
        let bad = [
            "a_total 1\n",
            "# HELP a_total A.\n# TYPE a_total counter\na_total 1",
            "# HELP a A.\n# TYPE a counter\na 1\n",
            "# HELP a A.\n# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n",
            "# HELP a A.\n# TYPE a gauge\na{x=\"\\q\"} 1\n",
            "# HELP a A.\n# TYPE a gauge\na{x=\"1\",} 1\n",
            "# HELP a A.\n# TYPE a gauge\na inf\n",
            "# HELP a A.\n# TYPE a gauge\nb 1\n",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        ];
        for text in bad {
            assert!(format_check::parse(text).is_err(), "accepted {text:?}");
        }
    }

    #[test]
    fn known_protocols_are_always_listed_and_others_follow() {
        let counts = BTreeMap::from([("telnet".to_string(), 2), ("other".to_string(), 1)]);
        let list = with_known_protocols(counts);
        let keys: Vec<&str> = list.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "telnet",
                "telnet/ssl",
                WEB_PROTOCOL_KEY,
                "webclient/ajax",
                "ssh",
                "ircbot",
                "other"
            ]
        );
        assert_eq!(list[0].1, 2);
        assert_eq!(list[1].1, 0);
    }
}
