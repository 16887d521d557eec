//! The shared token every rpc carries, and TLS file settings, for both ends.
//!
//! The learner refuses any request whose `authorization` metadata is not `Bearer <token>`
//! (compared in constant time). The token comes from the `SHOAL_TOKEN` environment variable or
//! from a file (`--token-file`, `SHOAL_TOKEN_FILE`: Docker and Kubernetes secrets are files).
//! It never appears in logs: [`Token`]'s `Debug` is redacted.

use std::path::{Path, PathBuf};

use thiserror::Error;
use tonic::metadata::MetadataValue;

/// The environment variable holding the token itself.
pub const TOKEN_ENV: &str = "SHOAL_TOKEN";
/// The environment variable naming a file that holds the token.
pub const TOKEN_FILE_ENV: &str = "SHOAL_TOKEN_FILE";

/// Shortest token accepted: a guessable token protects nothing.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a token or TLS file could not be used.
#[derive(Debug, Error)]
pub enum SecurityError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The token is unusable.
    #[error(
        "the shared token is unusable: {0} (it must be at least {MIN_TOKEN_LEN} visible ASCII \
         characters; `shoal token` prints a fresh one)"
    )]
    BadToken(&'static str),
}

/// The shared secret. Its `Debug` form never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// 32 bytes from the operating system's random source (tokens, the learner's actor-id key).
pub fn random_bytes() -> std::io::Result<[u8; 32]> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Token {
    /// Checks `value` (surrounding whitespace, such as a file's final newline, is dropped).
    pub fn new(value: &str) -> Result<Self, SecurityError> {
        let value = value.trim();
        if value.len() < MIN_TOKEN_LEN {
            return Err(SecurityError::BadToken("too short"));
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SecurityError::BadToken(
                "only visible ASCII characters can travel as gRPC metadata",
            ));
        }
        Ok(Self(value.to_string()))
    }

    /// 32 random bytes from the operating system, hex-encoded.
    pub fn generate() -> std::io::Result<Self> {
        Ok(Self(hex(&random_bytes()?)))
    }

    /// The token from `file` if given, else from `SHOAL_TOKEN_FILE`, else from `SHOAL_TOKEN`;
    /// `None` when none is set.
    pub fn from_file_or_env(file: Option<&Path>) -> Result<Option<Self>, SecurityError> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os(TOKEN_FILE_ENV).map(PathBuf::from));
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path).map_err(|source| SecurityError::Read {
                what: "token file",
                path,
                source,
            })?;
            return Self::new(&text).map(Some);
        }
        match std::env::var(TOKEN_ENV) {
            Ok(value) if !value.trim().is_empty() => Self::new(&value).map(Some),
            _ => Ok(None),
        }
    }

    /// The value, for handing to a child process (never log it).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `authorization` metadata value a client sends.
    pub fn bearer(&self) -> MetadataValue<tonic::metadata::Ascii> {
        format!("Bearer {}", self.0)
            .parse()
            .expect("checked: visible ASCII")
    }

    /// Whether an `authorization` header value carries this token. Constant time in the
    /// token's content (only the lengths may be learned from timing).
    pub fn accepts(&self, header: &[u8]) -> bool {
        let Some(given) = header.strip_prefix(b"Bearer ") else {
            return false;
        };
        constant_time_eq(given, self.0.as_bytes())
    }
}

/// Equality whose running time depends on the lengths only, not on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Reads a PEM file for TLS.
pub fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Adds the bearer token to every request of a client.
#[derive(Clone, Debug)]
pub struct BearerAuth(Option<Token>);

impl BearerAuth {
    /// Sends `token` with every request (`None`: sends nothing, for learners run without a token).
    pub fn new(token: Option<Token>) -> Self {
        Self(token)
    }
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            req.metadata_mut().insert("authorization", token.bearer());
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_compared_and_never_printed() {
        assert!(Token::new("short").is_err());
        assert!(Token::new("has a space in the middle").is_err());
        let t = Token::new("  0123456789abcdef\n").unwrap();
        assert_eq!(t.expose(), "0123456789abcdef");
        assert!(t.accepts(b"Bearer 0123456789abcdef"));
        assert!(!t.accepts(b"Bearer 0123456789abcdeF"));
        assert!(!t.accepts(b"Bearer 0123456789abcde"));
        assert!(!t.accepts(b"0123456789abcdef"));
        assert!(!format!("{t:?}").contains("0123"));
        let g = Token::generate().unwrap();
        assert_eq!(g.expose().len(), 64);
        assert_ne!(g, Token::generate().unwrap());
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
