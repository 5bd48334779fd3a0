//! Process limits: the open-file ceiling every thread-per-connection binary
//! needs raised before it accepts (or opens) thousands of sockets.
//!
//! Called once at start by `main.rs` (the portal), `bin/dummyrunner.rs` and
//! `bin/bare_echo.rs`; each decides what to log or print about the result.

use std::io;

/// Raise the open-file soft limit (`RLIMIT_NOFILE`) to the hard limit and
/// return the soft limit now in force. If raising is refused the old soft
/// limit stays and is returned; `Err` only when the limit cannot be read.
pub fn raise_file_limit() -> io::Result<libc::rlim_t> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raised_limit_is_the_one_in_force() {
        let files = raise_file_limit().unwrap();
        assert!(files > 0);
        assert_eq!(raise_file_limit().unwrap(), files);
    }
}
