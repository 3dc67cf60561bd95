//! Settings: defaults, then an optional YAML file, then `KEFU__SECTION__KEY` environment variables.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub bus: BusSettings,
    pub protocols: Protocols,
    pub limits: Limits,
    pub bootstrap: Bootstrap,
    /// The bot: engine, packs, threshold, hand-over words, webhook and LLM endpoints.
    pub bot: crate::bot::BotSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// The address browsers use to reach this server; used in the embed snippet.
    /// Defaults to `http://localhost:<port>`.
    pub public_url: Option<String>,
    /// Where the built site (wasm, JS, CSS, public/) is; default `target/site` or `LEPTOS_SITE_ROOT`.
    pub site_root: Option<PathBuf>,
}

#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct StorageSettings {
    pub url: String,
    /// `full` (default): a commit survives power loss. `normal`: survives a crash of the process.
    pub sqlite_synchronous: String,
    /// Most messages committed in one transaction (group commit).
    pub max_batch: usize,
    /// When more than one message is waiting for a commit, wait this long (µs) for more to
    /// join it: fewer, larger commits under load; a message arriving alone commits at once.
    pub commit_delay_us: u64,
    /// SQLite: page cache of the writing connection (MiB; SQLite's own default is about 2).
    /// It fills only as pages are used, so a server at rest does not hold it. Each message
    /// writes into a random page of the idempotency index: once that index outgrows the cache,
    /// every commit reads pages back from the operating system (docs/BENCHMARKS.md: 32 instead
    /// of 2 delivered 4-15 % more past capacity on a database of a few hundred thousand
    /// messages).
    pub sqlite_cache_mib: u32,
    /// SQLite: how often committed pages are copied from the write-ahead log into the database
    /// (ms, at least 10). A page rewritten many times in between is copied once; but what is
    /// left uncopied when the log is restarted holds up the commits behind it, which is most of
    /// the 99th percentile under load. docs/BENCHMARKS.md: 50 instead of 200 brought p99 at
    /// 10,000 msg/s from 33-35 to 18-25 ms, but past capacity on a grown database delivered
    /// about 7 % less; 200 stays the default, 50 suits a server that runs well below capacity.
    pub checkpoint_interval_ms: u64,
    /// SQLite: wrap its default page cache so that a commit does not scan the writer's whole
    /// cache for pages to drop when there are none (the `sqlite-pcache` crate says why;
    /// docs/BENCHMARKS.md has the figures). `false` passes every truncate on, as SQLite's own
    /// cache does. One switch for the whole process: the last database opened sets it.
    pub sqlite_lean_truncate: bool,
}

impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSettings")
            .field("url", &redact_url(&self.url))
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field("max_batch", &self.max_batch)
            .field("commit_delay_us", &self.commit_delay_us)
            .field("sqlite_cache_mib", &self.sqlite_cache_mib)
            .field("checkpoint_interval_ms", &self.checkpoint_interval_ms)
            .field("sqlite_lean_truncate", &self.sqlite_lean_truncate)
            .finish()
    }
}

