//! Every binary answers `--help` with its usage and exits 0 without starting work, and a node
//! that fails prints its error chain, not a stack backtrace (even with `RUST_BACKTRACE=1`, as
//! the dora daemon's environment often has it).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use vipa_e2e::{bin_dir, build_nodes};

/// The dora nodes (configured by `VIPA_CONFIG`) and a setting each one's help must list.
const NODES: [(&str, &str); 10] = [
    ("vipa-video-ingest", "folder"),
    ("vipa-frame-check", "summary_path"),
    ("vipa-lift-depth", "backend"),
    ("vipa-lift-hands", "backend"),
    ("vipa-annotate", "out"),
    ("vipa-dataset-reader", "dataset"),
    ("vipa-encoder-2d", "preset"),
    ("vipa-encoder-3d", "backend"),
    ("vipa-train", "max_steps"),
    ("feature-check", "credits"),
];

/// The tools (flags on the command line).
const TOOLS: [&str; 9] = [
    "vipa-run",
    "vipa-synth",
    "vipa-ablation",
    "transport-bench",
    "train-bench",
    "model-bench",
    "kernel-bench",
    "hand3d-step",
    "annotate-bench",
];

fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    build_nodes(&[bin]).unwrap_or_else(|e| panic!("{e}"));
    let mut c = Command::new(bin_dir().join(bin));
    c.args(args)
        .env_remove("VIPA_CONFIG")
        .env_remove("VIPA_BACKTRACE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_binary_answers_help_and_exits_without_working() {
    for (bin, key) in NODES {
        let t = Instant::now();
        let out = run(bin, &["--help"], &[]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{bin} --help: {out:?}");
        assert!(stdout.contains("VIPA_CONFIG"), "{bin}: {stdout}");
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{key}:"))),
            "{bin}'s help lists no `{key}` setting:\n{stdout}"
        );
        assert!(t.elapsed() < Duration::from_secs(10), "{bin} --help worked");
    }
    for bin in TOOLS {
        let t = Instant::now();
        let out = run(bin, &["--help"], &[]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{bin} --help: {out:?}");
        assert!(stdout.to_lowercase().contains("usage"), "{bin}: {stdout}");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{bin} --help ran the benchmark"
        );
    }
}

#[test]
fn a_node_refuses_arguments_and_a_tool_refuses_typos() {
    let out = run("vipa-frame-check", &["--fps", "3"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("VIPA_CONFIG"), "{out:?}");
    let out = run("model-bench", &["--step", "1"], &[]);
    assert!(!out.status.success(), "{out:?}");
    assert!(text(&out.stderr).contains("`--step`"), "{out:?}");
}

#[test]
fn a_bad_config_prints_the_error_chain_without_a_backtrace() {
    let env = [
        ("VIPA_CONFIG", "{summary_pth: out/x.json}"),
        ("RUST_BACKTRACE", "1"),
    ];
    let out = run("vipa-frame-check", &[], &env);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("summary_pth"), "{stderr}");
    assert!(stderr.contains("vipa-frame-check config"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    assert!(!stderr.contains("Location:"), "{stderr}");
    assert!(stderr.lines().count() <= 4, "{stderr}");
    // Asked for: eyre's whole report.
    let env = [env[0], env[1], ("VIPA_BACKTRACE", "1")];
    let full = text(&run("vipa-frame-check", &[], &env).stderr);
    assert!(full.contains("summary_pth"), "{full}");
    assert!(full.lines().count() > stderr.lines().count(), "{full}");
}

/// `vipa-run` keeps the command's output in its log, shows the node's progress instead, and
/// passes the exit code on; on failure it shows the log's last lines.
#[test]
fn vipa_run_shows_progress_keeps_the_log_and_passes_failures_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("logs/run.log");
    let progress = dir.path().join("progress.json");
    let json = r#"{"phase":"stage 1","done":60,"total":60,"unit":"steps","message":"loss 0.5","elapsed_s":3.0,"finished":true}"#;
    let script = format!(
        "echo dora noise; printf '%s' '{json}' > {}; sleep 0.5",
        progress.display()
    );
    let (log_s, progress_s) = (log.display().to_string(), progress.display().to_string());
    let out = run(
        "vipa-run",
        &[
            "--title",
            "stage 1",
            "--log",
            &log_s,
            "--progress",
            &progress_s,
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[],
    );
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stderr.contains("stage 1: 60/60 steps, loss 0.5"),
        "{stderr}"
    );
    assert!(stderr.contains("stage 1: done in"), "{stderr}");
    assert!(!stderr.contains("dora noise") && !text(&out.stdout).contains("dora noise"));
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("dora noise")
    );

    let out = run(
        "vipa-run",
        &[
            "--title",
            "eval",
            "--log",
            &log_s,
            "--",
            "sh",
            "-c",
            "echo first; echo 'the error' >&2; exit 3",
        ],
        &[],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("eval: failed"), "{stderr}");
    assert!(stderr.contains("| the error"), "{stderr}");
    assert!(stderr.contains(&log_s), "{stderr}");
}
