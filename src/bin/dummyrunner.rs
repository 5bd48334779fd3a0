//! `dummyrunner`: simulated telnet players for load testing.
//! See `portal::dummyrunner` and `dummyrunner --help`.

use portal::dummyrunner::{options, run};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let opts = match options::parse(std::env::args().skip(1), run_id) {
        Ok(options::Invocation::Run(opts)) => opts,
        Ok(options::Invocation::Help) => {
            println!("{}", options::USAGE);
            return;
        }
        Err(e) => {
            eprintln!("dummyrunner: {e}\n{}", options::USAGE);
            std::process::exit(2);
        }
    };
    // Every player is a socket.
    let files = portal::limits::raise_file_limit().unwrap_or(0);
    if files > 0 && files < (opts.clients + 64) as libc::rlim_t {
        eprintln!(
            "dummyrunner: warning: the open-file limit is {files}, too low for {} clients",
            opts.clients
        );
    }
    let progress: Box<dyn Write> = if opts.json {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let report = match run::run(&opts, progress) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("dummyrunner: {e}");
            std::process::exit(1);
        }
    };
    if opts.json {
        eprint!("{}", report.text());
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("dummyrunner: {e}");
                std::process::exit(1);
            }
        }
    } else {
        print!("{}", report.text());
    }
}
