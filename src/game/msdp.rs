//! The game library's default answers to MSDP's generic commands, as
//! Evennia's default inputfuncs give them.
//!
//! The portal decodes `MSDP_VAR "LIST" MSDP_VAL "COMMANDS"` into the
//! command `msdp_list("COMMANDS")` (Evennia's names: `msdp_list`,
//! `msdp_report`, `msdp_unreport`, `msdp_send`, `msdp_reset`) and hands it
//! to the game in a `DataIn`. A game answers what it knows and passes the
//! rest to [`MsdpDefaults::answer`], which returns the replies to send back
//! in a `DataOut`; the portal encodes each as MSDP:
//!
//! - `LIST COMMANDS` / `LISTS` / `CONFIGURABLE_VARIABLES` /
//!   `REPORTABLE_VARIABLES` / `REPORTED_VARIABLES` / `SENDABLE_VARIABLES`:
//!   a command named after the list with one array argument, which the
//!   portal sends as `MSDP_VAR "COMMANDS" MSDP_VAL MSDP_ARRAY_OPEN
//!   (MSDP_VAL name)* MSDP_ARRAY_CLOSE`; an unknown list is not answered;
//! - `REPORT` / `UNREPORT` add and remove reportable variables from the
//!   session's reported set (the game sends their values when they change;
//!   [`MsdpDefaults::reported`] says whose), `RESET` empties it;
//! - `SEND name…`: one `name value` reply per sendable variable the game's
//!   lookup knows.
//!
//! Variable names are matched without regard to case and answered in
//! upper case, as the MSDP spec writes them.
//!
//! ```
//! use portal::game::MsdpDefaults;
//! use portal::wire::message::Command;
//! use portal::wire::value::Value;
//!
//! let mut msdp = MsdpDefaults::new().with_reportable(&["HEALTH"]);
//! let list = Command { name: "msdp_list".into(), args: vec![Value::from("REPORTABLE_VARIABLES")], ..Command::default() };
//! let replies = msdp.answer(1, &list, |_| None).unwrap();
//! assert_eq!(replies[0].name, "REPORTABLE_VARIABLES");
//! assert_eq!(replies[0].args, [Value::List(vec![Value::from("HEALTH")])]);
//! ```

use crate::wire::message::Command;
use crate::wire::value::Value;
use std::collections::{BTreeSet, HashMap, HashSet};

/// MSDP's generic commands, which every game on this library answers.
pub const GENERIC_COMMANDS: [&str; 5] = ["LIST", "REPORT", "RESET", "SEND", "UNREPORT"];

/// The lists `LIST` can be asked for.
pub const LISTS: [&str; 6] = [
    "COMMANDS",
    "LISTS",
    "CONFIGURABLE_VARIABLES",
    "REPORTABLE_VARIABLES",
    "REPORTED_VARIABLES",
    "SENDABLE_VARIABLES",
];

/// What a game offers MSDP clients, and which variables each session has
/// asked to be reported.
#[derive(Debug, Clone, Default)]
pub struct MsdpDefaults {
    commands: Vec<String>,
    configurable: Vec<String>,
    reportable: Vec<String>,
    sendable: Vec<String>,
    reported: HashMap<u64, BTreeSet<String>>,
}

impl MsdpDefaults {
    /// The generic commands and no variables.
    pub fn new() -> MsdpDefaults {
        MsdpDefaults {
            commands: GENERIC_COMMANDS.iter().map(|c| (*c).to_owned()).collect(),
            ..MsdpDefaults::default()
        }
    }

    /// Adds the game's own MSDP commands to `LIST COMMANDS`.
    pub fn with_commands(mut self, names: &[&str]) -> MsdpDefaults {
        self.commands.extend(upper(names));
        self
    }

    /// The variables a client may set (`LIST CONFIGURABLE_VARIABLES`).
    pub fn with_configurable(mut self, names: &[&str]) -> MsdpDefaults {
        self.configurable = upper(names).collect();
        self
    }

    /// The variables a client may `REPORT` (`LIST REPORTABLE_VARIABLES`).
    pub fn with_reportable(mut self, names: &[&str]) -> MsdpDefaults {
        self.reportable = upper(names).collect();
        self
    }

