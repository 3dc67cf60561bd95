//! `bench`: Kefu's benchmark tool.
//!
//! ```text
//! bench suite ─┬─ target::Target::start ── taskset -c 0 ── kefu serve (fresh SQLite) | bench relay
//!              ├─ idle::run ──────── taskset -c 1 ── bench idle-worker ×3 (127.0.0.2..4) ── N sockets
//!              ├─ load::sweep ────── load::run per offered rate (5k … 40k msg/s)
//!              ├─ load::run ──────── taskset -c 1 ── bench load-worker  (visitors + agents, open loop)
//!              ├─ widget::weigh ──── gzip sizes of the built widget assets
//!              └─ report ─────────── `name: value` lines, ratios to the relay, a row in docs/BENCHMARKS.md
//! ```
//! - [`target`]: starts what is measured, pinned to one core: the release `kefu` on a fresh
//!   database (site, admins and API tokens made with its CLI, visitor sessions over HTTP), or the
//!   bare in-memory [`relay`] that speaks the same frames with no auth, storage or bot.
//! - [`idle`]: many idle visitor connections, spread over generator processes and source
//!   addresses (one process may hold at most 20,000 files); server RSS per connection.
//! - [`load`]: visitors send on a fixed schedule (open loop), agents receive; every message is
//!   timed from its scheduled send to the agent's receipt and to the visitor's ack, and every
//!   acked message is checked to arrive exactly once at each agent connection.
//! - [`sysinfo`]: `/proc` readings (RSS, CPU ticks), pinning, machine and commit.
//!
//! The hidden subcommands `relay`, `idle-worker` and `load-worker` are what the orchestrating
//! process runs in its children; they talk to it by lines on stdin/stdout.

#![forbid(unsafe_code)]

mod client;
mod idle;
mod load;
mod relay;
mod report;
mod sysinfo;
mod target;
mod widget;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "Kefu benchmark: idle memory, throughput, latency sweep, widget weight"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Everything at standard sizes (idle, throughput, sweep, widget), against kefu and the relay;
    /// appends a row to docs/BENCHMARKS.md.
    Suite(SuiteArgs),
    /// Idle connections: server memory per connection and connect rate.
    Idle(IdleArgs),
    /// Visitors send at an offered rate to agents; delivered rate, latency, delivery check.
    Throughput(ThroughputArgs),
    /// Offered load stepped up: the highest rate whose p99 stays under 20 ms.
    Sweep(SweepArgs),
    /// The bare relay (run by the suite in a pinned child process).
    #[command(hide = true)]
    Relay {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// Holds idle visitor connections (run by the suite).
    #[command(hide = true)]
    IdleWorker(idle::WorkerArgs),
    /// Drives visitors and agents for one load run (run by the suite).
    #[command(hide = true)]
    LoadWorker(load::WorkerArgs),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Which {
    Kefu,
    Relay,
    Both,
}

impl Which {
    fn kinds(self) -> Vec<target::Kind> {
        match self {
            Which::Kefu => vec![target::Kind::Kefu],
            Which::Relay => vec![target::Kind::Relay],
            Which::Both => vec![target::Kind::Kefu, target::Kind::Relay],
        }
    }
}

/// Options every orchestrating subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// What to measure: the product, the bare relay, or both (ratios need both).
    #[arg(long, value_enum, default_value = "both")]
    target: Which,
    /// A prebuilt server binary; otherwise `cargo build --release -p server` is run first.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The workspace root (for building, the widget assets and docs/BENCHMARKS.md).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/.."))]
    root: PathBuf,
    /// Do not pin the server and the generator to different cores.
    #[arg(long)]
    no_pin: bool,
    /// Keep the temporary directories (databases, server logs).
    #[arg(long)]
    keep: bool,
    /// Admin connections receiving messages. Every admin connection receives every message,
    /// so each message is delivered (and checked) once per agent connection.
    #[arg(long, default_value_t = 1)]
    agents: usize,
    /// Visitors sending in the throughput and sweep runs.
    #[arg(long, default_value_t = 2000)]
    visitors: usize,
    /// Extra environment for the kefu server, e.g. `KEFU__STORAGE__SQLITE_SYNCHRONOUS=normal`
    /// (repeatable; for experiments: the standard suite runs with the defaults).
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    server_env: Vec<String>,
    /// Bytes of each message body.
    #[arg(long, default_value_t = 64)]
    body_bytes: usize,
}

