//! Evennia's AMP commands and operations, mapped onto the portal's link
//! messages ([`crate::wire::message`]). Pure: boxes in, messages out and
//! back; the dialect's reader and writer do the I/O.
//!
//! Every `packed_data` is `pickle((sessid, kwargs))`; admin commands carry
//! their operation as a one-character string in `kwargs["operation"]`
//! (Evennia's `PCONN` = `"\x01"` …). Session records travel as Evennia's
//! sync dicts: the keys the portal models are read into [`Session`]'s
//! fields, everything else the Server keeps on a session (`suid`,
//! `server_data`, `cmdset_storage_string`, keys a game adds) is kept as a
//! pickled dict under [`EXTRAS_KEY`] in `server_data`, and written back
//! unchanged, objects included.

use crate::amp::evennia::boxes::AmpBox;
use crate::amp::evennia::payload::{self, PayloadError};
use crate::amp::evennia::pickle::{self, Limits, PickleError, Py};
use crate::wire::flags::ProtocolFlags;
use crate::wire::message::{Command, PortalMsg, ServerMsg, StartMode, StopMode};
use crate::wire::session::Session;
use crate::wire::value::{Map, Value};

/// Evennia's operation codes (`evennia/server/portal/amp.py`).
pub mod op {
    pub const PCONN: u8 = 1;
    pub const PDISCONN: u8 = 2;
    pub const PSYNC: u8 = 3;
    pub const SLOGIN: u8 = 4;
    pub const SDISCONN: u8 = 5;
    pub const SDISCONNALL: u8 = 6;
    pub const SSYNC: u8 = 8;
    pub const SCONN: u8 = 11;
    pub const PCONNSYNC: u8 = 12;
    pub const PDISCONNALL: u8 = 13;
    pub const SRELOAD: u8 = 14;
    pub const SSTART: u8 = 15;
    pub const PSHUTD: u8 = 16;
    pub const SSHUTD: u8 = 17;
    pub const PSTATUS: u8 = 18;
    pub const SRESET: u8 = 19;
}

/// Where a session's Evennia-only fields are kept in `server_data`.
pub const EXTRAS_KEY: &str = "_evennia";

/// The sync-dict keys held in [`Session`]'s own fields.
const MODELLED: &[&str] = &[
    "protocol_key",
    "address",
    "sessid",
    "uid",
    "csessid",
    "uname",
    "logged_in",
    "puid",
    "conn_time",
    "cmd_last",
    "cmd_last_visible",
    "cmd_total",
    "protocol_flags",
];

/// The keys a PCONNSYNC carries, as Evennia's portal sends them.
const PORTAL_OWNED: &[&str] = &[
    "protocol_key",
    "address",
    "sessid",
    "csessid",
    "conn_time",
    "protocol_flags",
    "server_data",
];

/// Why a box could not be understood.
#[derive(Debug)]
pub enum MapError {
    Payload(PayloadError),
    Pickle(PickleError),
    /// The unpickled value is not what the command carries.
    Shape(String),
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapError::Payload(e) => e.fmt(f),
            MapError::Pickle(e) => e.fmt(f),
            MapError::Shape(what) => write!(f, "unexpected data: {what}"),
        }
    }
}

impl std::error::Error for MapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MapError::Payload(e) => Some(e),
            MapError::Pickle(e) => Some(e),
            MapError::Shape(_) => None,
        }
    }
}

impl From<PayloadError> for MapError {
    fn from(e: PayloadError) -> Self {
        MapError::Payload(e)
    }
}

impl From<PickleError> for MapError {
    fn from(e: PickleError) -> Self {
        MapError::Pickle(e)
    }
}

fn shape(what: impl Into<String>) -> MapError {
    MapError::Shape(what.into())
}

