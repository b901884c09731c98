//! Exponential backoff with jitter, shared by the watches and the instance writer.
//!
//! Jitter matters here: after an API server outage every node's server retries at once, and
//! spreading the retries keeps them from arriving as one wave.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Delays from `min` doubling up to `max`, each cut by a random 0 to 50 %.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    rng: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let seed = RandomState::new().build_hasher().finish() | 1;
        Backoff {
            min,
            max: max.max(min),
            next: min,
            rng: seed,
        }
    }

    /// The delay to wait now; the one after is twice as long (up to `max`).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        // xorshift64: plenty for jitter.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let cut = (self.rng % 1000) as f64 / 2000.0;
        base.mul_f64(1.0 - cut)
    }

    /// Start again from `min` (after a success).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.next_delay())
    }
}

impl kube::runtime::utils::Backoff for Backoff {
    fn reset(&mut self) {
        Backoff::reset(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max_with_at_most_half_cut_and_resets() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(700));
        let mut backoff = Backoff::new(min, max);
        let mut bases = Vec::new();
        for _ in 0..6 {
            let base = backoff.next;
            let delay = backoff.next_delay();
            assert!(delay <= base && delay >= base / 2, "{delay:?} vs {base:?}");
            bases.push(base.as_millis());
        }
        assert_eq!(bases, [100, 200, 400, 700, 700, 700]);
        backoff.reset();
        assert!(backoff.next_delay() <= min);
    }
}
