//! Agent login sessions (tower-sessions), stored in the same database as everything else so
//! that a restart does not sign agents out.

use std::sync::Arc;

use async_trait::async_trait;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use crate::config::Settings;
use crate::storage::Storage;

/// Any session store, behind one type so the layer's type does not depend on the backend.
#[derive(Clone, Debug)]
pub struct DynSessionStore(Arc<dyn SessionStore>);

#[async_trait]
impl SessionStore for DynSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.0.create(record).await
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.0.save(record).await
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.0.load(id).await
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.0.delete(id).await
    }
}

pub async fn layer(
    settings: &Settings,
    _storage: &Arc<dyn Storage>,
) -> anyhow::Result<SessionManagerLayer<DynSessionStore>> {
    let url = &settings.storage.url;
    let store: Arc<dyn SessionStore> = if url.starts_with("sqlite:") {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
        use std::str::FromStr;
        let options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        let store = tower_sessions_sqlx_store::SqliteStore::new(pool);
        store.migrate().await?;
        Arc::new(store)
    } else {
        anyhow::bail!("no session store for {}", crate::config::redact_url(url))
    };
    let secure = settings
        .server
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    Ok(SessionManagerLayer::new(DynSessionStore(store))
        .with_name("kefu_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(14))))
}
