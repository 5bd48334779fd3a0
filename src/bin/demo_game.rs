//! The bundled demo game server; see [`portal::game::demo`] for its
//! command line, environment and behaviour.

use portal::game::demo::{self, Invocation, EXIT_STARTUP, USAGE};
use simplelog::{ConfigBuilder, WriteLogger};

fn main() {
    let invocation = demo::parse_args(std::env::args().skip(1), |key| std::env::var(key).ok());
    let opts = match invocation {
        Ok(Invocation::Run(opts)) => opts,
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
    // Only fails when a logger is already set, which cannot happen here.
    let _ = WriteLogger::init(opts.log_level, config, std::io::stderr());
    std::process::exit(demo::run(&opts));
}
