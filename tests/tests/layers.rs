//! The crate layering, checked on `cargo metadata` (the resolved dependency graph, normal
//! dependencies only: dev-dependencies of tests may reach anything).
//!
//! Folders are layers: `libs/` and `models/` (libraries) < `nodes/` (dora nodes) < `tools/`
//! < `benches/`, `tests/`. The rules:
//! - no crate depends on a crate of a higher layer;
//! - nodes never depend on nodes (they share code through the libraries);
//! - `vipa-msgs` reaches no candle and no dora, and the models reach no dora;
//! - nothing on a production path (libs, models, nodes, tools) reaches the synthetic generator
//!   `vipa-synth`: ground truth is read through `vipa-truth`, Arrow and Parquet only (tests and
//!   benchmarks may generate clips);
//! - inside a crate, the top-level modules import each other without a cycle (a circle such as
//!   `config` ↔ `calibrate` means neither can be read, tested or moved alone).
//!
//! A failure names the offending edge and, for a transitive one, the whole chain.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// One workspace crate: its name, folder layer and folder.
struct Member {
    name: String,
    layer: Layer,
    dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    Library,
    Node,
    Tool,
    Top,
}

fn layer_of(rel: &Path) -> Option<Layer> {
    let top = rel.components().next()?.as_os_str().to_str()?;
    Some(match top {
        "libs" | "models" => Layer::Library,
        "nodes" => Layer::Node,
        "tools" => Layer::Tool,
        "benches" | "tests" => Layer::Top,
        _ => return None,
    })
}

/// The resolved graph: package id → (name, normal dependencies' ids), and the members.
struct Graph {
    names: BTreeMap<String, String>,
    deps: BTreeMap<String, Vec<String>>,
    members: BTreeMap<String, Member>,
}

/// The host's target triple (`rustc -vV`): the resolve is filtered to it, so that cargo needs
/// no package of another platform (offline, those were never downloaded).
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("cannot run rustc -vV");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

/// The resolved graph, read once per test process.
fn metadata() -> &'static Graph {
    static GRAPH: std::sync::OnceLock<Graph> = std::sync::OnceLock::new();
    GRAPH.get_or_init(read_metadata)
}

fn read_metadata() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = vipa_e2e::repo_root();
    let out = Command::new(cargo)
        .current_dir(&root)
        .args(["metadata", "--format-version", "1", "--offline", "--locked"])
        .args(["--filter-platform", &host_triple()])
        .output()
        .expect("cannot run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");
    let mut names = BTreeMap::new();
    let mut members = BTreeMap::new();
    let workspace: Vec<&str> = v["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for p in v["packages"].as_array().expect("packages") {
        let id = p["id"].as_str().expect("package id").to_owned();
        let name = p["name"].as_str().expect("package name").to_owned();
        if workspace.contains(&id.as_str()) {
            let manifest = Path::new(p["manifest_path"].as_str().expect("manifest_path"));
            let dir = manifest.parent().expect("manifest folder");
            let rel = dir
                .strip_prefix(&root)
                .expect("member inside the workspace");
            let layer = layer_of(rel).unwrap_or_else(|| {
                panic!(
                    "{name} sits in {}, which is no layer folder (libs, models, nodes, tools, \
                     benches, tests)",
                    rel.display()
                )
            });
            members.insert(
                id.clone(),
                Member {
                    name: name.clone(),
                    layer,
                    dir: dir.to_path_buf(),
                },
            );
        }
        names.insert(id, name);
    }
    let mut deps = BTreeMap::new();
    for n in v["resolve"]["nodes"].as_array().expect("resolve.nodes") {
        let id = n["id"].as_str().expect("node id").to_owned();
        let normal: Vec<String> = n["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .is_some_and(|ks| ks.iter().any(|k| k["kind"].is_null()))
            })
            .filter_map(|d| d["pkg"].as_str().map(str::to_owned))
            .collect();
        deps.insert(id, normal);
    }
    Graph {
        names,
        deps,
        members,
    }
}

impl Graph {
    fn id(&self, name: &str) -> &str {
        self.members
            .iter()
            .find(|(_, m)| m.name == name)
            .map(|(id, _)| id.as_str())
            .unwrap_or_else(|| panic!("no workspace crate `{name}`"))
    }

    /// The shortest chain of normal dependencies from `from` to a crate matching `hit`.
    fn reaches(&self, from: &str, hit: impl Fn(&str) -> bool) -> Option<Vec<String>> {
        let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(id) = queue.pop_front() {
            for d in self.deps.get(id).into_iter().flatten() {
                if d == from || parent.contains_key(d.as_str()) {
                    continue;
                }
                parent.insert(d, id);
                if hit(&self.names[d]) {
                    let mut chain = vec![self.names[d].clone()];
                    let mut at = d.as_str();
                    while let Some(&p) = parent.get(at) {
                        chain.push(self.names[p].clone());
                        at = p;
                    }
                    chain.reverse();
                    return Some(chain);
                }
                queue.push_back(d);
            }
        }
        None
    }
}

