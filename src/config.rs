//! `portal.conf`: the portal's configuration file (TOML).
//!
//! `main.rs` loads it at start; the acceptor re-reads it on SIGHUP. Every
//! limit the portal enforces lives in [`Limits`], every player-facing line in
//! [`Messages`]. A bad file is refused with a [`ConfigError`] that names the
//! file, the key and the reason, so nothing starts half-configured. The
//! reason is for people: types are named in words ("a number", "true or
//! false"), value errors give their line too, a misspelt key gets the nearest
//! known one suggested, and a missing file says how to point at one.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The Evennia Server's stdout and stderr, in its `server/logs` (Evennia
/// writes its own log lines to `server.log` beside it, and two writers must
/// not share one file: Twisted's log file writes at its own offset).
const EVENNIA_OUTPUT_LOG: &str = "server-output.log";

pub use crate::protocols::telnet::TelnetOptions;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub portal: PortalSection,
    pub telnet: TelnetSection,
    /// `[[tls]]`: telnet over TLS listeners (protocol key `telnet/ssl`).
    pub tls: Vec<TlsListener>,
    /// `[[ssh]]`: SSH listeners (protocol key `ssh`).
    pub ssh: Vec<SshListener>,
    pub web: WebSection,
    pub amp: AmpSection,
    pub limits: Limits,
    pub messages: Messages,
    pub log: LogSection,
    pub game: GameSection,
    pub metrics: MetricsSection,
    /// `[irc]`: IRC bot sessions (`server_connect` with key `irc`).
    pub irc: IrcSection,
    /// `[proxy]`: the load balancers allowed to speak for clients.
    pub proxy: ProxySection,
    /// `[mssp]`: MSSP keys (e.g. `CONTACT`, `WEBSITE`) added to the ones
    /// the portal fills in (NAME, PLAYERS, UPTIME, CODEBASE, PORT, TLS),
    /// or replacing them (see `protocols::telnet::mssp::table`).
    pub mssp: std::collections::BTreeMap<String, String>,
}

/// `[portal]`: identity and run files.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PortalSection {
    /// The game's name, shown to players.
    pub name: String,
    /// If set, the portal writes its bound addresses and the game's pid here
    /// (`key = value` lines), rewritten whenever they change.
    pub status_file: Option<PathBuf>,
    /// Pid file written at start and removed at a clean exit; empty = none.
    /// A relative path is taken from the directory of portal.conf, so the
    /// `portal stop|reload|status --config PATH` commands find it from
    /// anywhere.
    pub pidfile: PathBuf,
    /// Unix socket (mode 0600) answering `portal status`; empty = none.
    /// Relative paths as for `pidfile`.
    pub control_socket: PathBuf,
}

/// `[telnet]`: plain telnet listeners.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelnetSection {
    /// `interface:port` pairs to listen on. Port 0 picks a free port.
    pub listen: Vec<String>,
    /// Seconds of silence towards a client before an IAC NOP keepalive is
    /// sent (keeps NAT routers from dropping idle players); 0 disables.
    pub keepalive_secs: u64,
    /// Seconds to wait for the client's option answers before the session
    /// is synced to the game anyway.
    pub negotiation_timeout_secs: f64,
    /// Milliseconds the opening negotiation waits for a new client's first
    /// bytes, so a browser on the telnet port gets a clean HTTP answer; a
    /// client that sends anything else ends the wait at once; 0 = no wait.
    pub negotiation_hold_ms: u64,
    /// Encoding for clients that do not speak UTF-8 (e.g. `latin-1`).
    pub fallback_encoding: String,
    /// Largest telnet subnegotiation accepted, in bytes; longer ones are
    /// discarded.
    pub max_subnegotiation: usize,
    /// Most bytes one read of a client's MCCP3-compressed input may inflate
    /// to; a client past it is told (`messages.input_too_large`) and cut
    /// off.
    pub max_inflated_input: usize,
    /// `[telnet.options]`: which options the portal offers, each on or off
    /// (the engine's own type, so the list is written once).
    pub options: TelnetOptions,
    /// `required`: every connection must come from `proxy.trusted_proxies`
    /// and start with a PROXY protocol header (v1 or v2); `off`: none is
    /// read.
    pub proxy_protocol: ProxyMode,
}

/// Whether a listener reads a PROXY protocol header.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProxyMode {
    #[default]
    Off,
    Required,
}

/// `[proxy]`: load balancers (HAProxy, a cloud balancer) in front of the
/// portal.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProxySection {
    /// Addresses or networks (`10.0.0.0/8`, `::1`) of the proxies whose
    /// PROXY headers, and on the web `X-Forwarded-For` / `Forwarded`
    /// headers, are believed.
    pub trusted_proxies: Vec<String>,
    /// Seconds a proxied connection may take to send its whole PROXY
    /// header.
    pub header_timeout_secs: f64,
}

impl Default for ProxySection {
    fn default() -> Self {
        ProxySection {
            trusted_proxies: Vec::new(),
            header_timeout_secs: 5.0,
        }
    }
}

impl ProxySection {
    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: std::net::IpAddr) -> bool {
        crate::protocols::proxy::in_networks(ip, &self.trusted_proxies)
    }

    fn check(&self) -> Result<(), Invalid> {
        for net in &self.trusted_proxies {
            crate::protocols::proxy::parse_network(net)
                .map_err(|reason| Invalid::value("proxy.trusted_proxies", reason))?;
        }
        check_positive("proxy.header_timeout_secs", self.header_timeout_secs)
    }
}

/// One `[[tls]]` listener: where, and with which certificate.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsListener {
    /// `interface:port`.
    pub listen: String,
    /// PEM certificate chain (leaf first), re-read on SIGHUP.
    pub cert: PathBuf,
    /// PEM private key of the leaf certificate, re-read on SIGHUP.
    pub key: PathBuf,
    /// What the listener serves: `telnet` (telnet/ssl, the default) or
    /// `web` (the web client over https/wss).
    #[serde(default)]
    pub serve: Serve,
    /// As `telnet.proxy_protocol`, for this listener: the header comes
    /// before the TLS handshake.
    #[serde(default)]
    pub proxy_protocol: ProxyMode,
}

