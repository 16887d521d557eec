//! Command-line overrides of a run config (`--set section.field=value`, applied to the file's
//! TOML before it is read, so the run's saved `config.toml` records them), the sections a run
//! will not read, and parser messages in a user's words rather than Rust's type names.

use std::path::Path;

use super::{AlgorithmKind, ConfigError, RunConfig};

/// Applies one `KEY=VALUE` assignment to `table`: `KEY` is a dotted path (`ppo.learning_rate`),
/// `VALUE` a TOML value (`3e-4`, `true`, `[64, 64]`, `"CartPole-v1"`); a value that is not
/// valid TOML is taken as a string (`env_id=Acrobot-v1`). `shape` (the defaults as a table)
/// says which keys are sections.
pub fn apply_set(
    table: &mut toml::Table,
    shape: &toml::Table,
    assignment: &str,
) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError::Parse {
        path: "--set".into(),
        message: format!("`{assignment}`: {why}"),
    };
    let (key, value) = assignment
        .split_once('=')
        .ok_or_else(|| bad("expected KEY=VALUE, e.g. ppo.learning_rate=3e-4"))?;
    let path: Vec<&str> = key.trim().split('.').map(str::trim).collect();
    if path.iter().any(|part| part.is_empty()) {
        return Err(bad("the key is empty or has an empty part"));
    }
    let value = value.trim();
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let (last, parents) = path.split_last().expect("at least one part");
    let mut known = Some(shape);
    for part in parents {
        known = match known.and_then(|t| t.get(*part)) {
            Some(toml::Value::Table(t)) => Some(t),
            Some(_) => return Err(bad(&format!("`{part}` is not a section"))),
            None => None,
        };
    }
    let mut node = table;
    for part in parents {
        node = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| bad(&format!("`{part}` is not a section")))?;
    }
    node.insert(last.to_string(), parsed);
    Ok(())
}

impl RunConfig {
    /// Reads the config file (`None`: the defaults) with `sets` applied on top ([`apply_set`]);
    /// not checked yet ([`RunConfig::validate`]). Also returns the fields the run will not read
    /// ([`unread_fields`]), for a warning.
    pub fn load_with(
        path: Option<&Path>,
        sets: &[String],
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let (text, origin) = match path {
            Some(path) => (
                std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                    path: path.to_path_buf(),
                    source,
                })?,
                path,
            ),
            None => (String::new(), Path::new("(defaults)")),
        };
        // The file alone first: its own mistakes are reported with line and column.
        let config = Self::parse(&text, origin)?;
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| parse_error(origin, e))?;
        if sets.is_empty() {
            return Ok((config.clone(), unread_fields(&table, config.algorithm)));
        }
        let shape: toml::Table =
            toml::from_str(&Self::default().to_toml()).expect("the defaults are valid TOML");
        for set in sets {
            apply_set(&mut table, &shape, set)?;
        }
        // Through TOML text: what the file parser accepts, the overrides do too.
        let text = toml::to_string(&table).map_err(|e| ConfigError::Parse {
            path: "--set".into(),
            message: e.to_string(),
        })?;
        let config: RunConfig =
            toml::from_str(&text).map_err(|e: toml::de::Error| ConfigError::Parse {
                path: "--set".into(),
                message: plain_words(e.message()),
            })?;
        let unread = unread_fields(&table, config.algorithm);
        Ok((config, unread))
    }
}

/// A TOML error with the file's name, in plain words.
pub(super) fn parse_error(origin: &Path, e: toml::de::Error) -> ConfigError {
    ConfigError::Parse {
        path: origin.to_path_buf(),
        message: plain_words(&e.to_string()),
    }
}

/// Replaces the Rust type names serde's messages carry (`expected usize`) with what a user
/// writes in TOML.
pub fn plain_words(message: &str) -> String {
    const WORDS: [(&str, &str); 9] = [
        ("expected usize", "expected a whole number ≥ 0"),
        ("expected u64", "expected a whole number ≥ 0"),
        ("expected u32", "expected a whole number ≥ 0"),
        ("expected u16", "expected a whole number ≥ 0"),
        ("expected u8", "expected a whole number ≥ 0"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ];
    let mut out = message.to_string();
    for (rust, plain) in WORDS {
        out = out.replace(rust, plain);
    }
    out
}

/// `section.field` for every field of an algorithm section the run's algorithm does not read
/// (`ppo.gamma` is read by every run but IMPALA's: it is reward scaling's discount).
pub fn unread_fields(table: &toml::Table, algorithm: AlgorithmKind) -> Vec<String> {
    let mut unread = Vec::new();
    for kind in AlgorithmKind::ALL {
        if kind == algorithm {
            continue;
        }
        let Some(section) = table.get(kind.name()).and_then(toml::Value::as_table) else {
            continue;
        };
        for key in section.keys() {
            let read_by_all =
                kind == AlgorithmKind::Ppo && key == "gamma" && algorithm != AlgorithmKind::Impala;
            if !read_by_all {
                unread.push(format!("{}.{key}", kind.name()));
            }
        }
    }
    unread
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_override_the_file_and_take_toml_values_or_strings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "seed = 3\n[ppo]\nlearning_rate = 0.1\n").unwrap();
        let sets = [
            "ppo.learning_rate=3e-4",
            "env_id=Acrobot-v1",
            "model.hidden = [32, 32]",
            "target_return=-80",
        ]
        .map(String::from);
        let (c, unread) = RunConfig::load_with(Some(&path), &sets).unwrap();
        assert_eq!(c.seed, 3);
        assert_eq!(c.ppo.learning_rate, 3e-4);
        assert_eq!(c.env_id, "Acrobot-v1");
        assert_eq!(c.model.hidden, vec![32, 32]);
        assert_eq!(c.target_return, Some(-80.0));
        assert!(unread.is_empty());

        let err = RunConfig::load_with(None, &["ppo.lerning_rate=1".into()]).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `lerning_rate`"),
            "{err}"
        );
        let err = RunConfig::load_with(None, &["seed".into()]).unwrap_err();
        assert!(err.to_string().contains("expected KEY=VALUE"), "{err}");
        let err = RunConfig::load_with(None, &["seed.x=1".into()]).unwrap_err();
        assert!(err.to_string().contains("`seed` is not a section"), "{err}");
    }

    #[test]
    fn another_algorithms_section_is_reported_as_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "algorithm = \"dqn\"\n[ppo]\ngamma = 0.9\nclip_coef = 0.3\n[dqn]\ntau = 1.0\n",
        )
        .unwrap();
        let (_, unread) = RunConfig::load_with(Some(&path), &[]).unwrap();
        assert_eq!(unread, vec!["ppo.clip_coef".to_string()]);
    }

    #[test]
    fn type_errors_use_plain_words() {
        let err = RunConfig::parse("num_envs = -1\n", Path::new("c.toml")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("expected a whole number ≥ 0"), "{text}");
        assert!(!text.contains("usize"), "{text}");
    }
}
