//! Evennia's AMP dialect: what an unmodified Evennia game Server speaks.
//!
//! - [`pickle`]: a pure, bounded pickle codec (protocols 2-5 in, 4 out).
pub mod pickle;
