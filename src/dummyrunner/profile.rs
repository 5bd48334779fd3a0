//! What a simulated player does next: actions chosen by weight.

use std::fmt;

/// One thing a logged-in player does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Look,
    Say,
    Who,
    /// The timed round trip that measures lag.
    Echo,
    /// Send the keepalive line (`idle`), which gets no answer.
    Idle,
    /// `quit`, then connect again and `connect name pw`.
    Relog,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Look,
        Action::Say,
        Action::Who,
        Action::Echo,
        Action::Idle,
        Action::Relog,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Look => "look",
            Action::Say => "say",
            Action::Who => "who",
            Action::Echo => "echo",
            Action::Idle => "idle",
            Action::Relog => "relog",
        }
    }
}

/// Weighted actions.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    weights: Vec<(Action, u32)>,
    total: u32,
}

/// The default mix: mostly looking and timed echoes, some talk, a few
/// players leaving and coming back.
pub const DEFAULT_PROFILE: &str = "look=30,say=5,who=5,echo=40,idle=15,relog=5";

/// Why a `--profile` text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProfileError {
    /// An entry without `=`.
    BadEntry(String),
    /// A name that is not one of [`Action::name`].
    UnknownAction(String),
    /// A weight that is not a whole number.
    BadWeight {
        name: String,
        weight: String,
        source: std::num::ParseIntError,
    },
    /// The weights add up past `u32`.
    TooLarge,
    /// No action with a weight above 0.
    Empty,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileError::BadEntry(part) => {
                write!(f, "bad profile entry {part:?}: use name=weight")
            }
            ProfileError::UnknownAction(name) => {
                write!(f, "unknown action {name:?} in the profile")
            }
            ProfileError::BadWeight { name, weight, .. } => {
                write!(f, "bad weight {weight:?} for {name}")
            }
            ProfileError::TooLarge => f.write_str("profile weights are too large"),
            ProfileError::Empty => {
                f.write_str("the profile needs at least one action with a weight above 0")
            }
        }
    }
}

impl std::error::Error for ProfileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProfileError::BadWeight { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Profile {
    /// Parse `name=weight,...`; names are those of [`Action::name`].
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let mut weights = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| ProfileError::BadEntry(part.to_owned()))?;
            let action = Action::ALL
                .into_iter()
                .find(|a| a.name() == name.trim())
                .ok_or_else(|| ProfileError::UnknownAction(name.to_owned()))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|source| ProfileError::BadWeight {
                    name: name.to_owned(),
                    weight: weight.to_owned(),
                    source,
                })?;
            if weight > 0 {
                weights.push((action, weight));
            }
        }
        let total = weights
            .iter()
            .try_fold(0u32, |sum, (_, w)| sum.checked_add(*w))
            .ok_or(ProfileError::TooLarge)?;
        if total == 0 {
            return Err(ProfileError::Empty);
        }
        Ok(Profile { weights, total })
    }

    /// The action for a uniform `roll` in `0..total()`.
    pub fn pick(&self, roll: u32) -> Action {
        let mut left = roll % self.total;
        for &(action, weight) in &self.weights {
            if left < weight {
                return action;
            }
            left -= weight;
        }
        // Unreachable: `left < total` and the weights sum to `total`.
        self.weights[self.weights.len() - 1].0
    }

    pub fn total(&self) -> u32 {
        self.total
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .weights
            .iter()
            .map(|(a, w)| format!("{}={w}", a.name()))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A small, seedable generator (xorshift64*): enough for choosing actions
/// and jitter, and runs can be repeated with the same seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u32) -> u32 {
        ((self.next_u64() >> 32) % u64::from(n.max(1))) as u32
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_follows_the_weights_exactly_over_one_cycle() {
        let p = Profile::parse("look=2,echo=3,idle=0,who=1").unwrap();
        assert_eq!(p.total(), 6);
        let picks: Vec<Action> = (0..6).map(|r| p.pick(r)).collect();
        use Action::*;
        assert_eq!(picks, vec![Look, Look, Echo, Echo, Echo, Who]);
        assert_eq!(p.to_string(), "look=2,echo=3,who=1");
    }

    #[test]
    fn random_picks_come_near_the_weights() {
        let p = Profile::parse("echo=9,look=1").unwrap();
        let mut rng = Rng::new(42);
        let echoes = (0..10_000)
            .filter(|_| p.pick(rng.below(p.total())) == Action::Echo)
            .count();
        assert!((8_700..9_300).contains(&echoes), "{echoes}");
    }

    #[test]
    fn bad_profiles_are_explained() {
        let explain = |text| Profile::parse(text).unwrap_err().to_string();
        assert!(explain("").contains("at least one"));
        assert!(Profile::parse("look=0").is_err());
        assert!(explain("dance=1").contains("dance"));
        assert!(explain("look").contains("name=weight"));
        assert!(explain("look=x").contains("bad weight"));
        assert!(Profile::parse(DEFAULT_PROFILE).is_ok());
    }

    #[test]
    fn rng_unit_stays_in_range() {
        let mut rng = Rng::new(0);
        for _ in 0..1000 {
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
