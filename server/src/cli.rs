//! The command line (protocol section 5).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "kefu",
    version,
    about = "Kefu: self-hosted live customer service"
)]
pub struct Cli {
    /// YAML config file (default: ./kefu.yaml if present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage agents.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Manage sites (the websites that embed the widget).
    Site {
        #[command(subcommand)]
        action: SiteAction,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserAction {
    /// Add an agent or admin.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "agent", value_parser = ["admin", "agent"])]
        role: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum SiteAction {
    /// Add a site; prints its site_key.
    Add {
        #[arg(long)]
        name: String,
        /// An origin allowed to embed the widget, e.g. https://shop.example (repeatable).
        #[arg(long = "origin")]
        origins: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenAction {
    /// Create an API token for an agent; prints it (it is stored only as a hash).
    Create {
        #[arg(long)]
        email: String,
    },
}
