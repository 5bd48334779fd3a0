//! Rate limits and per-address caps.
//!
//! A token bucket ([`RateLimiter`]): the acceptor uses one to pace new
//! sessions (`max_connection_rate`), each session core one for its commands
//! (`max_command_rate`). Per-address caps ([`PerIpLimits`], pure) and their
//! shared owner [`AddressCaps`]: the acceptor reserves a place for each new
//! connection, the worker releases it when its session ends. Time comes in
//! as an argument; nothing here reads the clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Why a connection from one address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRefusal {
    /// The address already has `max_sessions_per_ip` sessions.
    TooManySessions,
    /// The address connected more than `max_connections_per_ip_per_minute`.
    TooFast,
}

/// The per-address caps shared by the acceptor and the workers.
#[derive(Debug, Default)]
pub struct AddressCaps {
    limits: std::sync::Mutex<PerIpLimits>,
}

impl AddressCaps {
    /// Count a new connection from `ip` against `limits`' caps, unless the
    /// address is allowlisted. `Ok(true)`: counted, release it with
    /// [`AddressCaps::release`] when the session ends.
    pub fn reserve(
        &self,
        ip: IpAddr,
        now: Instant,
        limits: &crate::config::Limits,
    ) -> Result<bool, IpRefusal> {
        if limits.allowlisted(ip) {
            return Ok(false);
        }
        let mut caps = self.lock();
        caps.prune(now);
        let per_minute = limits.max_connections_per_ip_per_minute;
        caps.reserve(ip, now, limits.max_sessions_per_ip, per_minute)
            .map(|()| true)
    }

    /// A session counted by [`AddressCaps::reserve`] ended.
    pub fn release(&self, ip: IpAddr) {
        self.lock().release(ip);
    }

    /// Count a session the previous portal admitted (`portal upgrade`),
    /// whatever the caps say now; release it as usual.
    pub fn adopt(&self, ip: IpAddr) {
        *self.lock().sessions.entry(ip).or_insert(0) += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PerIpLimits> {
        // Each update is one map change: consistent after a panic.
        self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Per-address caps: concurrent sessions and connection rate.
#[derive(Debug, Default)]
pub struct PerIpLimits {
    sessions: HashMap<IpAddr, usize>,
    rates: HashMap<IpAddr, RateLimiter>,
}

impl PerIpLimits {
    /// Count a new connection from `ip` if its caps allow it; the caller
    /// must [`PerIpLimits::release`] it when the session ends.
    pub fn reserve(
        &mut self,
        ip: IpAddr,
        now: Instant,
        max_sessions: usize,
        per_minute: f64,
    ) -> Result<(), IpRefusal> {
        let open = self.sessions.get(&ip).copied().unwrap_or(0);
        if open >= max_sessions {
            return Err(IpRefusal::TooManySessions);
        }
        let limiter = self
            .rates
            .entry(ip)
            .or_insert_with(|| RateLimiter::with_burst(per_minute / 60.0, per_minute, now));
        if !limiter.try_take(now) {
            return Err(IpRefusal::TooFast);
        }
        self.sessions.insert(ip, open + 1);
        Ok(())
    }

    /// A session from `ip` ended.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(open) = self.sessions.get_mut(&ip) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                self.sessions.remove(&ip);
            }
        }
    }

    /// Forget rate state of addresses quiet for a while (bounded memory).
    pub fn prune(&mut self, now: Instant) {
        self.rates.retain(|_, limiter| {
            now.saturating_duration_since(limiter.last) < Duration::from_secs(120)
        });
    }

    /// Sessions open from `ip`.
    pub fn sessions_from(&self, ip: IpAddr) -> usize {
        self.sessions.get(&ip).copied().unwrap_or(0)
    }
}

/// A token bucket refilling `rate` tokens per second, holding at most one
/// second's worth (so a burst never exceeds the configured rate).
/// Serde carries it to a new process (`portal upgrade`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RateLimiter {
    rate: f64,
    tokens: f64,
    #[serde(with = "crate::session::frozen::instant")]
    last: Instant,
    /// Largest number of tokens held; defaults to one second's worth.
    burst: Option<f64>,
}

impl RateLimiter {
    /// A full bucket at `now`.
    pub fn new(rate: f64, now: Instant) -> RateLimiter {
        RateLimiter {
            rate,
            tokens: rate.max(1.0),
            last: now,
            burst: None,
        }
    }

    /// A full bucket holding at most `burst` tokens.
    pub fn with_burst(rate: f64, burst: f64, now: Instant) -> RateLimiter {
        RateLimiter {
            rate,
            tokens: burst.max(1.0),
            last: now,
            burst: Some(burst.max(1.0)),
        }
    }

    /// Change the rate (on config reload), keeping the tokens on hand.
    pub fn set_rate(&mut self, rate: f64) {
        self.rate = rate;
        self.tokens = self.tokens.min(self.capacity());
    }

    /// Whether the counters are sane (a thawed one is checked): finite,
    /// not negative, at most a full bucket.
    pub fn is_sane(&self) -> bool {
        let (rate, tokens) = (self.rate, self.tokens);
        let burst = self.burst.unwrap_or(0.0);
        let finite = rate.is_finite() && tokens.is_finite() && burst.is_finite();
        finite && rate >= 0.0 && tokens >= 0.0 && tokens <= self.capacity()
    }

    fn capacity(&self) -> f64 {
        self.burst.unwrap_or(self.rate.max(1.0))
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
    fn a_set_burst_is_taken_at_once_then_paced_and_never_exceeded() {
        let t0 = Instant::now();
        let mut bucket = RateLimiter::with_burst(1.0, 2.0, t0);
        assert!(bucket.try_take(t0) && bucket.try_take(t0));
        assert!(!bucket.try_take(t0));
        assert_eq!(bucket.next_token_in(t0), Duration::from_secs(1));
        assert!(bucket.try_take(t0 + Duration::from_secs(1)));
        assert!(!bucket.try_take(t0 + Duration::from_millis(1500)));
        // Never more than the burst, however long it rested.
        let later = t0 + Duration::from_secs(100);
        assert!(bucket.try_take(later) && bucket.try_take(later));
        assert!(!bucket.try_take(later));
    }

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
    fn per_ip_session_cap_counts_and_releases() {
        let t0 = Instant::now();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let mut limits = PerIpLimits::default();
        assert_eq!(limits.reserve(ip, t0, 2, 100.0), Ok(()));
        assert_eq!(limits.reserve(ip, t0, 2, 100.0), Ok(()));
        assert_eq!(
            limits.reserve(ip, t0, 2, 100.0),
            Err(IpRefusal::TooManySessions)
        );
        assert_eq!(
            limits.reserve(other, t0, 2, 100.0),
            Ok(()),
            "other addresses unaffected"
        );
        limits.release(ip);
        assert_eq!(limits.reserve(ip, t0, 2, 100.0), Ok(()));
        assert_eq!(limits.sessions_from(ip), 2);
    }

    #[test]
    fn per_ip_rate_allows_a_minutes_burst_then_refuses() {
        let t0 = Instant::now();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let mut limits = PerIpLimits::default();
        for _ in 0..3 {
            assert_eq!(limits.reserve(ip, t0, 100, 3.0), Ok(()));
            limits.release(ip);
        }
        assert_eq!(limits.reserve(ip, t0, 100, 3.0), Err(IpRefusal::TooFast));
        assert_eq!(
            limits.reserve(ip, t0 + Duration::from_secs(20), 100, 3.0),
            Ok(())
        );
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
