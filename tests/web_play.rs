//! A browser-side player (websocket, Evennia's JSON format) logs in, plays
//! beside a telnet player, and stays connected through a game restart.

mod support;
use support::web::{self, http_exchange, Options};
use support::Portal;

#[test]
fn a_web_player_and_a_telnet_player_hear_each_other() {
    let portal = Portal::start("");
    let mut web = web::connect(portal.web, &Options::default());
    assert_eq!(
        web.subprotocol, None,
        "Evennia's format needs no subprotocol"
    );
    web.create("wendy");
    let mut tom = portal.player("tom");

    web.send("say hello from the browser");
    web.expect("You say, \"hello from the browser\"");
    tom.expect("wendy says, \"hello from the browser\"");

    tom.send("say hi <b>wendy</b> & co");
    let heard = web.expect("tom says");
    assert!(heard.contains("hi <b>wendy</b> & co"), "{heard}");
    let raw = format!("{:?}", web.seen.last());
    assert!(
        raw.contains("&lt;b&gt;wendy&lt;/b&gt; &amp; co"),
        "escaped on the wire: {raw}"
    );

    web.send("echo web-token-1");
    web.expect("web-token-1");
    web.send("who");
    web.expect("tom");
}

#[test]
fn the_password_prompt_hides_typing_in_the_page() {
    let portal = Portal::start("");
    let mut web = web::connect(portal.web, &Options::default());
    web.expect("create");
    web.send("create");
    web.expect("Name");
    web.send("pamela");
    web.expect_message("", |m| {
        m.to_text().is_ok_and(|t| t == r#"["echo",[false],{}]"#)
    });
    web.send("pw123");
    web.expect_message("", |m| {
        m.to_text().is_ok_and(|t| t == r#"["echo",[true],{}]"#)
    });
    web.expect("The Portal Plaza");
}

#[test]
fn web_players_stay_logged_in_through_a_game_restart() {
    let mut portal = Portal::start("");
    let mut web = web::connect(portal.web, &Options::default());
    web.create("rita");
    let first = portal.game_pid_other_than(None);
    portal.signal(libc::SIGUSR1);
    web.expect("The game is restarting");
    web.send("echo typed-during-restart");
    web.expect("The game is back");
    web.expect("typed-during-restart");
    assert_ne!(portal.game_pid_other_than(Some(first)), first);
    web.send("who");
    let who = web.expect("rita");
    assert!(!who.contains("create"), "still logged in: {who}");
}

#[test]
fn quit_closes_the_websocket_with_the_reason() {
    let portal = Portal::start("");
    let mut web = web::connect(portal.web, &Options::default());
    web.create("quinn");
    web.send("quit");
    let (code, reason) = web.expect_close();
    assert_eq!(code, 1000, "a deliberate close: {reason}");
}

#[test]
fn the_page_is_named_after_the_game_and_has_an_icon() {
    let portal = Portal::start_edited("", |text| {
        text.replace(r#"name = "Test Portal""#, r#"name = "Tom & <Jerry>'s""#)
    });
    let page = http_exchange(
        portal.web,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(page.starts_with("HTTP/1.1 200 "), "{page}");
    assert!(
        page.contains("<title>Tom &amp; &lt;Jerry&gt;&#39;s</title>"),
        "{page}"
    );
    assert!(!page.contains("<Jerry>"), "the name is escaped: {page}");
    for icon in ["/favicon.svg", "/favicon.ico"] {
        let request = format!("GET {icon} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = http_exchange(portal.web, request.as_bytes());
        assert!(answer.starts_with("HTTP/1.1 200 "), "{icon}: {answer}");
        assert!(
            answer.contains("Content-Type: image/svg+xml"),
            "{icon}: {answer}"
        );
    }
}