/// One `[[ssh]]` listener: where, and with which host key.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SshListener {
    /// `interface:port`.
    pub listen: String,
    /// The ed25519 host key in OpenSSH format; made (mode 0600) at start
    /// if the file is missing.
    pub host_key: PathBuf,
    /// How clients get in at the SSH layer (the game's login follows).
    #[serde(default)]
    pub auth: SshAuth,
    /// Refused authentication attempts (each public key offered) a client
    /// gets before it is disconnected.
    #[serde(default = "default_max_auth_attempts")]
    pub max_auth_attempts: u32,
}

fn default_max_auth_attempts() -> u32 {
    6
}

/// `[[ssh]] auth`: what the SSH layer asks before the game's login.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SshAuth {
    /// Any user name gets in at once (`none` authentication).
    #[default]
    Any,
    /// `none` is refused, so the client asks for a password; any password
    /// is accepted. Public keys are refused and count as attempts.
    Password,
}

/// What a TLS listener serves.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Serve {
    #[default]
    Telnet,
    Web,
}

/// `[web]`: the web client (HTTP page + websocket sessions).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebSection {
    /// `interface:port` pairs serving the page and its websocket; empty =
    /// no web client.
    pub listen: Vec<String>,
    /// Origins (`https://mud.example.com`) whose pages may open a
    /// websocket; empty = only the portal's own page; `"*"` = any.
    pub allowed_origins: Vec<String>,
    /// Largest HTTP request head, in bytes.
    pub max_request_bytes: usize,
    /// Largest websocket frame, and whole message, in bytes.
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
    /// Seconds a client may take to send a request head (and between
    /// requests on a kept-alive connection).
    pub http_timeout_secs: f64,
    /// Seconds between websocket pings.
    pub ping_interval_secs: f64,
    /// Seconds a pong may take; a client that stays silent is dropped.
    pub pong_timeout_secs: f64,
    /// Seconds an AJAX receive may stay parked before it is answered with
    /// a keepalive ping (under the browser's and proxies' own timeouts).
    pub ajax_receive_timeout_secs: f64,
    /// Seconds without a request before an AJAX client is pinged; as long
    /// again without one and it is dropped (Evennia's 30).
    pub ajax_keepalive_secs: f64,
    /// Days the browser id cookie lives.
    pub cookie_max_age_days: u64,
    /// Out-of-band command names accepted from web clients (Evennia format).
    pub commands: Vec<String>,
    /// As `telnet.proxy_protocol`, for the web listeners.
    pub proxy_protocol: ProxyMode,
    /// `host:port` of the game's own web server (Evennia's Django site,
    /// the second port of its `WEBSERVER_PORTS`): every plain HTTP request
    /// the portal does not serve itself is relayed there. "" = none.
    pub upstream: String,
    /// Seconds to wait for the upstream to accept a connection (502 when
    /// it refuses, 504 past this).
    pub upstream_connect_timeout_secs: f64,
    /// Seconds the upstream may take to start its answer, and may stay
    /// silent in the middle of one (504 before the answer started).
    pub upstream_timeout_secs: f64,
    /// Seconds a client may take to send a relayed request's whole body
    /// (408 past this).
    pub upstream_body_timeout_secs: f64,
    /// Largest body of a relayed request, in bytes (413 past this).
    pub upstream_max_body_bytes: usize,
}

/// Which AMP protocol the game speaks.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// The portal's own link (`docs/amp-protocol.md`): the demo game and
    /// games built on `portal::game`.
    #[default]
    Native,
    /// Twisted AMP with pickled payloads: an unmodified Evennia Server and
    /// its launcher.
    Evennia,
}

/// `[amp]`: the link to the game server.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AmpSection {
    /// Which protocol the game speaks on the link.
    pub dialect: Dialect,
    /// Where the portal listens for the game.
    pub listen: String,
    /// Shared secret the game must present in its hello. Required when
    /// `listen` is not a loopback address.
    pub secret: String,
    /// Largest frame body accepted from the game, in bytes.
    pub max_frame_bytes: usize,
    /// Seconds a new link may take to send its hello.
    pub hello_timeout_secs: f64,
    /// Seconds between heartbeat pings to the game.
    pub heartbeat_secs: f64,
    /// Evennia dialect: the SQLite file holding the game's Django sessions
    /// (`django_session`), read so that a player logged in on the website
    /// is logged in when the web client opens, and written when the web
    /// client logs in (`amp::evennia::shared_login`). Unset: the game
    /// directory's `server/evennia.db3`; "" = not shared.
    pub evennia_session_db: Option<String>,
}

/// `[limits]`: every cap the portal enforces.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// New sessions forwarded per second; beyond it clients wait in a queue.
    pub max_connection_rate: f64,
    /// Commands per second one session may send.
    pub max_command_rate: f64,
    /// Longest input line, in bytes.
    pub max_char_limit: usize,
    /// Seconds without input before a session is closed; 0 disables.
    pub idle_timeout_secs: u64,
    /// Bytes of unsent output per session before it is closed as stalled.
    pub output_buffer_bytes: usize,
    /// Commands held per session while the game is away.
    pub held_input_commands: usize,
    /// Messages waiting for the AMP writer before input is held instead.
    pub data_in_queue: usize,
    /// Clients that may wait in the connection queue before new ones are
    /// refused.
    pub connection_queue: usize,
    /// Stack size of each session worker thread, in KiB.
    pub worker_stack_kib: usize,
    /// Seconds a TLS client gets to finish its handshake.
    pub tls_handshake_timeout_secs: f64,
    /// Sessions one address may have open at once.
    pub max_sessions_per_ip: usize,
    /// New connections one address may make per minute.
    pub max_connections_per_ip_per_minute: f64,
    /// Addresses exempt from the per-address caps.
    pub ip_allowlist: Vec<String>,
    /// Seconds a connection may stay without logging in; 0 disables.
    pub login_timeout_secs: u64,
}

