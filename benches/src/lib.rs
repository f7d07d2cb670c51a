//! The harness `kernel-bench` and `model-bench` share: every case runs in its own child process
//! (so its peak memory is its own) and prints
//! `RESULT case median_ms min_ms peak_mib <case-specific fields…>` and optionally `PHASES …`
//! lines; the parent runs the cases in interleaved rounds, collects those lines and summarises
//! each case over the rounds.

use std::process::Command;

/// Process settings for the benchmark children, each overridable from the environment.
///
/// - `CANDLE_NUM_THREADS=1` (candle): candle 0.11.1 runs element-wise ops on its own spinning
///   "barrier pool", separate from the rayon pool of gemm and `vipa-kernels`; on 2 cores the
///   two pools' spin-waits fight for the cores (tiny-ViT step ≈ 1.7× slower with 2).
/// - `OMP_WAIT_POLICY=PASSIVE` (PyTorch): its OpenMP barriers spin by default, which collapses
///   on a loaded 2-core machine (SmolLM2-135M forward at load 6–7: 16.7 s spinning, 2.3 s
///   passive).
/// - `MALLOC_MMAP_THRESHOLD_=32 MiB`, `MALLOC_TRIM_THRESHOLD_=4 GiB` (both): glibc then keeps
///   freed activation buffers instead of returning them to the kernel, so the next step does
///   not page-fault them back in (tiny-ViT step ≈ 25 % faster).
pub struct ProcessEnv {
    candle_threads: String,
    omp_wait: String,
    mmap_threshold: String,
    trim_threshold: String,
}

impl ProcessEnv {
    /// The defaults above, with any of the variables already set in this process kept.
    pub fn from_env() -> Self {
        let get = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        Self {
            candle_threads: get("CANDLE_NUM_THREADS", "1"),
            omp_wait: get("OMP_WAIT_POLICY", "PASSIVE"),
            mmap_threshold: get("MALLOC_MMAP_THRESHOLD_", "33554432"),
            trim_threshold: get("MALLOC_TRIM_THRESHOLD_", "4294967296"),
        }
    }

    fn malloc(&self, c: &mut Command) {
        c.env("MALLOC_MMAP_THRESHOLD_", &self.mmap_threshold)
            .env("MALLOC_TRIM_THRESHOLD_", &self.trim_threshold);
    }

    /// Settings for a candle child.
    pub fn candle(&self, c: &mut Command) {
        c.env("CANDLE_NUM_THREADS", &self.candle_threads);
        self.malloc(c);
    }

    /// Settings for a PyTorch child.
    pub fn torch(&self, c: &mut Command) {
        c.env("OMP_WAIT_POLICY", &self.omp_wait);
        self.malloc(c);
    }

    /// One line for the table's header.
    pub fn describe(&self) -> String {
        format!(
            "candle CANDLE_NUM_THREADS={}; PyTorch OMP_WAIT_POLICY={}; both \
             MALLOC_MMAP_THRESHOLD_={} MALLOC_TRIM_THRESHOLD_={}",
            self.candle_threads, self.omp_wait, self.mmap_threshold, self.trim_threshold
        )
    }
}

/// The command line of a benchmark binary: `--flag value` pairs and bare switches, checked
/// against the ones the binary knows, so that `--help` prints the usage (instead of running
/// the benchmark) and a typo is an error instead of a silently ignored setting.
#[derive(Debug)]
pub enum Cli {
    /// `-h` / `--help`: print this usage and exit 0.
    Help(String),
    /// The flags, checked.
    Run(Flags),
}

/// Checked flags: `(name, value)`, a switch with an empty value.
#[derive(Debug, Default)]
pub struct Flags(Vec<(String, String)>);

impl Flags {
    /// The value of `--name`, parsed, or `default` when absent.
    pub fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.0.iter().find(|(n, _)| n == name) {
            Some((_, v)) => v
                .parse()
                .map_err(|_| format!("{name}: `{v}` is not a valid value")),
            None => Ok(default),
        }
    }

    /// The raw value of `--name`, if given.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the switch `--name` is given.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
}

/// Parses `args` (without the program name). `options` take a value, `switches` do not;
/// anything else is an error that points at `--help`.
pub fn parse_cli(
    args: &[String],
    usage: &str,
    options: &[&str],
    switches: &[&str],
) -> Result<Cli, String> {
    let mut flags = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a.as_str();
        if a == "-h" || a == "--help" {
            return Ok(Cli::Help(usage.to_string()));
        } else if options.contains(&a) {
            let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
            flags.push((a.to_string(), v.clone()));
        } else if switches.contains(&a) {
            flags.push((a.to_string(), String::new()));
        } else {
            return Err(format!("unknown argument `{a}`; see --help"));
        }
    }
    Ok(Cli::Run(Flags(flags)))
}

/// The 1-, 5- and 15-minute load averages (`n/a` where the OS does not say).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}

