//! `[[ssh]]` end to end with the real OpenSSH client (`ssh`, Debian's
//! openssh-client) in a pseudo-terminal the test opens: a player creates
//! an account with the password hidden, looks, edits a line with
//! backspace, talks to a telnet player, resizes the window (the game sees
//! the new size), keeps a line typed while the game restarts, and quits
//! (the channel closes with exit status 0); the host key is made on first
//! start (mode 0600) and its fingerprint logged. An SSH player stays
//! connected through `portal upgrade`: a half-typed line, more lines than
//! a channel window, a re-key after it, a clean quit; a client still in
//! its handshake then is not carried (and said so in the log). Only modern algorithms
//! are offered, and a client that wants old ones is turned away. Hostile
//! clients (silent, garbage, a truncated key exchange, a flood of 1,000
//! connections from one address) are dropped at the handshake deadline,
//! at once or at the per-address cap, with a log line, while the SSH
//! players carry on and a player from another address gets in.

mod support;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{wait_for, Portal, WAIT};

struct SshPortal {
    portal: Portal,
    ssh: SocketAddr,
}

fn start(limits: &str) -> SshPortal {
    start_with(limits, "")
}

/// With extra keys in the `[[ssh]]` table.
fn start_with(limits: &str, ssh_keys: &str) -> SshPortal {
    let tables = format!("[[ssh]]\nlisten = \"127.0.0.1:0\"\nhost_key = \"HOSTKEY\"\n{ssh_keys}");
    let mut portal = Portal::start_edited(limits, move |text| {
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("status_file = \""))
            .and_then(|l| l.strip_suffix("portal.status\""))
            .map(|dir| format!("{dir}keys/ssh_host_ed25519_key"))
            .expect("the base config has a status file");
        format!("{text}\n{}", tables.replace("HOSTKEY", &key))
    });
    let ssh = portal.status("ssh").parse().unwrap();
    SshPortal { portal, ssh }
}

/// The OpenSSH client in a pseudo-terminal, and everything it showed.
struct SshClient {
    child: Child,
    master: File,
    seen: Vec<u8>,
}

impl SshClient {
    fn connect(addr: SocketAddr) -> SshClient {
        SshClient::connect_with(addr, &[])
    }

    /// With extra `ssh` arguments (before the destination).
    fn connect_with(addr: SocketAddr, extra: &[&str]) -> SshClient {
        let (master, slave) = open_pty(100, 40);
        let mut command = Command::new("ssh");
        command
            .args(["-F", "/dev/null", "-p", &addr.port().to_string()])
            .args(extra)
            .args(["-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null"])
            .args(["-o", "LogLevel=ERROR"])
            .arg("anything@127.0.0.1")
            .env("TERM", "xterm-256color")
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid(2) and ioctl(2) on the child's own stdin, between
        // fork and exec, touching no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .expect("ssh runs (apt-get install openssh-client)");
        SshClient {
            child,
            master,
            seen: Vec::new(),
        }
    }

    /// Type `keys` as they are (no line end added).
    fn keys(&mut self, keys: &[u8]) {
        self.master.write_all(keys).unwrap();
    }

    /// A line, ended with Enter (CR, as a terminal sends it).
    fn line(&mut self, text: &str) {
        self.keys(format!("{text}\r").as_bytes());
    }

    /// Read what is there; false once the terminal is gone.
    fn pump(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        match self.master.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.seen.extend_from_slice(&buf[..n]);
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            Err(_) => false,
        }
    }

    /// Wait until `text` shows after what earlier expectations took.
    fn expect(&mut self, text: &str) -> String {
        wait_for(&format!("{text:?} over SSH"), || {
            if let Some(at) = find(&self.seen, text.as_bytes()) {
                let shown = String::from_utf8_lossy(&self.seen[..at + text.len()]).into_owned();
                self.seen.drain(..at + text.len());
                return Some(shown);
            }
            if !self.pump() {
                let seen = String::from_utf8_lossy(&self.seen);
                panic!("ssh ended before {text:?}; it showed {seen:?}");
            }
            None
        })
    }

    /// Wait for the client to exit; returns its exit code and what it
    /// showed last.
    fn expect_exit(&mut self) -> (Option<i32>, String) {
        let status = wait_for("ssh to exit", || {
            self.pump();
            self.child.try_wait().unwrap()
        });
        // What the terminal still holds (EIO once it is drained).
        loop {
            let before = self.seen.len();
            if !self.pump() || self.seen.len() == before {
                break;
            }
        }
        (
            status.code(),
            String::from_utf8_lossy(&self.seen).into_owned(),
        )
    }

    /// The window is now `cols`×`rows` (the client gets SIGWINCH).
    fn resize(&mut self, cols: u16, rows: u16) {
        use std::os::fd::AsRawFd;
        let size = winsize(cols, rows);
        // SAFETY: TIOCSWINSZ on our own pty master, from a live winsize.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
    }

    /// The `client` command's `Screen:` line, as the game knows it.
    fn screen(&mut self) -> String {
        self.line("client");
        self.expect("Screen: ");
        let size = self.expect("\r\n");
        self.expect("> ");
        size.trim_end().to_owned()
    }

    /// Ask `client` until the game reports `Screen: {size}` (a resize
    /// travels as a window-change request beside the keystrokes).
    fn expect_screen(&mut self, size: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let shown = self.screen();
            if shown == size {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the game saw {shown}, not {size}"
            );
        }
    }
}