/// `[messages]`: what players are told.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Messages {
    /// `{seconds}` is replaced by the estimated wait.
    pub connection_queued: String,
    pub connection_refused: String,
    /// Told to a client whose address is over its per-address cap.
    pub too_many_from_address: String,
    pub login_timeout: String,
    pub command_rate: String,
    /// `{limit}` is replaced by `max_char_limit`.
    pub char_limit: String,
    pub invalid_utf8: String,
    /// Told to a client cut off for compressed input that inflated past
    /// `telnet.max_inflated_input`.
    pub input_too_large: String,
    pub idle_timeout: String,
    pub game_restarting: String,
    pub game_back: String,
    pub game_down: String,
    pub game_not_responding: String,
    /// `{text}` lists the commands the game may not have run.
    pub input_lost: String,
    /// `{count}` is the number of commands held so far.
    pub input_held: String,
    /// `{text}` is the input that was dropped.
    pub input_dropped: String,
    pub shutdown: String,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// Log file; empty logs to stderr only.
    pub file: String,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// Seconds between two stats lines in the log; 0 = none.
    pub stats_interval_secs: u64,
}

/// `[irc]`: how IRC bot sessions connect and pace their lines.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IrcSection {
    /// PEM file of the certificate authorities a TLS IRC server must chain
    /// to; empty: the system's bundle ([`IrcSection::SYSTEM_CA_FILE`]).
    pub ca_file: PathBuf,
    /// Lines a bot may send at once before pacing starts.
    pub line_burst: u32,
    /// Lines per second after the burst.
    pub lines_per_sec: f64,
    /// The longest wait between reconnection attempts (they start at 1 s
    /// and grow by half each time).
    pub reconnect_max_secs: f64,
}

impl IrcSection {
    /// Debian's (and Ubuntu's, Alpine's) bundle of trusted roots, kept by
    /// the ca-certificates package.
    pub const SYSTEM_CA_FILE: &'static str = "/etc/ssl/certs/ca-certificates.crt";

    /// The CA file in force.
    pub fn ca_file(&self) -> &Path {
        if self.ca_file.as_os_str().is_empty() {
            Path::new(Self::SYSTEM_CA_FILE)
        } else {
            &self.ca_file
        }
    }
}

impl Default for IrcSection {
    fn default() -> Self {
        IrcSection {
            ca_file: PathBuf::new(),
            line_burst: 4,
            lines_per_sec: 1.0,
            reconnect_max_secs: 60.0,
        }
    }
}

/// `[metrics]`: the Prometheus `/metrics` endpoint.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// `interface:port` serving `/metrics`; empty (the default) = none.
    /// Anyone who reaches it can read the portal's counters (no names or
    /// addresses), so keep it on loopback or behind a firewall; any other
    /// address is logged with a warning at start.
    pub listen: String,
}

/// `[game]`: the game server the portal starts and supervises.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GameSection {
    /// Start and supervise the game. When false, the game connects on its own.
    pub autostart: bool,
    /// Program and arguments. Empty: the `demo_game` binary next to the
    /// portal's own executable.
    pub command: Vec<String>,
    /// Working directory of the game; empty keeps the portal's.
    pub workdir: String,
    /// File the game's stdout and stderr go to; `""` sends them to the
    /// portal's stderr, each line prefixed `game: `. Unset: see
    /// [`Config::game_log_path`].
    pub log: Option<String>,
    /// Seconds a stopping game gets to exit before it is killed.
    pub stop_timeout_secs: f64,
    /// Longest pause between restarts of a game that keeps dying.
    pub max_restart_delay_secs: f64,
    /// Seconds a heartbeat may go unanswered before the game is taken for
    /// hung and restarted; 0 never.
    pub unresponsive_secs: f64,
}

impl Default for PortalSection {
    fn default() -> Self {
        PortalSection {
            name: "Portal".into(),
            status_file: None,
            pidfile: "portal.pid".into(),
            control_socket: "portal.sock".into(),
        }
    }
}

impl Default for TelnetSection {
    fn default() -> Self {
        TelnetSection {
            listen: vec!["0.0.0.0:4000".into()],
            keepalive_secs: 30,
            negotiation_timeout_secs: 2.0,
            negotiation_hold_ms: 150,
            fallback_encoding: "latin-1".into(),
            max_subnegotiation: 8192,
            max_inflated_input: 65536,
            options: TelnetOptions::default(),
            proxy_protocol: ProxyMode::Off,
        }
    }
}

impl Default for WebSection {
    fn default() -> Self {
        WebSection {
            listen: vec!["0.0.0.0:4001".into()],
            allowed_origins: Vec::new(),
            max_request_bytes: 8192,
            max_frame_bytes: 64 << 10,
            max_message_bytes: 64 << 10,
            http_timeout_secs: 10.0,
            ping_interval_secs: 20.0,
            pong_timeout_secs: 20.0,
            ajax_receive_timeout_secs: 25.0,
            ajax_keepalive_secs: 30.0,
            upstream: String::new(),
            upstream_connect_timeout_secs: 5.0,
            upstream_timeout_secs: 30.0,
            upstream_body_timeout_secs: 60.0,
            upstream_max_body_bytes: 4 << 20,
            cookie_max_age_days: 30,
            commands: [
                "echo",
                "ping",
                "hello",
                "client_options",
                "get_client_options",
                "get_inputfuncs",
                "login",
                "logout",
                "webclient_options",
                "repeat",
                "unrepeat",
                "monitor",
                "unmonitor",
                "browser_sessid",
            ]
            .map(String::from)
            .to_vec(),
            proxy_protocol: ProxyMode::Off,
        }
    }
}

impl Default for AmpSection {
    fn default() -> Self {
        AmpSection {
            dialect: Dialect::Native,
            listen: "127.0.0.1:4006".into(),
            secret: String::new(),
            max_frame_bytes: 1 << 20,
            hello_timeout_secs: 5.0,
            heartbeat_secs: 1.0,
            evennia_session_db: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connection_rate: 5.0,
            max_command_rate: 80.0,
            max_char_limit: 6000,
            idle_timeout_secs: 3600,
            output_buffer_bytes: 1 << 20,
            held_input_commands: 100,
            data_in_queue: 10_000,
            connection_queue: 1000,
            worker_stack_kib: 128,
            tls_handshake_timeout_secs: 10.0,
            max_sessions_per_ip: 20,
            max_connections_per_ip_per_minute: 30.0,
            ip_allowlist: vec!["127.0.0.1".into(), "::1".into()],
            login_timeout_secs: 300,
        }
    }
}

