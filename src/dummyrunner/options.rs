//! Command-line options of the `dummyrunner` binary.

use super::profile::{Profile, DEFAULT_PROFILE};
use std::time::Duration;

pub const USAGE: &str = "\
usage: dummyrunner [HOST:PORT] [options]      (default 127.0.0.1:4000)

  --clients N          simulated players (10)
  --duration SECS      how long to run, from the start (60)
  --connect-rate N     new connections per second (100)
  --interval SECS      mean seconds between one player's actions (2.0)
  --jitter F           each interval is interval * (1 +- F) (0.5)
  --profile SPEC       action weights (look=30,say=5,who=5,echo=40,idle=15,relog=5)
  --report-every SECS  progress line period (5)
  --json               print a JSON summary on stdout (progress goes to stderr)
  --returning         the accounts exist already: log in with --connect-cmd
  --no-login           only connect and wait for the login screen (idle sessions)
  --churn              connect, wait for the login screen, close, connect again
                       (connection setup rate); --clients is the concurrency
  --raw                no login screen, no login: send echoes as soon as
                       connected (a bare line echo server, the bench baseline)
  --wait-logins SECS   start the clock (warmup, duration, --signal) once every
                       player is logged in, or after SECS; players stay quiet
                       until then
  --prefix NAME        account name prefix (dr + a per-run id); names are PREFIX_INDEX
  --password PW        account password (Dummy-runner-9)
  --screen TEXT        login screen text to wait for before logging in (create)
  --logged-in TEXT     text that shows a login worked (The Portal Plaza)
  --create-cmd T       ({name}, {password}) (create {name} {password})
  --connect-cmd T      (connect {name} {password})
  --echo-cmd T         timed round trip; its reply must contain {token} (echo {token})
  --login-timeout SECS a login not done by then counts as failed (60)
  --screen-timeout SECS a connection that shows no login screen by then is
                       closed and tried again, and counted (10)
  --warmup SECS       leave the first SECS out of actions/s and lag (0)
  --drain SECS         after the run, wait this long for unanswered echoes (5)
  --signal PID:SIG:AT  send signal SIG to PID AT seconds into the run; every
                       player then sends an echo at once; report how long until
                       every player's first echo sent after it was answered,
                       and the lag of echoes sent after it
  --exec-at SECS:CMD   like --signal, but run `sh -c CMD` (e.g. a game's reload)
  --seed N             random seed (1)";

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Options {
    pub addr: String,
    pub clients: usize,
    pub duration: Duration,
    pub connect_rate: f64,
    pub interval: Duration,
    pub jitter: f64,
    pub profile: Profile,
    pub report_every: Duration,
    pub json: bool,
    pub no_login: bool,
    pub churn: bool,
    pub raw: bool,
    pub wait_logins: Option<Duration>,
    pub returning: bool,
    pub prefix: String,
    pub password: String,
    pub screen: String,
    pub logged_in: String,
    pub create_cmd: String,
    pub connect_cmd: String,
    pub echo_cmd: String,
    pub login_timeout: Duration,
    pub screen_timeout: Duration,
    pub warmup: Duration,
    pub drain: Duration,
    pub signal: Option<(i32, i32, Duration)>,
    pub exec_at: Option<(Duration, String)>,
    pub seed: u64,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    Run(Box<Options>),
    Help,
}

impl Options {
    /// Defaults; `run_id` makes the default account prefix unique per run.
    pub fn defaults(run_id: u64) -> Options {
        Options {
            addr: "127.0.0.1:4000".into(),
            clients: 10,
            duration: Duration::from_secs(60),
            connect_rate: 100.0,
            interval: Duration::from_secs(2),
            jitter: 0.5,
            // The default profile string is known to parse (a unit test says so).
            profile: Profile::parse(DEFAULT_PROFILE).unwrap_or_else(|_| unreachable!()),
            report_every: Duration::from_secs(5),
            json: false,
            no_login: false,
            churn: false,
            raw: false,
            wait_logins: None,
            returning: false,
            prefix: format!("dr{}", base36(run_id % 36u64.pow(6))),
            password: "Dummy-runner-9".into(),
            screen: "create".into(),
            logged_in: "The Portal Plaza".into(),
            create_cmd: "create {name} {password}".into(),
            connect_cmd: "connect {name} {password}".into(),
            echo_cmd: "echo {token}".into(),
            login_timeout: Duration::from_secs(60),
            screen_timeout: Duration::from_secs(10),
            warmup: Duration::ZERO,
            drain: Duration::from_secs(5),
            signal: None,
            exec_at: None,
            seed: 1,
        }
    }
}

fn base36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

fn secs(flag: &str, value: &str) -> Result<Duration, String> {
    let s: f64 = value
        .parse()
        .map_err(|_| format!("{flag} needs seconds, not {value:?}"))?;
    Duration::try_from_secs_f64(s).map_err(|_| format!("{flag} must be 0 or more"))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag} needs a number, not {value:?}"))
}

