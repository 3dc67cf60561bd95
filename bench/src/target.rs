//! What is measured: the release `kefu` on a fresh SQLite database, or the bare relay, each a
//! child process pinned to the server core, plus the credentials the generators need.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::{Common, sysinfo};

pub const SERVER_CPU: usize = 0;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Kefu,
    Relay,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Kefu => "kefu",
            Kind::Relay => "relay",
        })
    }
}

/// Settings for load: the per-visitor and per-connection limits guard real deployments
/// against floods; a benchmark that sends 20 messages a second from each visitor must raise
/// them, and the agent connection's queue must hold a burst at tens of thousands a second.
pub const KEFU_LOAD_ENV: &[(&str, &str)] = &[
    ("KEFU__LIMITS__VISITOR_MSGS_PER_SEC", "100000"),
    ("KEFU__LIMITS__VISITOR_BURST", "100000"),
    ("KEFU__LIMITS__CONN_FRAMES_PER_SEC", "100000"),
    ("KEFU__LIMITS__CONN_FRAME_BURST", "100000"),
    ("KEFU__LIMITS__CONN_QUEUE", "65536"),
    // Tens of thousands of visitors come from one machine's few addresses.
    ("KEFU__LIMITS__NEW_VISITORS_PER_SEC", "1000000"),
    ("KEFU__LIMITS__NEW_VISITOR_BURST", "1000000"),
];

/// Where things are, shared by every target of one invocation.
pub struct Env {
    pub server_bin: PathBuf,
    pub bench_bin: PathBuf,
    pub pin: bool,
    pub body_bytes: usize,
    pub clk_tck: u64,
    pub tmp: PathBuf,
    /// Extra `KEY=VALUE` environment for kefu (`--server-env`).
    pub server_env: Vec<(String, String)>,
    keep: bool,
}

impl Env {
    pub async fn prepare(common: &Common, root: &Path, pin: bool) -> anyhow::Result<Env> {
        let server_bin = match &common.server_bin {
            Some(p) => {
                std::fs::canonicalize(p).with_context(|| format!("--server-bin {}", p.display()))?
            }
            None if common.target == crate::Which::Relay => PathBuf::new(),
            None => build_server(root).await?,
        };
        let mut server_env = Vec::new();
        for kv in &common.server_env {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--server-env {kv:?} is not KEY=VALUE"))?;
            server_env.push((k.to_owned(), v.to_owned()));
        }
        let tmp = std::env::temp_dir().join(format!("kefu-bench-{}", std::process::id()));
        std::fs::create_dir_all(&tmp)?;
        Ok(Env {
            server_bin,
            bench_bin: std::env::current_exe()?,
            pin,
            body_bytes: common.body_bytes,
            clk_tck: sysinfo::clk_tck(),
            tmp,
            server_env,
            keep: common.keep,
        })
    }