impl Default for Messages {
    fn default() -> Self {
        Messages {
            connection_queued: "Too many people are connecting right now; you are queued \
                                and will be let in in about {seconds} seconds."
                .into(),
            connection_refused: "The portal is full right now. Please try again later.".into(),
            too_many_from_address: "Too many connections from your address. \
                                    Please try again in a minute."
                .into(),
            login_timeout: "You took too long to log in. Goodbye.".into(),
            command_rate: "You are sending commands too fast; that command was not run. \
                           Slow down and try again."
                .into(),
            char_limit: "That line was too long ({limit} characters at most) and was not run."
                .into(),
            invalid_utf8: "Some characters you sent were not valid UTF-8 and were replaced.".into(),
            input_too_large: "You sent more at once than the portal accepts. Goodbye.".into(),
            idle_timeout: "You have been idle too long. Goodbye.".into(),
            game_restarting: "The game is restarting. Stay connected; what you type now \
                              will run when it is back."
                .into(),
            game_back: "The game is back.".into(),
            game_down: "The game server stopped unexpectedly. It is being restarted; \
                        stay connected."
                .into(),
            game_not_responding: "The game is not responding. Your input is held; \
                                  if it stays silent it will be restarted."
                .into(),
            input_lost: "(The game stopped before it confirmed these commands; they may not \
                         have run: {text})"
                .into(),
            input_held: "(The game is away; your input is held: {count} waiting.)".into(),
            input_dropped: "(Too much input while the game was away; dropped: {text})".into(),
            shutdown: "The portal is shutting down. Goodbye.".into(),
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            file: "portal.log".into(),
            level: "info".into(),
            stats_interval_secs: 300,
        }
    }
}

impl Default for GameSection {
    fn default() -> Self {
        GameSection {
            autostart: true,
            command: Vec::new(),
            workdir: String::new(),
            log: None,
            stop_timeout_secs: 10.0,
            max_restart_delay_secs: 30.0,
            unresponsive_secs: 30.0,
        }
    }
}

/// Why a configuration was refused: which file, which key, and why.
///
/// The `Display` form is the one line the portal prints and logs
/// (`FILE: key `KEY`: REASON`); [`ConfigError::kind`] says which stage
/// refused it and keeps the underlying error, also given by `source()`.
#[derive(Debug)]
#[non_exhaustive]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted key path, e.g. `limits.max_command_rate`; empty when the file
    /// as a whole is at fault.
    pub key: String,
    /// What is wrong, for people (the cause's own message included).
    pub reason: String,
    pub kind: ConfigErrorKind,
}

/// The stage that refused a configuration, with its cause.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Read(std::io::Error),
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    Syntax(Box<serde_path_to_error::Error<toml::de::Error>>),
    /// An address that is not `ip:port`.
    Address(AddrError),
    /// A log level that is not one of the known names.
    Level(LevelError),
    /// A value of the right type the portal cannot use (out of range, a
    /// missing secret, an unknown encoding…); `reason` says which rule.
    Value,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(
                f,
                "{}: key `{}`: {}",
                self.file.display(),
                self.key,
                self.reason
            )
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ConfigErrorKind::Read(e) => Some(e),
            ConfigErrorKind::Syntax(e) => Some(e.as_ref()),
            ConfigErrorKind::Address(e) => Some(e),
            ConfigErrorKind::Level(e) => Some(e),
            ConfigErrorKind::Value => None,
        }
    }
}

/// A value check that failed: the key and the rule it broke.
#[derive(Debug)]
struct Invalid {
    key: &'static str,
    reason: String,
    kind: ConfigErrorKind,
}

impl Invalid {
    /// A broken rule with no underlying error.
    fn value(key: &'static str, reason: impl Into<String>) -> Invalid {
        Invalid {
            key,
            reason: reason.into(),
            kind: ConfigErrorKind::Value,
        }
    }

    fn address(key: &'static str) -> impl FnOnce(AddrError) -> Invalid {
        move |e| Invalid {
            key,
            reason: e.to_string(),
            kind: ConfigErrorKind::Address(e),
        }
    }
}

/// Text that is not an `ip:port` address.
#[derive(Debug, Clone)]
pub struct AddrError {
    pub text: String,
    source: std::net::AddrParseError,
}

impl fmt::Display for AddrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not an address of the form ip:port", self.text)
    }
}

impl std::error::Error for AddrError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Text that is not a log level name.
#[derive(Debug)]
pub struct LevelError {
    pub text: String,
    source: log::ParseLevelError,
}

impl fmt::Display for LevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not one of error, warn, info, debug, trace, off",
            self.text
        )
    }
}

