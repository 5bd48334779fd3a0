//! A session's protocol flags: what the client can do, as typed fields.
//!
//! The portal's engines (telnet, websocket) set these as they negotiate;
//! the renderer and the game read them. On the AMP link they travel as the
//! map Evennia's names describe (`"ANSI": Bool(true)`, `"SCREENWIDTH":
//! Map({"0": Int(80)})`, …), byte for byte what a `BTreeMap<String, Value>`
//! of the same entries encodes to: [`ProtocolFlags`] converts to and from
//! that map only at the link (its `Serialize`/`Deserialize`).
//!
//! A known name holding a value of the type its field has is kept in the
//! field; anything else (a flag the game invented, or a known name with an
//! unexpected value) is kept as is in a side map, so every flag survives a
//! sync unchanged. Unset fields are absent from the wire map.
//!
//! ```
//! use portal::wire::flags::{Flag, ProtocolFlags};
//! use portal::wire::value::Value;
//! let mut flags = ProtocolFlags::default();
//! flags.ansi = Some(true);
//! flags.insert("MY_GAME_FLAG".into(), Value::Int(3));
//! assert_eq!(flags.is_on(Flag::Ansi), Some(true));
//! let map = flags.to_map();
//! assert_eq!(map["ANSI"], Value::Bool(true));
//! assert_eq!(ProtocolFlags::from_map(map), flags);
//! ```

use crate::wire::value::{Map, Value};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

/// The flags without a typed field (see the module doc), kept as the wire
/// has them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Extra(Map);

impl std::ops::Deref for Extra {
    type Target = Map;
    fn deref(&self) -> &Map {
        &self.0
    }
}

/// A flag's text: a `&'static str` where the portal knows the value (an
/// encoding name, a websocket format), an owned string otherwise.
pub type Text = Cow<'static, str>;

