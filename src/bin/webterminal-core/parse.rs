//! The value parsers of the flags: times, E.164 numbers, client ids and durations.

use std::time::{Duration, SystemTime};
use webterminal_core::core::Msisdn;

/// An RFC 3339 time in UTC (`2026-12-02T07:00:00Z`, `2026-12-02 07:00:00.5`), read by humantime:
/// `T` may be a space, `Z` (or `+00:00`) may be left out; other offsets are refused.
pub(crate) fn parse_time(s: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(s.trim())
        .map_err(|e| format!("{s:?} is not an RFC 3339 time such as 2026-12-02T07:00:00Z: {e}"))
}

pub(crate) fn parse_msisdn_lenient(s: &str) -> Result<Msisdn, String> {
    Msisdn::parse_lenient(s).map_err(|e| format!("an E.164 number {e}"))
}

pub(crate) fn parse_client_id(s: &str) -> Result<String, String> {
    if s.is_empty() || s.trim() != s {
        return Err("a client id is not empty and has no surrounding spaces".into());
    }
    Ok(s.to_owned())
}

pub(crate) fn parse_msisdn(s: &str) -> Result<Msisdn, String> {
    Msisdn::parse(s).map_err(|e| format!("an E.164 number {e}"))
}

/// A duration as [`parse_duration`] reads it, or `0` (with or without a unit) for none.
pub(crate) fn parse_grace(s: &str) -> Result<Duration, String> {
    parse_duration_or_zero(s)
}

/// A positive duration: whole numbers with a unit, `ms`, `s`, `m` or `h` (`500ms`, `2s`, `1m`,
/// `1h30m`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    match parse_duration_or_zero(s)? {
        Duration::ZERO => Err("the duration must be more than zero".into()),
        duration => Ok(duration),
    }
}

/// humantime's reading of `s`, held to the units these timeouts are written in: no fractions, signs,
/// spaces, days or longer.
fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let not_a_duration =
        || format!("{s:?}: write whole numbers with a unit, ms, s, m or h (500ms, 2s, 1m)");
    if !s
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, 'm' | 's' | 'h'))
    {
        return Err(not_a_duration());
    }
    humantime::parse_duration(s).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => format!("{s:?} is too long"),
        _ => not_a_duration(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn durations_refused() {
        for bad in [
            "",
            "s",
            "10",
            "1.5s",
            "-1s",
            "2 s",
            "3d",
            "0s",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn grace_may_be_zero_and_units_combine() {
        for zero in ["0", "0s", "0ms", "0m", " 0 "] {
            assert_eq!(parse_grace(zero), Ok(Duration::ZERO), "{zero:?}");
        }
        assert_eq!(parse_grace("15s"), Ok(Duration::from_secs(15)));
        assert!(parse_grace("-1s").is_err());
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
    }
}
