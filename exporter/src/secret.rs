//! Secrets (tokens, passwords) that must never appear whole in logs.

use std::fmt;

/// A secret string: `Debug` and `Display` show only its first two characters
/// and its length, enough to tell two tokens apart in a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.0.chars().take(2).collect();
        write!(f, "{shown}…({} chars)", self.0.chars().count())
    }
}

/// Compares without an early exit, so the time taken does not reveal how
/// much of a guessed token was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn shows_a_prefix_and_the_length_only() {
        let s = Secret::new("abcdef123456");
        assert_eq!(format!("{s} {s:?}"), "ab…(12 chars) ab…(12 chars)");
        assert_eq!(s.expose(), "abcdef123456");
    }
}
