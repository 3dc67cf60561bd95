//! Throughput and latency: V visitors send on a fixed schedule to A agent connections.
//!
//! Open loop: message `k` of visitor `v` is due at `t0 + (k·V + v)/R` seconds, so the whole
//! stream is evenly spaced at the offered rate `R` whatever the server does. Each message is
//! timed from when it was *due*, not from when it was written, so a stalled server shows up as
//! latency instead of as a slower sender (no coordinated omission). A visitor keeps at most
//! `window` messages unacknowledged; a message that falls due while its visitor's window is full
//! is sent as soon as the window opens, late, and its lateness counts in its latency. Messages
//! still unsent when the run ends are reported as `unsent`.
//!
//! Every message is checked: its id names the run, the visitor and `k`, so each agent
//! connection counts what it receives; at the end every acked message must have arrived exactly
//! once at every agent connection, and no message that was not acked may have arrived.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::Common;
use crate::client::{self, Kind as FrameKind, Ws};
use crate::report::{Figures, Report};
use crate::target::{Env, Kind, Target};

pub const GENERATOR_CPU: usize = 1;
const PING_EVERY: Duration = Duration::from_secs(20);
/// The p99 the sweep holds the server to, and the rate whose p99 it reports.
pub const P99_LIMIT_MS: f64 = 20.0;
pub const REFERENCE_RATE: u64 = 20_000;

#[derive(Args, Debug)]
pub struct WorkerArgs {
    #[arg(long)]
    server: SocketAddr,
    /// Visitor tokens, one a line.
    #[arg(long)]
    tokens: PathBuf,
    /// Agent API tokens, one a line (one connection each).
    #[arg(long)]
    agents: PathBuf,
    #[arg(long)]
    visitors: usize,
    /// Offered messages per second over all visitors.
    #[arg(long)]
    rate: u64,
    #[arg(long)]
    secs: f64,
    #[arg(long)]
    source_ip: IpAddr,
    #[arg(long, default_value_t = 64)]
    body_bytes: usize,
    /// Most unacknowledged messages per visitor.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// How long after the last due message to wait for acks and deliveries.
    #[arg(long, default_value_t = 20.0)]
    drain_secs: f64,
}

/// Latency percentiles, in milliseconds.
#[derive(Serialize, Deserialize, Debug, Default, Clone)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// What one load run measured (the worker's `RESULT` line).
#[derive(Serialize, Deserialize, Debug, Default, Clone)]
pub struct LoadResult {
    pub rate: u64,
    pub secs: f64,
    pub visitors: usize,
    pub agents: usize,
    /// Messages due within the run.
    pub offered: u64,
    pub sent: u64,
    pub acked: u64,
    /// Due but never written (the visitor's window stayed full).
    pub unsent: u64,
    /// Sent but not acked when the run ended.
    pub unacked_at_end: u64,
    /// Acked messages that reached every agent connection.
    pub delivered: u64,
    /// Agent receipts of timed messages, over all agent connections.
    pub deliveries: u64,
    /// Acked, but missing at some agent connection (counted per connection).
    pub lost: u64,
    /// Extra copies at an agent connection.
    pub duplicated: u64,
    /// Received by an agent although refused with an error frame, or never sent.
    pub unacked_delivered: u64,
    /// Sent, its ack not yet read when the visitors stopped reading, and received by an agent:
    /// committed while in flight at the end of the run (the server answers the sender after it
    /// hands the message to the agents). Not a fault.
    #[serde(default)]
    pub in_flight_delivered: u64,
    pub error_frames: u64,
    pub first_error: Option<String>,
    pub connections_lost: u64,
    /// Delivered messages per second, from the first due time to the last receipt.
    pub msgs_per_s: f64,
    /// Due to agent receipt.
    pub latency: Percentiles,
    /// Due to the sender's ack.
    pub ack_latency: Percentiles,
    /// Due to the write on the socket (the generator's own lateness, part of both above).
    pub send_lag: Percentiles,
    pub generator_cpu_pct: f64,
    /// Filled in by the orchestrator, which sees the server process.
    #[serde(default)]
    pub server_cpu_us_per_msg: Option<f64>,
    /// The same split between SQLite's threads and the rest (tokio's workers).
    #[serde(default)]
    pub server_sqlite_cpu_us_per_msg: Option<f64>,
    #[serde(default)]
    pub server_other_cpu_us_per_msg: Option<f64>,
    /// Bytes the server wrote to disk over the run (log, checkpoints) / messages delivered.
    #[serde(default)]
    pub server_disk_write_bytes_per_msg: Option<f64>,
    /// CPU used meanwhile by everything but the server and the generator (% of one core).
    #[serde(default)]
    pub other_cpu_pct: Option<f64>,
}

