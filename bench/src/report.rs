//! Output: one `name: value` line per figure (the relay's prefixed `relay_`), `# ` lines for
//! context, ratios of the product to the relay, and a row in `docs/BENCHMARKS.md`.

use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::sysinfo;
use crate::target::Kind;
use crate::widget::Widget;

/// The figures of one target that ratios and the results table use.
#[derive(Default, Clone, Debug)]
pub struct Figures {
    pub rss_idle_mb: Option<f64>,
    pub idle_conns: usize,
    pub idle_kb_per_conn: Option<f64>,
    pub idle_connect_per_s: Option<f64>,
    pub throughput_msgs_per_s: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub server_cpu_us_per_msg: Option<f64>,
    pub generator_cpu_pct: Option<f64>,
    /// Over every run of this target.
    pub lost: u64,
    /// Extra copies plus unacked messages that arrived, over every run.
    pub duplicated: u64,
    /// (offered rate, delivered msg/s, p99 ms) per sweep step.
    pub sweep: Vec<(u64, f64, f64)>,
    pub max_rate_p99_under_20ms: Option<u64>,
    /// The best delivered rate of any run (the throughput run or a sweep step).
    pub max_delivered_msgs_per_s: Option<f64>,
    pub p99_ms_at_20k: Option<f64>,
}

pub struct Report;

impl Report {
    pub fn line(&mut self, name: &str, value: impl Display) {
        println!("{name}: {value}");
    }

    pub fn note(&mut self, text: impl Display) {
        println!("# {text}");
    }

    /// A figure of `kind`, `n/a` when unknown.
    pub fn fig(&mut self, kind: Kind, name: &str, value: Option<f64>, decimals: usize) {
        let name = match kind {
            Kind::Kefu => name.to_owned(),
            Kind::Relay => format!("relay_{name}"),
        };
        match value {
            Some(v) if v.is_finite() => self.line(&name, format!("{v:.decimals$}")),
            _ => self.line(&name, "n/a"),
        }
    }

    /// Each figure of the product as a ratio to the relay's (`ratio_vs_relay` is delivered
    /// throughput; above 1 means more for figures where more is better, and costlier for
    /// memory, CPU and latency).
    pub fn ratios(&mut self, figures: &[(Kind, Figures)]) {
        let get = |k: Kind| figures.iter().find(|(x, _)| *x == k).map(|(_, f)| f);
        let (Some(k), Some(r)) = (get(Kind::Kefu), get(Kind::Relay)) else {
            return;
        };
        let mut ratio = |name: &str, a: Option<f64>, b: Option<f64>| {
            let v = match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b),
                _ => None,
            };
            self.fig(Kind::Kefu, name, v, 2);
        };
        ratio(
            "ratio_vs_relay",
            k.throughput_msgs_per_s,
            r.throughput_msgs_per_s,
        );
        ratio("server_rss_idle_mb_vs_relay", k.rss_idle_mb, r.rss_idle_mb);
        ratio(
            "idle_kb_per_conn_vs_relay",
            k.idle_kb_per_conn,
            r.idle_kb_per_conn,
        );
        ratio(
            "idle_connect_per_s_vs_relay",
            k.idle_connect_per_s,
            r.idle_connect_per_s,
        );
        ratio(
            "latency_p50_ms_vs_relay",
            k.latency_p50_ms,
            r.latency_p50_ms,
        );
        ratio(
            "latency_p99_ms_vs_relay",
            k.latency_p99_ms,
            r.latency_p99_ms,
        );
        ratio(
            "server_cpu_us_per_msg_vs_relay",
            k.server_cpu_us_per_msg,
            r.server_cpu_us_per_msg,
        );
        for (rate, msgs, p99) in &k.sweep {
            if let Some((_, rm, rp)) = r.sweep.iter().find(|(x, _, _)| x == rate) {
                ratio(
                    &format!("sweep_{rate}_msgs_per_s_vs_relay"),
                    Some(*msgs),
                    Some(*rm),
                );
                ratio(
                    &format!("sweep_{rate}_latency_p99_ms_vs_relay"),
                    Some(*p99),
                    Some(*rp),
                );
            }
        }
        ratio(
            "max_rate_p99_under_20ms_vs_relay",
            k.max_rate_p99_under_20ms.map(|x| x as f64),
            r.max_rate_p99_under_20ms.map(|x| x as f64),
        );
        ratio("p99_ms_at_20k_vs_relay", k.p99_ms_at_20k, r.p99_ms_at_20k);
        ratio(
            "max_delivered_msgs_per_s_vs_relay",
            k.max_delivered_msgs_per_s,
            r.max_delivered_msgs_per_s,
        );
    }
}

