//! Idle connections: N visitors connect and sit there, as widgets on open pages do. The server's
//! resident memory is read before they connect and once every one of them has had its `hello`
//! and an answer to a heartbeat `ping` (so each connection has done the work a real idle one
//! does); the difference divided by N is the memory an idle connection costs.
//!
//! One process may hold at most 20,000 open files here, and the server needs one per
//! connection, so the client side is split over several generator processes, each binding its
//! sockets to its own 127.0.0.x source address.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::client::{self, Kind as FrameKind, Ws};
use crate::report::{Figures, Report};
use crate::target::{Env, Kind, Target};
use crate::{IdleOpts, load::GENERATOR_CPU};

/// Heartbeat of idle connections: the server closes connections silent for about 60 s.
const PING_EVERY: Duration = Duration::from_secs(20);

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[arg(long)]
    server: SocketAddr,
    /// File of visitor tokens, one a line.
    #[arg(long)]
    tokens: PathBuf,
    #[arg(long, default_value_t = 0)]
    skip: usize,
    #[arg(long)]
    count: usize,
    #[arg(long)]
    source_ip: IpAddr,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
}

/// `bench idle-worker`: opens `count` visitor connections, prints
/// `CONNECTED <ok> <failed> <seconds> <own CPU ticks>` once each has its hello and a pong, holds them (pinging)
/// until stdin closes, then prints `DROPPED <n>` (connections the server closed meanwhile).
pub async fn worker(a: WorkerArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.tokens)?;
    let tokens: Vec<String> = text
        .lines()
        .skip(a.skip)
        .take(a.count)
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(
        tokens.len() == a.count,
        "not enough tokens in {}",
        a.tokens.display()
    );
    let dropped = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<(), String>>();
    let sem = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let started = Instant::now();
    let spawner = {
        let dropped = dropped.clone();
        async move {
            for token in tokens {
                let permit = sem.clone().acquire_owned().await.expect("semaphore open");
                let tx = tx.clone();
                let dropped = dropped.clone();
                tokio::spawn(async move {
                    let opened = open(a.server, a.source_ip, &token).await;
                    drop(permit);
                    match opened {
                        Ok(ws) => {
                            let _ = tx.send(Ok(()));
                            hold(ws, &dropped).await;
                        }
                        Err(e) => {
                            let _ = tx.send(Err(format!("{e:#}")));
                        }
                    }
                });
            }
        }
    };
    tokio::spawn(spawner);
    let (mut ok, mut failed, mut first_err) = (0usize, 0usize, None);
    while ok + failed < a.count {
        match rx.recv().await {
            Some(Ok(())) => ok += 1,
            Some(Err(e)) => {
                failed += 1;
                first_err.get_or_insert(e);
            }
            None => break,
        }
    }
    let secs = started.elapsed().as_secs_f64();
    if let Some(e) = first_err {
        println!("ERROR {e}");
    }
    let ticks = crate::sysinfo::cpu_ticks("self").unwrap_or(0);
    println!("CONNECTED {ok} {failed} {secs:.3} {ticks}");
    // Hold until the orchestrator closes our stdin.
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(_)) = stdin.next_line().await {}
    println!("DROPPED {}", dropped.load(Ordering::Relaxed));
    std::process::exit(0);
}

