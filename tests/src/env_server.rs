//! A dm_env_rpc server process for the tests: `shoal env-server` or the Gymnasium bridge.

use std::process::Stdio;

use crate::{repo_root, shoal_exe, venv_python};

/// A dm_env_rpc server process on `127.0.0.1:0` (killed when dropped) and the address it
/// printed: `shoal env-server`, or the Gymnasium bridge (`bridge/gymnasium_server.py`).
pub struct EnvServer {
    child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub address: String,
}

impl EnvServer {
    /// Starts `shoal env-server`.
    ///
    /// # Panics
    /// When it does not start or prints no address.
    pub fn start() -> Self {
        let mut cmd = std::process::Command::new(shoal_exe());
        cmd.args(["env-server", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn");
        Self::spawn(cmd)
    }

    /// Starts the Gymnasium bridge with the tests' venv; `None` without the venv.
    ///
    /// # Panics
    /// When it does not start or prints no address.
    pub fn gymnasium_bridge() -> Option<Self> {
        let mut cmd = std::process::Command::new(venv_python()?);
        cmd.arg(repo_root().join("bridge/gymnasium_server.py"))
            .args(["--listen", "127.0.0.1:0"]);
        Some(Self::spawn(cmd))
    }

    fn spawn(mut cmd: std::process::Command) -> Self {
        use std::io::BufRead;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the environment server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the server's first line");
        let address = line
            .trim()
            .rsplit(' ')
            .next()
            .expect("an address")
            .to_string();
        assert!(address.contains(':'), "no address in {line:?}");
        Self { child, address }
    }

    /// The run `env_id` of environment `id` served here: `dm_env_rpc://ADDRESS?env=ID`.
    pub fn url(&self, id: &str) -> String {
        format!("dm_env_rpc://{}?env={id}", self.address)
    }
}

impl Drop for EnvServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
