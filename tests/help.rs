//! `--help` on every binary lists its options with their defaults;
//! `portal help` and `portal version` work.

use std::process::Command;

fn run(exe: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(exe).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn portal_help_names_every_command_and_option() {
    for args in [&["--help"][..], &["help"], &["-h"]] {
        let (code, text) = run(env!("CARGO_BIN_EXE_portal"), args);
        assert_eq!(code, 0, "{args:?}");
        for word in [
            "start",
            "stop",
            "reload",
            "reload-server",
            "status",
            "--config",
            "--timeout",
            "default: portal.conf",
            "evennia reload",
        ] {
            assert!(text.contains(word), "{args:?} lacks {word}: {text}");
        }
    }
    let (code, text) = run(env!("CARGO_BIN_EXE_portal"), &["version"]);
    assert_eq!(code, 0);
    assert_eq!(text.trim(), format!("portal {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn every_other_binary_lists_its_options_with_defaults() {
    let (code, text) = run(env!("CARGO_BIN_EXE_demo_game"), &["--help"]);
    assert_eq!(code, 0);
    for word in [
        "--amp",
        "127.0.0.1:4006",
        "--db",
        "demo_game.sqlite3",
        "--connect-timeout",
        "(30)",
    ] {
        assert!(text.contains(word), "demo_game lacks {word}: {text}");
    }
    let (code, text) = run(env!("CARGO_BIN_EXE_bare_echo"), &["--help"]);
    assert_eq!(code, 0);
    for word in ["--listen", "127.0.0.1:0", "--stack-kib", "(128)"] {
        assert!(text.contains(word), "bare_echo lacks {word}: {text}");
    }
    let (code, text) = run(env!("CARGO_BIN_EXE_dummyrunner"), &["--help"]);
    assert_eq!(code, 0);
    for word in ["--clients", "(10)", "--duration", "(60)"] {
        assert!(text.contains(word), "dummyrunner lacks {word}: {text}");
    }
}
