//! What a benchmark run reports: the machine, latency statistics, figures against their targets, and the
//! section of `BENCHMARKS.md` that holds them (replaced in place on every `--write-benchmarks` run).

use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// The machine a run happened on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub mem_mb: u64,
    /// `/proc/loadavg` when the run started: the machine is shared, and this says how busy it was.
    pub load: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown CPU".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_mb = kb_field(&meminfo, "MemTotal:").unwrap_or(0) / 1024;
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        Machine { cores, cpu, mem_mb, load }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} cores, {}, {} MB RAM, {}; load average at start {} (the machine is shared)",
            self.cores,
            self.cpu,
            self.mem_mb,
            std::env::consts::ARCH,
            self.load
        )
    }
}

/// A `kB` field of a `/proc` status-like file.
pub fn kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok())
}

/// Resident memory of a process in MB.
pub fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    kb_field(&status, "VmRSS:").unwrap_or(0) as f64 / 1024.0
}

/// Latency percentiles of a set of samples in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(samples: &mut [u32]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[i.min(samples.len() - 1)] as f64 / 1000.0
        };
        Latency { count: samples.len(), p50_ms: at(0.50), p90_ms: at(0.90), p99_ms: at(0.99), max_ms: at(1.0) }
    }

    pub fn describe(&self) -> String {
        format!(
            "median {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms, self.count
        )
    }
}

/// One scenario's output: lines of figures, each optionally judged against a target.
pub struct Section {
    pub scenario: String,
    machine: Machine,
    lines: Vec<String>,
    verdicts: Vec<(String, bool)>,
}

impl Section {
    pub fn new(scenario: impl Into<String>, machine: &Machine) -> Section {
        Section { scenario: scenario.into(), machine: machine.clone(), lines: Vec::new(), verdicts: Vec::new() }
    }

    pub fn line(&mut self, s: impl Into<String>) {
        let s = s.into();
        eprintln!("  {s}");
        self.lines.push(s);
    }

    /// A figure with a target: `higher` says whether more is better.
    pub fn judge(&mut self, what: &str, value: f64, unit: &str, target: f64, higher: bool) {
        let ok = if higher { value >= target } else { value <= target };
        let cmp = if higher { "≥" } else { "≤" };
        let verdict = if ok { "meets" } else { "MISSES" };
        self.line(format!("{what}: {} {unit} (target {cmp} {} {unit}: {verdict})", fmt_num(value), fmt_num(target)));
        self.verdicts.push((what.to_string(), ok));
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### `{}`", self.scenario);
        let _ = writeln!(out);
        let _ = writeln!(out, "Machine: {}. Release build.", self.machine.describe());
        let _ = writeln!(out);
        let _ = writeln!(out, "```sh\n{}\n```", command_line());
        let _ = writeln!(out);
        for l in &self.lines {
            let _ = writeln!(out, "- {l}");
        }
        out
    }

    /// Replace (or append) this scenario's block in `path`.
    pub fn write_into(&self, path: &Path) -> Result<()> {
        let begin = format!("<!-- bench:{} -->", self.scenario);
        let end = format!("<!-- /bench:{} -->", self.scenario);
        let existing = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".to_string());
        let block = format!("{begin}\n{}{end}\n", self.render());
        let updated = match (existing.find(&begin), existing.find(&end)) {
            (Some(b), Some(e)) if e > b => {
                format!("{}{}{}", &existing[..b], block, existing[e + end.len()..].trim_start_matches('\n'))
            }
            _ => {
                let mut s = existing.clone();
                if !s.contains("## Proof: benchmark harness") {
                    s.push_str("\n## Proof: benchmark harness (`waymark bench`)\n\n");
                }
                s.push('\n');
                s.push_str(&block);
                s
            }
        };
        std::fs::write(path, updated).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// The command that produced this run, as typed (minus the flag that writes this file).
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--write-benchmarks").collect();
    format!("cargo build --release -p waymark && target/release/waymark {}", args.join(" "))
}

pub fn fmt_num(v: f64) -> String {
    if v >= 1000.0 {
        let n = v.round() as u64;
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_numbers() {
        let mut v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        let l = Latency::of(&mut v);
        assert_eq!(l.p50_ms, 51.0);
        assert_eq!(l.p99_ms, 99.0);
        assert_eq!(l.max_ms, 100.0);
        assert_eq!(fmt_num(25_000.4), "25,000");
        assert_eq!(fmt_num(1_234_567.0), "1,234,567");
        assert_eq!(fmt_num(4.256), "4.26");
    }

    #[test]
    fn sections_are_replaced_in_place() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("B.md");
        std::fs::write(&path, "# Benchmarks\n\nintro\n").expect("write");
        let m = Machine { cores: 2, cpu: "X".into(), mem_mb: 1, load: "0.1".into() };
        let mut s = Section::new("reads", &m);
        s.line("first");
        s.write_into(&path).expect("write 1");
        let mut s = Section::new("reads", &m);
        s.line("second");
        s.write_into(&path).expect("write 2");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("intro"));
        assert!(text.contains("- second") && !text.contains("- first"), "{text}");
        assert_eq!(text.matches("<!-- bench:reads -->").count(), 1);
    }
}
