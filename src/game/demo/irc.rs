//! The demo game's IRC relay: what it asks the portal for and how it
//! reads and writes a bot session (see [`crate::session::irc`] for the
//! portal's side). Pure: [`super::world`] calls these and sends what they
//! return.
//!
//! With `--irc-bot NETWORK:PORT:CHANNEL:NICK[:tls]` the game asks the
//! portal, at its first start under a portal run, for an IRC bot session
//! (`ServerConnect` with key `irc` and Evennia's config keys). The bot's
//! sessions (protocol key `ircbot`, a new one each time the bot signs on)
//! are never players: they get no login screen, and what arrives on them
//! as `bot_data_in` is shown to every logged-in player as `[IRC] nick:
//! text`; a player's `say` goes to each of them as `channel` output, which
//! the portal says in the IRC channel.

use crate::session::irc::{INPUT_COMMAND, SESSION_PROTOCOL_KEY};
use crate::wire::message::{Command, ServerMsg};
use crate::wire::session::Session;
use crate::wire::value::{Map, Value};

/// What `--irc-bot` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrcBotSpec {
    pub network: String,
    pub port: u16,
    pub channel: String,
    pub nick: String,
    pub tls: bool,
}

impl IrcBotSpec {
    /// Read `NETWORK:PORT:CHANNEL:NICK` with an optional `:tls`.
    pub fn parse(text: &str) -> Result<IrcBotSpec, String> {
        let bad = || format!("bad --irc-bot {text:?}: use NETWORK:PORT:CHANNEL:NICK[:tls]");
        let parts: Vec<&str> = text.split(':').collect();
        let (fixed, tls) = match parts.as_slice() {
            [a, b, c, d] => ([*a, *b, *c, *d], false),
            [a, b, c, d, "tls"] => ([*a, *b, *c, *d], true),
            _ => return Err(bad()),
        };
        let [network, port, channel, nick] = fixed;
        let port = port.parse().map_err(|_| bad())?;
        if [network, channel, nick].iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        Ok(IrcBotSpec {
            network: network.into(),
            port,
            channel: channel.into(),
            nick: nick.into(),
            tls,
        })
    }

    /// The `ServerConnect` that opens the bot.
    pub fn request(&self) -> ServerMsg {
        let config: Map = [
            ("botname", Value::Str(self.nick.clone())),
            ("channel", Value::Str(self.channel.clone())),
            ("network", Value::Str(self.network.clone())),
            ("port", Value::Int(self.port.into())),
            ("ssl", Value::Bool(self.tls)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        ServerMsg::ServerConnect {
            protocol_key: "irc".into(),
            config,
        }
    }
}

/// Whether `session` is an IRC bot's.
pub fn is_bot(session: &Session) -> bool {
    session.protocol_key == SESSION_PROTOCOL_KEY
}

/// What a player sees for one `bot_data_in` command (Evennia markup,
/// IRC text escaped), or `None` for what players are not shown (a names
/// list, a ping's timing, a private message to the bot).
pub fn shown_to_players(command: &Command) -> Option<String> {
    if command.name != INPUT_COMMAND {
        return None;
    }
    let text = command.first_str()?;
    let kwarg = |key: &str| command.kwargs.get(key).and_then(Value::as_str);
    let user = super::markup::escape(kwarg("user").unwrap_or("someone"));
    let text = super::markup::escape(text);
    match kwarg("type") {
        Some("msg") => Some(format!("[IRC] {user}: {text}")),
        Some("action") => Some(format!("[IRC] * {user} {text}")),
        _ => None,
    }
}

/// The output that says a player's speech in the channel (`speech`
/// already escaped, as players see it: the portal strips the markup).
pub fn channel_line(speaker_escaped: &str, speech_escaped: &str) -> Command {
    Command {
        name: "channel".into(),
        args: vec![Value::Str(format!("{speaker_escaped}: {speech_escaped}"))],
        kwargs: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_is_read_with_or_without_tls() {
        let spec = IrcBotSpec::parse("127.0.0.1:6667:#plaza:demobot").unwrap();
        assert_eq!(spec.port, 6667);
        assert!(!spec.tls);
        assert!(IrcBotSpec::parse("localhost:6697:#p:b:tls").unwrap().tls);
        for bad in ["", "h:1:#c", "h:x:#c:n", "h:1:#c:n:ssl", "h:1::n"] {
            assert!(IrcBotSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_request_carries_evennias_config_keys() {
        let spec = IrcBotSpec::parse("h:6667:#c:bot").unwrap();
        let ServerMsg::ServerConnect {
            protocol_key,
            config,
        } = spec.request()
        else {
            panic!()
        };
        assert_eq!(protocol_key, "irc");
        let keys: Vec<&str> = config.keys().map(String::as_str).collect();
        assert_eq!(keys, ["botname", "channel", "network", "port", "ssl"]);
    }

    #[test]
    fn channel_messages_and_actions_are_shown_escaped_the_rest_not() {
        let input = |kind: &str, text: &str| Command {
            name: INPUT_COMMAND.into(),
            args: vec![Value::Str(text.into())],
            kwargs: [
                ("type".to_owned(), Value::Str(kind.into())),
                ("user".to_owned(), Value::Str("an|rna".into())),
            ]
            .into_iter()
            .collect(),
        };
        assert_eq!(
            shown_to_players(&input("msg", "hi |r")).as_deref(),
            Some("[IRC] an||rna: hi ||r")
        );
        assert_eq!(
            shown_to_players(&input("action", "waves")).as_deref(),
            Some("[IRC] * an||rna waves")
        );
        assert_eq!(shown_to_players(&input("nicklist", "")), None);
        assert_eq!(shown_to_players(&input("privmsg", "psst")), None);
        assert_eq!(shown_to_players(&Command::text("hi")), None);
    }
}