/// Hides the password of a `scheme://user:password@host/…` URL.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((cred, host)) = rest.split_once('@')
        && let Some((user, _)) = cred.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct BusSettings {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Protocols {
    pub websocket: WebSocketSettings,
    pub long_polling: LongPollingSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WebSocketSettings {
    pub max_conn: usize,
    pub heartbeat_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LongPollingSettings {
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Frames above this size are refused with `too_large`; the connection stays open.
    pub max_frame_bytes: usize,
    /// Frames above this size close the connection (the socket will not read them).
    pub hard_frame_bytes: usize,
    /// Largest HTTP request body.
    pub max_body_bytes: usize,
    /// Largest file a bot QA import (`POST /api/v1/sites/{id}/qa/import`) may send: pack
    /// language files are around a megabyte, above `max_body_bytes`.
    pub import_max_bytes: usize,
    /// Messages a visitor may send per second, over all tabs and transports, and the burst.
    pub visitor_msgs_per_sec: f64,
    pub visitor_burst: f64,
    /// New visitors (widget sessions without a valid token) one client address may create per
    /// second, and the burst: each is a row in the database, and the endpoint needs no login.
    pub new_visitors_per_sec: f64,
    pub new_visitor_burst: f64,
    /// Frames of any kind one connection may send per second, and the burst.
    pub conn_frames_per_sec: f64,
    pub conn_frame_burst: f64,
    /// Events queued for one connection before it counts as a slow consumer and is closed.
    pub conn_queue: usize,
    /// Bytes each WebSocket keeps for reading frames. Idle connections hold it, so it is most
    /// of their memory; larger frames still arrive whole (the buffer grows while one is read).
    pub ws_read_buffer_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Bootstrap {
    /// Email of the admin created on the first start with an empty database.
    pub admin_email: String,
    /// Skip creating the first admin and site (tests create their own).
    pub disabled: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8848".parse().expect("valid default address"),
            public_url: None,
            site_root: None,
        }
    }
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://data/kefu.db".into(),
            sqlite_synchronous: "full".into(),
            max_batch: 512,
            commit_delay_us: 1000,
            sqlite_cache_mib: 32,
            checkpoint_interval_ms: 200,
            sqlite_lean_truncate: true,
        }
    }
}

impl Default for BusSettings {
    fn default() -> Self {
        Self {
            url: "memory://".into(),
        }
    }
}

impl Default for WebSocketSettings {
    fn default() -> Self {
        Self {
            max_conn: 100_000,
            heartbeat_ms: 25_000,
        }
    }
}

impl Default for LongPollingSettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 32 * 1024,
            hard_frame_bytes: 256 * 1024,
            max_body_bytes: 64 * 1024,
            import_max_bytes: 8 * 1024 * 1024,
            visitor_msgs_per_sec: 5.0,
            visitor_burst: 20.0,
            new_visitors_per_sec: 1.0,
            new_visitor_burst: 60.0,
            conn_frames_per_sec: 50.0,
            conn_frame_burst: 100.0,
            conn_queue: 512,
            ws_read_buffer_bytes: 2 * 1024,
        }
    }
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self {
            admin_email: "admin@kefu.local".into(),
            disabled: false,
        }
    }
}

impl Settings {
    /// Loads settings: `file` if given (it must exist), else `./kefu.yaml` if present, then the
    /// `KEFU__…` environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut builder = config::Config::builder();
        match file {
            Some(path) => {
                anyhow::ensure!(
                    path.exists(),
                    "config file {} does not exist",
                    path.display()
                );
                builder = builder.add_source(config::File::from(path));
            }
            None if Path::new("kefu.yaml").exists() => {
                builder = builder.add_source(config::File::with_name("kefu.yaml"));
            }
            None => {}
        }
        builder = builder.add_source(
            config::Environment::with_prefix("KEFU")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        let settings: Settings = builder
            .build()?
            .try_deserialize()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        Ok(settings)
    }

    pub fn public_url(&self, port: u16) -> String {
        self.server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://localhost:{port}"))
            .trim_end_matches('/')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_database_passwords() {
        assert_eq!(
            redact_url("postgres://kefu:s3cret@db:5432/kefu"),
            "postgres://kefu:***@db:5432/kefu"
        );
        assert_eq!(redact_url("sqlite://data/kefu.db"), "sqlite://data/kefu.db");
        let s = StorageSettings {
            url: "postgres://u:pw@h/d".into(),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("pw@"));
    }

    #[test]
    fn yaml_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.yaml");
        std::fs::write(
            &path,
            "server:\n  listen: \"127.0.0.1:9000\"\nstorage:\n  url: \"sqlite://x.db\"\n",
        )
        .unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(s.server.listen.port(), 9000);
        assert_eq!(s.storage.url, "sqlite://x.db");
        assert_eq!(s.protocols.websocket.heartbeat_ms, 25_000);
        assert!(Settings::load(Some(&dir.path().join("missing.yaml"))).is_err());
    }
}