/// What one box from a peer asks of the portal.
#[derive(Debug)]
pub enum FromPeer {
    /// A message the shared link code handles as it does the native one.
    Msg(ServerMsg),
    /// PSYNC: the Server (re)connected; its pid and info dict are for the
    /// launcher's status.
    ServerHello { pid: Option<i64>, info: Py },
    /// SLOGIN: a partial record (`logged_in`, `uid`) to apply onto the
    /// portal's record of `sessid`.
    Login { sessid: u64, data: Py },
    /// SSYNC: partial or whole records to apply; with `clean`, sessions not
    /// listed are closed.
    Sync {
        sessions: Vec<(u64, Py)>,
        clean: bool,
    },
    /// An answer to one of the portal's requests (`_ask`).
    Answer { ask: String },
    /// An error answer to one of the portal's requests.
    Failed {
        ask: String,
        code: String,
        description: String,
    },
    /// The launcher's status request (`MsgStatus`).
    Status,
    /// The launcher's instruction (`MsgLauncher2Portal`).
    Launcher { operation: u8, arguments: Vec<u8> },
    /// A command the portal does not handle: answered with `UNHANDLED`.
    Unhandled { command: String },
}

/// One decoded box: what it asks and the `_ask` to answer, if any.
#[derive(Debug)]
pub struct Incoming {
    pub ask: Option<Vec<u8>>,
    pub what: Result<FromPeer, MapError>,
}

/// Read one box, inflating at most `max` bytes of `packed_data`.
pub fn decode_box(b: &AmpBox, max: usize) -> Incoming {
    let ask = b.get("_ask").map(<[u8]>::to_vec);
    let what = decode_what(b, max);
    Incoming { ask, what }
}

fn decode_what(b: &AmpBox, max: usize) -> Result<FromPeer, MapError> {
    if let Some(ask) = b.text("_answer") {
        return Ok(FromPeer::Answer { ask });
    }
    if let Some(ask) = b.text("_error") {
        return Ok(FromPeer::Failed {
            ask,
            code: b.text("_error_code").unwrap_or_default(),
            description: b.text("_error_description").unwrap_or_default(),
        });
    }
    let command = b.text("_command").unwrap_or_default();
    match command.as_str() {
        "MsgServer2Portal" => {
            let (sessid, kwargs) = unpack(b, max)?;
            Ok(FromPeer::Msg(ServerMsg::DataOut {
                sessid,
                commands: commands_from(&kwargs),
            }))
        }
        "AdminServer2Portal" => {
            let (sessid, kwargs) = unpack(b, max)?;
            admin_from_server(sessid, kwargs)
        }
        "MsgStatus" => Ok(FromPeer::Status),
        "MsgLauncher2Portal" => {
            let operation = b.get("operation").and_then(|o| o.first().copied());
            Ok(FromPeer::Launcher {
                operation: operation.unwrap_or(0),
                arguments: b.get("arguments").unwrap_or_default().to_vec(),
            })
        }
        _ => Ok(FromPeer::Unhandled { command }),
    }
}

/// `packed_data` as `(sessid, kwargs)`.
fn unpack(b: &AmpBox, max: usize) -> Result<(u64, Vec<(Py, Py)>), MapError> {
    let raw = payload::unpack(b, "packed_data", max)?;
    let value = pickle::decode(&raw, &Limits::default())?;
    let Py::Tuple(mut items) = value else {
        return Err(shape("packed_data is not a (sessid, kwargs) tuple"));
    };
    if items.len() != 2 {
        return Err(shape("packed_data is not a (sessid, kwargs) pair"));
    }
    let kwargs = items.pop();
    let sessid = items.pop();
    let (Some(sessid), Some(Py::Dict(kwargs))) = (sessid, kwargs) else {
        return Err(shape("packed_data kwargs is not a dict"));
    };
    let sessid = match sessid {
        Py::Int(i) => u64::try_from(i).unwrap_or(0),
        Py::None => 0,
        other => return Err(shape(format!("sessid {other:?}"))),
    };
    Ok((sessid, kwargs))
}