/// State the worker's tasks share. The worker runs on one thread, so the locks are never
/// contended.
struct Shared {
    run: String,
    visitors: u64,
    rate: u64,
    t0: OnceLock<Instant>,
    end: OnceLock<Instant>,
    body: String,
    window: usize,
    sent: AtomicU64,
    acked: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    lost_conns: AtomicU64,
    warm_acked: AtomicU64,
    /// Per agent connection: warm-up messages and timed messages received.
    agent_warm: Vec<AtomicU64>,
    agent_timed: Vec<AtomicU64>,
    ack_hist: Mutex<Histogram<u64>>,
    /// How late each message was written after it fell due (timer granularity, a busy
    /// generator core, or a full window).
    lag_hist: Mutex<Histogram<u64>>,
    stop: watch::Receiver<bool>,
    started: AtomicBool,
}

impl Shared {
    /// When message `k` of visitor `v` is due.
    fn due(&self, v: u64, k: u64) -> Instant {
        let t0 = *self.t0.get().expect("t0 is set before sending");
        let g = u128::from(k * self.visitors + v);
        t0 + Duration::from_nanos((g * 1_000_000_000 / u128::from(self.rate)) as u64)
    }

    /// Messages of visitor `v` due before `secs` have passed.
    fn offered(&self, v: u64, secs: f64) -> u64 {
        let total = (self.rate as f64 * secs).ceil() as u64; // g < total
        if total > v {
            (total - v).div_ceil(self.visitors)
        } else {
            0
        }
    }

    /// `(visitor, k)` of a timed message id of this run; `None` for warm-ups and other ids.
    fn parse(&self, id: &str) -> Option<(u64, u64)> {
        let rest = id.strip_prefix(self.run.as_str())?.strip_prefix('-')?;
        let (v, k) = rest.split_once('-')?;
        Some((v.parse().ok()?, k.parse().ok()?))
    }

    fn is_warmup(&self, id: &str) -> bool {
        id.strip_prefix(self.run.as_str())
            .is_some_and(|r| r.starts_with("-w"))
    }

    fn error(&self, text: &str) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.first_error.lock() {
            e.get_or_insert_with(|| text.chars().take(300).collect());
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn elapsed_us(since: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(since).as_micros() as u64
}

/// `bench load-worker`: connects the agents and visitors, warms up (each visitor's first
/// message opens its conversation), prints `READY`, waits for `GO` on stdin, runs, prints `DONE`
/// once everything is acked and delivered (or the drain time is up), then `RESULT <json>`.
pub async fn worker(a: WorkerArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.rate > 0 && a.visitors > 0,
        "--rate and --visitors must be positive"
    );
    let agent_tokens: Vec<String> = std::fs::read_to_string(&a.agents)?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let visitor_tokens: Vec<String> = std::fs::read_to_string(&a.tokens)?
        .lines()
        .take(a.visitors)
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(
        visitor_tokens.len() == a.visitors,
        "not enough visitor tokens"
    );
    let n_agents = agent_tokens.len();
    let run = {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        format!(
            "{:x}",
            (nanos as u64 ^ u64::from(std::process::id())) & 0xffff_ffff
        )
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        run,
        visitors: a.visitors as u64,
        rate: a.rate,
        t0: OnceLock::new(),
        end: OnceLock::new(),
        body: "x".repeat(a.body_bytes.max(1)),
        window: a.window.max(1),
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        lost_conns: AtomicU64::new(0),
        warm_acked: AtomicU64::new(0),
        agent_warm: (0..n_agents).map(|_| AtomicU64::new(0)).collect(),
        agent_timed: (0..n_agents).map(|_| AtomicU64::new(0)).collect(),
        ack_hist: Mutex::new(histogram()),
        lag_hist: Mutex::new(histogram()),
        stop: stop_rx,
        started: AtomicBool::new(false),
    });

