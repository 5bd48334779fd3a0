//! Turning one line of player input into a command, and the rules for
//! account names and passwords.

/// The line clients send to keep a connection alive; ignored silently.
pub const IDLE_MARKER: &str = "idle";

/// Name length limits, in characters.
pub const NAME_MIN: usize = 3;
pub const NAME_MAX: usize = 30;
/// Password length limits, in characters.
pub const PASSWORD_MIN: usize = 3;
pub const PASSWORD_MAX: usize = 128;

/// One parsed input line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input<'a> {
    /// The keepalive marker.
    Idle,
    /// Nothing but whitespace.
    Empty,
    /// A command word (lower-cased) and the rest of the line, trimmed.
    Command { verb: String, args: &'a str },
}

/// Parse one line. `"text` and `'text` are short for `say text`.
pub fn parse(line: &str) -> Input<'_> {
    let line = line.trim();
    if line.is_empty() {
        return Input::Empty;
    }
    if line == IDLE_MARKER {
        return Input::Idle;
    }
    if let Some(rest) = line.strip_prefix(['"', '\'']) {
        return Input::Command {
            verb: "say".into(),
            args: rest.trim(),
        };
    }
    let (verb, args) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    Input::Command {
        verb: verb.to_lowercase(),
        args: args.trim(),
    }
}

/// Split `create`/`connect` arguments into a name and a password (the rest
/// of the line, so passwords may hold spaces).
pub fn name_and_password(args: &str) -> Option<(&str, &str)> {
    let (name, password) = args.split_once(char::is_whitespace)?;
    let password = password.trim();
    (!password.is_empty()).then_some((name, password))
}

/// 3-30 characters, ASCII letters, digits and underscores.
pub fn validate_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(NAME_MIN..=NAME_MAX).contains(&len) {
        return Err(format!(
            "A name must be {NAME_MIN} to {NAME_MAX} characters long."
        ));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err("A name may only hold letters, digits and underscores.".into());
    }
    Ok(())
}

/// At least 3 characters (and a sane maximum).
pub fn validate_password(password: &str) -> Result<(), String> {
    let len = password.chars().count();
    if len < PASSWORD_MIN {
        return Err(format!(
            "A password must be at least {PASSWORD_MIN} characters long."
        ));
    }
    if len > PASSWORD_MAX {
        return Err(format!(
            "A password may be at most {PASSWORD_MAX} characters long."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd<'a>(verb: &str, args: &'a str) -> Input<'a> {
        Input::Command {
            verb: verb.into(),
            args,
        }
    }

    #[test]
    fn verbs_are_lower_cased_and_args_trimmed() {
        assert_eq!(parse("  LOOK  "), cmd("look", ""));
        assert_eq!(parse("Say   hello there  "), cmd("say", "hello there"));
        assert_eq!(parse("echo\thi"), cmd("echo", "hi"));
    }

    #[test]
    fn idle_marker_and_blank_lines_are_not_commands() {
        assert_eq!(parse("idle"), Input::Idle);
        assert_eq!(parse(" idle\r"), Input::Idle);
        assert_eq!(parse(""), Input::Empty);
        assert_eq!(parse(" \t "), Input::Empty);
        assert_eq!(parse("idle now"), cmd("idle", "now"));
    }

    #[test]
    fn quote_prefix_is_say() {
        assert_eq!(parse("\"hi all"), cmd("say", "hi all"));
        assert_eq!(parse("' hi"), cmd("say", "hi"));
    }

    #[test]
    fn name_and_password_takes_the_rest_of_the_line_as_password() {
        assert_eq!(name_and_password("anna pw123"), Some(("anna", "pw123")));
        assert_eq!(
            name_and_password("anna my secret"),
            Some(("anna", "my secret"))
        );
        assert_eq!(name_and_password("anna"), None);
        assert_eq!(name_and_password("anna   "), None);
        assert_eq!(name_and_password(""), None);
    }

    #[test]
    fn names_must_be_3_to_30_word_characters() {
        assert!(validate_name("ann").is_ok());
        assert!(validate_name("Dummy_1234").is_ok());
        assert!(validate_name(&"a".repeat(30)).is_ok());
        assert!(validate_name("an").is_err());
        assert!(validate_name(&"a".repeat(31)).is_err());
        assert!(validate_name("an na").is_err());
        assert!(validate_name("anna!").is_err());
        assert!(validate_name("änna").is_err());
    }

    #[test]
    fn passwords_must_be_at_least_3_characters() {
        assert!(validate_password("pw1").is_ok());
        assert!(validate_password("pw").is_err());
        assert!(validate_password(&"x".repeat(PASSWORD_MAX + 1)).is_err());
    }
}
