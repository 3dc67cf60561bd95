//! Kefu's server.
//!
//! ```text
//! visitor tab ─ws/long-poll─▶ gateway ─▶ hub ─▶ storage::writer (group commit, seq) ─▶ ack
//!                                              └▶ hub fan-out ─▶ agent consoles, other tabs
//! ```
//! - [`gateway`]: transports. WebSocket sessions and long-polling; decodes frames,
//!   authenticates, rate-limits; knows nothing of SQL.
//! - [`hub`]: the rules. Who may post where, which conversation a message opens, round-robin
//!   assignment, presence, and fan-out of each committed message (serialized once) into the
//!   bounded queues of the connections that may see it. Knows nothing of sockets.
//! - [`storage`]: durability and order behind the `Storage` trait (SQLite today); every append
//!   goes through one group-commit writer, which hands committed messages to the hub in commit
//!   order before anyone is acked.
//! - [`http`]: the REST API, agent login, the Leptos pages (`app` crate), static files.
//! - [`bot`]: answers visitors first from question-and-answer packs (retrieval, webhook or
//!   LLM engine) and hands over to a person when unsure; `kefu bot ask|eval|stats`.
//! - [`config`], [`auth`], [`cli`]: settings, credentials, the command line.
//!
//! The in-process fan-out of the hub is where a cluster bus (Redis) will plug in: it is the one
//! thing that changes between one node and many.

#![forbid(unsafe_code)]

pub mod assistant;
pub mod auth;
pub mod bot;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod http;
pub mod hub;
pub mod sessions;
pub mod storage;
pub mod useragent;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_sessions::SessionManagerLayer;

use crate::auth::{LoginThrottle, VisitorTokens};
use crate::config::Settings;
use crate::hub::Hub;
use crate::sessions::DynSessionStore;
use crate::storage::{NewAgent, Role, Storage};

/// The one application state every handler gets: one shared allocation, so that holding it
/// (every connection does) costs a pointer.
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

pub struct AppInner {
    pub hub: Arc<Hub>,
    pub settings: Arc<Settings>,
    pub tokens: Arc<VisitorTokens>,
    pub logins: Arc<LoginThrottle>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    pub leptos: LeptosOptions,
    pub sessions: SessionManagerLayer<DynSessionStore>,
    /// Open WebSockets and waiting long-polls, against `protocols.websocket.max_conn`.
    pub conns: Arc<gateway::ConnLimit>,
    /// New visitors per client address (`limits.new_visitors_per_sec`).
    pub new_visitors: hub::KeyedLimiter,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// Opens storage (creating and migrating it) as the CLI and the server both need.
pub async fn open_storage(settings: &Settings) -> anyhow::Result<Arc<dyn Storage>> {
    storage::connect(&settings.storage).await
}

fn leptos_options(settings: &Settings, addr: SocketAddr) -> LeptosOptions {
    let site_root = settings
        .server
        .site_root
        .clone()
        .map(|p| p.to_string_lossy().into_owned())
        .or_else(|| std::env::var("LEPTOS_SITE_ROOT").ok())
        .unwrap_or_else(|| "target/site".into());
    LeptosOptions::builder()
        .output_name("kefu")
        .site_root(site_root)
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .hash_files(http::hashed_build())
        .build()
}

/// What a first start with an empty database created.
pub struct FirstRun {
    pub admin_email: String,
    pub admin_password: String,
    pub site_key: String,
}

/// Creates the first admin and the default site when the database has none.
pub async fn bootstrap(
    storage: &Arc<dyn Storage>,
    settings: &Settings,
) -> anyhow::Result<Option<FirstRun>> {
    if settings.bootstrap.disabled || storage.agent_count().await? > 0 {
        return Ok(None);
    }
    let password = auth::generate_password();
    let hash = {
        let p = password.clone();
        tokio::task::spawn_blocking(move || auth::hash_password(&p)).await??
    };
    storage
        .create_agent(NewAgent {
            email: settings.bootstrap.admin_email.to_lowercase(),
            name: "Admin".into(),
            password_hash: hash,
            role: Role::Admin,
        })
        .await?;
    let site = match storage.sites().await?.into_iter().next() {
        Some(site) => site,
        None => storage.create_site("My website", &[]).await?,
    };
    Ok(Some(FirstRun {
        admin_email: settings.bootstrap.admin_email.to_lowercase(),
        admin_password: password,
        site_key: site.site_key,
    }))
}

/// Runs the server on `listener` until `shutdown` resolves, then closes connections with a
/// going-away code, commits what is queued and returns.
pub async fn launch(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let storage = open_storage(&settings).await?;
    if let Some(first) = bootstrap(&storage, &settings).await? {
        let url = settings.public_url(addr.port());
        println!();
        println!("  Kefu is set up. Sign in at {url}/console");
        println!("    email:    {}", first.admin_email);
        println!(
            "    password: {}   (shown once; change it after signing in)",
            first.admin_password
        );
        println!("  Paste this on your website to show the chat widget:");
        println!(
            "    <script src=\"{url}/widget.js\" data-site=\"{}\" async></script>",
            first.site_key
        );
        println!("  Try it on the demo shop: {url}/demo");
        println!();
    }
    let key = storage
        .secret("visitor_token_key", auth::random_hex(32).into_bytes())
        .await?;
    let sessions = sessions::layer(&settings, &storage).await?;
    let assistant = Arc::new(assistant::Assistant::new(settings.bot.clone()));
    let hub = Hub::new(
        storage,
        assistant,
        settings.limits.clone(),
        &settings.storage,
    );
    let token = CancellationToken::new();
    let state = AppState(Arc::new(AppInner {
        hub: hub.clone(),
        tokens: Arc::new(VisitorTokens::new(key)),
        logins: Arc::new(LoginThrottle::default()),
        shutdown: token.clone(),
        tasks: TaskTracker::new(),
        leptos: leptos_options(&settings, addr),
        sessions,
        conns: gateway::ConnLimit::new(settings.protocols.websocket.max_conn),
        new_visitors: hub::KeyedLimiter::new(
            settings.limits.new_visitors_per_sec,
            settings.limits.new_visitor_burst,
        ),
        settings: Arc::new(settings),
    }));
    let tasks = state.tasks.clone();
    let app = http::router(state);
    tracing::info!(%addr, "kefu listening");

    let signal = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: closing connections");
        signal.cancel();
    });
    // Small frames must not wait for Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(token.clone().cancelled_owned())
    .await?;
    tasks.close();
    if tokio::time::timeout(Duration::from_secs(10), tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within 10 s");
    }
    hub.flush().await;
    tracing::info!("stopped; everything acknowledged is committed");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C. On Unix the handlers are installed when this is called, not
/// when the future is first polled: a SIGTERM that arrives right after start-up (a process
/// manager stopping a service it just started) is a graceful stop, not the default signal death.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        tokio::select! {
            _ = received(term.as_mut()) => {},
            _ = received(int.as_mut()) => {},
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Resolves when `signal` is delivered; never when its handler could not be installed.
#[cfg(unix)]
async fn received(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
