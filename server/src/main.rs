//! `kefu`: reads the command line and the settings, sets up logging, and runs the server or a
//! one-off command against the configured storage.

use clap::Parser;
use kefu_server::assistant::BotConfig;
use kefu_server::cli::{Cli, Command, SiteAction, TokenAction, UserAction};
use kefu_server::config::Settings;
use kefu_server::storage::{NewAgent, Role};
use kefu_server::{auth, launch, open_storage, shutdown_signal};
use tracing_subscriber::EnvFilter;

// Many threads allocate and free small buffers per message; glibc's malloc spends far more
// time on that (arena locks, consolidation) than mimalloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    // First, while no thread uses SQLite (its contract); a failure is logged when the
    // database opens.
    let _ = sqlite_pcache::install();
    if let Err(e) = run().await {
        eprintln!("kefu: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("KEFU_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_sessions=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            tracing::info!(storage = ?settings.storage, "starting");
            let listener = tokio::net::TcpListener::bind(settings.server.listen)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.server.listen))?;
            launch(listener, settings, shutdown_signal()).await
        }
        Command::User {
            action:
                UserAction::Add {
                    email,
                    password,
                    name,
                    role,
                },
        } => {
            anyhow::ensure!(
                email.contains('@') && email.len() <= 254,
                "--email {email:?} is not an email address"
            );
            anyhow::ensure!(
                password.chars().count() >= 8,
                "--password must be at least 8 characters"
            );
            let storage = open_storage(&settings).await?;
            let hash =
                tokio::task::spawn_blocking(move || auth::hash_password(&password)).await??;
            let email = email.trim().to_lowercase();
            let agent = storage
                .create_agent(NewAgent {
                    name: name.unwrap_or_else(|| email.split('@').next().unwrap_or("").to_owned()),
                    email,
                    password_hash: hash,
                    role: Role::parse(&role).unwrap_or(Role::Agent),
                })
                .await?;
            println!("{}", agent.id);
            Ok(())
        }
        Command::Site {
            action:
                SiteAction::Bot {
                    key,
                    enable,
                    disable,
                    packs,
                    welcome,
                    name,
                    threshold,
                },
        } => {
            let storage = open_storage(&settings).await?;
            let site = storage
                .site_by_key(&key)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no site with site_key {key}"))?;
            let current = BotConfig::parse(&site.bot);
            let mut next = current.clone();
            if enable || disable {
                next.enabled = enable;
            }
            if let Some(p) = packs {
                next.packs = p
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            if let Some(w) = welcome {
                next.welcome = w;
            }
            if let Some(n) = name {
                next.name = n;
            }
            if let Some(t) = threshold {
                next.threshold = t;
            }
            let next = current
                .merge_update(next)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            storage
                .set_site_bot(&site.id, &serde_json::to_string(&next)?)
                .await?;
            println!("{}", serde_json::to_string_pretty(&next.redacted())?);
            Ok(())
        }
        Command::Site {
            action: SiteAction::Add { name, origins },
        } => {
            for o in &origins {
                anyhow::ensure!(
                    valid_origin(o),
                    "--origin {o:?} must look like https://shop.example (scheme and host, no path)"
                );
            }
            let origins: Vec<String> = origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect();
            let storage = open_storage(&settings).await?;
            let site = storage.create_site(&name, &origins).await?;
            println!("{}", site.site_key);
            Ok(())
        }
        Command::Bot { action } => kefu_server::bot::eval::run(&settings.bot, action).await,
        Command::Token {
            action: TokenAction::Create { email },
        } => {
            let storage = open_storage(&settings).await?;
            let agent = storage
                .agent_by_email(&email.trim().to_lowercase())
                .await?
                .ok_or_else(|| anyhow::anyhow!("no agent with email {email}"))?;
            let token = auth::new_api_token();
            storage
                .create_api_token(&agent.id, &auth::token_hash(&token))
                .await?;
            println!("{token}");
            Ok(())
        }
    }
}

/// `scheme://host[:port]`, nothing more.
fn valid_origin(origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    match origin.split_once("://") {
        Some(("http" | "https", host)) => {
            !host.is_empty() && !host.contains(['/', ' ', '?', '#', '@'])
        }
        _ => false,
    }
}