    /// A command pinned to `cpu` with `taskset` (which execs it: the pid is the program's).
    pub fn command(&self, cpu: usize, program: &Path) -> Command {
        if self.pin {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    pub fn cleanup(&self) {
        if self.keep {
            eprintln!("# kept {}", self.tmp.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// `cargo build --release -p server`; returns the path of the `kefu` executable it reports.
async fn build_server(root: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("# building the server: cargo build --release -p server");
    let started = Instant::now();
    let out = Command::new("cargo")
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "server",
            "--bin",
            "kefu",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .await
        .context("running cargo")?;
    anyhow::ensure!(
        out.status.success(),
        "cargo build --release -p server failed"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let exe = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "kefu")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .context("cargo did not report the kefu executable")?;
    eprintln!(
        "# server built in {:.0} s: {}",
        started.elapsed().as_secs_f64(),
        exe.display()
    );
    Ok(exe)
}

/// A running server (kefu or relay) and what clients need to reach it.
pub struct Target {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    pid: u32,
    pub dir: PathBuf,
    site_key: String,
    /// API tokens of the admins, one per agent connection.
    pub agent_tokens: Vec<String>,
    /// Visitor tokens made so far (kefu: real sessions; relay: any string).
    pub visitor_tokens: Vec<String>,
    warnings: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

impl Target {
    pub async fn start(kind: Kind, env: &Env, agents: usize) -> anyhow::Result<Target> {
        let dir = env.tmp.join(kind.to_string());
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut agent_tokens = Vec::new();
        let mut site_key = String::new();
        let mut cmd = match kind {
            Kind::Kefu => {
                let db = dir.join("kefu.db");
                let kefu_env = |c: &mut Command| {
                    c.current_dir(&dir)
                        .env("KEFU__STORAGE__URL", format!("sqlite://{}", db.display()))
                        .env("KEFU__SERVER__LISTEN", addr.to_string())
                        .env("KEFU__BOOTSTRAP__DISABLED", "true")
                        .env("NO_COLOR", "1")
                        .env("KEFU_LOG", "info,sqlx=warn,tower_sessions=warn");
                };
                let cli = |args: &[&str]| {
                    let mut c = Command::new(&env.server_bin);
                    kefu_env(&mut c);
                    c.args(args);
                    c
                };
                site_key = run_cli(cli(&["site", "add", "--name", "Bench"])).await?;
                for i in 0..agents {
                    let email = format!("a{}@bench", i + 1);
                    run_cli(cli(&[
                        "user",
                        "add",
                        "--email",
                        &email,
                        "--password",
                        "benchpass1",
                        "--role",
                        "admin",
                    ]))
                    .await?;
                    agent_tokens.push(run_cli(cli(&["token", "create", "--email", &email])).await?);
                }
                let mut c = env.command(SERVER_CPU, &env.server_bin);
                kefu_env(&mut c);
                for (k, v) in KEFU_LOAD_ENV {
                    c.env(k, v);
                }
                for (k, v) in &env.server_env {
                    c.env(k, v);
                }
                c.arg("serve");
                c
            }
            Kind::Relay => {
                agent_tokens = (0..agents).map(|i| format!("relay-agent-{i}")).collect();
                let mut c = env.command(SERVER_CPU, &env.bench_bin);
                c.current_dir(&dir)
                    .arg("relay")
                    .arg("--listen")
                    .arg(addr.to_string());
                c
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("starting {kind}"))?;
        let pid = child.id().context("child has no pid")?;
        let warnings = Arc::new(Mutex::new(Vec::new()));
        let ready = watch_log(&mut child, &dir.join("server.log"), warnings.clone())?;
        let ready_line = match kind {
            Kind::Kefu => "kefu listening",
            Kind::Relay => "relay listening",
        };
        let started = Instant::now();
        let wait = async {
            let mut ready = ready;
            while let Some(line) = ready.recv().await {
                if line.contains(ready_line) {
                    return true;
                }
            }
            false
        };
        match tokio::time::timeout(Duration::from_secs(60), wait).await {
            Ok(true) => {}
            _ => {
                let _ = child.start_kill();
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                bail!(
                    "{kind} did not log {ready_line:?} within 60 s; its log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        eprintln!(
            "# {kind} listening on {addr} (pid {pid}) after {:.2} s{}",
            started.elapsed().as_secs_f64(),
            if kind == Kind::Kefu {
                format!(
                    "; load settings: {}",
                    KEFU_LOAD_ENV
                        .iter()
                        .map(|(k, v)| (*k, *v))
                        .chain(env.server_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            } else {
                String::new()
            }
        );
        Ok(Target {
            kind,
            addr,
            child,
            pid,
            dir,
            site_key,
            agent_tokens,
            visitor_tokens: Vec::new(),
            warnings,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(128)
                .build()?,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn rss_kb(&self) -> anyhow::Result<u64> {
        sysinfo::rss_kb(self.pid)
    }

    pub fn cpu_ticks(&self) -> anyhow::Result<u64> {
        sysinfo::cpu_ticks(&self.pid.to_string())
    }

    /// Waits (up to 90 s) until the server uses under 10 % of a core, so that work left from the
    /// previous run (a backlog of sends from connections that are gone) does not skew the next.
    pub async fn wait_quiet(&mut self, clk_tck: u64) -> anyhow::Result<()> {
        let started = Instant::now();
        let window = Duration::from_millis(300);
        let allowed = (clk_tck as f64 * window.as_secs_f64() * 0.10).max(1.0) as u64;
        loop {
            self.check_alive()?;
            let before = self.cpu_ticks()?;
            tokio::time::sleep(window).await;
            if self.cpu_ticks()? - before <= allowed {
                break;
            }
            if started.elapsed() > Duration::from_secs(90) {
                eprintln!("# {}: still busy after 90 s; going on", self.kind);
                break;
            }
        }
        let waited = started.elapsed().as_secs_f64();
        if waited > 1.0 {
            eprintln!(
                "# {}: waited {waited:.1} s for the server to finish the previous run's backlog",
                self.kind
            );
        }
        Ok(())
    }

    /// Fails when the server has exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); see its log in {}",
                self.kind,
                self.dir.display()
            );
        }
        Ok(())
    }

    /// Makes sure `n` visitor tokens exist and writes them, one a line, to a file for the
    /// generator processes. For kefu each is a real widget session (`POST
    /// /api/v1/widget/sessions`), made over keep-alive connections, 64 at a time.
    pub async fn visitors_file(&mut self, n: usize) -> anyhow::Result<PathBuf> {
        let have = self.visitor_tokens.len();
        if n > have {
            match self.kind {
                Kind::Relay => self
                    .visitor_tokens
                    .extend((have..n).map(|i| format!("relay-visitor-{i}"))),
                Kind::Kefu => {
                    let started = Instant::now();
                    let url = format!("http://{}/api/v1/widget/sessions", self.addr);
                    let body = serde_json::json!({ "site_key": self.site_key });
                    let mut made = futures_util::stream::iter(have..n)
                        .map(|_| {
                            let req = self.http.post(&url).json(&body);
                            async move {
                                let resp = req.send().await?.error_for_status()?;
                                let v: serde_json::Value = resp.json().await?;
                                v["visitor_token"]
                                    .as_str()
                                    .map(str::to_owned)
                                    .context("no visitor_token in the session")
                            }
                        })
                        .buffer_unordered(64);
                    while let Some(token) = made.next().await {
                        self.visitor_tokens.push(token?);
                    }
                    eprintln!(
                        "# {} widget sessions created in {:.1} s",
                        n - have,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        }
        let path = self.dir.join("visitors.txt");
        let mut f = tokio::fs::File::create(&path).await?;
        f.write_all(self.visitor_tokens[..n].join("\n").as_bytes())
            .await?;
        f.write_all(b"\n").await?;
        f.flush().await?;
        Ok(path)
    }

    /// The agent console's conversation list as the load left it: the median time of `GET
    /// /api/v1/conversations?limit=50` over 21 requests, and how many conversations it showed
    /// (with their unread counts, visitors and last messages). Kefu only: the relay has no list.
    pub async fn console_list_ms(&self) -> anyhow::Result<(f64, usize)> {
        let token = self.agent_tokens.first().context("no agent token")?;
        let url = format!("http://{}/api/v1/conversations?limit=50", self.addr);
        let mut times = Vec::new();
        let mut shown = 0;
        for _ in 0..21 {
            let started = Instant::now();
            let body = self
                .http
                .get(&url)
                .bearer_auth(token)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            shown = v["conversations"].as_array().map_or(0, Vec::len);
        }
        times.sort_by(f64::total_cmp);
        Ok((times[times.len() / 2], shown))
    }

    pub fn agents_file(&self) -> anyhow::Result<PathBuf> {
        let path = self.dir.join("agents.txt");
        std::fs::write(&path, self.agent_tokens.join("\n") + "\n")?;
        Ok(path)
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s); returns the warning and error lines
    /// of its log.
    pub async fn stop(mut self) -> Vec<String> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        self.warnings.lock().map(|w| w.clone()).unwrap_or_default()
    }
}

/// Copies the child's stderr into `log`, keeps its WARN/ERROR lines, and sends each line to the
/// returned channel (until nobody listens).
fn watch_log(
    child: &mut Child,
    log: &Path,
    warnings: Arc<Mutex<Vec<String>>>,
) -> anyhow::Result<tokio::sync::mpsc::UnboundedReceiver<String>> {
    let stderr = child.stderr.take().context("no stderr")?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let log = log.to_owned();
    tokio::spawn(async move {
        let Ok(mut file) = tokio::fs::File::create(&log).await else {
            return;
        };
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = file.write_all(line.as_bytes()).await;
            let _ = file.write_all(b"\n").await;
            let clean = strip_ansi(&line);
            if (clean.contains(" WARN ") || clean.contains(" ERROR "))
                && let Ok(mut w) = warnings.lock()
            {
                w.push(clean);
            }
            let _ = tx.send(line);
        }
        let _ = file.flush().await;
    });
    Ok(rx)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs a `kefu` CLI command; returns the last line it printed.
async fn run_cli(mut cmd: Command) -> anyhow::Result<String> {
    let out = cmd.stdin(Stdio::null()).output().await?;
    anyhow::ensure!(
        out.status.success(),
        "kefu CLI failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)?
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_owned())
        .context("the kefu CLI printed nothing")
}

/// A port free right now on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