    // Agents first, so that they see every message.
    let mut agents = JoinSet::new();
    for (i, token) in agent_tokens.iter().enumerate() {
        let mut ws = client::connect(
            a.server,
            Some(a.source_ip),
            "/ws/agent",
            Some(token),
            client::load_config(256 * 1024),
        )
        .await
        .context("connecting an agent")?;
        wait_hello(&mut ws).await.context("agent hello")?;
        agents.spawn(agent(ws, i, shared.clone()));
    }

    // Visitors, 128 handshakes at a time.
    let sem = Arc::new(Semaphore::new(128));
    let mut connecting = JoinSet::new();
    for (v, token) in visitor_tokens.into_iter().enumerate() {
        let sem = sem.clone();
        let (server, ip) = (a.server, a.source_ip);
        connecting.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            let mut ws = client::connect(
                server,
                Some(ip),
                &format!("/ws/visitor?token={token}"),
                None,
                client::load_config(16 * 1024),
            )
            .await?;
            wait_hello(&mut ws).await?;
            anyhow::Ok((v, ws))
        });
    }
    let mut visitors: Vec<Option<Ws>> = (0..a.visitors).map(|_| None).collect();
    while let Some(r) = connecting.join_next().await {
        let (v, ws) = r?.context("connecting a visitor")?;
        visitors[v] = Some(ws);
    }
    let mut visitors: Vec<Ws> = visitors
        .into_iter()
        .map(|w| w.expect("connected"))
        .collect();

    // Warm-up: one message each, acked, and seen by every agent.
    let warm = futures_util::future::join_all(visitors.iter_mut().enumerate().map(|(v, ws)| {
        let shared = shared.clone();
        async move {
            let frame = format!(
                r#"{{"type":"send","client_msg_id":"{}-w{v}","body":"warm-up"}}"#,
                shared.run
            );
            ws.send(WsMessage::text(frame)).await?;
            loop {
                match ws.next().await {
                    Some(Ok(WsMessage::Text(t))) => match client::kind(&t) {
                        FrameKind::Ack => {
                            shared.warm_acked.fetch_add(1, Ordering::Relaxed);
                            return anyhow::Ok(());
                        }
                        FrameKind::Error => bail!("warm-up refused: {}", t.as_str()),
                        _ => {}
                    },
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                    None => bail!("visitor connection closed during warm-up"),
                }
            }
        }
    }));
    for r in tokio::time::timeout(Duration::from_secs(120), warm)
        .await
        .context("warm-up acks took over 120 s")?
    {
        r?;
    }
    let warm_deadline = Instant::now() + Duration::from_secs(60);
    while shared
        .agent_warm
        .iter()
        .any(|c| c.load(Ordering::Relaxed) < a.visitors as u64)
    {
        anyhow::ensure!(
            Instant::now() < warm_deadline,
            "agents did not receive every warm-up message within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    println!("READY");
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    loop {
        match stdin.next_line().await? {
            Some(l) if l.trim() == "GO" => break,
            Some(_) => {}
            None => bail!("stdin closed before GO"),
        }
    }

    let clk = crate::sysinfo::clk_tck() as f64;
    let cpu0 = crate::sysinfo::cpu_ticks("self")?;
    let wall0 = Instant::now();
    let t0 = Instant::now() + Duration::from_millis(20);
    let end = t0 + Duration::from_secs_f64(a.secs);
    shared.t0.set(t0).expect("t0 set once");
    shared.end.set(end).expect("end set once");
    shared.started.store(true, Ordering::Release);
    let mut senders = JoinSet::new();
    for (v, ws) in visitors.into_iter().enumerate() {
        senders.spawn(visitor(ws, v as u64, shared.clone()));
    }
    let drain_deadline = end + Duration::from_secs_f64(a.drain_secs);
    let mut outs = Vec::with_capacity(a.visitors);
    loop {
        tokio::select! {
            r = senders.join_next() => match r {
                Some(r) => outs.push(r?),
                None => break,
            },
            _ = tokio::time::sleep_until(drain_deadline) => {
                let _ = stop_tx.send(true);
                while let Some(r) = senders.join_next().await {
                    outs.push(r?);
                }
                break;
            }
        }
    }
    // Then wait until every agent connection has had every acked message: past capacity the
    // agents' queues can be seconds behind the acks, so wait for as long as deliveries still
    // arrive. The receipts counted here include messages whose ack was still in flight when
    // the visitors stopped, so reaching the acked total is not enough: deliveries must also
    // have paused for half a second. A message counts as lost only once they have stopped
    // for five seconds.
    let acked_total = shared.acked.load(Ordering::Relaxed);
    let delivered_now = || {
        shared
            .agent_timed
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect::<Vec<_>>()
    };
    let mut seen = delivered_now();
    let mut progress_at = Instant::now();
    loop {
        let quiet = progress_at.elapsed();
        let all_there = seen.iter().all(|&c| c >= acked_total);
        if (all_there && quiet >= Duration::from_millis(500))
            || quiet >= Duration::from_secs(5)
            || wall0.elapsed() >= Duration::from_secs_f64(a.secs + a.drain_secs + 120.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = delivered_now();
        if now != seen {
            seen = now;
            progress_at = Instant::now();
        }
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu1 = crate::sysinfo::cpu_ticks("self")?;
    println!("DONE");
    let _ = stop_tx.send(true);
    let mut agent_outs = Vec::new();
    while let Some(r) = agents.join_next().await {
        agent_outs.push(r?);
    }
    agent_outs.sort_by_key(|o| o.index);

    // Tally.
    let mut r = LoadResult {
        rate: a.rate,
        secs: a.secs,
        visitors: a.visitors,
        agents: n_agents,
        error_frames: shared.errors.load(Ordering::Relaxed),
        first_error: shared.first_error.lock().ok().and_then(|e| e.clone()),
        connections_lost: shared.lost_conns.load(Ordering::Relaxed),
        generator_cpu_pct: (cpu1 - cpu0) as f64 / clk / wall * 100.0,
        ..Default::default()
    };
    outs.sort_by_key(|o| o.v);
    let mut latency = histogram();
    for ag in &agent_outs {
        latency.add(&ag.hist).expect("same histogram bounds");
        r.deliveries += ag
            .counts
            .iter()
            .flatten()
            .map(|&c| u64::from(c))
            .sum::<u64>();
    }
    for o in &outs {
        let offered = shared.offered(o.v, a.secs);
        r.offered += offered;
        r.sent += o.sent;
        r.unsent += offered.saturating_sub(o.sent);
        let len = (o.sent as usize).max(o.acked.len());
        let longest = agent_outs
            .iter()
            .map(|ag| ag.counts.get(o.v as usize).map_or(0, Vec::len))
            .max()
            .unwrap_or(0);
        for k in 0..len.max(longest) {
            let acked = o.acked.get(k).copied().unwrap_or(false);
            // Sent, neither acked nor refused as far as the visitor read.
            let in_flight =
                !acked && k < o.sent as usize && !o.refused.get(k).copied().unwrap_or(false);
            let mut everywhere = true;
            for ag in &agent_outs {
                let c = ag
                    .counts
                    .get(o.v as usize)
                    .and_then(|c| c.get(k))
                    .copied()
                    .map_or(0, u64::from);
                if acked {
                    if c == 0 {
                        r.lost += 1;
                        everywhere = false;
                    }
                    r.duplicated += c.saturating_sub(1);
                } else if in_flight {
                    r.in_flight_delivered += c.min(1);
                    r.duplicated += c.saturating_sub(1);
                } else {
                    r.unacked_delivered += c;
                }
            }
            if acked {
                r.acked += 1;
                if everywhere {
                    r.delivered += 1;
                }
            } else if k < o.sent as usize {
                r.unacked_at_end += 1;
            }
        }
    }
    let last = agent_outs.iter().filter_map(|ag| ag.last).max();
    if let Some(last) = last {
        let window = last.saturating_duration_since(t0).as_secs_f64();
        if window > 0.0 {
            r.msgs_per_s = r.delivered as f64 / window;
        }
    }
    r.latency = Percentiles::of(&latency);
    r.ack_latency = Percentiles::of(&shared.ack_hist.lock().expect("not poisoned"));
    r.send_lag = Percentiles::of(&shared.lag_hist.lock().expect("not poisoned"));
    println!("RESULT {}", serde_json::to_string(&r)?);
    std::process::exit(0);
}

async fn wait_hello(ws: &mut Ws) -> anyhow::Result<()> {
    let hello = async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Text(t))) if client::kind(&t) == FrameKind::Hello => {
                    return Ok(());
                }
                Some(Ok(WsMessage::Text(t))) if client::kind(&t) == FrameKind::Error => {
                    bail!("server error: {}", t.as_str())
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => bail!("closed before hello"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), hello)
        .await
        .context("no hello within 60 s")?
}

struct VisitorOut {
    v: u64,
    sent: u64,
    acked: Vec<bool>,
    /// Messages answered with an error frame.
    refused: Vec<bool>,
}

/// One visitor: writes each message when it falls due (within its window), reads acks.
async fn visitor(mut ws: Ws, v: u64, s: Arc<Shared>) -> VisitorOut {
    let end = *s.end.get().expect("end is set");
    let mut stop = s.stop.clone();
    let mut k: u64 = 0;
    let mut outstanding = 0usize;
    let mut sending = true;
    let mut acked: Vec<bool> = Vec::new();
    let mut refused: Vec<bool> = Vec::new();
    let mut beat = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    'run: loop {
        if sending {
            let now = Instant::now();
            let mut fed = false;
            while outstanding < s.window {
                let due = s.due(v, k);
                if due >= end {
                    sending = false;
                    break;
                }
                if due > now {
                    break;
                }
                let frame = format!(
                    r#"{{"type":"send","client_msg_id":"{}-{v}-{k}","body":"{}"}}"#,
                    s.run, s.body
                );
                if ws.feed(WsMessage::text(frame)).await.is_err() {
                    s.lost_conns.fetch_add(1, Ordering::Relaxed);
                    break 'run;
                }
                s.lag_hist
                    .lock()
                    .expect("not poisoned")
                    .saturating_record(elapsed_us(due, now));
                fed = true;
                k += 1;
                outstanding += 1;
                s.sent.fetch_add(1, Ordering::Relaxed);
            }
            if fed && ws.flush().await.is_err() {
                s.lost_conns.fetch_add(1, Ordering::Relaxed);
                break 'run;
            }
        }
        if !sending && outstanding == 0 {
            break;
        }
        let wake = (sending && outstanding < s.window).then(|| s.due(v, k));
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            m = ws.next() => match m {
                Some(Ok(WsMessage::Text(t))) => match client::kind(&t) {
                    FrameKind::Ack => {
                        let now = Instant::now();
                        if let Some((mv, mk)) = client::client_msg_id(&t).and_then(|id| s.parse(id))
                            && mv == v
                            && mark(&mut acked, mk)
                        {
                            outstanding = outstanding.saturating_sub(1);
                            s.acked.fetch_add(1, Ordering::Relaxed);
                            let us = elapsed_us(s.due(v, mk), now);
                            s.ack_hist.lock().expect("not poisoned").saturating_record(us);
                        }
                    }
                    FrameKind::Error => {
                        s.error(&t);
                        if let Some((mv, mk)) = client::client_msg_id(&t).and_then(|id| s.parse(id))
                            && mv == v
                        {
                            mark(&mut refused, mk);
                            outstanding = outstanding.saturating_sub(1);
                        }
                    }
                    _ => {}
                },
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => {
                    s.lost_conns.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Some(Ok(_)) => {}
            },
            _ = beat.tick() => {
                if ws.send(WsMessage::text(r#"{"type":"ping"}"#)).await.is_err() {
                    s.lost_conns.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            _ = tokio::time::sleep_until(wake.unwrap_or(end)), if wake.is_some() => {}
        }
    }
    VisitorOut {
        v,
        sent: k,
        acked,
        refused,
    }
}

struct AgentOut {
    index: usize,
    /// Receipts per visitor per `k`.
    counts: Vec<Vec<u8>>,
    hist: Histogram<u64>,
    last: Option<Instant>,
}

/// One agent connection: counts and times every message it receives.
async fn agent(mut ws: Ws, index: usize, s: Arc<Shared>) -> AgentOut {
    let mut out = AgentOut {
        index,
        counts: vec![Vec::new(); s.visitors as usize],
        hist: histogram(),
        last: None,
    };
    let mut stop = s.stop.clone();
    let mut beat = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            m = ws.next() => match m {
                Some(Ok(WsMessage::Text(t))) => {
                    if client::kind(&t) != FrameKind::Message {
                        if client::kind(&t) == FrameKind::Error {
                            s.error(&t);
                        }
                        continue;
                    }
                    let now = Instant::now();
                    let Some(id) = client::client_msg_id(&t) else { continue };
                    if let Some((v, k)) = s.parse(id) {
                        let (vi, ki) = (v as usize, k as usize);
                        let Some(row) = out.counts.get_mut(vi) else { continue };
                        if row.len() <= ki {
                            row.resize(ki + 1, 0);
                        }
                        row[ki] = row[ki].saturating_add(1);
                        s.agent_timed[index].fetch_add(1, Ordering::Relaxed);
                        if s.started.load(Ordering::Acquire) {
                            out.hist.saturating_record(elapsed_us(s.due(v, k), now));
                        }
                        out.last = Some(now);
                    } else if s.is_warmup(id) {
                        s.agent_warm[index].fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => {
                    s.lost_conns.fetch_add(1, Ordering::Relaxed);
                    s.error("an agent connection was closed by the server");
                    break;
                }
                Some(Ok(_)) => {}
            },
            _ = beat.tick() => {
                if ws.send(WsMessage::text(r#"{"type":"ping"}"#)).await.is_err() {
                    break;
                }
            }
        }
    }
    out
}

/// Runs one load run against `t` in a generator process pinned to the generator core, reading
/// the server's CPU time around it.
pub async fn run(
    t: &mut Target,
    env: &Env,
    common: &Common,
    rate: u64,
    secs: u64,
    step: usize,
) -> anyhow::Result<LoadResult> {
    let tokens = t.visitors_file(common.visitors).await?;
    let agents = t.agents_file()?;
    t.wait_quiet(env.clk_tck).await?;
    eprintln!(
        "# {} load: {} msg/s offered for {} s by {} visitors to {} agent connection(s)",
        t.kind,
        rate,
        secs,
        common.visitors,
        t.agent_tokens.len()
    );
    let mut c = env.command(GENERATOR_CPU, &env.bench_bin);
    c.arg("load-worker")
        .args(["--server", &t.addr.to_string()])
        .arg("--tokens")
        .arg(&tokens)
        .arg("--agents")
        .arg(&agents)
        .args(["--visitors", &common.visitors.to_string()])
        .args(["--rate", &rate.to_string(), "--secs", &secs.to_string()])
        // A fresh source address per run: the last run's sockets may still be in TIME_WAIT.
        .args(["--source-ip", &crate::loopback(10 + step).to_string()])
        .args(["--body-bytes", &env.body_bytes.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().context("starting the load worker")?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    let mut next = async |what: &str, limit: u64| -> anyhow::Result<String> {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(limit), lines.next_line())
                .await
                .with_context(|| format!("the load worker did not say {what} within {limit} s"))??
                .with_context(|| format!("the load worker ended before {what}"))?;
            if line.starts_with(what) {
                return Ok(line);
            }
        }
    };
    next("READY", 300).await?;
    let worker_pid = child.id().unwrap_or(0);
    let other = crate::sysinfo::OtherCpu::start(&[t.pid(), worker_pid])?;
    let cpu0 = t.cpu_ticks()?;
    let usage0 = crate::sysinfo::ServerUsage::read(t.pid())?;
    stdin.write_all(b"GO\n").await?;
    stdin.flush().await?;
    next("DONE", secs + 120).await?;
    let cpu1 = t.cpu_ticks()?;
    let usage1 = crate::sysinfo::ServerUsage::read(t.pid())?;
    let other_cpu_pct = other.pct(env.clk_tck);
    let line = next("RESULT ", 60).await?;
    let _ = child.wait().await;
    let mut r: LoadResult = serde_json::from_str(&line["RESULT ".len()..])?;
    r.other_cpu_pct = other_cpu_pct;
    if r.delivered > 0 {
        let per_msg = |before: u64, after: u64, scale: f64| {
            Some(after.saturating_sub(before) as f64 * scale / r.delivered as f64)
        };
        let tick_us = 1e6 / env.clk_tck as f64;
        r.server_cpu_us_per_msg = per_msg(cpu0, cpu1, tick_us);
        r.server_sqlite_cpu_us_per_msg = per_msg(usage0.sqlite_ticks, usage1.sqlite_ticks, tick_us);
        r.server_other_cpu_us_per_msg = per_msg(usage0.other_ticks, usage1.other_ticks, tick_us);
        r.server_disk_write_bytes_per_msg =
            per_msg(usage0.disk_write_bytes, usage1.disk_write_bytes, 1.0);
    }
    t.check_alive()?;
    Ok(r)
}

impl LoadResult {
    /// Prints the figures of a throughput run (`prefix` "throughput") or a sweep step.
    pub fn report(&self, kind: Kind, prefix: &str, out: &mut Report, f: &mut Figures) {
        let main = prefix == "throughput";
        out.note(format!(
            "{kind} {prefix}: offered {} msg/s for {} s, {} visitors, {} agent connection(s); \
             sent {}, acked {}, delivered {}, unsent {}, generator CPU {:.0}%",
            self.rate,
            self.secs,
            self.visitors,
            self.agents,
            self.sent,
            self.acked,
            self.delivered,
            self.unsent,
            self.generator_cpu_pct
        ));
        if let Some(e) = &self.first_error {
            out.note(format!("{kind} {prefix}: first error: {e}"));
        }
        if self.generator_cpu_pct > 90.0 {
            out.note(format!(
                "{kind} {prefix}: the generator core was saturated; figures may be the generator's limit"
            ));
        }
        let name = |n: &str| {
            if main {
                n.to_owned()
            } else {
                format!("{prefix}_{n}")
            }
        };
        let l = &self.latency;
        if main {
            out.fig(kind, "throughput_offered_per_s", Some(self.rate as f64), 0);
            out.fig(kind, "throughput_msgs_per_s", Some(self.msgs_per_s), 0);
        } else {
            out.fig(kind, &name("msgs_per_s"), Some(self.msgs_per_s), 0);
        }
        out.fig(kind, &name("latency_p50_ms"), Some(l.p50), 2);
        if main {
            out.fig(kind, &name("latency_mean_ms"), Some(l.mean), 2);
            out.fig(kind, &name("latency_p90_ms"), Some(l.p90), 2);
        }
        out.fig(kind, &name("latency_p99_ms"), Some(l.p99), 2);
        if main {
            out.fig(kind, &name("latency_p999_ms"), Some(l.p999), 2);
        }
        out.fig(kind, &name("latency_max_ms"), Some(l.max), 2);
        if main {
            out.fig(kind, "ack_p50_ms", Some(self.ack_latency.p50), 2);
            out.fig(kind, "ack_p99_ms", Some(self.ack_latency.p99), 2);
            out.fig(kind, "ack_max_ms", Some(self.ack_latency.max), 2);
            out.fig(kind, "send_lag_p50_ms", Some(self.send_lag.p50), 2);
            out.fig(kind, "send_lag_p99_ms", Some(self.send_lag.p99), 2);
        }
        out.fig(kind, &name("lost"), Some(self.lost as f64), 0);
        out.fig(kind, &name("duplicated"), Some(self.duplicated as f64), 0);
        out.fig(
            kind,
            &name("unacked_delivered"),
            Some(self.unacked_delivered as f64),
            0,
        );
        if main || self.in_flight_delivered > 0 {
            out.fig(
                kind,
                &name("in_flight_delivered"),
                Some(self.in_flight_delivered as f64),
                0,
            );
        }
        if main || self.unacked_at_end > 0 || self.unsent > 0 {
            out.fig(
                kind,
                &name("unacked_at_end"),
                Some(self.unacked_at_end as f64),
                0,
            );
            out.fig(kind, &name("unsent"), Some(self.unsent as f64), 0);
        }
        if main || self.error_frames > 0 {
            out.fig(
                kind,
                &name("error_frames"),
                Some(self.error_frames as f64),
                0,
            );
        }
        out.fig(
            kind,
            &name("server_cpu_us_per_msg"),
            self.server_cpu_us_per_msg,
            1,
        );
        out.fig(
            kind,
            &name("server_sqlite_cpu_us_per_msg"),
            self.server_sqlite_cpu_us_per_msg,
            1,
        );
        out.fig(
            kind,
            &name("server_other_cpu_us_per_msg"),
            self.server_other_cpu_us_per_msg,
            1,
        );
        out.fig(
            kind,
            &name("server_disk_write_bytes_per_msg"),
            self.server_disk_write_bytes_per_msg,
            0,
        );
        out.fig(
            kind,
            &name("generator_cpu_pct"),
            Some(self.generator_cpu_pct),
            0,
        );
        out.fig(kind, &name("other_cpu_pct"), self.other_cpu_pct, 0);
        if !main {
            out.fig(kind, &name("send_lag_p99_ms"), Some(self.send_lag.p99), 2);
        }
        if main {
            f.throughput_msgs_per_s = Some(self.msgs_per_s);
            f.latency_p50_ms = Some(l.p50);
            f.latency_p99_ms = Some(l.p99);
            f.server_cpu_us_per_msg = self.server_cpu_us_per_msg;
            f.generator_cpu_pct = Some(self.generator_cpu_pct);
        }
        f.max_delivered_msgs_per_s = Some(
            f.max_delivered_msgs_per_s
                .unwrap_or(0.0)
                .max(self.msgs_per_s),
        );
        f.lost += self.lost;
        f.duplicated += self.duplicated + self.unacked_delivered;
    }

    /// Held: p99 under the limit, nearly all of the offered load delivered, nothing lost.
    fn holds(&self) -> bool {
        self.latency.p99 < P99_LIMIT_MS
            && self.msgs_per_s >= 0.95 * self.rate as f64
            && self.unsent == 0
            && self.lost == 0
            && self.duplicated == 0
    }
}

/// Steps the offered load up; reports each step, the highest rate that held p99 under 20 ms,
/// and the p99 at 20,000 msg/s. Stops early once a step falls far short of its offered rate
/// (past saturation) and the reference rate has been measured.
#[allow(clippy::too_many_arguments)]
pub async fn sweep(
    t: &mut Target,
    env: &Env,
    common: &Common,
    rates: &[u64],
    step_secs: u64,
    kind: Kind,
    out: &mut Report,
    f: &mut Figures,
) -> anyhow::Result<()> {
    let mut rates = rates.to_vec();
    rates.sort_unstable();
    let mut best: Option<u64> = None;
    let mut held_so_far = true;
    for (i, &rate) in rates.iter().enumerate() {
        let r = run(t, env, common, rate, step_secs, i + 1).await?;
        r.report(kind, &format!("sweep_{rate}"), out, f);
        f.sweep.push((rate, r.msgs_per_s, r.latency.p99));
        if r.holds() && held_so_far {
            best = Some(rate);
        } else {
            held_so_far = false;
        }
        if rate == REFERENCE_RATE {
            f.p99_ms_at_20k = Some(r.latency.p99);
        }
        let saturated = r.msgs_per_s < 0.8 * rate as f64;
        if saturated && rate >= REFERENCE_RATE.min(*rates.last().unwrap_or(&0)) {
            if i + 1 < rates.len() {
                out.note(format!(
                    "{kind} sweep: stopped after {rate} msg/s (delivered {:.0}, under 80% of offered)",
                    r.msgs_per_s
                ));
            }
            break;
        }
    }
    f.max_rate_p99_under_20ms = best;
    out.fig(
        kind,
        "max_rate_p99_under_20ms",
        Some(best.unwrap_or(0) as f64),
        0,
    );
    out.fig(kind, "p99_ms_at_20k", f.p99_ms_at_20k, 2);
    Ok(())
}

/// Sets flag `k` of `flags`, growing it as needed; whether it was not set before.
fn mark(flags: &mut Vec<bool>, k: u64) -> bool {
    let i = k as usize;
    if flags.len() <= i {
        flags.resize(i + 1, false);
    }
    !std::mem::replace(&mut flags[i], true)
}