const HEADER: &str = "| date | commit | machine | sizes | idle KB/conn | connects/s | RSS at rest MB | msg/s delivered at 50k offered (best run) | p99 ms at 20k msg/s | max msg/s with p99 < 20 ms | server CPU µs/msg | lost / dup | msg/s vs relay | KB/conn vs relay | CPU/msg vs relay | loader gz B | first open gz B |";

/// Appends a row for this run to `docs/BENCHMARKS.md` (creating it if needed).
pub fn append_row(
    root: &Path,
    k: &Figures,
    relay: Option<&Figures>,
    w: &Widget,
    sizes: &str,
) -> anyhow::Result<PathBuf> {
    let path = root.join("docs/BENCHMARKS.md");
    if !path.exists() {
        std::fs::create_dir_all(root.join("docs"))?;
        let cols = HEADER.matches('|').count() - 1;
        std::fs::write(
            &path,
            format!(
                "# Benchmarks\n\nRows appended by `make bench`.\n\n{HEADER}\n|{}\n",
                "---|".repeat(cols)
            ),
        )?;
    }
    let n = |v: Option<f64>, d: usize| match v {
        Some(v) if v.is_finite() => format!("{v:.d$}"),
        _ => "n/a".into(),
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    };
    let r = relay.cloned().unwrap_or_default();
    let (date, _) = sysinfo::utc_now();
    let max_rate = match k.max_rate_p99_under_20ms {
        Some(x) => format!("≥ {x}"),
        None if k.sweep.is_empty() => "n/a".into(),
        None => format!("< {}", k.sweep.first().map_or(0, |s| s.0)),
    };
    let delivered = format!(
        "{} ({})",
        n(k.throughput_msgs_per_s, 0),
        n(k.max_delivered_msgs_per_s, 0)
    );
    let row = format!(
        "| {date} | {} | {} | {sizes} | {} | {} | {} | {delivered} | {} | {max_rate} | {} | {} / {} | {} | {} | {} | {} | {} |\n",
        sysinfo::git_commit(root),
        sysinfo::machine(),
        n(k.idle_kb_per_conn, 1),
        n(k.idle_connect_per_s, 0),
        n(k.rss_idle_mb, 1),
        n(k.p99_ms_at_20k, 2),
        n(k.server_cpu_us_per_msg, 1),
        k.lost,
        k.duplicated,
        ratio(k.throughput_msgs_per_s, r.throughput_msgs_per_s),
        ratio(k.idle_kb_per_conn, r.idle_kb_per_conn),
        ratio(k.server_cpu_us_per_msg, r.server_cpu_us_per_msg),
        w.loader
            .as_ref()
            .map_or("n/a".into(), |(_, g)| g.to_string()),
        w.first_open
            .as_ref()
            .map_or("n/a (not built)".into(), |(t, _)| t.to_string()),
    );
    let ends_with_newline = std::fs::read_to_string(&path)?.ends_with('\n');
    let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
    if !ends_with_newline {
        f.write_all(b"\n")?;
    }
    f.write_all(row.as_bytes())?;
    Ok(path)
}