fn admin_from_server(sessid: u64, kwargs: Vec<(Py, Py)>) -> Result<FromPeer, MapError> {
    let operation = match get(&kwargs, "operation") {
        Some(Py::Str(s)) => s.bytes().next().unwrap_or(0),
        Some(Py::Bytes(b)) => b.first().copied().unwrap_or(0),
        _ => 0,
    };
    let text = |key: &str| get(&kwargs, key).map(py_text).unwrap_or_default();
    let msg = match operation {
        op::PSYNC => {
            let pid = match get(&kwargs, "spid") {
                Some(Py::Int(i)) => Some(*i),
                _ => None,
            };
            let info = get(&kwargs, "info_dict")
                .cloned()
                .unwrap_or(Py::Dict(vec![]));
            return Ok(FromPeer::ServerHello { pid, info });
        }
        op::SLOGIN => {
            let data = get(&kwargs, "sessiondata")
                .cloned()
                .unwrap_or(Py::Dict(vec![]));
            return Ok(FromPeer::Login { sessid, data });
        }
        op::SSYNC => {
            let clean = get(&kwargs, "clean").is_none_or(py_truthy);
            let sessions = match get(&kwargs, "sessiondata") {
                Some(Py::Dict(pairs)) => pairs
                    .iter()
                    .filter_map(|(k, v)| Some((py_sessid(k)?, v.clone())))
                    .collect(),
                _ => Vec::new(),
            };
            return Ok(FromPeer::Sync { sessions, clean });
        }
        op::SDISCONN => ServerMsg::Disconnect {
            sessid,
            reason: text("reason"),
        },
        op::SDISCONNALL => ServerMsg::DisconnectAll {
            reason: text("reason"),
        },
        op::SCONN => ServerMsg::ServerConnect {
            protocol_key: protocol_key_of(&text("protocol_path")),
            config: match get(&kwargs, "config") {
                Some(Py::Dict(pairs)) => map_from(pairs),
                _ => Map::new(),
            },
        },
        op::SRELOAD => ServerMsg::Reload,
        op::SRESET => ServerMsg::Reset,
        op::SSHUTD => ServerMsg::StopGame,
        op::PSHUTD => ServerMsg::Shutdown,
        other => return Err(shape(format!("operation {other} from the Server"))),
    };
    Ok(FromPeer::Msg(msg))
}

/// Evennia's protocol factory paths the portal knows, and its keys.
const PROTOCOL_PATHS: &[(&str, &str)] = &[("evennia.server.portal.irc.IRCBotFactory", "irc")];

/// The portal's protocol key for an Evennia `protocol_path` (a factory's
/// dotted path); any other path is passed on as it is, so the refusal
/// names what the Server asked for.
pub fn protocol_key_of(path: &str) -> String {
    PROTOCOL_PATHS
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(path, |(_, key)| key)
        .to_owned()
}

/// The value of string key `key` in a dict's pairs.
pub fn get<'a>(pairs: &'a [(Py, Py)], key: &str) -> Option<&'a Py> {
    pairs
        .iter()
        .find(|(k, _)| matches!(k, Py::Str(s) if s == key))
        .map(|(_, v)| v)
}

fn py_sessid(key: &Py) -> Option<u64> {
    match key {
        Py::Int(i) => u64::try_from(*i).ok(),
        Py::Str(s) => s.parse().ok(),
        _ => None,
    }
}

fn py_text(value: &Py) -> String {
    match value {
        Py::Str(s) => s.clone(),
        Py::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Py::None => String::new(),
        other => format!("{:?}", to_value(other)),
    }
}

fn py_truthy(value: &Py) -> bool {
    to_value(value).is_truthy()
}

// ---- commands ----

/// Output kwargs `{cmdname: [args, kwargs], …}`, in the Server's order.
fn commands_from(kwargs: &[(Py, Py)]) -> Vec<Command> {
    kwargs
        .iter()
        .filter_map(|(name, data)| {
            let Py::Str(name) = name else {
                return None;
            };
            let (args, kwargs) = split_call(data);
            Some(Command {
                name: name.clone(),
                args,
                kwargs,
            })
        })
        .collect()
}

/// `[args, kwargs]` (list or tuple), or a bare value as the one argument.
fn split_call(data: &Py) -> (Vec<Value>, Map) {
    let items = match data {
        Py::List(items) | Py::Tuple(items) if items.len() == 2 => items,
        Py::None => return (Vec::new(), Map::new()),
        other => return (vec![to_value(other)], Map::new()),
    };
    let args = match &items[0] {
        Py::List(a) | Py::Tuple(a) => a.iter().map(to_value).collect(),
        Py::None => Vec::new(),
        other => vec![to_value(other)],
    };
    let kwargs = match &items[1] {
        Py::Dict(pairs) => map_from(pairs),
        _ => Map::new(),
    };
    (args, kwargs)
}