macro_rules! protocol_flags {
    (
        bools { $($variant:ident $b:ident $bname:literal,)* }
        texts { $($t:ident $tname:literal,)* }
        sizes { $($s:ident $sname:literal,)* }
    ) => {
        /// A session's protocol flags (Evennia's names on the wire).
        ///
        /// `None` is "not set": absent from the wire map, and left alone by
        /// [`ProtocolFlags::merge`].
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct ProtocolFlags {
            $(#[doc = concat!("`", $bname, "`")] pub $b: Option<bool>,)*
            $(#[doc = concat!("`", $tname, "`")] pub $t: Option<Text>,)*
            $(#[doc = concat!("`", $sname, "`: the main window's size (`{\"0\": n}` on the wire)")]
              pub $s: Option<u16>,)*
            /// Every other flag, by its wire name (empty, unallocated, for
            /// the portal's own sessions); read and written through
            /// [`ProtocolFlags::get`] and [`ProtocolFlags::insert`].
            pub extra: Extra,
        }

        /// The yes/no flags, for code that picks one at run time (the
        /// renderer, the demo's `client` report).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Flag {
            $($variant,)*
        }

        impl Flag {
            /// The flag's wire name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Flag::$variant => $bname,)*
                }
            }
        }

        impl ProtocolFlags {
            /// A yes/no flag: the typed field, or the truthiness of a value
            /// of another type the game stored under that name.
            pub fn is_on(&self, flag: Flag) -> Option<bool> {
                let typed = match flag {
                    $(Flag::$variant => self.$b,)*
                };
                typed.or_else(|| self.extra_truthy(flag.name()))
            }

            /// Set a yes/no flag.
            pub fn set_on(&mut self, flag: Flag, on: bool) {
                match flag {
                    $(Flag::$variant => self.$b = Some(on),)*
                }
                self.forget_extra(flag.name());
            }

            /// One flag by its wire name, as the wire map has it.
            pub fn get(&self, name: &str) -> Option<Value> {
                let typed = match name {
                    $($bname => self.$b.map(Value::Bool),)*
                    $($tname => self.$t.as_deref().map(Value::from),)*
                    $($sname => self.$s.map(window_map),)*
                    _ => None,
                };
                typed.or_else(|| self.extra.get(name).cloned())
            }

            /// Set one flag by its wire name (what an incoming wire map does).
            pub fn insert(&mut self, name: String, value: Value) {
                match self.set_known(&name, value) {
                    Ok(()) => self.forget_extra(&name),
                    Err(value) => {
                        self.clear_known(&name);
                        self.extra.0.insert(name, value);
                    }
                }
            }

            /// Store `value` in its typed field, or hand it back if `name`
            /// has none or the value is not of the field's type.
            fn set_known(&mut self, name: &str, value: Value) -> Result<(), Value> {
                match (name, value) {
                    $(($bname, Value::Bool(b)) => self.$b = Some(b),)*
                    $(($tname, Value::Str(s)) => self.$t = Some(text(s)),)*
                    $(($sname, Value::Map(m)) => match main_window(&m) {
                        Some(n) => self.$s = Some(n),
                        None => return Err(Value::Map(m)),
                    },)*
                    (_, value) => return Err(value),
                }
                Ok(())
            }

            /// Whether `name` has a typed field and it is set (then it
            /// wins over an extra of the same name, as in [`Self::to_map`]).
            fn has_typed(&self, name: &str) -> bool {
                match name {
                    $($bname => self.$b.is_some(),)*
                    $($tname => self.$t.is_some(),)*
                    $($sname => self.$s.is_some(),)*
                    _ => false,
                }
            }

            fn clear_known(&mut self, name: &str) {
                match name {
                    $($bname => self.$b = None,)*
                    $($tname => self.$t = None,)*
                    $($sname => self.$s = None,)*
                    _ => {}
                }
            }

            /// The wire map: every set field under its name, and the extras.
            pub fn to_map(&self) -> Map {
                let mut map = self.extra.0.clone();
                $(if let Some(on) = self.$b {
                    map.insert($bname.into(), Value::Bool(on));
                })*
                $(if let Some(text) = &self.$t {
                    map.insert($tname.into(), Value::from(text.as_ref()));
                })*
                $(if let Some(size) = self.$s {
                    map.insert($sname.into(), window_map(size));
                })*
                map
            }

            /// Merge `from` in as `Map::extend` would merge the wire maps:
            /// every flag `from` has set replaces ours, the rest stay.
            /// Copies only what differs (an unchanged flag allocates nothing).
            pub fn merge(&mut self, from: &ProtocolFlags) {
                $(if from.$b.is_some() && self.$b != from.$b {
                    self.$b = from.$b;
                    self.forget_extra($bname);
                })*
                $(if from.$t.is_some() && self.$t != from.$t {
                    self.$t = from.$t.clone();
                    self.forget_extra($tname);
                })*
                $(if from.$s.is_some() && self.$s != from.$s {
                    self.$s = from.$s;
                    self.forget_extra($sname);
                })*
                for (name, value) in from.extra.iter() {
                    if !from.has_typed(name) && self.extra.get(name) != Some(value) {
                        self.insert(name.clone(), value.clone());
                    }
                }
            }

            /// The flags set here whose value differs in `base` (what a
            /// merge of `self` into `base` would change).
            pub fn changed_from(&self, base: &ProtocolFlags) -> ProtocolFlags {
                let mut out = ProtocolFlags::default();
                $(if self.$b.is_some() && self.$b != base.$b {
                    out.$b = self.$b;
                })*
                $(if self.$t.is_some() && self.$t != base.$t {
                    out.$t = self.$t.clone();
                })*
                $(if self.$s.is_some() && self.$s != base.$s {
                    out.$s = self.$s;
                })*
                for (name, value) in self.extra.iter() {
                    if !self.has_typed(name) && base.extra.get(name) != Some(value) {
                        out.extra.0.insert(name.clone(), value.clone());
                    }
                }
                out
            }

            /// True when no flag is set.
            pub fn is_empty(&self) -> bool {
                true $(&& self.$b.is_none())* $(&& self.$t.is_none())*
                    $(&& self.$s.is_none())* && self.extra.is_empty()
            }
        }
    };
}