fn winsize(cols: u16, rows: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Drop for SshClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A pseudo-terminal of `cols`×`rows`: the master (non-blocking) and the
/// slave for the child.
fn open_pty(cols: u16, rows: u16) -> (File, OwnedFd) {
    let mut master = 0;
    let mut slave = 0;
    let size = winsize(cols, rows);
    // SAFETY: openpty(3) writes the two descriptors it opens; the name and
    // termios pointers may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened by openpty and are ours.
    let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl(2) on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    (master, slave)
}

/// An SSH player who created `name` through the interactive dialogue
/// (password typed with echo off) and is in the plaza.
fn logged_in(addr: SocketAddr, name: &str) -> SshClient {
    logged_in_with(addr, name, &[])
}

/// [`logged_in`] with extra `ssh` arguments.
fn logged_in_with(addr: SocketAddr, name: &str, extra: &[&str]) -> SshClient {
    let mut ssh = SshClient::connect_with(addr, extra);
    ssh.expect("create <name>");
    ssh.line("create");
    ssh.expect("Name: ");
    ssh.line(name);
    ssh.expect("Password: ");
    ssh.line("sekrit-pw-9");
    let shown = ssh.expect("The Portal Plaza");
    assert!(
        !shown.contains("sekrit"),
        "the password was echoed: {shown:?}"
    );
    ssh.expect("> ");
    ssh
}

#[test]
fn an_ssh_player_plays_with_a_telnet_player_and_quits() {
    let sp = start("");
    let log = sp.portal.log();
    assert!(log.contains("SSH host key made at"), "{log}");
    let key = sp.portal.path("keys/ssh_host_ed25519_key");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the host key is private");
    let keygen = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&key)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&keygen.stdout);
    let fingerprint = listed.split_whitespace().nth(1).expect("a fingerprint");
    assert!(log.contains(&format!("ED25519 {fingerprint}")), "{log}");

    let mut ssh = logged_in(sp.ssh, "sshplayer");
    let mut telnet = sp.portal.player("telnetplayer");
    ssh.line("look");
    ssh.expect("Worn flagstones");
    ssh.expect("> ");
    // Typed "sy", erased with two backspaces, then the real line.
    ssh.keys(b"sy\x7f\x7fsay hello from ssh\r");
    ssh.expect("You say, \"hello from ssh\"");
    let heard = telnet.expect("hello from ssh");
    assert!(heard.contains("sshplayer says"), "{heard}");
    // Ctrl-U drops a half line; arrows edit in the middle.
    ssh.keys(b"drop everything\x15");
    ssh.keys(b"sa hi\x1b[D\x1b[D\x1b[Dy\r");
    telnet.expect("sshplayer says, \"hi\"");
    telnet.send("say hello back");
    ssh.expect("telnetplayer says, \"hello back\"");
    ssh.line("client");
    let report = ssh.expect("SCREENREADER");
    assert!(report.contains("Protocol: ssh"), "{report}");
    assert!(
        report.contains("Screen: 100x40"),
        "the pty-req size: {report}"
    );
    assert!(report.contains("Client: ssh"), "{report}");
    let xterm256 = report.split("XTERM256: ").nth(1).unwrap_or_default();
    assert!(xterm256.contains("yes"), "TERM=xterm-256color: {report:?}");
    ssh.expect("> ");
    ssh.resize(132, 50);
    ssh.expect_screen("132x50");
    ssh.line("quit");
    ssh.expect("Goodbye!");
    let (code, end) = ssh.expect_exit();
    assert_eq!(
        code,
        Some(0),
        "the channel closed with exit status 0: {end:?}"
    );
    wait_for("the SSH session to end", || {
        (sp.portal.sessions() == 1).then_some(())
    });
}

