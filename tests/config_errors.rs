//! A bad portal.conf stops the portal at start with file, key and reason.

use std::process::Command;

fn run_with(conf: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portal.conf");
    std::fs::write(&path, conf).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portal"))
        .arg("--config")
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        stderr.contains(&path.display().to_string()),
        "names the file: {stderr}"
    );
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn wrong_type_names_file_key_and_reason() {
    let (code, stderr) = run_with("[limits]\nmax_command_rate = \"lots\"\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("limits.max_command_rate"), "{stderr}");
    assert!(stderr.contains("wrong type"), "{stderr}");
}

#[test]
fn unknown_key_is_refused() {
    let (code, stderr) = run_with("[telnet]\nlisten = [\"127.0.0.1:0\"]\nport = 4000\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown key `port`"), "{stderr}");
}

#[test]
fn impossible_value_is_refused() {
    let (code, stderr) = run_with("[limits]\nmax_char_limit = 0\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("limits.max_char_limit"), "{stderr}");
    assert!(stderr.contains("positive"), "{stderr}");
}

#[test]
fn bad_web_keys_are_refused_with_their_names() {
    let (code, stderr) = run_with("[web]\nallowed_origins = [\"evil.example\"]\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("web.allowed_origins"), "{stderr}");
    let (code, stderr) = run_with("[web]\nping_interval_secs = 0\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("web.ping_interval_secs"), "{stderr}");
    let table = "[[tls]]\nlisten = \"127.0.0.1:0\"\ncert = \"c\"\nkey = \"k\"\nserve = \"ftp\"\n";
    let (code, stderr) = run_with(table);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("serve") && stderr.contains("unknown variant"),
        "{stderr}"
    );
}

#[test]
fn missing_file_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_portal"))
        .args(["--config", "/nonexistent/portal.conf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/portal.conf") && stderr.contains("cannot read"));
    assert!(
        stderr.contains("--config PATH"),
        "says how to point at one: {stderr}"
    );
}

#[test]
fn a_misspelt_key_gets_a_suggestion_and_a_range_error_its_line() {
    let (code, stderr) = run_with("[telnet]\nlisen = [\"127.0.0.1:0\"]\n");
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown key `lisen` in [telnet]; did you mean `listen`?"),
        "{stderr}"
    );
    let (code, stderr) = run_with("[limits]\n\nmax_char_limit = 0\n");
    assert_eq!(code, 2);
    assert!(stderr.contains("(line 3)"), "{stderr}");
}
