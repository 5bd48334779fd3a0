//! The dummyrunner: many simulated telnet players in one thread, for load
//! testing the portal (or any telnet MUD with `create`/`connect` logins).
//!
//! ```text
//! connect queue ──(connect rate)──► mio Poll over every client socket
//!                                     │ bytes in              ▲ commands out
//!                                     ▼                       │
//!                       telnet::LineReader (refuse options,   │
//!                       strip ANSI) ──lines──► client state ──┘
//!                       machine: screen → create/connect → playing
//!                                     │ timers (BinaryHeap): next action
//!                                     ▼
//!                       profile (weighted actions) · stats (echo lag)
//! ```
//!
//! Lag is the time from sending `echo <token>` to reading a line holding
//! the token; every other action is sent without waiting for its answer.
//! Throttle notices ("queued", "too fast", "full") and disconnects are
//! counted and reported.

pub mod options;
pub mod profile;
pub mod run;
pub mod stats;
pub mod telnet;