#[test]
fn a_game_restart_keeps_ssh_players_and_answers_their_line() {
    let sp = start("");
    let mut ssh = logged_in(sp.ssh, "survivor");
    sp.portal.signal(libc::SIGUSR1);
    ssh.expect("The game is restarting");
    ssh.line("say during-restart");
    ssh.expect("The game is back");
    ssh.expect("You say, \"during-restart\"");
    // Still the same logged-in player, on the same SSH connection.
    ssh.line("look");
    ssh.expect("Worn flagstones");
    ssh.expect("> ");
    ssh.line("quit");
    ssh.expect("Goodbye!");
    assert_eq!(ssh.expect_exit().0, Some(0));
}

#[test]
fn a_password_listener_asks_for_one_and_takes_any() {
    let sp = start_with("", "auth = \"password\"\n");
    let mut ssh = SshClient::connect_with(sp.ssh, &["-o", "PreferredAuthentications=password"]);
    ssh.expect("password: ");
    ssh.line("whatever-they-like");
    ssh.expect("create <name>");
    ssh.keys(b"\x04");
    assert_eq!(ssh.expect_exit().0, Some(0));
}

#[test]
fn past_max_auth_attempts_a_client_is_cut_off() {
    let sp = start_with("", "auth = \"password\"\nmax_auth_attempts = 1\n");
    let keys: Vec<String> = ["one", "two"]
        .iter()
        .map(|name| {
            let path = sp.portal.path(&format!("keys/client_{name}"));
            let made = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(&path)
                .status()
                .expect("ssh-keygen runs (apt-get install openssh-client)");
            assert!(made.success());
            path.display().to_string()
        })
        .collect();
    let mut args = vec!["-o", "PreferredAuthentications=publickey"];
    args.extend(["-o", "IdentitiesOnly=yes", "-i", &keys[0], "-i", &keys[1]]);
    let mut ssh = SshClient::connect_with(sp.ssh, &args);
    assert_ne!(ssh.expect_exit().0, Some(0));
    sp.portal
        .wait_log("too many authentication attempts (2 refused)");
    // The listener still lets a player in by password.
    let mut next = SshClient::connect_with(sp.ssh, &["-o", "PreferredAuthentications=password"]);
    next.expect("password: ");
    next.line("x");
    next.expect("create <name>");
}

#[test]
fn ctrl_d_on_an_empty_line_leaves() {
    let sp = start("");
    let mut ssh = SshClient::connect(sp.ssh);
    ssh.expect("create <name>");
    ssh.keys(b"\x04");
    assert_eq!(ssh.expect_exit().0, Some(0));
    sp.portal.wait_log("pressed Ctrl-D");
}