/// One input command as Evennia's portal sends it: `[[args…], {kwargs}]`.
fn call_py(command: &Command) -> Py {
    Py::List(vec![
        Py::List(command.args.iter().map(to_py).collect()),
        dict_py(&command.kwargs),
    ])
}

// ---- values ----

/// A pickled value as a link [`Value`]. Tuples and sets become lists, int
/// keys become their decimal text, and what a `Value` cannot hold (a class
/// instance, a big int) becomes its description as text.
pub fn to_value(py: &Py) -> Value {
    match py {
        Py::None => Value::Null,
        Py::Bool(b) => Value::Bool(*b),
        Py::Int(i) => Value::Int(*i),
        Py::Float(f) => Value::Float(*f),
        Py::Str(s) => Value::Str(s.clone()),
        Py::Bytes(b) | Py::ByteArray(b) => Value::Bytes(b.clone()),
        Py::Tuple(items) | Py::List(items) | Py::Set(items) | Py::FrozenSet(items) => {
            Value::List(items.iter().map(to_value).collect())
        }
        Py::Dict(pairs) => Value::Map(map_from(pairs)),
        // An OrderedDict and the like: its items, as a plain dict's.
        Py::SetItems { items, .. } => Value::Map(map_from(items)),
        Py::Appends { items, .. } => Value::List(items.iter().map(to_value).collect()),
        Py::BigInt(_)
        | Py::Global { .. }
        | Py::Reduce { .. }
        | Py::NewObj { .. }
        | Py::Build { .. } => Value::Str(describe(py)),
    }
}

fn map_from(pairs: &[(Py, Py)]) -> Map {
    pairs
        .iter()
        .map(|(k, v)| (key_text(k), to_value(v)))
        .collect()
}

fn key_text(key: &Py) -> String {
    match key {
        Py::Str(s) => s.clone(),
        Py::Int(i) => i.to_string(),
        Py::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
        other => describe(other),
    }
}

fn describe(py: &Py) -> String {
    match py {
        Py::Global { module, name } => format!("{module}.{name}"),
        Py::Reduce { callable, .. } => format!("<{}>", describe(callable)),
        Py::NewObj { cls, .. } => format!("<{}>", describe(cls)),
        Py::Build { obj, .. } | Py::Appends { obj, .. } | Py::SetItems { obj, .. } => describe(obj),
        Py::BigInt(_) => "<big int>".to_owned(),
        other => format!("{other:?}"),
    }
}

/// A link [`Value`] as the Python value Evennia expects.
pub fn to_py(value: &Value) -> Py {
    match value {
        Value::Null => Py::None,
        Value::Bool(b) => Py::Bool(*b),
        Value::Int(i) => Py::Int(*i),
        Value::Float(f) => Py::Float(*f),
        Value::Str(s) => Py::Str(s.clone()),
        Value::Bytes(b) => Py::Bytes(b.clone()),
        Value::List(items) => Py::List(items.iter().map(to_py).collect()),
        Value::Map(map) => dict_py(map),
    }
}

fn dict_py(map: &Map) -> Py {
    Py::Dict(
        map.iter()
            .map(|(k, v)| (Py::Str(k.clone()), to_py(v)))
            .collect(),
    )
}

fn s(text: &str) -> Py {
    Py::Str(text.to_owned())
}

fn opt_int(v: Option<i64>) -> Py {
    v.map_or(Py::None, Py::Int)
}

fn opt_str(v: &Option<String>) -> Py {
    v.as_ref().map_or(Py::None, |t| Py::Str(t.clone()))
}

// ---- sessions ----

/// The flags as Evennia keeps them: window sizes as `{0: n}`.
fn flags_py(flags: &ProtocolFlags) -> Py {
    let pairs = flags
        .to_map()
        .into_iter()
        .map(|(name, value)| {
            let py = match (&*name, value) {
                ("SCREENWIDTH" | "SCREENHEIGHT", Value::Map(m)) => Py::Dict(
                    m.iter()
                        .map(|(k, v)| {
                            let key = k.parse().map_or_else(|_| s(k), Py::Int);
                            (key, to_py(v))
                        })
                        .collect(),
                ),
                (_, value) => to_py(&value),
            };
            (Py::Str(name), py)
        })
        .collect();
    Py::Dict(pairs)
}