/// The median (upper middle for an even count; NaN for none). Sorts `v`.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One `RESULT` line, or one case summarised over rounds ([`summarize`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CaseResult {
    pub case: String,
    pub median_ms: f64,
    pub min_ms: f64,
    /// Peak memory in MiB (host RSS, or GPU memory for GPU cases).
    pub peak_mib: f64,
    /// The line's fields after the first four, as printed.
    pub extra: Vec<String>,
    /// The 1-minute load average when the child started; in a summary, one per round.
    pub load: String,
}

/// The `RESULT` lines of a child's output, each tagged with `load`'s first number.
pub fn parse_results(out: &str, load: &str) -> Vec<CaseResult> {
    out.lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(CaseResult {
                case: f.first()?.to_string(),
                median_ms: f.get(1)?.parse().ok()?,
                min_ms: f.get(2)?.parse().ok()?,
                peak_mib: f.get(3)?.parse().ok()?,
                extra: f[4..].iter().map(|s| s.to_string()).collect(),
                load: load.split(' ').next().unwrap_or("?").to_string(),
            })
        })
        .collect()
}

/// Runs the named commands one after another; returns their `RESULT` rows and `PHASES` lines
/// (prefix stripped), or the first failure with the child's stderr.
pub fn run_cases(cmds: Vec<(String, Command)>) -> Result<(Vec<CaseResult>, Vec<String>), String> {
    let (mut rows, mut phases) = (Vec::new(), Vec::new());
    for (name, mut cmd) in cmds {
        let load = loadavg();
        let out = cmd.output().map_err(|e| format!("running {name}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        phases.extend(
            stdout
                .lines()
                .filter_map(|l| l.strip_prefix("PHASES "))
                .map(str::to_string),
        );
        rows.extend(parse_results(&stdout, &load));
    }
    Ok((rows, phases))
}

/// One row per case, in first-seen order: the median of its per-round medians, the smallest
/// minimum, the largest peak, the first round's extra fields and every round's load.
pub fn summarize(rows: &[CaseResult]) -> Vec<CaseResult> {
    let mut cases: Vec<&str> = Vec::new();
    for r in rows {
        if !cases.contains(&r.case.as_str()) {
            cases.push(&r.case);
        }
    }
    cases
        .into_iter()
        .filter_map(|case| {
            let of: Vec<&CaseResult> = rows.iter().filter(|r| r.case == case).collect();
            let first = of.first()?;
            let mut medians: Vec<f64> = of.iter().map(|r| r.median_ms).collect();
            Some(CaseResult {
                case: case.to_string(),
                median_ms: median(&mut medians),
                min_ms: of.iter().map(|r| r.min_ms).fold(f64::INFINITY, f64::min),
                peak_mib: of.iter().map(|r| r.peak_mib).fold(0.0, f64::max),
                extra: first.extra.clone(),
                load: of
                    .iter()
                    .map(|r| r.load.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_is_help_and_typos_are_errors() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let opts = ["--steps", "--device"];
        assert!(matches!(
            parse_cli(&a(&["--steps", "2", "--help"]), "usage", &opts, &[]),
            Ok(Cli::Help(u)) if u == "usage"
        ));
        let Ok(Cli::Run(f)) =
            parse_cli(&a(&["--steps", "2", "--parity"]), "u", &opts, &["--parity"])
        else {
            panic!("parses");
        };
        assert_eq!(f.get("--steps", 3usize), Ok(2));
        assert_eq!(f.get("--rounds", 5usize), Ok(5));
        assert!(f.has("--parity"));
        assert_eq!(f.value("--device"), None);
        assert!(f.get::<usize>("--steps", 0).is_ok());
        let e = parse_cli(&a(&["--step", "2"]), "u", &opts, &[]).unwrap_err();
        assert!(e.contains("`--step`"), "{e}");
        let e = parse_cli(&a(&["--steps"]), "u", &opts, &[]).unwrap_err();
        assert!(e.contains("needs a value"), "{e}");
        let Ok(Cli::Run(f)) = parse_cli(&a(&["--steps", "x"]), "u", &opts, &[]) else {
            panic!("parses");
        };
        assert!(f.get::<usize>("--steps", 1).is_err());
    }

    #[test]
    fn results_are_parsed_and_summarised_per_case() {
        let round = |m1: f64, m2: f64| {
            format!("noise\nRESULT a {m1} 1.0 100 3/4 7\nPHASES a x 1\nRESULT b {m2} 2.0 50 0 0\n")
        };
        let mut rows = parse_results(&round(10.0, 20.0), "0.5 0.4 0.3");
        rows.extend(parse_results(&round(30.0, 40.0), "1.5 1.0 0.8"));
        rows.extend(parse_results(&round(20.0, 60.0), "2.5 1.0 0.8"));
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[0].extra, ["3/4", "7"]);
        let s = summarize(&rows);
        assert_eq!(
            s.iter().map(|r| r.case.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!((s[0].median_ms, s[1].median_ms), (20.0, 40.0));
        assert_eq!((s[0].min_ms, s[0].peak_mib), (1.0, 100.0));
        assert_eq!(s[0].load, "0.5, 1.5, 2.5");
        assert!(median(&mut []).is_nan());
    }
}