impl std::error::Error for LevelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl Config {
    /// Read and check a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            key: String::new(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "cannot read: {e}; point the portal at its config with \
                     --config PATH (without it, portal.conf in the current directory)"
                )
            } else {
                format!("cannot read: {e}")
            },
            kind: ConfigErrorKind::Read(e),
        })?;
        Config::parse(&text, path)
    }

    /// Parse and check configuration text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = parse_toml(text, path)?;
        config.check().map_err(|invalid| ConfigError {
            file: path.to_owned(),
            key: invalid.key.to_owned(),
            reason: match line_of_key(text, invalid.key) {
                Some(line) => format!("{} (line {line})", invalid.reason),
                None => invalid.reason,
            },
            kind: invalid.kind,
        })?;
        Ok(config)
    }

    /// Value checks serde cannot express. Returns the offending key.
    fn check(&self) -> Result<(), Invalid> {
        if self.telnet.listen.is_empty() {
            return Err(Invalid::value(
                "telnet.listen",
                "at least one address is needed",
            ));
        }
        for addr in &self.telnet.listen {
            parse_addr(addr).map_err(Invalid::address("telnet.listen"))?;
        }
        for tls in &self.tls {
            parse_addr(&tls.listen).map_err(Invalid::address("tls.listen"))?;
        }
        for ssh in &self.ssh {
            parse_addr(&ssh.listen).map_err(Invalid::address("ssh.listen"))?;
            if ssh.max_auth_attempts == 0 {
                return Err(Invalid::value(
                    "ssh.max_auth_attempts",
                    "must be at least 1",
                ));
            }
        }
        self.web.check()?;
        if !self.metrics.listen.is_empty() {
            parse_addr(&self.metrics.listen).map_err(Invalid::address("metrics.listen"))?;
        }
        let amp = parse_addr(&self.amp.listen).map_err(Invalid::address("amp.listen"))?;
        if self.amp.dialect == Dialect::Evennia && !amp.ip().is_loopback() {
            return Err(Invalid::value(
                "amp.listen",
                format!(
                    "{amp} is not loopback: Evennia's AMP has no secret, so the evennia dialect listens on loopback only"
                ),
            ));
        }
        if !amp.ip().is_loopback() && self.amp.secret.is_empty() {
            return Err(Invalid::value(
                "amp.secret",
                format!("amp.listen {amp} is not loopback, so a secret is required"),
            ));
        }
        check_positive("amp.max_frame_bytes", self.amp.max_frame_bytes as f64)?;
        check_positive("amp.hello_timeout_secs", self.amp.hello_timeout_secs)?;
        check_positive("amp.heartbeat_secs", self.amp.heartbeat_secs)?;
        check_positive("irc.line_burst", f64::from(self.irc.line_burst))?;
        check_positive("irc.lines_per_sec", self.irc.lines_per_sec)?;
        check_positive("irc.reconnect_max_secs", self.irc.reconnect_max_secs)?;
        if self.game.unresponsive_secs < 0.0 || !self.game.unresponsive_secs.is_finite() {
            return Err(Invalid::value(
                "game.unresponsive_secs",
                "must be 0 (off) or positive",
            ));
        }
        check_positive(
            "telnet.negotiation_timeout_secs",
            self.telnet.negotiation_timeout_secs,
        )?;
        check_positive(
            "telnet.max_subnegotiation",
            self.telnet.max_subnegotiation as f64,
        )?;
        check_positive(
            "telnet.max_inflated_input",
            self.telnet.max_inflated_input as f64,
        )?;
        if !KNOWN_ENCODINGS.contains(&self.telnet.fallback_encoding.as_str()) {
            return Err(Invalid::value(
                "telnet.fallback_encoding",
                format!("must be one of {}", KNOWN_ENCODINGS.join(", ")),
            ));
        }
        self.limits.check()?;
        self.proxy.check()?;
        self.check_proxied_listeners()?;
        parse_level(&self.log.level).map_err(|e| Invalid {
            key: "log.level",
            reason: e.to_string(),
            kind: ConfigErrorKind::Level(e),
        })?;
        check_positive("game.stop_timeout_secs", self.game.stop_timeout_secs)?;
        check_positive(
            "game.max_restart_delay_secs",
            self.game.max_restart_delay_secs,
        )?;
        Ok(())
    }

    /// A listener that needs a PROXY header needs a proxy allowed to send
    /// it.
    fn check_proxied_listeners(&self) -> Result<(), Invalid> {
        let mut required = Vec::new();
        if self.telnet.proxy_protocol == ProxyMode::Required {
            required.push("telnet.proxy_protocol");
        }
        if self.web.proxy_protocol == ProxyMode::Required {
            required.push("web.proxy_protocol");
        }
        if self
            .tls
            .iter()
            .any(|t| t.proxy_protocol == ProxyMode::Required)
        {
            required.push("tls.proxy_protocol");
        }
        match required.first() {
            Some(key) if self.proxy.trusted_proxies.is_empty() => Err(Invalid::value(
                key,
                "is \"required\" but proxy.trusted_proxies is empty, so no connection could come in",
            )),
            _ => Ok(()),
        }
    }

    /// `[portal] pidfile` as a path to use; `None` when turned off.
    /// `config_path` is the file this config was read from.
    pub fn pidfile_path(&self, config_path: &Path) -> Option<PathBuf> {
        beside_config(config_path, &self.portal.pidfile)
    }

    /// `[portal] control_socket` as a path to use; `None` when turned off.
    pub fn control_socket_path(&self, config_path: &Path) -> Option<PathBuf> {
        beside_config(config_path, &self.portal.control_socket)
    }

    /// Where the game's output goes: a file, or `None` for the portal's
    /// stderr. `[game] log` when set (`""` is stderr); unset,
    /// `server/logs/server-output.log` in `evennia_game_dir` (an Evennia
    /// Server's game directory, given with that dialect; Evennia writes its
    /// own `server.log` there), else `game.log` beside
    /// `[log] file`, or stderr when the portal logs only there.
    pub fn game_log_path(&self, evennia_game_dir: Option<&Path>) -> Option<PathBuf> {
        match (&self.game.log, evennia_game_dir) {
            (Some(path), _) if path.is_empty() => None,
            (Some(path), _) => Some(PathBuf::from(path)),
            (None, Some(dir)) => Some(dir.join("server").join("logs").join(EVENNIA_OUTPUT_LOG)),
            (None, None) if self.log.file.is_empty() => None,
            (None, None) => Some(Path::new(&self.log.file).with_file_name("game.log")),
        }
    }

    /// Where `/metrics` is served, if anywhere (checked by [`Config::parse`]).
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, AddrError> {
        if self.metrics.listen.is_empty() {
            return Ok(None);
        }
        parse_addr(&self.metrics.listen).map(Some)
    }

    /// The AMP listen address (checked by [`Config::parse`]).
    pub fn amp_addr(&self) -> Result<SocketAddr, AddrError> {
        parse_addr(&self.amp.listen)
    }
}

impl WebSection {
    fn check(&self) -> Result<(), Invalid> {
        for addr in &self.listen {
            parse_addr(addr).map_err(Invalid::address("web.listen"))?;
        }
        for origin in &self.allowed_origins {
            if origin != "*" && !origin.contains("://") {
                return Err(Invalid::value(
                    "web.allowed_origins",
                    format!("`{origin}` is not an origin like https://mud.example.com (or \"*\")"),
                ));
            }
        }
        check_positive("web.max_request_bytes", self.max_request_bytes as f64)?;
        check_positive("web.max_frame_bytes", self.max_frame_bytes as f64)?;
        check_positive("web.max_message_bytes", self.max_message_bytes as f64)?;
        check_positive("web.http_timeout_secs", self.http_timeout_secs)?;
        check_positive("web.ping_interval_secs", self.ping_interval_secs)?;
        check_positive("web.pong_timeout_secs", self.pong_timeout_secs)?;
        check_positive(
            "web.ajax_receive_timeout_secs",
            self.ajax_receive_timeout_secs,
        )?;
        check_positive("web.ajax_keepalive_secs", self.ajax_keepalive_secs)?;
        if !self.upstream.is_empty() {
            parse_addr(&self.upstream).map_err(Invalid::address("web.upstream"))?;
        }
        check_positive(
            "web.upstream_connect_timeout_secs",
            self.upstream_connect_timeout_secs,
        )?;
        check_positive("web.upstream_timeout_secs", self.upstream_timeout_secs)?;
        check_positive(
            "web.upstream_body_timeout_secs",
            self.upstream_body_timeout_secs,
        )?;
        check_positive(
            "web.upstream_max_body_bytes",
            self.upstream_max_body_bytes as f64,
        )?;
        Ok(())
    }
}