protocol_flags! {
    bools {
        Ansi ansi "ANSI",
        Xterm256 xterm256 "XTERM256",
        Truecolor truecolor "TRUECOLOR",
        Utf8 utf8 "UTF-8",
        Screenreader screenreader "SCREENREADER",
        Ttype ttype "TTYPE",
        ForcedEndline forcedendline "FORCEDENDLINE",
        NoGoAhead nogoahead "NOGOAHEAD",
        NoPromptGoAhead nopromptgoahead "NOPROMPTGOAHEAD",
        NopKeepalive nopkeepalive "NOPKEEPALIVE",
        AutoResize autoresize "AUTORESIZE",
        Eor eor "EOR",
        Mccp mccp "MCCP",
        Mxp mxp "MXP",
        Gmcp gmcp "GMCP",
        Msdp msdp "MSDP",
        Oob oob "OOB",
        Raw raw "RAW",
        NoColor nocolor "NOCOLOR",
        Vt100 vt100 "VT100",
        MouseTracking mouse_tracking "MOUSE_TRACKING",
        OscColorPalette osc_color_palette "OSC_COLOR_PALETTE",
        Proxy proxy "PROXY",
        Mnes mnes "MNES",
        Mslp mslp "MSLP",
        Ssl ssl "SSL",
    }
    texts {
        encoding "ENCODING",
        clientname "CLIENTNAME",
        clientversion "CLIENTVERSION",
        term "TERM",
        websocket_format "WEBSOCKET_FORMAT",
    }
    sizes {
        screenwidth "SCREENWIDTH",
        screenheight "SCREENHEIGHT",
    }
}

impl ProtocolFlags {
    /// The flags from a wire map.
    pub fn from_map(map: Map) -> ProtocolFlags {
        let mut flags = ProtocolFlags::default();
        for (name, value) in map {
            flags.insert(name, value);
        }
        flags
    }

    /// The screen width as a game reads it: the main window's size, or a
    /// plain number the game stored instead.
    pub fn screen_width(&self) -> Option<i64> {
        self.screenwidth
            .map(i64::from)
            .or_else(|| lenient_size(self.extra.get("SCREENWIDTH")))
    }

    /// [`ProtocolFlags::screen_width`] for the height.
    pub fn screen_height(&self) -> Option<i64> {
        self.screenheight
            .map(i64::from)
            .or_else(|| lenient_size(self.extra.get("SCREENHEIGHT")))
    }

    /// Forget every flag.
    pub fn clear(&mut self) {
        *self = ProtocolFlags::default();
    }

    fn extra_truthy(&self, name: &str) -> Option<bool> {
        if self.extra.is_empty() {
            return None;
        }
        self.extra.get(name).map(Value::is_truthy)
    }

    fn forget_extra(&mut self, name: &str) {
        if !self.extra.is_empty() {
            self.extra.0.remove(name);
        }
    }
}

impl FromIterator<(String, Value)> for ProtocolFlags {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut flags = ProtocolFlags::default();
        for (name, value) in iter {
            flags.insert(name, value);
        }
        flags
    }
}

impl Serialize for ProtocolFlags {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ProtocolFlags {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::deserialize(deserializer).map(ProtocolFlags::from_map)
    }
}

/// Evennia keeps screen sizes per window id; window "0" is the main one.
pub fn window_map(size: u16) -> Value {
    Value::Map(
        [("0".to_string(), Value::Int(size.into()))]
            .into_iter()
            .collect(),
    )
}

/// The size in a `{"0": n}` map with nothing else in it.
fn main_window(map: &Map) -> Option<u16> {
    if map.len() != 1 {
        return None;
    }
    map.get("0")
        .and_then(Value::as_int)
        .and_then(|n| u16::try_from(n).ok())
}

