//! Pure rate limiting: a token bucket.
//!
//! The acceptor uses one to pace new sessions (`max_connection_rate`), each
//! session worker one for its commands (`max_command_rate`). Time comes in
//! as an argument; nothing here reads the clock.

use std::time::{Duration, Instant};

/// A token bucket refilling `rate` tokens per second, holding at most one
/// second's worth (so a burst never exceeds the configured rate).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket at `now`.
    pub fn new(rate: f64, now: Instant) -> RateLimiter {
        RateLimiter {
            rate,
            tokens: rate.max(1.0),
            last: now,
        }
    }

    /// Change the rate (on config reload), keeping the tokens on hand.
    pub fn set_rate(&mut self, rate: f64) {
        self.rate = rate;
        self.tokens = self.tokens.min(self.capacity());
    }

    fn capacity(&self) -> f64 {
        self.rate.max(1.0)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity());
        self.last = now;
    }

    /// Take one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until the next token is there (zero if one is there now).
    pub fn next_token_in(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 || self.rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
    }

    /// Seconds until `waiting` more tokens have come in: the wait to tell a
    /// client who has `waiting - 1` people ahead of it.
    pub fn wait_for(&self, waiting: usize) -> f64 {
        if self.rate <= 0.0 {
            return f64::INFINITY;
        }
        ((waiting as f64 - self.tokens).max(0.0) / self.rate).ceil()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_capped_at_one_second_of_rate() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(5.0, t0);
        let taken = (0..20).filter(|_| limiter.try_take(t0)).count();
        assert_eq!(taken, 5);
    }

    #[test]
    fn tokens_come_back_with_time() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(2.0, t0);
        assert!(limiter.try_take(t0));
        assert!(limiter.try_take(t0));
        assert!(!limiter.try_take(t0));
        assert_eq!(limiter.next_token_in(t0), Duration::from_millis(500));
        assert!(limiter.try_take(t0 + Duration::from_millis(500)));
    }

    #[test]
    fn long_idle_does_not_bank_more_than_capacity() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(3.0, t0);
        let later = t0 + Duration::from_secs(3600);
        let taken = (0..10).filter(|_| limiter.try_take(later)).count();
        assert_eq!(taken, 3);
    }

    #[test]
    fn fractional_rates_allow_one_at_a_time() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(0.5, t0);
        assert!(limiter.try_take(t0));
        assert!(!limiter.try_take(t0 + Duration::from_secs(1)));
        assert!(limiter.try_take(t0 + Duration::from_secs(2)));
    }

    #[test]
    fn wait_estimate_grows_with_the_queue() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(2.0, t0);
        while limiter.try_take(t0) {}
        assert_eq!(limiter.wait_for(1), 1.0);
        assert_eq!(limiter.wait_for(10), 5.0);
    }
}