/// The Evennia-only entries kept for a session (see [`EXTRAS_KEY`]).
fn extras(session: &Session) -> Vec<(Py, Py)> {
    let Some(Value::Bytes(blob)) = session.server_data.get(EXTRAS_KEY) else {
        return Vec::new();
    };
    match pickle::decode(blob, &Limits::default()) {
        Ok(Py::Dict(pairs)) => pairs,
        _ => Vec::new(),
    }
}

fn store_extras(session: &mut Session, pairs: Vec<(Py, Py)>) {
    session.server_data.insert(
        EXTRAS_KEY.to_owned(),
        Value::Bytes(pickle::encode(&Py::Dict(pairs))),
    );
}

/// A session as Evennia's sync dict. Evennia's sessions carry the client's
/// IP as their address, without the port.
pub fn session_py(session: &Session) -> Py {
    let ip = host_of(&session.address);
    let mut pairs = vec![
        (s("protocol_key"), s(&session.protocol_key)),
        (s("address"), s(ip)),
        (s("sessid"), Py::Int(session.sessid as i64)),
        (s("uid"), opt_int(session.uid)),
        (s("csessid"), opt_str(&session.csessid)),
        (s("uname"), opt_str(&session.uname)),
        (s("logged_in"), Py::Bool(session.logged_in)),
        (s("puid"), opt_int(session.puid)),
        (s("conn_time"), Py::Float(session.conn_time)),
        (s("cmd_last"), Py::Float(session.cmd_last)),
        (s("cmd_last_visible"), Py::Float(session.cmd_last_visible)),
        (s("cmd_total"), Py::Int(session.cmd_total as i64)),
        (s("protocol_flags"), flags_py(&session.protocol_flags)),
    ];
    let mut extra = extras(session);
    for key in ["suid", "server_data"] {
        if get(&extra, key).is_none() {
            let default = if key == "suid" {
                Py::None
            } else {
                Py::Dict(vec![])
            };
            extra.push((s(key), default));
        }
    }
    pairs.extend(extra);
    Py::Dict(pairs)
}

/// `ip` of `ip:port` (or `[v6]:port`); anything else unchanged.
fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match address.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => address,
    }
}

/// Apply an Evennia sync dict (whole or partial) onto `session`, as
/// Evennia's `load_sync_data` does: each key given replaces the field,
/// `protocol_flags` merge, keys the portal does not model are kept for the
/// Server. The sessid and the address never change.
pub fn apply_sessiondata(session: &mut Session, data: &Py) {
    let Py::Dict(pairs) = data else {
        return;
    };
    let mut extra = extras(session);
    let mut extra_changed = false;
    for (key, value) in pairs {
        let Py::Str(key) = key else { continue };
        if !MODELLED.contains(&key.as_str()) {
            match extra
                .iter_mut()
                .find(|(k, _)| matches!(k, Py::Str(x) if x == key))
            {
                Some((_, v)) => *v = value.clone(),
                None => extra.push((s(key), value.clone())),
            }
            extra_changed = true;
            continue;
        }
        apply_field(session, key, value);
    }
    if extra_changed {
        store_extras(session, extra);
    }
}

fn apply_field(session: &mut Session, key: &str, value: &Py) {
    let int = || match value {
        Py::Int(i) => Some(*i),
        _ => None,
    };
    let text = || match value {
        Py::Str(t) => Some(t.clone()),
        _ => None,
    };
    let float = || match value {
        Py::Float(f) => Some(*f),
        Py::Int(i) => Some(*i as f64),
        _ => None,
    };
    match key {
        "protocol_key" => session.protocol_key = text().unwrap_or_default(),
        "uid" => session.uid = int(),
        "csessid" => session.csessid = text(),
        "uname" => session.uname = text(),
        "logged_in" => session.logged_in = py_truthy(value),
        "puid" => session.puid = int(),
        "conn_time" => session.conn_time = float().unwrap_or(session.conn_time),
        "cmd_last" => session.cmd_last = float().unwrap_or(session.cmd_last),
        "cmd_last_visible" => {
            session.cmd_last_visible = float().unwrap_or(session.cmd_last_visible)
        }
        "cmd_total" => session.cmd_total = int().map_or(session.cmd_total, |i| i.max(0) as u64),
        "protocol_flags" => {
            if let Py::Dict(pairs) = value {
                let incoming = ProtocolFlags::from_map(map_from(pairs));
                session.protocol_flags.merge(&incoming);
            }
        }
        _ => {}
    }
}