impl Limits {
    /// Whether `ip` is exempt from the per-address caps.
    pub fn allowlisted(&self, ip: std::net::IpAddr) -> bool {
        self.ip_allowlist
            .iter()
            .any(|a| a.parse::<std::net::IpAddr>() == Ok(ip))
    }

    fn check(&self) -> Result<(), Invalid> {
        check_positive("limits.max_connection_rate", self.max_connection_rate)?;
        check_positive("limits.max_command_rate", self.max_command_rate)?;
        check_positive("limits.max_char_limit", self.max_char_limit as f64)?;
        check_positive(
            "limits.output_buffer_bytes",
            self.output_buffer_bytes as f64,
        )?;
        check_positive("limits.data_in_queue", self.data_in_queue as f64)?;
        check_positive(
            "limits.tls_handshake_timeout_secs",
            self.tls_handshake_timeout_secs,
        )?;
        check_positive(
            "limits.max_sessions_per_ip",
            self.max_sessions_per_ip as f64,
        )?;
        check_positive(
            "limits.max_connections_per_ip_per_minute",
            self.max_connections_per_ip_per_minute,
        )?;
        for ip in &self.ip_allowlist {
            ip.parse::<std::net::IpAddr>().map_err(|_| {
                Invalid::value(
                    "limits.ip_allowlist",
                    format!("`{ip}` is not an IP address"),
                )
            })?;
        }
        if self.worker_stack_kib < 64 {
            return Err(Invalid::value(
                "limits.worker_stack_kib",
                "must be at least 64",
            ));
        }
        Ok(())
    }
}

/// Text encodings a session can use.
pub const KNOWN_ENCODINGS: &[&str] = &["utf-8", "latin-1", "iso-8859-1", "ascii"];

/// Deserialize TOML, naming the key of the first bad value.
fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let reason = in_words(e.inner().message(), &key);
        let reason = match line_of(text, e.inner().span()) {
            Some(line) => format!("{reason} (line {line})"),
            None => reason,
        };
        ConfigError {
            file: path.to_owned(),
            key: if key == "." { String::new() } else { key },
            reason,
            kind: ConfigErrorKind::Syntax(Box::new(e)),
        }
    })
}

/// serde's message for people: Rust type names become words, and an
/// unknown key gets the nearest known one suggested.
fn in_words(message: &str, key: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((name, expected)) = rest.split_once('`') {
            return unknown_key(name, expected, key);
        }
    }
    let mut text = message.to_owned();
    for (rust, words) in [
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected usize", "expected a whole number (0 or more)"),
        ("expected u32", "expected a whole number (0 or more)"),
        ("expected u16", "expected a whole number (0 or more)"),
        ("expected u8", "expected a whole number (0 or more)"),
        ("expected i64", "expected a whole number"),
        ("expected a boolean", "expected true or false"),
        ("expected a sequence", "expected a list like [\"a\", \"b\"]"),
        ("expected a map", "expected a table"),
        ("invalid type: ", "wrong type: got "),
        ("got string ", "got the string "),
        ("got integer ", "got the number "),
        ("got floating point ", "got the number "),
        ("got boolean ", "got "),
        ("got sequence", "got a list"),
        ("got map", "got a table"),
    ] {
        text = text.replace(rust, words);
    }
    text
}

/// `unknown key `NAME` in [SECTION]; did you mean `KNOWN`?` from serde's
/// `unknown field` message (`expected` lists the known names).
fn unknown_key(name: &str, expected: &str, key: &str) -> String {
    let section = key.rsplit_once('.').map_or("", |(section, _)| section);
    let place = if section.is_empty() {
        "at the top of the file".to_owned()
    } else {
        format!("in [{section}]")
    };
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let nearest = known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= (k.len().max(name.len()) / 3).max(2))
        .min();
    match nearest {
        Some((_, k)) => format!("unknown key `{name}` {place}; did you mean `{k}`?"),
        None if known.is_empty() => format!("unknown key `{name}` {place}"),
        None => format!(
            "unknown key `{name}` {place} (known keys: {})",
            known.join(", ")
        ),
    }
}

/// Levenshtein distance between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The line of `key` (`section.name`) in the file, found by reading it as
/// written: the first `name =` under a `[section]` (or `[[section]]`)
/// header.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let (section, name) = key.rsplit_once('.').unwrap_or(("", key));
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix('[') {
            current = header
                .trim_matches(|c| c == '[' || c == ']' || c == ' ')
                .to_owned();
            continue;
        }
        let Some((left, _)) = line.split_once('=') else {
            continue;
        };
        if current == section && left.trim().trim_matches('"') == name {
            return Some(i + 1);
        }
    }
    None
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> Option<usize> {
    let start = span?.start;
    Some(text.get(..start)?.matches('\n').count() + 1)
}

fn check_positive(key: &'static str, value: f64) -> Result<(), Invalid> {
    if value > 0.0 && value.is_finite() {
        Ok(())
    } else {
        Err(Invalid::value(
            key,
            format!("must be a positive number, got {value}"),
        ))
    }
}

/// An empty path is "off"; a relative one is taken from the directory
/// holding the config file.
fn beside_config(config_path: &Path, path: &Path) -> Option<PathBuf> {
    if path.as_os_str().is_empty() {
        return None;
    }
    let dir = config_path.parent().unwrap_or(Path::new(""));
    Some(dir.join(path))
}

