//! The game is killed (SIGKILL) while players send commands in a tight
//! loop: after the restart every command each player sent was either
//! answered or reported to that player as possibly not run. None is lost
//! silently.

mod support;
use std::collections::BTreeSet;
use support::{wait_for, Client, Portal};

const PLAYERS: usize = 3;
const COMMANDS: usize = 300;

/// The commands of player `p` the client has seen answered or reported.
fn accounted(text: &str, p: usize) -> BTreeSet<usize> {
    let prefix = format!("c{p}-");
    let mut seen = BTreeSet::new();
    for line in text.split(['\r', '\n']) {
        let line = line.rsplit("> ").next().unwrap_or(line);
        if let Some(n) = line.strip_prefix(&prefix).and_then(|n| n.parse().ok()) {
            seen.insert(n);
        }
        for marker in ["may not have run: ", "dropped: "] {
            if let Some(rest) = line.split(marker).nth(1) {
                let rest = rest.trim_end_matches(')');
                for item in rest.split(" | ") {
                    let item = item.trim().trim_start_matches("echo ");
                    if let Some(n) = item.strip_prefix(&prefix).and_then(|n| n.parse().ok()) {
                        seen.insert(n);
                    }
                }
            }
        }
    }
    seen
}

#[test]
fn no_command_is_lost_silently_when_the_game_is_killed() {
    let mut portal = Portal::start("max_command_rate = 5000.0\nheld_input_commands = 5000\n");
    let mut players: Vec<Client> = (0..PLAYERS)
        .map(|p| portal.player(&format!("player{p}")))
        .collect();
    let pid = portal.game_pid_other_than(None);
    let mut texts = vec![String::new(); PLAYERS];
    for n in 0..COMMANDS {
        for (p, player) in players.iter_mut().enumerate() {
            player.send(&format!("echo c{p}-{n}"));
        }
        if n == COMMANDS / 3 {
            // SAFETY: SIGKILL to the game process this test's portal started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    portal.game_pid_other_than(Some(pid));
    for (p, player) in players.iter_mut().enumerate() {
        let text = &mut texts[p];
        wait_for(
            &format!("player {p}'s commands to be accounted for"),
            || {
                text.push_str(&String::from_utf8_lossy(&player.take_raw()));
                let missing = COMMANDS - accounted(text, p).len();
                (missing == 0).then_some(())
            },
        );
    }
    let reported: usize = texts
        .iter()
        .map(|t| t.matches("may not have run").count())
        .sum();
    println!("{reported} players were told about unconfirmed commands");
    portal.wait_log("game server exited unexpectedly");
}