#[derive(Args, Debug, Clone)]
pub struct IdleOpts {
    /// Idle visitor connections to open.
    #[arg(long, default_value_t = 19_000)]
    conns: usize,
    /// Generator processes holding them (each under the per-process open-file limit).
    #[arg(long, default_value_t = 3)]
    workers: usize,
}

#[derive(Args, Debug, Clone)]
struct SuiteArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    idle: IdleOpts,
    /// Offered rate of the throughput run (msg/s); above what one generator core can send, so
    /// the delivered rate shows the limit of the server or of the generator (see generator_cpu_pct).
    #[arg(long, default_value_t = 50_000)]
    rate: u64,
    /// Seconds of the throughput run.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Offered rates of the sweep (msg/s).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5000,10000,20000,30000,40000"
    )]
    rates: Vec<u64>,
    /// Seconds of each sweep step.
    #[arg(long, default_value_t = 10)]
    step_secs: u64,
    /// Do not append a row to docs/BENCHMARKS.md.
    #[arg(long)]
    no_record: bool,
}

#[derive(Args, Debug, Clone)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    idle: IdleOpts,
}

#[derive(Args, Debug, Clone)]
struct ThroughputArgs {
    #[command(flatten)]
    common: Common,
    /// Offered rate (msg/s over all visitors).
    #[arg(long, default_value_t = 20_000)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    secs: u64,
}