#[test]
fn silent_garbage_and_truncated_clients_are_dropped_while_a_player_carries_on() {
    let sp = start("tls_handshake_timeout_secs = 1.0\n");
    let mut ssh = logged_in(sp.ssh, "steady");
    let started = Instant::now();
    let mut silent = TcpStream::connect(sp.ssh).unwrap();
    let mut garbage = TcpStream::connect(sp.ssh).unwrap();
    garbage
        .write_all(b"SSH-2.0-x\r\n\x00\x00\x00\x10garbage-garbage-garbage-garbage")
        .unwrap();
    // A KEXINIT that says 1,024 bytes and stops after a few.
    let mut truncated = TcpStream::connect(sp.ssh).unwrap();
    truncated
        .write_all(b"SSH-2.0-x\r\n\x00\x00\x04\x00\x04\x14kexinit-cookie..")
        .unwrap();
    for (name, stream) in [
        ("garbage", &mut garbage),
        ("silent", &mut silent),
        ("truncated", &mut truncated),
    ] {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
        let text = String::from_utf8_lossy(&sink);
        assert!(
            text.starts_with("SSH-2.0-"),
            "{name} got the version line: {text:?}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    sp.portal
        .wait_log("SSH handshake not finished in 1s; dropped");
    sp.portal.wait_log("SSH handshake failed");
    ssh.line("say still here");
    ssh.expect("You say, \"still here\"");
}

#[test]
fn only_modern_algorithms_are_offered_and_old_ones_refused() {
    let sp = start("");
    let port = sp.ssh.port().to_string();
    let ssh = |extra: &[&str]| {
        Command::new("ssh")
            .args(["-F", "/dev/null", "-vv", "-T", "-p", &port])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
            ])
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
            .args(extra)
            .args(["probe@127.0.0.1", "true"])
            .stdin(Stdio::null())
            .output()
            .expect("ssh runs")
    };
    let out = ssh(&[]);
    let log = String::from_utf8_lossy(&out.stderr);
    // What the portal's KEXINIT offers, as the client lists it.
    let offer: String = log
        .split("peer server KEXINIT proposal")
        .nth(1)
        .expect("the client shows the server's proposal")
        .lines()
        .take(11)
        .collect::<Vec<_>>()
        .join("\n");
    for (what, expected) in [
        (
            "KEX algorithms",
            "mlkem768x25519-sha256,curve25519-sha256,curve25519-sha256@libssh.org",
        ),
        ("host key algorithms", "ssh-ed25519"),
        ("ciphers ctos", "chacha20-poly1305@openssh.com,aes256-ctr"),
        ("MACs ctos", "hmac-sha2-256"),
        ("compression ctos", "none"),
    ] {
        let line = offer
            .lines()
            .find(|l| l.contains(&format!("{what}: ")))
            .unwrap_or_else(|| panic!("no {what} in {offer}"));
        let listed = line.rsplit(": ").next().unwrap_or_default();
        let algorithms: Vec<&str> = listed
            .split(',')
            .filter(|a| {
                !a.starts_with("ext-info") && !a.contains("kex-strict") && !a.contains("kexguess")
            })
            .collect();
        assert_eq!(algorithms.join(","), expected, "{what}: {line}");
    }
    for weak in [
        "sha1",
        "dss",
        "cbc",
        "md5",
        "rsa",
        "nistp",
        "diffie-hellman",
    ] {
        assert!(!offer.contains(weak), "{weak} offered: {offer}");
    }
    // ML-KEM where the client has it (OpenSSH 9.9 on), else curve25519.
    assert!(
        log.contains("kex: algorithm: mlkem768x25519-sha256")
            || log.contains("kex: algorithm: curve25519-sha256"),
        "{log}"
    );
    assert!(
        log.contains("kex: host key algorithm: ssh-ed25519"),
        "{log}"
    );
    // A client that will only take old algorithms gets nothing.
    for old in [
        ["-o", "KexAlgorithms=diffie-hellman-group14-sha1"],
        ["-o", "Ciphers=aes128-cbc"],
        ["-o", "HostKeyAlgorithms=rsa-sha2-512"],
    ] {
        let out = ssh(&old);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{old:?}");
        // OpenSSH says there was no match, or, when the portal's refusal
        // closes the connection before it has read the portal's offer,
        // that the portal closed it.
        let refused = log.contains("no matching") || log.contains("Connection closed by");
        assert!(refused, "{old:?}: {log}");
    }
    assert!(
        log.contains("kex: server->client cipher: chacha20-poly1305@openssh.com"),
        "{log}"
    );
}

#[test]
fn a_flood_from_one_address_is_capped_while_players_carry_on() {
    // Loopback is exempt by default; here it is one address like any.
    let sp = start(
        "tls_handshake_timeout_secs = 1.0\nmax_connections_per_ip_per_minute = 30.0\n\
         ip_allowlist = []\n",
    );
    let mut ssh = logged_in(sp.ssh, "flooded");
    let mut telnet = sp.portal.player("bystander");
    let started = Instant::now();
    let mut streams = Vec::new();
    for i in 0..1000 {
        let Ok(mut stream) = TcpStream::connect(sp.ssh) else {
            continue;
        };
        // Silent, garbage after a version line, or a truncated KEXINIT.
        let _ = match i % 3 {
            0 => Ok(()),
            1 => stream.write_all(b"SSH-2.0-flood\r\n\x00\x00\x00\x08garbage!"),
            _ => stream.write_all(b"SSH-2.0-flood\r\n\x00\x00\x04\x00\x04\x14cut"),
        };
        streams.push(stream);
        if streams.len() >= 100 {
            streams.clear();
        }
    }
    drop(streams);
    let flood_secs = started.elapsed().as_secs_f64();
    // 30 a minute from the address, two of them the players': the rest
    // are refused at once, each with a log line.
    wait_for("the flood to be refused", || {
        let refused = sp.portal.log().matches("over the per-address cap").count();
        (refused >= 1000 - 28).then_some(())
    });
    // The players already in carry on, and talk to each other.
    ssh.line("say through the flood");
    ssh.expect("You say, \"through the flood\"");
    telnet.expect("flooded says, \"through the flood\"");
    // The few let in are bounded by the handshake deadline: back to two.
    wait_for("the flood's sessions to end", || {
        (sp.portal.sessions() == 2).then_some(())
    });
    // A player from another address is not held up by the cap.
    let mut other = SshClient::connect_with(sp.ssh, &["-b", "127.0.0.2"]);
    other.expect("create <name>");
    assert!(flood_secs < 60.0, "the flood took {flood_secs:.1}s");
}

