//! Rate limits at the edge (PROTOCOL.md section 6: "too many messages or call attempts per second"
//! get `Error{RATE_LIMIT_HIT}`): per terminal, per number (across all its terminals and reconnects),
//! and per caller and callee. They are checked in each terminal's reader task, before a message
//! reaches the switch.

use crate::core::{ErrorCode, Msisdn, Rejection};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::pacing::TokenBucket;

/// The rate limits at the edge, per second (a token bucket holding twice as many, so a client may
/// catch up after a short pause); 0 disables a limit. A message over any of them gets
/// `Error{RATE_LIMIT_HIT}` (PROTOCOL.md section 6) and goes no further.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Messages of any kind (keepalives included), per terminal.
    pub messages_per_second: u32,
    /// New call attempts (Offers with a number), per terminal.
    pub call_attempts_per_second: u32,
    /// Messages of any kind, per number: shared by all its terminals, and kept across reconnects.
    pub messages_per_second_per_number: u32,
    /// New call attempts, per number: shared by all its terminals, and kept across reconnects.
    pub call_attempts_per_second_per_number: u32,
    /// New calls from one number to one other number (no subscriber is rung more often than this
    /// by one caller).
    pub offers_per_second_per_callee: u32,
}

impl RateLimits {
    /// No limit at all.
    pub const UNLIMITED: RateLimits = RateLimits {
        messages_per_second: 0,
        call_attempts_per_second: 0,
        messages_per_second_per_number: 0,
        call_attempts_per_second_per_number: 0,
        offers_per_second_per_callee: 0,
    };
}

/// One number's budgets, shared by its terminals (see [`NumberBudgets`]).
#[derive(Debug)]
pub struct NumberBudget {
    messages: TokenBucket,
    call_attempts: TokenBucket,
    /// New calls to each callee, by callee; buckets that have refilled are swept out.
    callees: HashMap<Msisdn, TokenBucket>,
    offers_per_callee: u32,
    last_sweep: Instant,
}

impl NumberBudget {
    fn new(limits: RateLimits, now: Instant) -> Self {
        NumberBudget {
            messages: TokenBucket::new(limits.messages_per_second_per_number, now),
            call_attempts: TokenBucket::new(limits.call_attempts_per_second_per_number, now),
            callees: HashMap::new(),
            offers_per_callee: limits.offers_per_second_per_callee,
            last_sweep: now,
        }
    }

    /// Whether it holds nothing a fresh budget would not (every bucket full).
    fn is_fresh(&mut self, now: Instant) -> bool {
        self.messages.is_full(now)
            && self.call_attempts.is_full(now)
            && self.callees.values_mut().all(|b| b.is_full(now))
    }
}

/// The per-number budgets of every number that has, or recently had, a terminal. A number's budget
/// outlives its terminals until its buckets have refilled, so reconnecting does not reset it.
#[derive(Debug)]
pub struct NumberBudgets {
    limits: RateLimits,
    /// Every number's budget, and when the map was last swept.
    numbers: Mutex<(HashMap<Msisdn, Shared>, Instant)>,
}

/// A number's budget, shared by its terminals' readers.
type Shared = Arc<Mutex<NumberBudget>>;

/// How often, at most, budgets that have refilled are swept out of [`NumberBudgets`] (and callee
/// buckets out of a [`NumberBudget`]).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

impl NumberBudgets {
    /// No number yet, under `limits`.
    pub fn new(limits: RateLimits) -> Self {
        NumberBudgets {
            limits,
            numbers: Mutex::new((HashMap::new(), Instant::now())),
        }
    }

