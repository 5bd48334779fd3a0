//! The bundled demo game server; see [`portal::game::demo`] for its
//! command line, environment and behaviour.

use portal::game::demo::{self, Invocation, EXIT_STARTUP, USAGE};
use simplelog::{ConfigBuilder, WriteLogger};

fn main() {
    let invocation = demo::parse_args(std::env::args().skip(1), |key| std::env::var(key).ok());
    let opts = match invocation {
        Ok(Invocation::Run(opts)) => opts,
        Ok(Invocation::CreateAdmin(request)) => std::process::exit(demo::create_admin(&request)),
        Ok(Invocation::Help) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("demo_game: {e}\n{USAGE}");
            std::process::exit(EXIT_STARTUP);
        }
    };
    let config = ConfigBuilder::new().set_time_format_rfc3339().build();
    // One write per line, so the portal (which may share our stderr) never
    // sees half lines. init only fails when a logger is already set.
    let stderr = std::io::LineWriter::new(std::io::stderr());
    let _ = WriteLogger::init(opts.log_level, config, stderr);
    std::process::exit(demo::run(&opts));
}