    /// The variables a client may `SEND` for (`LIST SENDABLE_VARIABLES`).
    pub fn with_sendable(mut self, names: &[&str]) -> MsdpDefaults {
        self.sendable = upper(names).collect();
        self
    }

    /// The default answer to `command` from session `sessid`: `None` if it
    /// is not one of MSDP's generic commands, else the replies (maybe none)
    /// to send the session. `value` looks up a variable's current value
    /// for `SEND`.
    pub fn answer(
        &mut self,
        sessid: u64,
        command: &Command,
        value: impl Fn(&str) -> Option<Value>,
    ) -> Option<Vec<Command>> {
        let names = || unique_names(&command.args).into_iter();
        let replies = match command.name.as_str() {
            "msdp_list" => names()
                .filter_map(|list| self.list(sessid, &list))
                .collect(),
            "msdp_report" => {
                let wanted: Vec<String> = names().filter(|n| self.reportable.contains(n)).collect();
                if !wanted.is_empty() {
                    self.reported.entry(sessid).or_default().extend(wanted);
                }
                Vec::new()
            }
            "msdp_unreport" => {
                if let Some(reported) = self.reported.get_mut(&sessid) {
                    for name in names() {
                        reported.remove(&name);
                    }
                }
                Vec::new()
            }
            "msdp_reset" => {
                self.reported.remove(&sessid);
                Vec::new()
            }
            "msdp_send" => names()
                .filter(|n| self.sendable.contains(n))
                .filter_map(|name| {
                    let found = value(&name)?;
                    Some(Command {
                        name,
                        args: vec![found],
                        ..Command::default()
                    })
                })
                .collect(),
            _ => return None,
        };
        Some(replies)
    }

    /// The variables session `sessid` asked to have reported.
    pub fn reported(&self, sessid: u64) -> impl Iterator<Item = &str> {
        self.reported
            .get(&sessid)
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    /// Forgets a session that closed.
    pub fn forget(&mut self, sessid: u64) {
        self.reported.remove(&sessid);
    }

    /// Forgets every session (the portal closed them all).
    pub fn forget_all(&mut self) {
        self.reported.clear();
    }

    /// One `LIST` answer: the list's name with its items as an array.
    fn list(&self, sessid: u64, list: &str) -> Option<Command> {
        let items: Vec<Value> = match list {
            "COMMANDS" => self
                .commands
                .iter()
                .map(|c| Value::from(c.as_str()))
                .collect(),
            "LISTS" => LISTS.iter().map(|l| Value::from(*l)).collect(),
            "CONFIGURABLE_VARIABLES" => values(&self.configurable),
            "REPORTABLE_VARIABLES" => values(&self.reportable),
            "SENDABLE_VARIABLES" => values(&self.sendable),
            "REPORTED_VARIABLES" => self.reported(sessid).map(Value::from).collect(),
            _ => return None,
        };
        Some(Command {
            name: list.to_owned(),
            args: vec![Value::List(items)],
            ..Command::default()
        })
    }
}

/// The text arguments in upper case, each once (a client repeating a name
/// gets one answer, not one per repeat), in the order first given.
fn unique_names(args: &[Value]) -> Vec<String> {
    let mut seen = HashSet::new();
    args.iter()
        .filter_map(Value::as_str)
        .map(str::to_uppercase)
        .filter(|name| seen.insert(name.clone()))
        .collect()
}

fn upper<'a>(names: &'a [&str]) -> impl Iterator<Item = String> + 'a {
    names.iter().map(|n| n.to_uppercase())
}

