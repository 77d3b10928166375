//! k6 duration strings: `"30s"`, `"1m30s"`, `"500ms"`, `"1.5h"`, `"2d"`.
//!
//! A bare number is milliseconds, as in k6's options. Units: `ns`, `us`/`µs`,
//! `ms`, `s`, `m`, `h`, `d`; components may repeat (`1h30m`) and carry a
//! fraction (`1.5s`).

use std::time::Duration;

/// Parses a k6 duration string. The error says what was wrong, without the
/// field path (the caller adds it).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(ms) = s.parse::<f64>() {
        return millis(ms, text);
    }
    let mut total = 0f64; // nanoseconds
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = number_len(rest);
        if num_len == rest.len() {
            return Err(format!("{text:?} has a number without a unit (use e.g. \"30s\")"));
        }
        if num_len == 0 {
            return Err(format!("{text:?} is not a duration (expected e.g. \"30s\", \"1m30s\", \"500ms\")"));
        }
        let number: f64 =
            rest[..num_len].parse().map_err(|_| format!("{text:?} has a malformed number {:?}", &rest[..num_len]))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            other => return Err(format!("{text:?} has an unknown unit {other:?} (use ns, us, ms, s, m, h or d)")),
        };
        total += number * scale;
    }
    if !(total.is_finite() && total <= u64::MAX as f64) {
        return Err(format!("{text:?} is too long"));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Length of the number at the start of `s`: digits and dots, then an
/// exponent (`1e3s`) if digits follow it, so `1e400s` is read as one
/// (too large) number rather than a unit `e`.
fn number_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = b.iter().take_while(|c| c.is_ascii_digit() || **c == b'.').count();
    if i > 0 && matches!(b.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
        let digits = b[(i + 1 + sign).min(b.len())..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 {
            i += 1 + sign + digits;
        }
    }
    i
}

fn millis(ms: f64, text: &str) -> Result<Duration, String> {
    if ms.is_nan() {
        return Err(format!("{text:?} is not a duration (expected e.g. \"30s\", \"1m30s\", \"500ms\")"));
    }
    if ms < 0.0 {
        return Err(format!("{text:?} must not be negative"));
    }
    if !(ms.is_finite() && ms * 1e6 <= u64::MAX as f64) {
        return Err(format!("{text:?} is too long"));
    }
    Ok(Duration::from_nanos((ms * 1e6).round() as u64))
}

/// Parses a metric window length: a duration from 1 ms (windows are stamped
/// in milliseconds) to [`crate::report::MAX_WINDOW_MS`] (what a receiver
/// accepts).
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    let max = Duration::from_millis(crate::report::MAX_WINDOW_MS);
    if d < Duration::from_millis(1) || d > max {
        return Err(format!("{text:?} is not a window length: use 1ms to {}", format_duration(max)));
    }
    Ok(d)
}

/// Formats a duration the way k6 prints one: `1m30s`, `500ms`, `2h0m0s`.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let ms = d.as_secs_f64() * 1e3;
        return if ms.fract() == 0.0 { format!("{ms}ms") } else { format!("{ms:.3}ms") };
    }
    let secs = d.as_secs_f64();
    let h = (secs / 3600.0).floor();
    let m = ((secs - h * 3600.0) / 60.0).floor();
    let s = secs - h * 3600.0 - m * 60.0;
    let s_text = if (s - s.round()).abs() < 1e-9 { format!("{}", s.round()) } else { format!("{s:.1}") };
    if h > 0.0 {
        format!("{h}h{m}m{s_text}s")
    } else if m > 0.0 {
        format!("{m}m{s_text}s")
    } else {
        format!("{s_text}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k6_forms() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1h2m3s").unwrap(), Duration::from_secs(3723));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10us").unwrap(), Duration::from_micros(10));
    }

    #[test]
    fn rejects_garbage_with_a_reason() {
        assert!(parse_duration("").unwrap_err().contains("empty"));
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit \"x\""));
        assert_eq!(parse_window("0s").unwrap_err(), "\"0s\" is not a window length: use 1ms to 1h0m0s");
        assert!(parse_window("2h").is_err());
        assert_eq!(parse_window("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1e400s").unwrap_err(), "\"1e400s\" is too long");
        assert_eq!(parse_duration("1e400").unwrap_err(), "\"1e400\" is too long");
        assert_eq!(parse_duration("1e3ms").unwrap(), Duration::from_secs(1));
        assert!(parse_duration("NaN").unwrap_err().contains("is not a duration"));
        assert!(parse_duration("1es").unwrap_err().contains("unknown unit \"es\""));
        assert!(parse_duration("s").unwrap_err().contains("not a duration"));
        assert!(parse_duration("-5").unwrap_err().contains("negative"));
        assert!(parse_duration("1..5s").unwrap_err().contains("malformed number"));
    }

    #[test]
    fn formats_like_k6() {
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h0m0s");
        assert_eq!(format_duration(Duration::from_secs(3)), "3s");
    }
}