/// Parse `ip:port`.
pub fn parse_addr(text: &str) -> Result<SocketAddr, AddrError> {
    text.parse().map_err(|source| AddrError {
        text: text.to_owned(),
        source,
    })
}

/// Parse a log level name.
pub fn parse_level(text: &str) -> Result<log::LevelFilter, LevelError> {
    text.parse().map_err(|source| LevelError {
        text: text.to_owned(),
        source,
    })
}

/// Fill `{name}` placeholders in a message.
pub fn fill(template: &str, name: &str, value: &str) -> String {
    template.replace(&format!("{{{name}}}"), value)
}

/// The configuration in force, shared by every thread, and a generation
/// number bumped by every reload (SIGHUP), so a worker notices a reload
/// with one atomic load.
pub struct ConfigCell {
    current: std::sync::RwLock<std::sync::Arc<Config>>,
    generation: std::sync::atomic::AtomicU64,
}

impl ConfigCell {
    /// A cell holding `config`.
    pub fn new(config: std::sync::Arc<Config>) -> ConfigCell {
        ConfigCell {
            current: std::sync::RwLock::new(config),
            generation: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The configuration in force.
    pub fn get(&self) -> std::sync::Arc<Config> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Put a new configuration in force.
    pub fn set(&self, config: std::sync::Arc<Config>) {
        match self.current.write() {
            Ok(mut guard) => *guard = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Bumped by every [`ConfigCell::set`].
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.conf"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn shipped_portal_conf_parses_to_the_defaults() {
        let text = include_str!("../portal.conf");
        let config = parse(text).unwrap();
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.amp, AmpSection::default());
        assert_eq!(config.telnet, TelnetSection::default());
        assert_eq!(config.portal, PortalSection::default());
        assert_eq!(config.log, LogSection::default());
        assert_eq!(config.proxy, ProxySection::default());
        assert_eq!(config.web, WebSection::default());
        assert_eq!(config.metrics, MetricsSection::default());
        assert!(config.mssp.is_empty(), "{:?}", config.mssp);
    }

    #[test]
    fn a_web_upstream_must_be_an_address_and_the_evennia_conf_sets_one() {
        let err = parse("[web]\nupstream = \"localhost\"\n").unwrap_err();
        assert_eq!(err.key, "web.upstream");
        let err = parse("[web]\nupstream_timeout_secs = 0\n").unwrap_err();
        assert_eq!(err.key, "web.upstream_timeout_secs");
        let config = parse(include_str!("../portal-evennia.conf")).unwrap();
        assert_eq!(config.web.upstream, "127.0.0.1:4005");
        assert_eq!(config.web.listen, ["0.0.0.0:4001"]);
    }

    #[test]
    fn proxy_keys_are_checked() {
        let err = parse("[telnet]\nproxy_protocol = \"required\"\n").unwrap_err();
        assert_eq!(err.key, "telnet.proxy_protocol");
        assert!(err.reason.contains("trusted_proxies is empty"), "{err}");
        let err = parse("[proxy]\ntrusted_proxies = [\"10.0.0.0/40\"]\n").unwrap_err();
        assert_eq!(err.key, "proxy.trusted_proxies");
        assert!(err.reason.contains("prefix length"), "{err}");
        let err = parse("[web]\nproxy_protocol = \"maybe\"\n").unwrap_err();
        assert_eq!(err.key, "web.proxy_protocol");
        let text = "[proxy]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n\
                    [web]\nproxy_protocol = \"required\"\n";
        let config = parse(text).unwrap();
        assert!(config.proxy.trusts("10.1.2.3".parse().unwrap()));
        assert!(!config.proxy.trusts("127.0.0.1".parse().unwrap()));
        assert_eq!(config.web.proxy_protocol, ProxyMode::Required);
    }

    #[test]
    fn metrics_are_off_unless_given_an_address_and_a_bad_one_is_refused() {
        assert_eq!(parse("").unwrap().metrics_addr().unwrap(), None);
        let on = parse("[metrics]\nlisten = \"127.0.0.1:4010\"\n").unwrap();
        assert_eq!(
            on.metrics_addr().unwrap(),
            Some("127.0.0.1:4010".parse().unwrap())
        );
        let err = parse("[metrics]\nlisten = \"localhost\"\n").unwrap_err();
        assert!(err.to_string().contains("metrics.listen"), "{err}");
    }

    #[test]
    fn the_game_log_defaults_beside_the_portal_log() {
        let config = parse("[log]\nfile = \"logs/portal.log\"\n").unwrap();
        assert_eq!(
            config.game_log_path(None),
            Some(PathBuf::from("logs/game.log"))
        );
        assert_eq!(
            Config::default().game_log_path(None),
            Some(PathBuf::from("game.log"))
        );
        let to_stderr = parse("[log]\nfile = \"\"\n").unwrap();
        assert_eq!(to_stderr.game_log_path(None), None);
    }

    #[test]
    fn the_evennia_servers_output_goes_beside_its_log_unless_told() {
        let dir = Path::new("/srv/mygame");
        assert_eq!(
            Config::default().game_log_path(Some(dir)),
            Some(dir.join("server/logs/server-output.log"))
        );
        let set = parse("[game]\nlog = \"/var/log/game.log\"\n").unwrap();
        assert_eq!(
            set.game_log_path(Some(dir)),
            Some(PathBuf::from("/var/log/game.log"))
        );
        let empty = parse("[game]\nlog = \"\"\n").unwrap();
        assert_eq!(empty.game_log_path(Some(dir)), None);
        assert_eq!(empty.game_log_path(None), None);
    }

    #[test]
    fn unknown_key_names_the_key() {
        let err = parse("[limits]\nmax_comand_rate = 3\n").unwrap_err();
        assert!(err.reason.contains("max_comand_rate"), "{err}");
        assert!(err.to_string().starts_with("test.conf"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key_and_line() {
        let err = parse("[limits]\n\nmax_command_rate = \"fast\"\n").unwrap_err();
        assert_eq!(err.key, "limits.max_command_rate");
        assert!(err.reason.contains("line 3"), "{err}");
    }

    #[test]
    fn bad_value_names_the_key() {
        let err = parse("[limits]\nmax_command_rate = -1\n").unwrap_err();
        assert_eq!(err.key, "limits.max_command_rate");
        let err = parse("[telnet]\nlisten = [\"localhost\"]\n").unwrap_err();
        assert_eq!(err.key, "telnet.listen");
        let err = parse("[log]\nlevel = \"loud\"\n").unwrap_err();
        assert_eq!(err.key, "log.level");
    }

    #[test]
    fn shipped_evennia_conf_parses_with_the_evennia_dialect() {
        let config = parse(include_str!("../portal-evennia.conf")).unwrap();
        assert_eq!(config.amp.dialect, Dialect::Evennia);
        assert_eq!(config.amp.listen, "127.0.0.1:4006");
        assert!(!config.game.autostart);
        assert_eq!(
            config.mssp.get("CODEBASE").map(String::as_str),
            Some("Evennia")
        );
    }

    #[test]
    fn the_evennia_dialect_listens_on_loopback_only() {
        let err =
            parse("[amp]\ndialect = \"evennia\"\nlisten = \"0.0.0.0:4006\"\nsecret = \"s\"\n")
                .unwrap_err();
        assert_eq!(err.key, "amp.listen");
        assert!(err.reason.contains("loopback"), "{}", err.reason);
        let err = parse("[amp]\ndialect = \"twisted\"\n").unwrap_err();
        assert_eq!(err.key, "amp.dialect");
    }

    #[test]
    fn public_amp_address_needs_a_secret() {
        let err = parse("[amp]\nlisten = \"0.0.0.0:4006\"\n").unwrap_err();
        assert_eq!(err.key, "amp.secret");
        assert!(parse("[amp]\nlisten = \"0.0.0.0:4006\"\nsecret = \"s3\"\n").is_ok());
    }

    #[test]
    fn run_files_sit_beside_the_config_unless_absolute_or_off() {
        let config = parse("[portal]\ncontrol_socket = \"/run/p.sock\"\n").unwrap();
        let conf = Path::new("/srv/mud/portal.conf");
        assert_eq!(
            config.pidfile_path(conf),
            Some(PathBuf::from("/srv/mud/portal.pid"))
        );
        assert_eq!(
            config.control_socket_path(conf),
            Some(PathBuf::from("/run/p.sock"))
        );
        let off = parse("[portal]\npidfile = \"\"\n").unwrap();
        assert_eq!(off.pidfile_path(conf), None);
        let here = Config::default().pidfile_path(Path::new("portal.conf"));
        assert_eq!(here, Some(PathBuf::from("portal.pid")));
    }

    #[test]
    fn the_cause_is_kept_as_source() {
        use std::error::Error;
        let err = Config::load(Path::new("/nonexistent/portal.conf")).unwrap_err();
        assert!(matches!(err.kind, ConfigErrorKind::Read(_)));
        let io = err
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));
        let err = parse("[limits]\nmax_command_rate = \"fast\"\n").unwrap_err();
        assert!(matches!(err.kind, ConfigErrorKind::Syntax(_)));
        assert!(err.source().is_some());
        let err = parse("[amp]\nlisten = \"nowhere\"\n").unwrap_err();
        assert!(matches!(err.kind, ConfigErrorKind::Address(_)));
        assert!(err.source().is_some_and(|s| s.source().is_some()));
        let err = parse("[limits]\nmax_command_rate = -1\n").unwrap_err();
        assert!(matches!(err.kind, ConfigErrorKind::Value));
        assert!(err.source().is_none());
    }

    #[test]
    fn types_are_named_in_words() {
        let err = parse("[limits]\nmax_command_rate = \"fast\"\n").unwrap_err();
        assert!(err.reason.contains("expected a number"), "{err}");
        assert!(!err.reason.contains("f64"), "{err}");
        let err = parse("[limits]\nmax_char_limit = 1.5\n").unwrap_err();
        assert!(err.reason.contains("a whole number"), "{err}");
        assert!(!err.reason.contains("usize"), "{err}");
        let err = parse("[game]\nautostart = 1\n").unwrap_err();
        assert!(err.reason.contains("true or false"), "{err}");
        let err = parse("[log]\nlevel = 3\n").unwrap_err();
        assert!(err.reason.contains("a string"), "{err}");
    }

    #[test]
    fn a_range_error_gives_the_line() {
        let err = parse("# top\n[limits]\n\nmax_command_rate = -1\n").unwrap_err();
        assert_eq!(err.key, "limits.max_command_rate");
        assert!(err.reason.contains("(line 4)"), "{err}");
    }

    #[test]
    fn a_misspelt_key_gets_the_nearest_suggested() {
        let err = parse("[telnet]\nlisen = [\"0.0.0.0:4000\"]\n").unwrap_err();
        assert!(
            err.reason
                .contains("unknown key `lisen` in [telnet]; did you mean `listen`?"),
            "{err}"
        );
        assert!(err.reason.contains("line 2"), "{err}");
        let err = parse("[limits]\nzzzzzzzz = 1\n").unwrap_err();
        assert!(!err.reason.contains("did you mean"), "{err}");
        assert!(err.reason.contains("known keys"), "{err}");
        assert_eq!(edit_distance("lisen", "listen"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn a_missing_file_says_how_to_point_at_one() {
        let err = Config::load(Path::new("/nonexistent/portal.conf")).unwrap_err();
        assert!(err.to_string().contains("--config PATH"), "{err}");
    }

    #[test]
    fn the_error_stays_small() {
        assert!(std::mem::size_of::<ConfigError>() <= 128);
    }

    #[test]
    fn ssh_auth_defaults_to_any_and_needs_one_attempt_at_least() {
        let table = "[[ssh]]\nlisten = \"127.0.0.1:4022\"\nhost_key = \"k\"\n";
        let config = parse(table).unwrap();
        assert_eq!(config.ssh[0].auth, SshAuth::Any);
        assert_eq!(config.ssh[0].max_auth_attempts, 6);
        let password = parse(&format!("{table}auth = \"password\"\n")).unwrap();
        assert_eq!(password.ssh[0].auth, SshAuth::Password);
        let none = parse(&format!("{table}max_auth_attempts = 0\n")).unwrap_err();
        assert!(none.to_string().contains("ssh.max_auth_attempts"), "{none}");
    }

    #[test]
    fn fill_replaces_placeholders() {
        assert_eq!(fill("wait {seconds} s", "seconds", "3"), "wait 3 s");
    }
}
