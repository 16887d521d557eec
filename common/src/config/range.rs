//! The allowed range of a numeric setting, and the error that names the field, its value and the
//! range. Config validation and the wire checks of what a learner sends its actors use the same
//! ranges.

use std::fmt;

/// One end of a [`Range`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    /// The value itself is allowed.
    Closed(f64),
    /// The value itself is not allowed.
    Open(f64),
    /// No bound on this side.
    None,
}

/// An interval of allowed values. NaN is never in one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    lo: Bound,
    hi: Bound,
}

impl Range {
    /// `> 0`.
    pub const POSITIVE: Range = Range::new(Bound::Open(0.0), Bound::None);
    /// `>= 0`.
    pub const NON_NEGATIVE: Range = Range::new(Bound::Closed(0.0), Bound::None);
    /// `[0, 1]`: probabilities, discounts, fractions.
    pub const UNIT: Range = Range::new(Bound::Closed(0.0), Bound::Closed(1.0));
    /// `(0, 1]`.
    pub const UNIT_LEFT_OPEN: Range = Range::new(Bound::Open(0.0), Bound::Closed(1.0));
    /// `[0, 1)`.
    pub const UNIT_RIGHT_OPEN: Range = Range::new(Bound::Closed(0.0), Bound::Open(1.0));
    /// `>= 1`: counts that must not be zero.
    pub const AT_LEAST_ONE: Range = Range::new(Bound::Closed(1.0), Bound::None);

    /// The interval between `lo` and `hi`.
    pub const fn new(lo: Bound, hi: Bound) -> Self {
        Self { lo, hi }
    }

    /// `>= lo`.
    pub const fn at_least(lo: f64) -> Self {
        Self::new(Bound::Closed(lo), Bound::None)
    }

    /// `<= hi`.
    pub const fn at_most(hi: f64) -> Self {
        Self::new(Bound::None, Bound::Closed(hi))
    }

    /// Whether `x` is allowed.
    pub fn contains(&self, x: f64) -> bool {
        let above = match self.lo {
            Bound::Closed(lo) => x >= lo,
            Bound::Open(lo) => x > lo,
            Bound::None => !x.is_nan(),
        };
        let below = match self.hi {
            Bound::Closed(hi) => x <= hi,
            Bound::Open(hi) => x < hi,
            Bound::None => !x.is_nan(),
        };
        above && below
    }

    /// `Ok(())` when `value` is allowed, else the error naming `field`.
    pub fn check(&self, field: &str, value: f64) -> Result<(), Invalid> {
        if self.contains(value) {
            Ok(())
        } else {
            Err(Invalid::new(field, value, format!("must be {self}")))
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.lo, self.hi) {
            (Bound::None, Bound::None) => f.write_str("a number"),
            (Bound::Open(lo), Bound::None) => write!(f, "> {lo}"),
            (Bound::Closed(lo), Bound::None) => write!(f, "at least {lo}"),
            (Bound::None, Bound::Open(hi)) => write!(f, "< {hi}"),
            (Bound::None, Bound::Closed(hi)) => write!(f, "at most {hi}"),
            (lo, hi) => {
                // Both ends are bounds here.
                let end = |b: Bound, closed: char, open: char| match b {
                    Bound::Closed(x) => (closed, x),
                    Bound::Open(x) => (open, x),
                    Bound::None => (open, f64::NAN),
                };
                let ((open, lo), (close, hi)) = (end(lo, '[', '('), end(hi, ']', ')'));
                write!(f, "in {open}{lo}, {hi}{close}")
            }
        }
    }
}

/// A setting outside what is allowed: `ppo.clip_coef = -1: must be in (0, 1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The setting, with its section (`ppo.clip_coef`).
    pub field: String,
    /// Its value as given.
    pub value: String,
    /// What it must be.
    pub rule: String,
}

impl Invalid {
    /// `field = value: rule`.
    pub fn new(
        field: impl Into<String>,
        value: impl fmt::Display,
        rule: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            value: value.to_string(),
            rule: rule.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}: {}", self.field, self.value, self.rule)
    }
}

impl std::error::Error for Invalid {}

/// Checks the fields of one config section, naming each as `section.field`.
#[derive(Debug, Clone, Copy)]
pub struct Section(pub &'static str);

impl Section {
    /// The field's full name.
    pub fn field(&self, name: &str) -> String {
        if self.0.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.0)
        }
    }

    /// `name = value` must lie in `range`.
    pub fn check(&self, name: &str, value: f64, range: Range) -> Result<(), Invalid> {
        range.check(&self.field(name), value)
    }

    /// A count that must lie in `range`.
    pub fn count(&self, name: &str, value: u64, range: Range) -> Result<(), Invalid> {
        self.check(name, value as f64, range)
    }

    /// A cross-field rule: `name = value` breaks `rule`.
    pub fn invalid(
        &self,
        name: &str,
        value: impl fmt::Display,
        rule: impl Into<String>,
    ) -> Invalid {
        Invalid::new(self.field(name), value, rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_say_what_they_allow() {
        assert_eq!(Range::UNIT_LEFT_OPEN.to_string(), "in (0, 1]");
        assert_eq!(Range::POSITIVE.to_string(), "> 0");
        assert_eq!(Range::AT_LEAST_ONE.to_string(), "at least 1");
        assert!(Range::UNIT.contains(0.0) && Range::UNIT.contains(1.0));
        assert!(!Range::UNIT_RIGHT_OPEN.contains(1.0));
        assert!(!Range::POSITIVE.contains(f64::NAN) && !Range::POSITIVE.contains(0.0));
        assert!(!Range::NON_NEGATIVE.contains(f64::NAN));
        let e = Section("ppo")
            .check("clip_coef", -1.0, Range::UNIT_LEFT_OPEN)
            .unwrap_err();
        assert_eq!(e.to_string(), "ppo.clip_coef = -1: must be in (0, 1]");
        let e = Section("")
            .count("num_envs", 0, Range::AT_LEAST_ONE)
            .unwrap_err();
        assert_eq!(e.to_string(), "num_envs = 0: must be at least 1");
    }
}
