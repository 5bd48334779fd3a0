//! Time and bounds for a session's frozen state (`portal upgrade`).
//!
//! A session core is carried to a new process as postcard bytes
//! ([`super::core::Core::freeze`] / [`super::core::Core::thaw`]). An
//! [`Instant`] has no portable value, but CLOCK_MONOTONIC is one clock for
//! the whole machine, so each one is carried as a signed offset in
//! nanoseconds from the `now` given to freeze, and rebuilt from the `now`
//! given to thaw: a deadline 3 s ahead stays 3 s ahead. The reference is a
//! thread-local set for the duration of one encode or decode
//! ([`with_reference`]); the `#[serde(with = ...)]` modules here read it.
//!
//! Decoding never trusts a length: [`bounded_deque`] and [`bounded_vec`]
//! refuse sequences past a fixed count (postcard already refuses a byte
//! string longer than the input), so a hostile state can only allocate in
//! proportion to its own size, which the caller caps.
//!
//! Used by the session core and the engines under it (telnet, websocket).

use serde::de::{Error as _, SeqAccess, Visitor};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::Cell;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

thread_local! {
    static REFERENCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Run `f` (one encode or decode) with `now` as the reference instant.
pub fn with_reference<T>(now: Instant, f: impl FnOnce() -> T) -> T {
    struct Reset(Option<Instant>);
    impl Drop for Reset {
        fn drop(&mut self) {
            REFERENCE.with(|r| r.set(self.0));
        }
    }
    let _reset = Reset(REFERENCE.with(|r| r.replace(Some(now))));
    f()
}

fn reference() -> Option<Instant> {
    REFERENCE.with(Cell::get)
}

/// The reference instant of the encode or decode under way, else `now`
/// (for `with` modules of types that hold instants inside tuples).
pub fn reference_or(now: Instant) -> Instant {
    reference().unwrap_or(now)
}

/// `at` as nanoseconds from `now` (negative: in the past), saturating.
pub fn offset_of(at: Instant, now: Instant) -> i64 {
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    if at >= now {
        nanos(at - now)
    } else {
        -nanos(now - at)
    }
}

/// `now` moved by `offset` nanoseconds; `None` past what the clock holds.
pub fn instant_at(now: Instant, offset: i64) -> Option<Instant> {
    let span = Duration::from_nanos(offset.unsigned_abs());
    if offset >= 0 {
        now.checked_add(span)
    } else {
        now.checked_sub(span)
    }
}

/// `#[serde(with = "instant")]` for an `Instant` field.
pub mod instant {
    use super::*;

    pub fn serialize<S: Serializer>(at: &Instant, s: S) -> Result<S::Ok, S::Error> {
        let now = reference().ok_or_else(|| S::Error::custom("no reference instant"))?;
        offset_of(*at, now).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Instant, D::Error> {
        let offset = i64::deserialize(d)?;
        let now = reference().ok_or_else(|| D::Error::custom("no reference instant"))?;
        instant_at(now, offset).ok_or_else(|| D::Error::custom("instant out of range"))
    }
}

/// `#[serde(with = "option_instant")]` for an `Option<Instant>` field.
pub mod option_instant {
    use super::*;

    pub fn serialize<S: Serializer>(at: &Option<Instant>, s: S) -> Result<S::Ok, S::Error> {
        let now = reference().ok_or_else(|| S::Error::custom("no reference instant"))?;
        at.map(|at| offset_of(at, now)).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Instant>, D::Error> {
        let Some(offset) = Option::<i64>::deserialize(d)? else {
            return Ok(None);
        };
        let now = reference().ok_or_else(|| D::Error::custom("no reference instant"))?;
        let at = instant_at(now, offset).ok_or_else(|| D::Error::custom("instant out of range"))?;
        Ok(Some(at))
    }
}

/// Most items in one carried queue (events) or table: far more than a
/// live session holds between two calls, far less than memory.
pub const MAX_ITEMS: usize = 4096;

/// Collects at most [`MAX_ITEMS`] items of a sequence.
struct Bounded<C, T>(PhantomData<(C, T)>);

impl<'de, C, T> Visitor<'de> for Bounded<C, T>
where
    C: Default + Extend<T>,
    T: Deserialize<'de>,
{
    type Value = C;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a sequence of at most {MAX_ITEMS} items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<C, A::Error> {
        let mut items = C::default();
        let mut count = 0;
        while let Some(item) = seq.next_element()? {
            count += 1;
            if count > MAX_ITEMS {
                return Err(A::Error::custom("too many items"));
            }
            items.extend([item]);
        }
        Ok(items)
    }
}

/// `#[serde(deserialize_with = "bounded_deque")]`: a `VecDeque` of at most
/// [`MAX_ITEMS`].
pub fn bounded_deque<'de, D, T>(d: D) -> Result<VecDeque<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_seq(Bounded::<VecDeque<T>, T>(PhantomData))
}

/// `#[serde(deserialize_with = "bounded_vec")]`: a `Vec` of at most
/// [`MAX_ITEMS`].
pub fn bounded_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_seq(Bounded::<Vec<T>, T>(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Times {
        #[serde(with = "instant")]
        at: Instant,
        #[serde(with = "option_instant")]
        maybe: Option<Instant>,
        #[serde(deserialize_with = "bounded_vec")]
        items: Vec<u8>,
    }

    #[test]
    fn instants_keep_their_distance_from_now() {
        let then = Instant::now();
        let times = Times {
            at: then + Duration::from_millis(1500),
            maybe: then.checked_sub(Duration::from_nanos(7)),
            items: vec![1, 2],
        };
        let bytes = with_reference(then, || postcard::to_allocvec(&times)).unwrap();
        let later = then + Duration::from_secs(10);
        let back: Times = with_reference(later, || postcard::from_bytes(&bytes)).unwrap();
        assert_eq!(back.at, later + Duration::from_millis(1500));
        assert_eq!(back.maybe, later.checked_sub(Duration::from_nanos(7)));
        assert_eq!(back.items, [1, 2]);
    }

    #[test]
    fn no_reference_is_an_error_not_a_panic() {
        let now = Instant::now();
        let times = Times {
            at: now,
            maybe: None,
            items: Vec::new(),
        };
        assert!(postcard::to_allocvec(&times).is_err());
        let bytes = with_reference(now, || postcard::to_allocvec(&times)).unwrap();
        assert!(postcard::from_bytes::<Times>(&bytes).is_err());
    }

    #[test]
    fn a_sequence_past_the_bound_is_refused() {
        let now = Instant::now();
        let times = Times {
            at: now,
            maybe: None,
            items: vec![0; MAX_ITEMS + 1],
        };
        let bytes = with_reference(now, || postcard::to_allocvec(&times)).unwrap();
        let back = with_reference(now, || postcard::from_bytes::<Times>(&bytes));
        assert!(back.is_err());
    }

    #[test]
    fn offsets_saturate_and_out_of_range_is_none() {
        let now = Instant::now();
        assert_eq!(offset_of(now, now), 0);
        assert_eq!(instant_at(now, 0), Some(now));
        assert_eq!(
            instant_at(now, i64::MAX).is_some(),
            now.checked_add(Duration::from_nanos(i64::MAX as u64))
                .is_some()
        );
    }
}
