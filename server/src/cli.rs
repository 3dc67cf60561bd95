//! The command line (protocol section 5).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Try, evaluate and inspect the bot (no server or database needed).
    Bot {
        #[command(subcommand)]
        action: BotAction,
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
    /// Configure a site's bot (what the admin UI does), e.g.
    /// `kefu site bot --key site_… --enable --packs ecommerce,general`.
    Bot {
        /// The site's site_key.
        #[arg(long)]
        key: String,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        /// Built-in packs to answer from, comma-separated (all when empty).
        #[arg(long)]
        packs: Option<String>,
        #[arg(long)]
        welcome: Option<String>,
        /// The name visitors see on the bot's messages.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        threshold: Option<f32>,
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

#[derive(Subcommand, Debug)]
pub enum BotAction {
    /// Ask one question; prints {"intent", "confidence", "entities", "answer", "handoff"}.
    Ask {
        #[command(flatten)]
        corpus: CorpusArgs,
        question: String,
    },
    /// Run evaluation files (JSONL lines {"question", "expect"}); prints one result per line,
    /// then questions, in_scope, out_of_scope, accuracy, handoff_accuracy and p99_ms.
    Eval {
        #[command(flatten)]
        corpus: CorpusArgs,
        /// Add the scores of the two best pairs to each line.
        #[arg(long)]
        verbose: bool,
        /// Scoring knobs as JSON (see `bot::retrieval::Tuning`), for tuning experiments.
        #[arg(long, hide = true)]
        tune: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Count the packs, pairs, questions, topics and languages loaded.
    Stats {
        #[command(flatten)]
        corpus: CorpusArgs,
    },
}

/// Which packs the bot loads (default: the `bot` settings, i.e. all built-in packs).
#[derive(Args, Debug, Clone, Default)]
pub struct CorpusArgs {
    /// Load packs from this folder instead of the built-in ones.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Only these packs, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub packs: Vec<String>,
    /// Confidence below which the bot hands over (default 0.5).
    #[arg(long)]
    pub threshold: Option<f32>,
}