    /// A terminal of `msisdn` opens at `now`: its budget, with the number's shared buckets.
    pub fn terminal(&self, msisdn: &Msisdn, now: Instant) -> TerminalBudget {
        let mut guard = self.numbers.lock().unwrap_or_else(|e| e.into_inner());
        let (numbers, last_sweep) = &mut *guard;
        if now.saturating_duration_since(*last_sweep) >= SWEEP_INTERVAL {
            *last_sweep = now;
            // Only this map holds a budget when no terminal of its number is open.
            numbers.retain(|_, budget| {
                Arc::strong_count(budget) > 1
                    || !budget
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .is_fresh(now)
            });
        }
        let number = numbers
            .entry(msisdn.clone())
            .or_insert_with(|| Arc::new(Mutex::new(NumberBudget::new(self.limits, now))))
            .clone();
        TerminalBudget {
            messages: TokenBucket::new(self.limits.messages_per_second, now),
            call_attempts: TokenBucket::new(self.limits.call_attempts_per_second, now),
            number: Some(number),
        }
    }

    /// How many numbers have a budget now (for tests).
    pub fn len(&self) -> usize {
        self.numbers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .len()
    }

    /// Whether no number has a budget.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One terminal's budgets: its own buckets and its number's (see [`RateLimits`]).
#[derive(Clone, Debug)]
pub struct TerminalBudget {
    messages: TokenBucket,
    call_attempts: TokenBucket,
    number: Option<Arc<Mutex<NumberBudget>>>,
}

impl TerminalBudget {
    /// Full buckets at `now`, for a terminal whose number has no shared budget (the per-number
    /// limits do not apply to it).
    pub fn new(limits: RateLimits, now: Instant) -> Self {
        TerminalBudget {
            messages: TokenBucket::new(limits.messages_per_second, now),
            call_attempts: TokenBucket::new(limits.call_attempts_per_second, now),
            number: None,
        }
    }

    /// Charges one message at `now`, and one call attempt when `new_call`, to the terminal and to
    /// its number. Nothing is charged when a budget is spent.
    ///
    /// # Errors
    /// A `RATE_LIMIT_HIT` rejection naming the budget that is spent (PROTOCOL.md section 6).
    pub fn charge(&mut self, now: Instant, new_call: bool) -> Result<(), Rejection> {
        let refuse = |what| Err(Rejection::new(ErrorCode::RateLimitHit, what));
        if !self.messages.has_token(now) {
            return refuse("more messages per second than this terminal may send");
        }
        if new_call && !self.call_attempts.has_token(now) {
            return refuse("more new calls per second than this terminal may attempt");
        }
        if let Some(number) = &self.number {
            let mut number = number.lock().unwrap_or_else(|e| e.into_inner());
            if !number.messages.has_token(now) {
                return refuse("more messages per second than this number may send");
            }
            if new_call && !number.call_attempts.has_token(now) {
                return refuse("more new calls per second than this number may attempt");
            }
            number.messages.spend();
            if new_call {
                number.call_attempts.spend();
            }
        }
        self.messages.spend();
        if new_call {
            self.call_attempts.spend();
        }
        Ok(())
    }

    /// Charges one new call to `callee` at `now` to the number's budget for that callee.
    ///
    /// # Errors
    /// A `RATE_LIMIT_HIT` rejection when this number has called `callee` too often.
    pub fn charge_callee(&mut self, now: Instant, callee: &Msisdn) -> Result<(), Rejection> {
        let Some(number) = &self.number else {
            return Ok(());
        };
        let mut number = number.lock().unwrap_or_else(|e| e.into_inner());
        if number.offers_per_callee == 0 {
            return Ok(());
        }
        if now.saturating_duration_since(number.last_sweep) >= SWEEP_INTERVAL {
            number.last_sweep = now;
            number.callees.retain(|_, bucket| !bucket.is_full(now));
        }
        let per_second = number.offers_per_callee;
        let bucket = number
            .callees
            .entry(callee.clone())
            .or_insert_with(|| TokenBucket::new(per_second, now));
        if !bucket.has_token(now) {
            return Err(Rejection::new(
                ErrorCode::RateLimitHit,
                "more new calls per second to this number than one caller may make",
            ));
        }
        bucket.spend();
        Ok(())
    }
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

    fn number(s: &str) -> Msisdn {
        Msisdn::parse(s).unwrap()
    }

    const LIMITS: RateLimits = RateLimits {
        messages_per_second: 100,
        call_attempts_per_second: 10,
        messages_per_second_per_number: 100,
        call_attempts_per_second_per_number: 2,
        offers_per_second_per_callee: 1,
    };