/// Connects one visitor and waits for its `hello`, then for the `pong` to one `ping`.
async fn open(server: SocketAddr, source: IpAddr, token: &str) -> anyhow::Result<Ws> {
    let work = async {
        let mut ws = client::connect(
            server,
            Some(source),
            &format!("/ws/visitor?token={token}"),
            None,
            client::idle_config(),
        )
        .await?;
        wait_for(&mut ws, FrameKind::Hello).await?;
        ws.send(WsMessage::text(r#"{"type":"ping"}"#)).await?;
        wait_for(&mut ws, FrameKind::Pong).await?;
        anyhow::Ok(ws)
    };
    tokio::time::timeout(Duration::from_secs(60), work)
        .await
        .context("no hello and pong within 60 s")?
}

async fn wait_for(ws: &mut Ws, kind: FrameKind) -> anyhow::Result<()> {
    loop {
        match ws.next().await {
            Some(Ok(WsMessage::Text(t))) => {
                let k = client::kind(&t);
                if k == kind {
                    return Ok(());
                }
                if k == FrameKind::Error {
                    bail!("server error: {}", t.as_str());
                }
            }
            Some(Ok(WsMessage::Close(c))) => bail!("closed by the server: {c:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection ended"),
        }
    }
}

/// Keeps a connection open with a heartbeat until the server closes it.
async fn hold(mut ws: Ws, dropped: &AtomicU64) {
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = beat.tick() => {
                if ws.send(WsMessage::text(r#"{"type":"ping"}"#)).await.is_err() {
                    break;
                }
            }
        }
    }
    dropped.fetch_add(1, Ordering::Relaxed);
}

pub struct IdleResult {
    conns: usize,
    failed: usize,
    secs: f64,
    rss_before_kb: u64,
    rss_after_kb: u64,
    dropped: u64,
    workers: usize,
    /// CPU seconds the server spent while the connections were being opened.
    server_cpu_s: f64,
    /// CPU seconds of the generator processes (process start to all connected).
    generator_cpu_s: f64,
    /// CPU used meanwhile by everything else on the machine (% of one core).
    other_cpu_pct: f64,
}

/// Runs the idle scenario against `t`.
pub async fn run(t: &mut Target, env: &Env, o: &IdleOpts) -> anyhow::Result<IdleResult> {
    let tokens = t.visitors_file(o.conns).await?;
    t.wait_quiet(env.clk_tck).await?;
    let rss_before_kb = t.rss_kb()?;
    let cpu0 = t.cpu_ticks()?;
    // The workers' ticks are not subtracted here (they report their own): measured below.
    let busy0 = crate::sysinfo::machine_busy_ticks()?;
    let me0 = crate::sysinfo::cpu_ticks("self")?;
    let wall0 = Instant::now();
    let workers = o.workers.max(1);
    let mut children = Vec::new();
    let mut skip = 0;
    for w in 0..workers {
        let count = o.conns / workers + usize::from(w < o.conns % workers);
        let mut c = env.command(GENERATOR_CPU, &env.bench_bin);
        c.arg("idle-worker")
            .args(["--server", &t.addr.to_string()])
            .arg("--tokens")
            .arg(&tokens)
            .args(["--skip", &skip.to_string(), "--count", &count.to_string()])
            .args(["--source-ip", &crate::loopback(w).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        skip += count;
        let mut child = c.spawn().context("starting an idle worker")?;
        let lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
        children.push((child, lines));
    }
    let (mut conns, mut failed, mut secs, mut gen_ticks) = (0, 0, 0f64, 0u64);
    for (_, lines) in &mut children {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(300), lines.next_line())
                .await
                .context("an idle worker took over 300 s")??
                .context("an idle worker ended early")?;
            if let Some(e) = line.strip_prefix("ERROR ") {
                eprintln!("# idle worker: first failure: {e}");
            } else if let Some(rest) = line.strip_prefix("CONNECTED ") {
                let v: Vec<&str> = rest.split_whitespace().collect();
                conns += v[0].parse::<usize>()?;
                failed += v[1].parse::<usize>()?;
                secs = secs.max(v[2].parse::<f64>()?);
                gen_ticks += v[3].parse::<u64>()?;
                break;
            }
        }
    }
    let cpu1 = t.cpu_ticks()?;
    let busy1 = crate::sysinfo::machine_busy_ticks()?;
    let me1 = crate::sysinfo::cpu_ticks("self")?;
    let other_ticks = (busy1 - busy0)
        .saturating_sub(cpu1 - cpu0)
        .saturating_sub(gen_ticks)
        .saturating_sub(me1 - me0);
    let other_cpu_pct =
        other_ticks as f64 / env.clk_tck as f64 / wall0.elapsed().as_secs_f64() * 100.0;
    t.check_alive()?;
    let rss_after_kb = t.rss_kb()?;
    let mut dropped = 0;
    for (mut child, mut lines) in children {
        drop(child.stdin.take());
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await
        {
            if let Some(n) = line.strip_prefix("DROPPED ") {
                dropped += n.trim().parse::<u64>().unwrap_or(0);
            }
        }
        let _ = child.wait().await;
    }
    Ok(IdleResult {
        conns,
        failed,
        secs,
        rss_before_kb,
        rss_after_kb,
        dropped,
        workers,
        server_cpu_s: (cpu1 - cpu0) as f64 / env.clk_tck as f64,
        generator_cpu_s: gen_ticks as f64 / env.clk_tck as f64,
        other_cpu_pct,
    })
}

impl IdleResult {
    pub fn report(&self, kind: Kind, out: &mut Report, f: &mut Figures) {
        let per_conn = if self.conns > 0 {
            Some(self.rss_after_kb.saturating_sub(self.rss_before_kb) as f64 / self.conns as f64)
        } else {
            None
        };
        let rate = (self.secs > 0.0).then(|| self.conns as f64 / self.secs);
        f.idle_kb_per_conn = per_conn;
        f.idle_connect_per_s = rate;
        f.idle_conns = self.conns;
        out.note(format!(
            "{kind} idle: {} connections over {} generator processes, RSS {:.1} MiB before, {:.1} MiB after",
            self.conns,
            self.workers,
            self.rss_before_kb as f64 / 1024.0,
            self.rss_after_kb as f64 / 1024.0
        ));
        out.fig(kind, "idle_conns", Some(self.conns as f64), 0);
        out.fig(kind, "idle_conns_failed", Some(self.failed as f64), 0);
        out.fig(
            kind,
            "idle_conns_dropped_while_held",
            Some(self.dropped as f64),
            0,
        );
        out.fig(kind, "idle_kb_per_conn", per_conn, 2);
        out.fig(kind, "idle_connect_per_s", rate, 0);
        let per_connect = (self.conns > 0).then(|| self.server_cpu_s * 1e6 / self.conns as f64);
        out.fig(kind, "idle_server_cpu_us_per_connect", per_connect, 0);
        let gen_pct = (self.secs > 0.0).then(|| self.generator_cpu_s / self.secs * 100.0);
        out.fig(kind, "idle_generator_cpu_pct", gen_pct, 0);
        out.fig(kind, "idle_other_cpu_pct", Some(self.other_cpu_pct), 0);
    }
}
