//! Pacing what repeats: a capped exponential back-off between tries and a log throttle that writes
//! one line per interval with a count, while something outside stays broken (the accept loop
//! [`crate::edge::listener`], the Redis pusher [`crate::notifications::pusher`], the SIP trunk), and
//! the token bucket every rate limit counts with (the edge's [`crate::edge::rate_limit`], the SIP
//! trunk's per-source INVITE limit). A leaf: only `std`.

use std::time::{Duration, Instant};

/// A capped exponential back-off: waits `min`, `2·min`, `4·min`, … up to `max`, and starts again
/// at `min` after [`Backoff::reset`] (a success).
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A back-off whose first wait is `min` and whose longest is `max`.
    pub(crate) const fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next try (a failure happened); the one after it is twice as long, up
    /// to `max`.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = wait.saturating_mul(2).min(self.max);
        wait
    }

    /// A try succeeded: the next wait is `min` again.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Logs one kind of trouble at most once per `interval`, counting the events it left out.
#[derive(Debug, Clone)]
pub(crate) struct LogThrottle {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    /// A throttle that lets one line through per `interval`.
    pub(crate) const fn new(interval: Duration) -> LogThrottle {
        LogThrottle {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// An event at `now`: `Some(count)` (events since the last line, this one included) when a
    /// line is due, else `None` (the event is counted for the next line).
    pub(crate) fn due(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                let count = self.suppressed + 1;
                self.suppressed = 0;
                Some(count)
            }
        }
    }

    /// The trouble is over: the next event is logged at once.
    pub(crate) fn reset(&mut self) {
        self.last = None;
        self.suppressed = 0;
    }
}

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
        let taken = self.has_token(now);
        if taken {
            self.spend();
        }
        taken
    }
}

impl TokenBucket {
    /// Adds the tokens earned since the last look, up to the burst.
    pub(crate) fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst);
    }

    /// Whether a token is there at `now` (always, when unlimited); takes none.
    pub(crate) fn has_token(&mut self, now: Instant) -> bool {
        if self.per_second == 0.0 {
            return true;
        }
        self.refill(now);
        self.tokens >= 1.0
    }

    /// Takes the token [`TokenBucket::has_token`] saw.
    pub(crate) fn spend(&mut self) {
        if self.per_second != 0.0 {
            self.tokens -= 1.0;
        }
    }

    /// Whether the bucket is full at `now`: it then holds nothing a fresh one would not.
    pub(crate) fn is_full(&mut self, now: Instant) -> bool {
        self.per_second == 0.0 || {
            self.refill(now);
            self.tokens >= self.burst
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_to_its_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let waits: Vec<u128> = (0..5).map(|_| backoff.next_wait().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 500, 500]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), Duration::from_millis(100));
    }

    #[test]
    fn the_back_off_does_not_overflow() {
        let mut backoff = Backoff::new(Duration::MAX / 2 + Duration::from_secs(1), Duration::MAX);
        backoff.next_wait();
        assert_eq!(backoff.next_wait(), Duration::MAX);
    }

    #[test]
    fn the_throttle_logs_once_per_interval_with_a_count() {
        let mut throttle = LogThrottle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(throttle.due(start), Some(1));
        for _ in 0..5 {
            assert_eq!(throttle.due(start + Duration::from_secs(1)), None);
        }
        assert_eq!(throttle.due(start + Duration::from_secs(10)), Some(6));
        assert_eq!(throttle.due(start + Duration::from_secs(11)), None);
    }

    #[test]
    fn after_a_reset_the_next_event_is_logged_at_once() {
        let mut throttle = LogThrottle::new(Duration::from_secs(30));
        let start = Instant::now();
        assert_eq!(throttle.due(start), Some(1));
        assert_eq!(throttle.due(start + Duration::from_secs(1)), None);
        throttle.reset();
        assert_eq!(throttle.due(start + Duration::from_secs(2)), Some(1));
    }
}