fn lenient_size(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Int(n) => Some(*n),
        Value::Map(windows) => windows.get("0").and_then(Value::as_int),
        _ => None,
    }
}

/// Text from the wire; the common encoding costs no allocation.
fn text(s: String) -> Text {
    match s.as_str() {
        "utf-8" => Cow::Borrowed("utf-8"),
        _ => Cow::Owned(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mudlet_map() -> Map {
        let mut map = Map::new();
        for (name, on) in [("ANSI", true), ("XTERM256", true), ("UTF-8", true)] {
            map.insert(name.into(), Value::Bool(on));
        }
        map.insert("CLIENTNAME".into(), Value::from("MUDLET"));
        map.insert("ENCODING".into(), Value::from("utf-8"));
        map.insert("SCREENWIDTH".into(), window_map(120));
        map
    }

    #[test]
    fn the_wire_map_round_trips() {
        let map = mudlet_map();
        let flags = ProtocolFlags::from_map(map.clone());
        assert_eq!(flags.ansi, Some(true));
        assert_eq!(flags.screenwidth, Some(120));
        assert_eq!(flags.clientname.as_deref(), Some("MUDLET"));
        assert_eq!(flags.to_map(), map);
        let bytes = postcard::to_allocvec(&flags).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&map).unwrap());
        let back: ProtocolFlags = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, flags);
    }

    #[test]
    fn unknown_flags_and_odd_values_survive_a_sync() {
        let mut map = mudlet_map();
        map.insert("MY_GAME_FLAG".into(), Value::List(vec![Value::Int(1)]));
        map.insert("ANSI".into(), Value::Int(1));
        map.insert("SCREENHEIGHT".into(), Value::Int(40));
        let flags = ProtocolFlags::from_map(map.clone());
        assert_eq!(flags.ansi, None, "an Int is not the Bool field's type");
        assert_eq!(flags.is_on(Flag::Ansi), Some(true));
        assert_eq!(flags.screen_height(), Some(40));
        assert_eq!(flags.to_map(), map);
        let bytes = postcard::to_allocvec(&flags).unwrap();
        let back: ProtocolFlags = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_map(), map);
    }

    #[test]
    fn merge_sets_only_what_the_incoming_side_has_set() {
        let mut ours = ProtocolFlags::from_map(mudlet_map());
        let mut theirs = ProtocolFlags {
            screenreader: Some(true),
            ..ProtocolFlags::default()
        };
        theirs.insert("ANSI".into(), Value::Int(0));
        theirs.insert("MY_GAME_FLAG".into(), Value::Bool(true));
        let mut expected = ours.to_map();
        expected.extend(theirs.to_map());
        ours.merge(&theirs);
        assert_eq!(ours.to_map(), expected);
        assert_eq!(ours.is_on(Flag::Ansi), Some(false));
        assert_eq!(ours.xterm256, Some(true), "unset in theirs: kept");
        theirs.ansi = Some(true);
        theirs.insert("MY_GAME_FLAG".into(), Value::Bool(false));
        ours.merge(&theirs);
        assert_eq!(ours.ansi, Some(true));
        assert_eq!(ours.get("MY_GAME_FLAG"), Some(Value::Bool(false)));
        assert!(!ours.to_map().contains_key("NOCOLOR"));
    }

    #[test]
    fn changed_from_lists_what_a_merge_would_change() {
        let base = ProtocolFlags::from_map(mudlet_map());
        let mut next = base.clone();
        next.screenreader = Some(true);
        next.ansi = Some(true);
        let changed = next.changed_from(&base);
        assert_eq!(changed.to_map().len(), 1);
        assert_eq!(changed.screenreader, Some(true));
        assert!(base.changed_from(&base).is_empty());
    }

    #[test]
    fn the_flags_stay_small() {
        assert!(std::mem::size_of::<ProtocolFlags>() <= 200);
    }
}
