//! Number formatting in k6's style: `1.23ms`, `212µs`, `1.5s`, `10 kB`.

/// A time in milliseconds, k6-style.
/// `summaryTimeUnit`: every time of the summary in one unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    /// Seconds.
    S,
    /// Milliseconds.
    Ms,
    /// Microseconds.
    Us,
}

impl TimeUnit {
    /// `s`, `ms` or `us`.
    pub fn parse(text: &str) -> Result<TimeUnit, String> {
        match text.trim() {
            "s" => Ok(TimeUnit::S),
            "ms" => Ok(TimeUnit::Ms),
            "us" | "µs" => Ok(TimeUnit::Us),
            other => Err(format!("{other:?} is not a time unit (s, ms, us)")),
        }
    }

    /// `ms` milliseconds in this unit, with its suffix.
    pub fn show(self, ms: f64) -> String {
        if !ms.is_finite() {
            return "-".into();
        }
        match self {
            TimeUnit::S => format!("{}s", trim(ms / 1000.0)),
            TimeUnit::Ms => format!("{}ms", trim(ms)),
            TimeUnit::Us => format!("{}µs", trim(ms * 1000.0)),
        }
    }
}

/// A time for people: the unit chosen by its size.
pub fn time_ms(ms: f64) -> String {
    if !ms.is_finite() {
        return "-".into();
    }
    let us = ms * 1000.0;
    if us < 1.0 {
        format!("{:.0}ns", us * 1000.0)
    } else if ms < 1.0 {
        format!("{}µs", trim(us))
    } else if ms < 1000.0 {
        format!("{}ms", trim(ms))
    } else if ms < 60_000.0 {
        format!("{}s", trim(ms / 1000.0))
    } else {
        let secs = ms / 1000.0;
        let m = (secs / 60.0).floor();
        format!("{}m{}s", m, trim(secs - m * 60.0))
    }
}

/// Up to two decimals, trailing zeros dropped (`1.5`, `2`, `0.25`).
fn trim(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Bytes, k6-style decimal units (`10 kB`, `1.2 MB`).
pub fn bytes(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A plain number: integers without decimals, others with up to 6 significant.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_k6() {
        assert_eq!(time_ms(1.234), "1.23ms");
        assert_eq!(time_ms(0.212), "212µs");
        assert_eq!(time_ms(1500.0), "1.5s");
        assert_eq!(time_ms(62_000.0), "1m2s");
        assert_eq!(bytes(10_240.0), "10.2 kB");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(number(601.0), "601");
        assert_eq!(number(33.5), "33.5");
    }
}
