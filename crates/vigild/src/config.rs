//! `vigild`'s configuration: a TOML file (`<data-dir>/vigild.toml`, or
//! `--config FILE`), every option optional, each overridable by the
//! command line. `docs/vigild.example.toml` documents every option with its
//! default; a test checks that it parses to exactly [`Config::default`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The default port of the HTTP API.
pub const DEFAULT_API_PORT: u16 = 9737;
/// The default Lightning port.
pub const DEFAULT_LISTEN_PORT: u16 = 9735;

/// Everything `vigild` can be told.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The network; only `regtest` today.
    pub network: String,
    /// Where peers connect.
    pub listen: SocketAddr,
    /// Where the HTTP API listens (keep it on loopback).
    pub api_bind: SocketAddr,
    /// The chain: `embedded` (the default), or the URL of a bitcoind's
    /// JSON-RPC (`rpc://127.0.0.1:18443` or `http://…`), which may be
    /// another `vigild`'s embedded chain.
    pub chain: String,
    /// The cookie file of that bitcoind (`chain` other than `embedded`).
    pub chain_cookie: Option<PathBuf>,
    /// A user of that bitcoind, instead of the cookie.
    pub chain_user: Option<String>,
    /// The password of `chain_user`.
    pub chain_password: Option<String>,
    /// Where the embedded chain's bitcoind-compatible RPC listens.
    pub rpc_bind: SocketAddr,
    /// A fixed user of that RPC, besides its cookie.
    pub rpc_user: Option<String>,
    /// The password of `rpc_user`.
    pub rpc_password: Option<String>,
    /// How often the node follows the chain and hands out events, in ms.
    pub poll_interval_ms: u64,
    /// Whether channels opened through the API use zero-fee-HTTP anchors
    /// unless the request says otherwise.
    pub anchors: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            network: "regtest".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_LISTEN_PORT)),
            api_bind: SocketAddr::from(([127, 0, 0, 1], DEFAULT_API_PORT)),
            chain: "embedded".into(),
            chain_cookie: None,
            chain_user: None,
            chain_password: None,
            rpc_bind: SocketAddr::from(([127, 0, 0, 1], vigil_chain::rpc::DEFAULT_RPC_PORT)),
            rpc_user: None,
            rpc_password: None,
            poll_interval_ms: 100,
            anchors: false,
        }
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid (unknown option, wrong type).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the option's name and line.
        message: String,
    },
    /// A value is impossible.
    #[error("{field}: {reason}")]
    Invalid {
        /// The option.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

/// The chain the node follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainSetting {
    /// The embedded regtest chain.
    Embedded,
    /// A bitcoind's JSON-RPC at this `http://` URL.
    Rpc(String),
}

impl Config {
    /// Reads `path`. A missing file is the defaults when `required` is
    /// false (the default path); an explicit `--config` must exist.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Read`] or [`ConfigError::Parse`].
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(Self::default()),
            Err(source) => return Err(ConfigError::Read { path: path.to_path_buf(), source }),
        };
        Self::parse(&text).map_err(|message| ConfigError::Parse { path: path.to_path_buf(), message })
    }

    /// Parses a configuration file's text.
    ///
    /// # Errors
    ///
    /// The parser's message, naming the option and line.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim().to_string())
    }

    /// The chain setting, checked.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] for anything but `embedded` or an
    /// `rpc://`/`http://` URL.
    pub fn chain_setting(&self) -> Result<ChainSetting, ConfigError> {
        let chain = self.chain.trim();
        if chain == "embedded" {
            return Ok(ChainSetting::Embedded);
        }
        let rest = chain.strip_prefix("rpc://").or_else(|| chain.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() => Ok(ChainSetting::Rpc(format!("http://{host}"))),
            _ => Err(ConfigError::Invalid {
                field: "chain",
                reason: format!("`{chain}` is neither `embedded` nor `rpc://host:port`"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_is_exactly_the_defaults() {
        let text = include_str!("../../../docs/vigild.example.toml");
        assert_eq!(Config::parse(text).expect("the example parses"), Config::default());
        // Every option is in the example, uncommented by removing "# ".
        let uncommented: String = text
            .lines()
            .map(|l| {
                let option = l.strip_prefix("# ").filter(|rest| {
                    rest.split_once(" = ")
                        .is_some_and(|(key, _)| key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
                });
                option.unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let parsed = Config::parse(&uncommented).expect("the uncommented example parses");
        assert_eq!(parsed.chain_user.as_deref(), Some("alice"));
        assert_eq!(parsed.rpc_user.as_deref(), Some("vigil"));
    }

    #[test]
    fn unknown_options_and_bad_values_are_named() {
        let err = Config::parse("listen_port = 3").expect_err("unknown");
        assert!(err.contains("listen_port"), "{err}");
        let err = Config::parse("listen = \"nowhere\"").expect_err("bad address");
        assert!(err.contains("listen"), "{err}");
        let bad = Config { chain: "ftp://x".into(), ..Config::default() };
        assert!(matches!(bad.chain_setting(), Err(ConfigError::Invalid { field: "chain", .. })));
        let rpc = Config { chain: "rpc://127.0.0.1:18443".into(), ..Config::default() };
        assert_eq!(rpc.chain_setting().expect("ok"), ChainSetting::Rpc("http://127.0.0.1:18443".into()));
    }
}