/// Parse the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>, run_id: u64) -> Result<Invocation, String> {
    let mut o = Options::defaults(run_id);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Invocation::Help),
            "--json" => o.json = true,
            "--no-login" => o.no_login = true,
            "--returning" => o.returning = true,
            "--churn" => o.churn = true,
            "--raw" => o.raw = true,
            flag if flag.starts_with("--") => {
                let v = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
                match flag {
                    "--clients" => o.clients = number(flag, &v)?,
                    "--duration" => o.duration = secs(flag, &v)?,
                    "--connect-rate" => o.connect_rate = number(flag, &v)?,
                    "--interval" => o.interval = secs(flag, &v)?,
                    "--jitter" => o.jitter = number(flag, &v)?,
                    "--profile" => o.profile = Profile::parse(&v)?,
                    "--report-every" => o.report_every = secs(flag, &v)?,
                    "--prefix" => o.prefix = v,
                    "--password" => o.password = v,
                    "--screen" => o.screen = v,
                    "--logged-in" => o.logged_in = v,
                    "--create-cmd" => o.create_cmd = v,
                    "--connect-cmd" => o.connect_cmd = v,
                    "--echo-cmd" => o.echo_cmd = v,
                    "--login-timeout" => o.login_timeout = secs(flag, &v)?,
                    "--screen-timeout" => o.screen_timeout = secs(flag, &v)?,
                    "--warmup" => o.warmup = secs(flag, &v)?,
                    "--drain" => o.drain = secs(flag, &v)?,
                    "--wait-logins" => o.wait_logins = Some(secs(flag, &v)?),
                    "--seed" => o.seed = number(flag, &v)?,
                    "--exec-at" => {
                        let (at, cmd) =
                            v.split_once(':').ok_or("--exec-at wants SECONDS:COMMAND")?;
                        o.exec_at = Some((secs(flag, at)?, cmd.to_owned()));
                    }
                    "--signal" => o.signal = Some(parse_signal(&v)?),
                    other => return Err(format!("unknown option {other:?}")),
                }
            }
            addr => o.addr = addr.to_owned(),
        }
    }
    if o.connect_rate.is_nan() || o.connect_rate <= 0.0 {
        return Err("--connect-rate must be above 0".into());
    }
    if !(0.0..1.0).contains(&o.jitter) {
        return Err("--jitter must be at least 0 and below 1".into());
    }
    if o.interval.is_zero() || o.report_every.is_zero() {
        return Err("--interval and --report-every must be above 0".into());
    }
    if o.warmup >= o.duration && !o.duration.is_zero() {
        return Err("--warmup must be shorter than --duration".into());
    }
    if [o.no_login, o.churn, o.raw].iter().filter(|&&m| m).count() > 1 {
        return Err("--no-login, --churn and --raw exclude each other".into());
    }
    if !o.echo_cmd.contains("{token}") {
        return Err("--echo-cmd must contain {token}, which its reply repeats".into());
    }
    Ok(Invocation::Run(Box::new(o)))
}

fn parse_signal(v: &str) -> Result<(i32, i32, Duration), String> {
    let mut parts = v.split(':');
    let (Some(pid), Some(sig), Some(at), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("--signal wants PID:SIGNAL:SECONDS, not {v:?}"));
    };
    let sig = match sig {
        "USR1" | "SIGUSR1" => libc::SIGUSR1,
        "HUP" | "SIGHUP" => libc::SIGHUP,
        n => number("--signal", n)?,
    };
    Ok((number("--signal", pid)?, sig, secs("--signal", at)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(|s| s.to_string()), 7)? {
            Invocation::Run(o) => Ok(*o),
            Invocation::Help => Err("help".into()),
        }
    }

    #[test]
    fn flags_set_options_and_the_address_is_positional() {
        let o = run(&[
            "10.0.0.1:4000",
            "--clients",
            "20",
            "--duration",
            "3",
            "--json",
            "--signal",
            "42:USR1:1.5",
            "--profile",
            "echo=1",
        ])
        .unwrap();
        assert_eq!(o.addr, "10.0.0.1:4000");
        assert_eq!(o.clients, 20);
        assert_eq!(o.duration, Duration::from_secs(3));
        assert!(o.json);
        assert_eq!(
            o.signal,
            Some((42, libc::SIGUSR1, Duration::from_millis(1500)))
        );
        assert_eq!(o.profile.to_string(), "echo=1");
        assert_eq!(o.prefix, "dr7");
        assert!(!o.raw && !o.churn && o.wait_logins.is_none());
    }

    #[test]
    fn modes_and_login_wait() {
        let o = run(&["--raw", "--wait-logins", "30"]).unwrap();
        assert!(o.raw);
        assert_eq!(o.wait_logins, Some(Duration::from_secs(30)));
        assert_eq!(o.screen_timeout, Duration::from_secs(10));
        let o = run(&["--screen-timeout", "2.5"]).unwrap();
        assert_eq!(o.screen_timeout, Duration::from_millis(2500));
        assert!(run(&["--churn"]).unwrap().churn);
    }

    #[test]
    fn bad_flags_are_explained() {
        assert!(run(&["--clients"]).unwrap_err().contains("needs a value"));
        assert!(run(&["--clients", "x"]).unwrap_err().contains("number"));
        assert!(run(&["--frob", "1"]).unwrap_err().contains("--frob"));
        assert!(run(&["--echo-cmd", "echo hi"])
            .unwrap_err()
            .contains("{token}"));
        assert!(run(&["--jitter", "1.5"]).is_err());
        assert!(run(&["--duration", "-1"]).is_err());
        assert!(run(&["--signal", "1:2"]).is_err());
        assert!(run(&["--raw", "--churn"]).unwrap_err().contains("exclude"));
        assert_eq!(run(&["--help"]).unwrap_err(), "help");
    }
}