// ---- the portal's messages ----

/// The Server's name for a start mode (`server_restart_mode`).
fn restart_mode(mode: StartMode) -> &'static str {
    match mode {
        StartMode::Reload | StartMode::Reconnect => "reload",
        StartMode::Reset => "reset",
        StartMode::Start | StartMode::Crash => "shutdown",
    }
}

/// The boxes that carry `message` to an Evennia Server (none for the
/// native dialect's handshake, which Evennia does not have). `portal_start`
/// is the portal's start time in Unix seconds.
pub fn encode_portal(message: &PortalMsg, portal_start: f64) -> Vec<AmpBox> {
    let admin =
        |sessid: u64, kwargs: Vec<(Py, Py)>| packed_box("AdminPortal2Server", None, sessid, kwargs);
    let operation = |code: u8| (s("operation"), Py::Str(char::from(code).to_string()));
    match message {
        PortalMsg::Welcome { .. } | PortalMsg::Refused { .. } | PortalMsg::Error { .. } => {
            Vec::new()
        }
        PortalMsg::Connect { session } => vec![admin(
            session.sessid,
            vec![
                operation(op::PCONN),
                (s("sessiondata"), session_py(session)),
            ],
        )],
        // Only what the portal owns: the Server's login state (uid, puid…)
        // must not be rolled back by a negotiation finishing late.
        PortalMsg::ConnSync { session } => {
            let Py::Dict(pairs) = session_py(session) else {
                return Vec::new();
            };
            let owned = pairs
                .into_iter()
                .filter(|(k, _)| matches!(k, Py::Str(k) if PORTAL_OWNED.contains(&k.as_str())))
                .collect();
            vec![admin(
                session.sessid,
                vec![
                    operation(op::PCONNSYNC),
                    (s("sessiondata"), Py::Dict(owned)),
                ],
            )]
        }
        PortalMsg::Disconnect { sessid } => vec![admin(*sessid, vec![operation(op::PDISCONN)])],
        PortalMsg::DisconnectAll => vec![admin(0, vec![operation(op::PDISCONNALL)])],
        PortalMsg::Sync { mode, sessions } => {
            let all = sessions
                .iter()
                .map(|session| (Py::Int(session.sessid as i64), session_py(session)))
                .collect();
            vec![admin(
                0,
                vec![
                    operation(op::PSYNC),
                    (s("server_restart_mode"), s(restart_mode(*mode))),
                    (s("sessiondata"), Py::Dict(all)),
                    (s("portal_start_time"), Py::Float(portal_start)),
                ],
            )]
        }
        PortalMsg::DataIn { sessid, commands } => commands
            .iter()
            .map(|command| {
                let kwargs = vec![(s(&command.name), call_py(command))];
                packed_box("MsgPortal2Server", None, *sessid, kwargs)
            })
            .collect(),
        PortalMsg::Stop { mode } => {
            let (code, name) = match mode {
                StopMode::Reload => (op::SRELOAD, "reload"),
                StopMode::Reset => (op::SRESET, "reset"),
                StopMode::Shutdown => (op::SSHUTD, "shutdown"),
            };
            vec![admin(
                0,
                vec![operation(code), (s("server_restart_mode"), s(name))],
            )]
        }
        // An empty message to no session: the Server answers it once it
        // has handled everything sent before.
        PortalMsg::Ping { seq } => vec![packed_box(
            "MsgPortal2Server",
            Some(&seq.to_string()),
            0,
            Vec::new(),
        )],
    }
}

/// A request box carrying `pickle((sessid, kwargs))`.
pub fn packed_box(command: &str, ask: Option<&str>, sessid: u64, kwargs: Vec<(Py, Py)>) -> AmpBox {
    let data = Py::Tuple(vec![Py::Int(sessid as i64), Py::Dict(kwargs)]);
    let mut b = AmpBox::command(command, ask);
    payload::pack(&mut b, "packed_data", &pickle::encode(&data));
    b
}

#[cfg(test)]
mod tests;
