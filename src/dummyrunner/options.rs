//! Command-line options of the `dummyrunner` binary.

use super::profile::{Profile, ProfileError, DEFAULT_PROFILE};
use std::fmt;
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

/// Why the command line was refused; `Display` is the line printed above
/// the usage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgError {
    /// A flag given without its value.
    MissingValue(String),
    /// A flag this program does not know.
    Unknown(String),
    /// A value that is not the number the flag needs.
    NotANumber {
        flag: String,
        value: String,
    },
    /// A value that is not a number of seconds.
    NotSeconds {
        flag: String,
        value: String,
    },
    /// Seconds below zero (or too large for a duration).
    BadSeconds(String),
    /// A value not of the form the flag needs: `want` describes it.
    BadForm {
        want: &'static str,
        value: Option<String>,
    },
    Profile(ProfileError),
    /// Values that parse but break a rule (which one, for people).
    Rule(&'static str),
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgError::MissingValue(flag) => write!(f, "{flag} needs a value"),
            ArgError::Unknown(flag) => write!(f, "unknown option {flag:?}"),
            ArgError::NotANumber { flag, value } => {
                write!(f, "{flag} needs a number, not {value:?}")
            }
            ArgError::NotSeconds { flag, value } => {
                write!(f, "{flag} needs seconds, not {value:?}")
            }
            ArgError::BadSeconds(flag) => write!(f, "{flag} must be 0 or more"),
            ArgError::BadForm { want, value: None } => f.write_str(want),
            ArgError::BadForm {
                want,
                value: Some(value),
            } => write!(f, "{want}, not {value:?}"),
            ArgError::Profile(e) => e.fmt(f),
            ArgError::Rule(rule) => f.write_str(rule),
        }
    }
}

impl std::error::Error for ArgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ArgError::Profile(e) => Some(e),
            _ => None,
        }
    }
}

fn secs(flag: &str, value: &str) -> Result<Duration, ArgError> {
    let s: f64 = value.parse().map_err(|_| ArgError::NotSeconds {
        flag: flag.to_owned(),
        value: value.to_owned(),
    })?;
    Duration::try_from_secs_f64(s).map_err(|_| ArgError::BadSeconds(flag.to_owned()))
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, ArgError> {
    value.parse().map_err(|_| ArgError::NotANumber {
        flag: flag.to_owned(),
        value: value.to_owned(),
    })
}

/// Parse the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>, run_id: u64) -> Result<Invocation, ArgError> {
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
                let v = args
                    .next()
                    .ok_or_else(|| ArgError::MissingValue(flag.to_owned()))?;
                match flag {
                    "--clients" => o.clients = number(flag, &v)?,
                    "--duration" => o.duration = secs(flag, &v)?,
                    "--connect-rate" => o.connect_rate = number(flag, &v)?,
                    "--interval" => o.interval = secs(flag, &v)?,
                    "--jitter" => o.jitter = number(flag, &v)?,
                    "--profile" => o.profile = Profile::parse(&v).map_err(ArgError::Profile)?,
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
                        let (at, cmd) = v.split_once(':').ok_or(ArgError::BadForm {
                            want: "--exec-at wants SECONDS:COMMAND",
                            value: None,
                        })?;
                        o.exec_at = Some((secs(flag, at)?, cmd.to_owned()));
                    }
                    "--signal" => o.signal = Some(parse_signal(&v)?),
                    other => return Err(ArgError::Unknown(other.to_owned())),
                }
            }
            addr => o.addr = addr.to_owned(),
        }
    }
    if o.connect_rate.is_nan() || o.connect_rate <= 0.0 {
        return Err(ArgError::Rule("--connect-rate must be above 0"));
    }
    if !(0.0..1.0).contains(&o.jitter) {
        return Err(ArgError::Rule("--jitter must be at least 0 and below 1"));
    }
    if o.interval.is_zero() || o.report_every.is_zero() {
        return Err(ArgError::Rule(
            "--interval and --report-every must be above 0",
        ));
    }
    if o.warmup >= o.duration && !o.duration.is_zero() {
        return Err(ArgError::Rule("--warmup must be shorter than --duration"));
    }
    if [o.no_login, o.churn, o.raw].iter().filter(|&&m| m).count() > 1 {
        return Err(ArgError::Rule(
            "--no-login, --churn and --raw exclude each other",
        ));
    }
    if !o.echo_cmd.contains("{token}") {
        return Err(ArgError::Rule(
            "--echo-cmd must contain {token}, which its reply repeats",
        ));
    }
    Ok(Invocation::Run(Box::new(o)))
}

fn parse_signal(v: &str) -> Result<(i32, i32, Duration), ArgError> {
    let mut parts = v.split(':');
    let (Some(pid), Some(sig), Some(at), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ArgError::BadForm {
            want: "--signal wants PID:SIGNAL:SECONDS",
            value: Some(v.to_owned()),
        });
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
        match parse(args.iter().map(|s| s.to_string()), 7).map_err(|e| e.to_string())? {
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