    #[test]
    fn a_numbers_attempts_are_shared_by_its_terminals_and_survive_reconnects() {
        let now = Instant::now();
        let budgets = NumberBudgets::new(LIMITS);
        let a = number("+4799990001");
        let mut first = budgets.terminal(&a, now);
        let mut second = budgets.terminal(&a, now);
        // The number's burst: 2 a second, 4 at once, whichever terminal spends it.
        assert!(first.charge(now, true).is_ok());
        assert!(second.charge(now, true).is_ok());
        assert!(second.charge(now, true).is_ok());
        assert!(first.charge(now, true).is_ok());
        assert!(first.charge(now, true).is_err());
        assert!(second.charge(now, true).is_err());
        // A message that is not a new call still goes: only the attempts are spent.
        assert!(first.charge(now, false).is_ok());
        drop((first, second));
        // Reconnecting (a new terminal, moments later) finds the number's budget spent.
        let later = now + Duration::from_millis(1100);
        let mut third = budgets.terminal(&a, later);
        assert!(third.charge(later, true).is_ok(), "refilled by 2 in 1.1 s");
        assert!(third.charge(later, true).is_ok());
        assert!(third.charge(later, true).is_err());
        // Another number has its own budget.
        let mut other = budgets.terminal(&number("+4799990002"), later);
        assert!(other.charge(later, true).is_ok());
    }

    #[test]
    fn a_refused_message_is_charged_to_no_bucket() {
        let now = Instant::now();
        let budgets = NumberBudgets::new(LIMITS);
        let a = number("+4799990001");
        let mut first = budgets.terminal(&a, now);
        let mut second = budgets.terminal(&a, now);
        for _ in 0..4 {
            assert!(first.charge(now, true).is_ok());
        }
        // The number's attempts are spent: the terminal's own attempt bucket is left untouched.
        for _ in 0..100 {
            assert!(first.charge(now, true).is_err());
        }
        assert!(first.charge(now, false).is_ok());
        assert!(second.charge(now, false).is_ok());
    }

    #[test]
    fn one_caller_rings_one_callee_at_most_at_the_per_callee_rate() {
        let now = Instant::now();
        let budgets = NumberBudgets::new(LIMITS);
        let (a, b, v) = (
            number("+4799990001"),
            number("+4799990002"),
            number("+4799990009"),
        );
        let mut from_a = budgets.terminal(&a, now);
        let mut from_b = budgets.terminal(&b, now);
        assert!(from_a.charge_callee(now, &v).is_ok());
        assert!(from_a.charge_callee(now, &v).is_ok());
        assert!(from_a.charge_callee(now, &v).is_err(), "burst of 2 at 1/s");
        assert!(from_a.charge_callee(now, &b).is_ok(), "another callee");
        assert!(from_b.charge_callee(now, &v).is_ok(), "another caller");
        let later = now + Duration::from_secs(1);
        assert!(from_a.charge_callee(later, &v).is_ok());
        assert!(from_a.charge_callee(later, &v).is_err());
    }

    #[test]
    fn budgets_that_refilled_are_swept_once_no_terminal_holds_them() {
        let now = Instant::now();
        let budgets = NumberBudgets::new(LIMITS);
        let held = budgets.terminal(&number("+4799990001"), now);
        let mut spent = budgets.terminal(&number("+4799990002"), now);
        spent.charge(now, true).unwrap();
        drop(spent);
        drop(budgets.terminal(&number("+4799990003"), now));
        assert_eq!(budgets.len(), 3);
        // A second on: the untouched and the refilled go, the held one stays.
        let later = now + Duration::from_secs(2);
        drop(budgets.terminal(&number("+4799990004"), later));
        assert_eq!(budgets.len(), 2, "+...01 (held) and +...04 (just opened)");
        drop(held);
    }

    #[test]
    fn zero_means_unlimited() {
        let now = Instant::now();
        let mut bucket = TokenBucket::new(0, now);
        assert!((0..10_000).all(|_| bucket.take(now)));
    }
}