#[derive(Args, Debug, Clone)]
struct SweepArgs {
    #[command(flatten)]
    common: Common,
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "5000,10000,20000,30000,40000"
    )]
    rates: Vec<u64>,
    #[arg(long, default_value_t = 10)]
    step_secs: u64,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        // The workers are pinned by `taskset` to one core; a single-threaded runtime is what
        // one core runs best.
        Command::IdleWorker(a) => current_thread().block_on(idle::worker(a)),
        Command::LoadWorker(a) => current_thread().block_on(load::worker(a)),
        // The relay runs like the server: tokio's multi-threaded runtime, on the core it is
        // pinned to (one worker thread there).
        Command::Relay { listen } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(relay::run(listen)),
        Command::Suite(a) => orchestrate(&a.common.clone(), Plan::Suite(a)),
        Command::Idle(a) => orchestrate(&a.common.clone(), Plan::Idle(a)),
        Command::Throughput(a) => orchestrate(&a.common.clone(), Plan::Throughput(a)),
        Command::Sweep(a) => orchestrate(&a.common.clone(), Plan::Sweep(a)),
    };
    if let Err(e) = result {
        eprintln!("bench: {e:#}");
        std::process::exit(1);
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

enum Plan {
    Suite(SuiteArgs),
    Idle(IdleArgs),
    Throughput(ThroughputArgs),
    Sweep(SweepArgs),
}

/// Pins this process to the generator core before any thread exists (so the runtime's threads
/// inherit it), then runs the plan.
fn orchestrate(common: &Common, plan: Plan) -> anyhow::Result<()> {
    let pin = !common.no_pin && sysinfo::has_taskset();
    if pin {
        sysinfo::pin_self(load::GENERATOR_CPU)?;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run_plan(common, plan, pin))
}

/// Prints how long the console's conversation list takes on the data the load left behind,
/// once the server has finished the load's backlog. A secondary figure: a failure to read it
/// is reported and the run goes on.
async fn console_list(
    t: &mut target::Target,
    env: &target::Env,
    out: &mut report::Report,
) -> anyhow::Result<()> {
    if t.kind == target::Kind::Relay {
        return Ok(());
    }
    t.wait_quiet(env.clk_tck).await?;
    match t.console_list_ms().await {
        Ok((ms, shown)) => {
            out.line("console_list_ms", format!("{ms:.2}"));
            out.note(format!(
                "console_list_ms: median of 21 requests for the agent's list of {shown} \
                 conversations (newest activity first, with unread counts, visitors and last \
                 messages)"
            ));
        }
        Err(e) => out.note(format!("console_list_ms: not measured: {e:#}")),
    }
    Ok(())
}

async fn run_plan(common: &Common, plan: Plan, pin: bool) -> anyhow::Result<()> {
    let root = std::fs::canonicalize(&common.root)?;
    let mut out = report::Report;
    if pin {
        out.line(
            "pinning",
            format!(
                "server=cpu{} generator=cpu{}",
                target::SERVER_CPU,
                load::GENERATOR_CPU
            ),
        );
    } else {
        out.line("pinning", "none (taskset missing or --no-pin)");
    }
    out.note(format!("machine: {}", sysinfo::machine()));
    let env = target::Env::prepare(common, &root, pin).await?;
    let load_at_start = sysinfo::load_average();

    let suite = matches!(plan, Plan::Suite(_));
    let mut figures: Vec<(target::Kind, report::Figures)> = Vec::new();
    for kind in common.target.kinds() {
        let mut f = report::Figures::default();
        out.note(format!(
            "{kind}: load average of the machine before starting: {}",
            sysinfo::load_average()
        ));
        let mut t = target::Target::start(kind, &env, common.agents).await?;
        f.rss_idle_mb = Some(t.rss_kb()? as f64 / 1024.0);
        out.fig(kind, "server_rss_idle_mb", f.rss_idle_mb, 1);
        let res = async {
            match &plan {
                Plan::Suite(a) => {
                    let i = idle::run(&mut t, &env, &a.idle).await?;
                    i.report(kind, &mut out, &mut f);
                    // The sweep before the overload run, which leaves the most data behind.
                    load::sweep(
                        &mut t,
                        &env,
                        common,
                        &a.rates,
                        a.step_secs,
                        kind,
                        &mut out,
                        &mut f,
                    )
                    .await?;
                    let l = load::run(&mut t, &env, common, a.rate, a.secs, 0).await?;
                    l.report(kind, "throughput", &mut out, &mut f);
                    console_list(&mut t, &env, &mut out).await?;
                }
                Plan::Idle(a) => {
                    let i = idle::run(&mut t, &env, &a.idle).await?;
                    i.report(kind, &mut out, &mut f);
                }
                Plan::Throughput(a) => {
                    let l = load::run(&mut t, &env, common, a.rate, a.secs, 0).await?;
                    l.report(kind, "throughput", &mut out, &mut f);
                    console_list(&mut t, &env, &mut out).await?;
                }
                Plan::Sweep(a) => {
                    load::sweep(
                        &mut t,
                        &env,
                        common,
                        &a.rates,
                        a.step_secs,
                        kind,
                        &mut out,
                        &mut f,
                    )
                    .await?;
                }
            }
            anyhow::Ok(())
        }
        .await;
        let warnings = t.stop().await;
        if !warnings.is_empty() {
            out.note(format!(
                "{kind}: {} warning/error lines in the server log, first: {}",
                warnings.len(),
                warnings[0]
            ));
        }
        res?;
        if f.max_delivered_msgs_per_s.is_some() {
            out.fig(
                kind,
                "max_delivered_msgs_per_s",
                f.max_delivered_msgs_per_s,
                0,
            );
        }
        figures.push((kind, f));
    }
    out.ratios(&figures);

    if suite {
        let w = widget::weigh(&root);
        w.report(&mut out);
        if let Plan::Suite(a) = &plan {
            let kefu = figures
                .iter()
                .find(|(k, _)| *k == target::Kind::Kefu)
                .map(|(_, f)| f);
            let relay = figures
                .iter()
                .find(|(k, _)| *k == target::Kind::Relay)
                .map(|(_, f)| f);
            if a.no_record {
                out.note("not recorded (--no-record)");
            } else if let Some(kefu) = kefu {
                let sizes = format!(
                    "{} idle conns, {} visitors / {} agent(s), {} s runs; load avg at start {}",
                    a.idle.conns, common.visitors, common.agents, a.step_secs, load_at_start
                );
                let path = report::append_row(&root, kefu, relay, &w, &sizes)?;
                out.note(format!("row appended to {}", path.display()));
            }
        }
    }
    env.cleanup();
    Ok(())
}

/// A loopback source address for generator sockets: 127.0.0.`n` (n ≥ 2).
pub fn loopback(n: usize) -> IpAddr {
    IpAddr::from([127, 0, 0, (2 + n % 250) as u8])
}
