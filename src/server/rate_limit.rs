//! Per-terminal rate limits (PROTOCOL.md section 6: "too many messages or call attempts per second"
//! get `Error{RATE_LIMIT_HIT}`).

use crate::core::{ErrorCode, Rejection};
use std::time::Instant;

/// A token bucket: it holds at most `burst` tokens, refills at `per_second` tokens a second, and each
/// event takes one. Time is an input, so tests need no clock.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// Tokens a second; 0 means unlimited.
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling at `per_second` tokens a second and holding twice as many (so a
    /// client may catch up after a short pause). `per_second == 0` means no limit.
    pub fn new(per_second: u32, now: Instant) -> Self {
        let per_second = f64::from(per_second);
        TokenBucket {
            per_second,
            burst: 2.0 * per_second,
            tokens: 2.0 * per_second,
            last: now,
        }
    }

    /// Takes one token at `now`; `false` when the bucket is empty (the event is over the limit).
    pub fn take(&mut self, now: Instant) -> bool {
        if self.per_second == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The two budgets of one terminal, per second (burst: twice as many); 0 disables a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Messages of any kind.
    pub messages_per_second: u32,
    /// New call attempts (Offers with a number).
    pub call_attempts_per_second: u32,
}

/// One terminal's two buckets (see [`RateLimits`]).
#[derive(Clone, Debug)]
pub struct TerminalBudget {
    messages: TokenBucket,
    call_attempts: TokenBucket,
}

impl TerminalBudget {
    /// Full buckets at `now`.
    pub fn new(limits: RateLimits, now: Instant) -> Self {
        TerminalBudget {
            messages: TokenBucket::new(limits.messages_per_second, now),
            call_attempts: TokenBucket::new(limits.call_attempts_per_second, now),
        }
    }

    /// Charges one message at `now`, and one call attempt when `new_call`.
    ///
    /// # Errors
    /// A `RATE_LIMIT_HIT` rejection naming the budget that is spent (PROTOCOL.md section 6).
    pub fn charge(&mut self, now: Instant, new_call: bool) -> Result<(), Rejection> {
        if !self.messages.take(now) {
            return Err(Rejection::new(
                ErrorCode::RateLimitHit,
                "more messages per second than this terminal may send",
            ));
        }
        if new_call && !self.call_attempts.take(now) {
            return Err(Rejection::new(
                ErrorCode::RateLimitHit,
                "more new calls per second than this terminal may attempt",
            ));
        }
        Ok(())
    }
}

impl RateLimits {
    /// No limit at all.
    pub const UNLIMITED: RateLimits = RateLimits {
        messages_per_second: 0,
        call_attempts_per_second: 0,
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_full_bucket_allows_a_burst_of_twice_the_rate_then_refuses() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(5, now);
        for _ in 0..10 {
            assert!(bucket.take(now));
        }
        assert!(!bucket.take(now));
    }

    #[test]
    fn the_bucket_refills_at_its_rate() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(10, now);
        while bucket.take(now) {}
        assert!(!bucket.take(now + Duration::from_millis(50)));
        assert!(bucket.take(now + Duration::from_millis(150)));
        assert!(!bucket.take(now + Duration::from_millis(150)));
    }

    #[test]
    fn refill_never_exceeds_the_burst() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(1, now);
        let later = now + Duration::from_secs(3600);
        assert!(bucket.take(later));
        assert!(bucket.take(later));
        assert!(!bucket.take(later));
    }

    #[test]
    fn zero_means_unlimited() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(0, now);
        assert!((0..10_000).all(|_| bucket.take(now)));
    }
}