#[test]
fn an_ssh_session_goes_on_through_a_portal_upgrade() {
    let mut sp = start("");
    // Debug logging: the client shows the re-key asked for below.
    let mut ssh = logged_in_with(sp.ssh, "upgrader", &["-o", "LogLevel=DEBUG"]);
    let game_pid = sp.portal.game_pid_other_than(None);
    ssh.line("say before the upgrade");
    ssh.expect("You say, \"before the upgrade\"");
    ssh.expect("> ");
    // Half a line typed when the upgrade comes: the line editor is carried.
    ssh.keys(b"say half");
    ssh.expect("say half");

    let binary = sp.portal.new_binary("portal-new");
    let out = sp
        .portal
        .cli(&["upgrade", "--binary", binary.to_str().unwrap()]);
    assert_eq!(out.code, 0, "upgrade: {} {}", out.stdout, out.stderr);
    sp.portal
        .wait_log("upgrade 1 done: 1 sessions carried, 0 not carried");

    // The same SSH connection: the rest of the line, then more lines,
    // each answered once; together more than the SSH library's channel
    // window (1000 bytes), so the thawed side must open it again.
    ssh.keys(b"-typed\r");
    ssh.expect("You say, \"half-typed\"");
    ssh.expect("> ");
    let padding = "x".repeat(80);
    for i in 0..14 {
        ssh.line(&format!("say after {i} {padding}"));
        let shown = ssh.expect(&format!("You say, \"after {i} {padding}\""));
        assert_eq!(shown.matches("You say").count(), 1, "twice: {shown:?}");
        ssh.expect("> ");
    }
    // A re-key (OpenSSH's `~R` escape, at the start of a line) after the
    // hand-over: the new portal signs with the host key it read again and
    // hashes the carried session id and version lines.
    ssh.keys(b"~R");
    ssh.expect("SSH2_MSG_NEWKEYS received");
    ssh.line("say last");
    let shown = ssh.expect("You say, \"last\"");
    assert_eq!(shown.matches("You say").count(), 1, "again: {shown:?}");
    ssh.expect("> ");
    assert_eq!(
        sp.portal.game_pid_other_than(None),
        game_pid,
        "the game was not restarted"
    );
    let status = sp.portal.status_report();
    assert_eq!(status.words("upgrades")[0], "1");
    ssh.line("quit");
    ssh.expect("Goodbye!");
    let (code, end) = ssh.expect_exit();
    assert_eq!(code, Some(0), "a clean exit after the upgrade: {end:?}");
    wait_for("the SSH session to end", || {
        (sp.portal.sessions() == 0).then_some(())
    });
}

#[test]
fn an_ssh_client_still_in_its_handshake_is_not_carried_and_others_are() {
    let sp = start("");
    let mut ssh = logged_in(sp.ssh, "keeper");
    // A client that sent its version line and nothing more.
    let mut half = TcpStream::connect(sp.ssh).unwrap();
    half.write_all(b"SSH-2.0-halfway\r\n").unwrap();
    wait_for("the half client's session", || {
        (sp.portal.sessions() == 2).then_some(())
    });
    let binary = sp.portal.new_binary("portal-new");
    let out = sp
        .portal
        .cli(&["upgrade", "--binary", binary.to_str().unwrap()]);
    assert_eq!(out.code, 0, "upgrade: {} {}", out.stdout, out.stderr);
    sp.portal
        .wait_log("upgrade 1 done: 1 sessions carried, 1 not carried");
    assert!(
        sp.portal
            .log()
            .contains("its SSH handshake had not finished"),
        "{}",
        sp.portal.log()
    );
    ssh.line("say still here");
    ssh.expect("You say, \"still here\"");
    ssh.expect("> ");
}
