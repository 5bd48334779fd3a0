//! One browser, several tabs: the portal hands the browser an id in an
//! HttpOnly cookie, every tab's websocket brings it, and the demo game logs
//! all tabs of that browser in together and resumes the login when the
//! page reconnects after a network blip.

mod support;
use support::web::{self, http_exchange, Options};
use support::Portal;

/// The browser id the page's answer sets.
fn browser_id(portal: &Portal) -> String {
    let page = http_exchange(
        portal.web,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let start = page.find("portal_csessid=").expect("a cookie") + "portal_csessid=".len();
    page[start..].split(';').next().expect("value").to_owned()
}

fn tab(portal: &Portal, id: &str) -> web::WebClient {
    let options = Options {
        cookie: Some(id.to_owned()),
        ..Options::default()
    };
    web::connect(portal.web, &options)
}

#[test]
fn every_tab_of_one_browser_logs_in_together_and_others_do_not() {
    let portal = Portal::start("");
    let id = browser_id(&portal);
    assert_eq!(id.len(), 32, "128 random bits in hex: {id}");
    assert_ne!(browser_id(&portal), id, "each new browser gets its own id");
    let mut first = tab(&portal, &id);
    let mut second = tab(&portal, &id);
    let mut stranger = tab(&portal, &browser_id(&portal));
    first.expect("create");
    second.expect("create");
    stranger.expect("create");

    first.send("create tabitha pw123");
    first.expect("The Portal Plaza");
    second.expect("The Portal Plaza");
    second.send("who");
    second.expect("tabitha");

    stranger.send("look");
    let look = stranger.expect("create");
    assert!(
        !look.contains("Plaza"),
        "another browser stays at the login screen"
    );
}

#[test]
fn a_reconnecting_page_resumes_its_login_and_quit_forgets_it() {
    let portal = Portal::start("");
    let id = browser_id(&portal);
    let mut page = tab(&portal, &id);
    page.create("rebecca");
    drop(page); // the network blips: the socket is gone

    let mut again = tab(&portal, &id);
    again.expect("Welcome back, rebecca");
    again.send("echo resumed-token");
    again.expect("resumed-token");

    again.send("quit");
    again.expect_close();
    let mut after_quit = tab(&portal, &id);
    after_quit.send("look");
    let screen = after_quit.expect("create");
    assert!(
        !screen.contains("Welcome back"),
        "quit logged this browser out"
    );
}
