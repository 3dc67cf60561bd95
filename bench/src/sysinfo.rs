//! What `/proc` and a few commands tell about processes and this machine.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// Resident memory of a process, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// User plus system CPU time of a process (all its threads), in clock ticks.
pub fn cpu_ticks(pid: &str) -> anyhow::Result<u64> {
    Ok(named_cpu_ticks(pid)?.1)
}

/// The command name and user plus system CPU ticks of `/proc/<path>/stat` (a process, or a
/// thread as `<pid>/task/<tid>`).
fn named_cpu_ticks(path: &str) -> anyhow::Result<(String, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{path}/stat"))
        .with_context(|| format!("reading /proc/{path}/stat"))?;
    // The command name (field 2, in parentheses) may hold spaces; the fields after its ')'
    // are fixed.
    let open = stat.find('(').context("malformed stat")?;
    let close = stat.rfind(')').context("malformed stat")?;
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 counting from field 3.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok((stat[open + 1..close].to_owned(), utime + stime))
}

/// Where a server's CPU went, and what it wrote to disk: readings taken before and after a
/// run, so that a figure per message can be split between SQLite's threads and the rest.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerUsage {
    /// User plus system ticks of threads named like sqlx's SQLite workers (the writer's, the
    /// checkpointer's and the readers' connections each run on one).
    pub sqlite_ticks: u64,
    /// Ticks of every other thread (tokio's workers, the main thread).
    pub other_ticks: u64,
    /// Bytes the process caused to be written to storage (`write_bytes` of `/proc/<pid>/io`).
    pub disk_write_bytes: u64,
}

impl ServerUsage {
    /// Reads every live thread of `pid`. A thread that ends between two readings takes its
    /// ticks with it, so the split can add up to less than the process's own total.
    pub fn read(pid: u32) -> anyhow::Result<Self> {
        let mut usage = Self::default();
        let tasks = format!("/proc/{pid}/task");
        for entry in std::fs::read_dir(&tasks).with_context(|| format!("reading {tasks}"))? {
            let tid = entry?.file_name();
            let Some(tid) = tid.to_str() else { continue };
            let Ok((comm, ticks)) = named_cpu_ticks(&format!("{pid}/task/{tid}")) else {
                continue; // ended meanwhile
            };
            if comm.starts_with("sqlx-sqlite") {
                usage.sqlite_ticks += ticks;
            } else {
                usage.other_ticks += ticks;
            }
        }
        let io = std::fs::read_to_string(format!("/proc/{pid}/io"))
            .with_context(|| format!("reading /proc/{pid}/io"))?;
        usage.disk_write_bytes = io
            .lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .context("no write_bytes line")?;
        Ok(usage)
    }
}

/// The first three fields of `/proc/loadavg` (other work on the machine skews every figure).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Busy CPU time of the whole machine (all cores) in clock ticks, from `/proc/stat`.
pub fn machine_busy_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().context("empty /proc/stat")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    anyhow::ensure!(f.len() >= 8, "short cpu line in /proc/stat");
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    Ok(f[0] + f[1] + f[2] + f[5] + f[6] + f[7])
}

/// CPU ticks of the whole machine minus those of `pids`, between two readings: the work of
/// everything else on the machine (other people's builds skew every figure).
pub struct OtherCpu {
    pids: Vec<String>,
    busy: u64,
    own: u64,
    at: std::time::Instant,
}

impl OtherCpu {
    pub fn start(pids: &[u32]) -> anyhow::Result<Self> {
        let mut pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        pids.push("self".into());
        let own = pids.iter().map(|p| cpu_ticks(p).unwrap_or(0)).sum();
        Ok(Self {
            busy: machine_busy_ticks()?,
            own,
            pids,
            at: std::time::Instant::now(),
        })
    }

    /// Percent of one core used by everything else since `start` (up to 100 × cores).
    pub fn pct(&self, clk_tck: u64) -> Option<f64> {
        let busy = machine_busy_ticks().ok()?;
        let own: u64 = self.pids.iter().map(|p| cpu_ticks(p).unwrap_or(0)).sum();
        let other = (busy - self.busy).saturating_sub(own.saturating_sub(self.own));
        let secs = self.at.elapsed().as_secs_f64();
        (secs > 0.0).then(|| other as f64 / clk_tck as f64 / secs * 100.0)
    }
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux almost always).
pub fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

pub fn has_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Pins every thread of this process to `cpu` (called while it has only its main thread).
pub fn pin_self(cpu: usize) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .status()?;
    anyhow::ensure!(
        status.success(),
        "taskset could not pin the generator to cpu{cpu}"
    );
    Ok(())
}

/// "Intel(R) Xeon(R) Processor, 2 cores, 23.5 GiB RAM, Linux 6.1".
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cores = cores.max(
        cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count(),
    );
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().split('-').next().unwrap_or("").to_owned())
        .unwrap_or_default();
    format!(
        "{model}, {cores} cores, {:.1} GiB RAM, Linux {kernel}",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

/// The short commit of the work tree, with `+dirty` when tracked files differ from it.
pub fn git_commit(root: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if !s.is_empty() => format!("{head}+dirty"),
        _ => head,
    }
}

/// Now as (`2026-11-27`, `2026-11-27T10:00:00.123Z`).
pub fn utc_now() -> (String, String) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let tod = secs % 86_400;
    let date = format!("{y:04}-{m:02}-{day:02}");
    let stamp = format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        tod / 3600,
        tod / 60 % 60,
        tod % 60,
        d.subsec_millis()
    );
    (date, stamp)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_513), (2026, 3, 1));
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_kb(pid).unwrap() > 0);
        cpu_ticks(&pid.to_string()).unwrap();
        cpu_ticks("self").unwrap();
    }
}
