//! The game's stdout and stderr go to its own log file (`[game] log`),
//! which SIGHUP reopens like the portal's, or, with `log = ""`, to the
//! portal's stderr with each line saying which process wrote it.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::{wait_for, Portal};

/// A test portal whose `[game]` section starts with `lines`.
fn start_with_game(lines: &str) -> Portal {
    let lines = lines.to_owned();
    Portal::start_edited("", move |text| {
        text.replacen("[game]\n", &format!("[game]\n{lines}\n"), 1)
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Wait until the file at `path` has a line containing every one of `parts`.
fn wait_line(path: &Path, parts: &[&str]) -> String {
    wait_for(
        &format!("a line with {parts:?} in {}", path.display()),
        || {
            read(path)
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
                .map(str::to_owned)
        },
    )
}

#[test]
fn game_lines_go_to_the_game_log_and_sighup_starts_a_new_file() {
    let portal = start_with_game("log = \"demo.log\"");
    let log = portal.path("demo.log");
    let _anna = portal.player("anna");
    let line = wait_line(&log, &["created account anna", "from 127.0.0.1:"]);
    assert!(line.contains("session "), "{line}");
    assert!(
        !portal.log().contains("created account"),
        "{}",
        portal.log()
    );
    assert!(
        !portal.stderr().contains("created account"),
        "{}",
        portal.stderr()
    );
    assert!(
        !portal.path("game.log").exists(),
        "only the configured file"
    );

    let rotated = portal.path("demo.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    portal.signal(libc::SIGHUP);
    portal.wait_log("game log file");
    assert!(
        portal.log().contains("game log file demo.log reopened"),
        "{}",
        portal.log()
    );
    let _bob = portal.player("bob");
    wait_line(&log, &["created account bob"]);
    let new = read(&log);
    assert!(!new.contains("created account anna"), "{new}");
    let old = read(&rotated);
    assert!(old.contains("created account anna"), "{old}");
    assert!(!old.contains("created account bob"), "{old}");
}

#[test]
fn with_an_empty_game_log_stderr_lines_name_their_process() {
    let portal = start_with_game("log = \"\"");
    let _anna = portal.player("anna");
    let stderr = portal.path("stderr.log");
    let line = wait_line(&stderr, &["created account anna"]);
    assert!(line.starts_with("game: "), "{line}");
    wait_line(&stderr, &["game server started"]);
    for line in read(&stderr).lines() {
        assert!(
            line.starts_with("portal: ") || line.starts_with("game: "),
            "unnamed line {line:?} in\n{}",
            read(&stderr)
        );
    }
    assert!(
        !portal.log().contains("created account"),
        "{}",
        portal.log()
    );
    assert!(!portal.path("game.log").exists());
    // The portal's log file keeps its lines unprefixed.
    assert!(!portal.log().contains("portal: "), "{}", portal.log());
}

/// A "game" that writes awkward output and exits: a bad byte, a line far
/// over the bound, a last line without newline.
const AWKWARD_GAME: &str = r#"printf 'bad \377 byte\n'; head -c 20000 /dev/zero | tr '\000' x; printf '\nno newline at the end'"#;

#[test]
fn awkward_output_is_written_and_the_reader_ends_with_the_game() {
    let portal = Portal::start_edited("", |text| {
        let command = format!("command = [\"sh\", \"-c\", {AWKWARD_GAME:?}]");
        text.lines()
            .map(|l| {
                if l.starts_with("command = ") {
                    command.clone()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    let log = portal.path("game.log");
    // The last line is written only once the pipe closed.
    wait_line(&log, &["no newline at the end"]);
    portal.wait_log("game server exited unexpectedly");
    let text = read(&log);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "bad \u{fffd} byte");
    let xs: Vec<usize> = lines[1..4].iter().map(|l| l.len()).collect();
    assert_eq!(xs, [8192, 8192, 20000 - 2 * 8192], "{xs:?}");
    assert!(lines[1..4].iter().all(|l| l.bytes().all(|b| b == b'x')));
    assert_eq!(lines[4], "no newline at the end");
    // The portal goes on: it restarts the game, whose output follows.
    wait_for("the restarted game's output", || {
        (read(&log).matches("no newline at the end").count() >= 2).then_some(())
    });
}

#[test]
fn an_evennia_servers_output_goes_to_its_game_directorys_logs() {
    let dir = tempfile::tempdir().unwrap();
    let game = dir.path().join("mygame");
    std::fs::create_dir_all(game.join("server").join("conf")).unwrap();
    std::fs::write(game.join("server/conf/settings.py"), "").unwrap();
    // Stands in for twistd: the portal adds -n (stay in the foreground).
    let server = dir.path().join("fake-server");
    std::fs::write(
        &server,
        "#!/bin/sh\necho \"server up: $*\"\necho oops >&2\n",
    )
    .unwrap();
    std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut text = support::base_config(dir.path(), true);
    text = text.replacen("[amp]\n", "[amp]\ndialect = \"evennia\"\n", 1);
    text = text
        .lines()
        .map(|l| {
            if l.starts_with("command = ") {
                format!(
                    "command = [{:?}]\nworkdir = {:?}",
                    server.display().to_string(),
                    game.display().to_string()
                )
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let conf = dir.path().join("portal.conf");
    std::fs::write(&conf, text).unwrap();
    let portal = Portal::launch(dir, &conf);
    let server_log = game.join("server").join("logs").join("server-output.log");
    wait_line(&server_log, &["server up: -n"]);
    wait_line(&server_log, &["oops"]);
    assert!(!portal.path("game.log").exists());
}