fn violations() -> Vec<String> {
    let g = metadata();
    let mut out = Vec::new();
    for (id, m) in &g.members {
        for d in g.deps.get(id).into_iter().flatten() {
            let Some(dm) = g.members.get(d) else {
                continue;
            };
            if dm.layer > m.layer {
                out.push(format!(
                    "{} ({:?}) → {} ({:?}): a crate depends on a higher layer",
                    m.name, m.layer, dm.name, dm.layer
                ));
            }
            if m.layer == Layer::Node && dm.layer == Layer::Node {
                out.push(format!(
                    "{} → {}: nodes never depend on nodes (share code through libs/)",
                    m.name, dm.name
                ));
            }
        }
        if m.layer != Layer::Top
            && m.name != "vipa-synth"
            && let Some(chain) = g.reaches(id, |n| n == "vipa-synth")
        {
            out.push(format!(
                "{}: a production crate reaches the synthetic generator (read ground truth \
                 through vipa-truth)",
                chain.join(" → ")
            ));
        }
    }
    let msgs = g.id("vipa-msgs");
    if let Some(chain) = g.reaches(msgs, |n| n.starts_with("candle") || n.starts_with("dora")) {
        out.push(format!(
            "{}: vipa-msgs uses neither candle nor dora",
            chain.join(" → ")
        ));
    }
    for m in g.members.values() {
        if let Some(c) = a_cycle(&module_imports(&m.dir.join("src"))) {
            out.push(format!(
                "{}: modules import each other in a circle: {}",
                m.name,
                c.join(" → ")
            ));
        }
    }
    for model in ["vipa-models", "vipa-kernels"] {
        if let Some(chain) = g.reaches(g.id(model), |n| n.starts_with("dora")) {
            out.push(format!("{}: the models use no dora", chain.join(" → ")));
        }
    }
    out
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules a source line imports: `crate::a::…` and `crate::{a::…, b}`.
fn crate_refs(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let ident = |s: &str| -> usize {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let item = item.trim();
                let n = ident(item);
                if n > 0 {
                    out.push(&item[..n]);
                }
            }
        } else {
            let n = ident(rest);
            if n > 0 {
                out.push(&rest[..n]);
            }
        }
    }
    out
}

/// Module → the modules it imports, for the top-level modules of `src` (a file `src/a.rs` or a
/// folder `src/a/`); comments and `#[cfg(test)]` code (from that line on) do not count.
fn module_imports(src: &Path) -> BTreeMap<String, Vec<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let module_of = |p: &Path| -> Option<String> {
        let first = p.strip_prefix(src).ok()?.components().next()?;
        let name = first
            .as_os_str()
            .to_str()?
            .trim_end_matches(".rs")
            .to_owned();
        (!matches!(name.as_str(), "lib" | "main" | "bin")).then_some(name)
    };
    let modules: Vec<String> = files.iter().filter_map(|p| module_of(p)).collect();
    let mut graph: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &files {
        let Some(m) = module_of(p) else {
            continue;
        };
        let text = std::fs::read_to_string(p).unwrap_or_default();
        for line in text.lines() {
            let line = line.trim_start();
            if line.starts_with("#[cfg(test)]") {
                break;
            }
            if line.starts_with("//") {
                continue;
            }
            for r in crate_refs(line) {
                if r != m && modules.iter().any(|x| x == r) {
                    let e = graph.entry(m.clone()).or_default();
                    if !e.iter().any(|x| x == r) {
                        e.push(r.to_owned());
                    }
                }
            }
        }
    }
    graph
}

/// One cycle of `graph` (as `a → b → a`), if it has any.
fn a_cycle(graph: &BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        u: &str,
        graph: &BTreeMap<String, Vec<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(u.to_owned(), 1);
        stack.push(u.to_owned());
        for v in graph.get(u).into_iter().flatten() {
            match state.get(v.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|x| x == v).unwrap_or(0);
                    let mut c = stack[at..].to_vec();
                    c.push(v.clone());
                    return Some(c);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(v, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(u.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for u in graph.keys() {
        if !state.contains_key(u.as_str())
            && let Some(c) = visit(u, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_crates_keep_their_layers() {
    let v = violations();
    assert!(
        v.is_empty(),
        "dependency rules broken:\n- {}",
        v.join("\n- ")
    );
}

#[test]
fn the_check_sees_a_real_chain() {
    // The search itself must work, or an empty violation list would prove nothing: the
    // trainer node reaches candle through vipa-models, and vipa-msgs reaches arrow.
    let g = metadata();
    let chain = g
        .reaches(g.id("vipa-train"), |n| n == "candle-core")
        .expect("vipa-train reaches candle-core");
    assert_eq!(chain.first().map(String::as_str), Some("vipa-train"));
    assert_eq!(chain.last().map(String::as_str), Some("candle-core"));
    assert!(g.reaches(g.id("vipa-msgs"), |n| n == "arrow").is_some());
    assert!(
        g.reaches(g.id("vipa-e2e"), |n| n == "vipa-synth").is_none(),
        "dev-dependencies are not followed"
    );
    let layers: Vec<Layer> = ["vipa-msgs", "vipa-train", "vipa-tools", "vipa-bench"]
        .iter()
        .map(|n| g.members[g.id(n)].layer)
        .collect();
    assert_eq!(
        layers,
        [Layer::Library, Layer::Node, Layer::Tool, Layer::Top]
    );
}

#[test]
fn the_module_check_finds_a_planted_circle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("deep")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod config;\npub mod deep;\n").unwrap();
    std::fs::write(
        src.join("config.rs"),
        "// crate::deep in a comment does not count\nuse crate::{stats::median, deep::x};\n",
    )
    .unwrap();
    std::fs::write(src.join("stats.rs"), "pub fn median() {}\n").unwrap();
    std::fs::write(src.join("deep/mod.rs"), "pub mod inner;\n").unwrap();
    std::fs::write(
        src.join("deep/inner.rs"),
        "pub fn x() {}\n#[cfg(test)]\nmod tests { use crate::stats::median; }\n",
    )
    .unwrap();
    let g = module_imports(src);
    assert_eq!(g["config"], ["stats", "deep"]);
    assert!(a_cycle(&g).is_none(), "{g:?}");
    std::fs::write(src.join("deep/inner.rs"), "use crate::config::C;\n").unwrap();
    let c = a_cycle(&module_imports(src)).expect("config → deep → config");
    assert_eq!(c, ["config", "deep", "config"]);
}
