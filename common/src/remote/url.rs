//! A served environment's URL, `dm_env_rpc://HOST:PORT?SETTING=VALUE&...`: where the server
//! is, and the settings every world is created with.

use std::collections::{BTreeMap, HashMap};

use crate::env_rpc_proto::dm_env_rpc::v1::Tensor;

use super::{MAX_SETTINGS, RemoteError, SEED_SETTING, tensor};

/// The URL scheme of a served environment.
pub const SCHEME: &str = "dm_env_rpc://";

/// A served environment as a run names it: where, and the settings each world is created with.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteEnv {
    /// `host:port`.
    pub address: String,
    /// World settings from the URL's query, in order.
    pub settings: BTreeMap<String, Setting>,
}

/// A world setting's value, typed by how it reads: an integer, a real number, `true`/`false`,
/// or else a string.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    /// Sent as `INT64`.
    Int(i64),
    /// Sent as `DOUBLE`.
    Real(f64),
    /// Sent as `BOOL`.
    Bool(bool),
    /// Sent as `STRING`.
    Text(String),
}

impl Setting {
    fn parse(text: &str) -> Self {
        if let Ok(i) = text.parse::<i64>() {
            Setting::Int(i)
        } else if let Ok(x) = text.parse::<f64>() {
            Setting::Real(x)
        } else if let Ok(b) = text.parse::<bool>() {
            Setting::Bool(b)
        } else {
            Setting::Text(text.to_string())
        }
    }

    pub(crate) fn to_tensor(&self) -> Tensor {
        use crate::env_rpc_proto::dm_env_rpc::v1::tensor as t;
        let payload = match self {
            Setting::Int(i) => t::Payload::Int64s(t::Int64Array { array: vec![*i] }),
            Setting::Real(x) => t::Payload::Doubles(t::DoubleArray { array: vec![*x] }),
            Setting::Bool(b) => t::Payload::Bools(t::BoolArray { array: vec![*b] }),
            Setting::Text(s) => return tensor::string(s),
        };
        Tensor {
            payload: Some(payload),
            shape: Vec::new(),
        }
    }
}

/// Whether `id` names a served environment rather than a registered one.
pub fn is_remote(id: &str) -> bool {
    id.starts_with(SCHEME)
}

impl RemoteEnv {
    /// Parses `dm_env_rpc://HOST:PORT[?NAME=VALUE&...]` (values are not percent-decoded: world
    /// settings are ids and numbers). `seed` is refused: every world gets its copy's own seed.
    pub fn parse(url: &str) -> Result<Self, RemoteError> {
        let bad = |why: &str| RemoteError::Url {
            url: crate::text::bounded(url),
            why: why.to_string(),
        };
        let rest = url
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("it must start with dm_env_rpc://"))?;
        let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| bad("the address needs a port: dm_env_rpc://HOST:PORT"))?;
        if host.is_empty() || host.contains('/') || port.parse::<u16>().is_err() {
            return Err(bad("expected dm_env_rpc://HOST:PORT"));
        }
        let mut settings = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| bad("each setting is NAME=VALUE"))?;
            if name.is_empty() {
                return Err(bad("a setting without a name"));
            }
            if name == SEED_SETTING {
                return Err(bad(
                    "`seed` is set per world from the run's seed; remove it from the URL",
                ));
            }
            if settings
                .insert(name.to_string(), Setting::parse(value))
                .is_some()
            {
                return Err(bad("a setting is given twice"));
            }
        }
        if settings.len() > MAX_SETTINGS {
            return Err(bad("too many settings"));
        }
        Ok(Self {
            address: address.to_string(),
            settings,
        })
    }

    /// The settings world `copy` is created with: the URL's, and its seed.
    pub(crate) fn world_settings(&self, seed: u64) -> HashMap<String, Tensor> {
        let mut settings: HashMap<String, Tensor> = self
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), v.to_tensor()))
            .collect();
        // The seed travels as the bits of the u64, read back as INT64 (negative above 2⁶³).
        settings.insert(
            SEED_SETTING.to_string(),
            Setting::Int(seed as i64).to_tensor(),
        );
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_server_and_the_world_settings() {
        let env =
            RemoteEnv::parse("dm_env_rpc://127.0.0.1:7000?env=Catch-v0&frame_stack=2").unwrap();
        assert_eq!(env.address, "127.0.0.1:7000");
        assert_eq!(
            env.settings.get("env"),
            Some(&Setting::Text("Catch-v0".into()))
        );
        assert_eq!(env.settings.get("frame_stack"), Some(&Setting::Int(2)));
        assert_eq!(Setting::parse("0.5"), Setting::Real(0.5));
        assert_eq!(Setting::parse("true"), Setting::Bool(true));
        assert!(is_remote("dm_env_rpc://h:1") && !is_remote("CartPole-v1"));
        let plain = RemoteEnv::parse("dm_env_rpc://envs.local:50051").unwrap();
        assert!(plain.settings.is_empty());
        let settings = plain.world_settings(u64::MAX);
        assert_eq!(
            tensor::as_integer(&settings[SEED_SETTING]),
            Some(-1),
            "the seed's bits"
        );
        for bad in [
            "http://127.0.0.1:7000",
            "dm_env_rpc://127.0.0.1",
            "dm_env_rpc://:7000",
            "dm_env_rpc://h:7000?seed=3",
            "dm_env_rpc://h:7000?env",
            "dm_env_rpc://h:7000?a=1&a=2",
            "dm_env_rpc://h:99999",
        ] {
            assert!(RemoteEnv::parse(bad).is_err(), "{bad}");
        }
    }
}