fn values(names: &[String]) -> Vec<Value> {
    names.iter().map(|n| Value::from(n.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::telnet::msdp::{decode, encode};

    fn inbound(body: &[u8]) -> Command {
        decode(body).remove(0)
    }

    fn demo() -> MsdpDefaults {
        MsdpDefaults::new()
            .with_reportable(&["health", "HEALTH_MAX"])
            .with_sendable(&["HEALTH"])
    }

    #[test]
    fn list_commands_is_answered_with_the_generic_commands_as_an_msdp_array() {
        let mut msdp = MsdpDefaults::new();
        let replies = msdp.answer(1, &inbound(b"\x01LIST\x02COMMANDS"), |_| None);
        let replies = replies.unwrap();
        assert_eq!(replies.len(), 1);
        assert_eq!(
            encode(&replies[0]),
            b"\x01COMMANDS\x02\x05\x02LIST\x02REPORT\x02RESET\x02SEND\x02UNREPORT\x06"
        );
    }

    #[test]
    fn every_list_of_the_spec_is_answered_and_unknown_ones_are_not() {
        let mut msdp = demo();
        let ask = Command {
            name: "msdp_list".into(),
            args: LISTS
                .iter()
                .chain(&["NONSENSE"])
                .map(|l| Value::from(*l))
                .collect(),
            ..Command::default()
        };
        let replies = msdp.answer(1, &ask, |_| None).unwrap();
        let names: Vec<&str> = replies.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, LISTS);
        let reportable = encode(&replies[3]);
        assert_eq!(
            reportable,
            b"\x01REPORTABLE_VARIABLES\x02\x05\x02HEALTH\x02HEALTH_MAX\x06"
        );
        // Nothing reported yet: an empty array, still well formed.
        assert_eq!(encode(&replies[4]), b"\x01REPORTED_VARIABLES\x02\x05\x06");
    }

    #[test]
    fn report_unreport_and_reset_keep_the_reported_list() {
        let mut msdp = demo();
        let none = |_: &str| None;
        let report = inbound(b"\x01REPORT\x02\x05\x02health\x02HEALTH_MAX\x02SECRET\x06");
        assert_eq!(msdp.answer(1, &report, none), Some(vec![]));
        assert_eq!(
            msdp.reported(1).collect::<Vec<_>>(),
            ["HEALTH", "HEALTH_MAX"]
        );
        assert_eq!(msdp.reported(2).count(), 0);
        let list = msdp.answer(1, &inbound(b"\x01LIST\x02REPORTED_VARIABLES"), none);
        assert_eq!(
            encode(&list.unwrap()[0]),
            b"\x01REPORTED_VARIABLES\x02\x05\x02HEALTH\x02HEALTH_MAX\x06"
        );
        msdp.answer(1, &inbound(b"\x01UNREPORT\x02HEALTH"), none);
        assert_eq!(msdp.reported(1).collect::<Vec<_>>(), ["HEALTH_MAX"]);
        msdp.answer(1, &inbound(b"\x01RESET\x02REPORTABLE_VARIABLES"), none);
        assert_eq!(msdp.reported(1).count(), 0);
        msdp.answer(1, &report, none);
        msdp.forget(1);
        assert_eq!(msdp.reported(1).count(), 0);
    }

    #[test]
    fn send_answers_each_sendable_variable_the_game_knows() {
        let mut msdp = demo();
        let send = inbound(b"\x01SEND\x02\x05\x02health\x02HEALTH_MAX\x02UNKNOWN\x06");
        let replies = msdp
            .answer(1, &send, |name| {
                (name == "HEALTH").then_some(Value::Int(50))
            })
            .unwrap();
        assert_eq!(replies.len(), 1);
        assert_eq!(encode(&replies[0]), b"\x01HEALTH\x0250");
    }

    #[test]
    fn a_repeated_name_is_answered_once() {
        let mut msdp = demo();
        let ask = Command {
            name: "msdp_list".into(),
            args: vec![Value::from("COMMANDS"); 1000],
            ..Command::default()
        };
        assert_eq!(msdp.answer(1, &ask, |_| None).unwrap().len(), 1);
        let send = Command {
            name: "msdp_send".into(),
            args: vec![Value::from("health"), Value::from("HEALTH")],
            ..Command::default()
        };
        let replies = msdp.answer(1, &send, |_| Some(Value::Int(1))).unwrap();
        assert_eq!(replies.len(), 1);
    }

    #[test]
    fn other_commands_are_left_to_the_game() {
        let mut msdp = demo();
        assert_eq!(msdp.answer(1, &inbound(b"\x01PING\x02"), |_| None), None);
        assert_eq!(msdp.answer(1, &Command::text("LIST"), |_| None), None);
    }

    #[test]
    fn game_commands_join_the_generic_ones() {
        let mut msdp = MsdpDefaults::new().with_commands(&["ping"]);
        let replies = msdp.answer(1, &inbound(b"\x01LIST\x02commands"), |_| None);
        let args = &replies.unwrap()[0].args;
        let Value::List(items) = &args[0] else {
            panic!("{args:?}")
        };
        assert_eq!(items.last(), Some(&Value::from("PING")));
    }
}
