//! Settings of a registered environment given after its id, as in a URL query:
//! `Text-Reverse-v0?length=3-4&letters=4`. They travel inside the id, so every actor, evaluation
//! and served world builds the same environment from the one string the run names.

use std::collections::BTreeMap;
use std::str::FromStr;

use super::EnvError;

/// Most settings one id may carry.
const MAX_SETTINGS: usize = 32;

/// The settings after `?` in an environment id; each is read once, and those left unread are
/// refused by [`Options::finish`].
#[derive(Debug, Default)]
pub struct Options {
    id: String,
    settings: BTreeMap<String, String>,
}

/// `id` without its settings, and the settings text (empty when there is none).
pub fn split_id(id: &str) -> (&str, &str) {
    id.split_once('?').unwrap_or((id, ""))
}

impl Options {
    /// The settings after the `?` of `id` (the id, bounded, names them in errors).
    ///
    /// # Errors
    /// As [`Options::parse`].
    pub fn of_id(id: &str) -> Result<Self, EnvError> {
        Self::parse(&crate::text::bounded_to(id, 200), split_id(id).1)
    }

    /// Reads `query` (`key=value&...`) of the environment `id`.
    ///
    /// # Errors
    /// A setting without `=`, a key given twice, or more than 32 settings.
    pub fn parse(id: &str, query: &str) -> Result<Self, EnvError> {
        let mut options = Options {
            id: id.to_string(),
            settings: BTreeMap::new(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(options.invalid(pair, "is not KEY=VALUE"));
            };
            if options.settings.len() == MAX_SETTINGS {
                return Err(options.invalid(key, &format!("more than {MAX_SETTINGS} settings")));
            }
            if options
                .settings
                .insert(key.to_string(), value.to_string())
                .is_some()
            {
                return Err(options.invalid(key, "is given twice"));
            }
        }
        Ok(options)
    }

    /// The setting `key` read as a `T`, or `None` when it is not given.
    ///
    /// # Errors
    /// A value that does not parse as a `T`.
    pub fn take<T: FromStr>(&mut self, key: &str) -> Result<Option<T>, EnvError> {
        match self.settings.remove(key) {
            None => Ok(None),
            Some(value) => value.parse().map(Some).map_err(|_| {
                self.invalid(
                    key,
                    &format!(
                        "`{}` is not a valid {}",
                        crate::text::bounded_to(&value, 40),
                        std::any::type_name::<T>()
                    ),
                )
            }),
        }
    }

    /// An error about `key`.
    pub fn invalid(&self, key: &str, why: &str) -> EnvError {
        EnvError::Options {
            id: self.id.clone(),
            why: format!("`{}` {why}", crate::text::bounded_to(key, 40)),
        }
    }

    /// Refuses the settings not read.
    ///
    /// # Errors
    /// Any setting left.
    pub fn finish(self) -> Result<(), EnvError> {
        match self.settings.keys().next() {
            None => Ok(()),
            Some(key) => Err(self.invalid(key, "is not a setting of this environment")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_read_once_and_the_unknown_refused() {
        assert_eq!(
            split_id("Text-Copy-v0?length=3"),
            ("Text-Copy-v0", "length=3")
        );
        assert_eq!(split_id("CartPole-v1"), ("CartPole-v1", ""));
        let mut o = Options::parse("T", "length=3&partial=0.5").unwrap();
        assert_eq!(o.take::<usize>("length").unwrap(), Some(3));
        assert_eq!(o.take::<usize>("length").unwrap(), None);
        assert_eq!(o.take::<f64>("partial").unwrap(), Some(0.5));
        assert!(o.finish().is_ok());
        let mut o = Options::parse("T", "length=x&size=2").unwrap();
        assert!(
            o.take::<usize>("length")
                .unwrap_err()
                .to_string()
                .contains("`x`")
        );
        let err = o.finish().unwrap_err().to_string();
        assert!(err.contains("`size` is not a setting"), "{err}");
        assert!(Options::parse("T", "a=1&a=2").is_err());
        assert!(Options::parse("T", "novalue").is_err());
        assert!(Options::parse("T", "").unwrap().finish().is_ok());
    }
}
