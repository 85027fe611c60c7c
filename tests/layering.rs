//! The layering of `src/`, checked over the `crate::` and `super::` paths of the
//! production code (test modules are left out: a test may reach anywhere).
//!
//! Data flows one way — sources (`poll`, `push`, `vgs`) → `store` → dispatcher
//! (`sinks::dispatcher`) → sinks (`sinks::<kind>`) — with the API layer (`cen`, `json`,
//! `subscriptions`) and the simulator beside them, and the service layer (`service`, `cli`,
//! `admin`, `demo`, `operations`, `status`) on top. Checked here:
//! - no cycle between top-level modules, and none between the files of the crate (a
//!   `mod.rs` declaring and re-exporting its files is not a use of them; a file using its
//!   module's shared items through `super::` is);
//! - the store imports no source, sink, simulator or service module, nor the configuration;
//! - a sink kind imports neither the store nor the configuration: it sees the record it
//!   delivers (`sinks::Record`) and the files it is given (`sinks::Files`);
//! - sources import neither the sinks nor the service layer nor the simulator;
//! - the API layer imports only the JSON and unit modules (and each other);
//! - production code reaches the simulator only from `cli` and `demo`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The service layer: allowed to use anything below it.
const SERVICE: &[&str] = &["service", "cli", "admin", "demo", "operations", "status"];
const SOURCES: &[&str] = &["poll", "push", "vgs"];

/// Each file's module path (`store::handle`) and its production source.
fn files() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>, root: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out, root);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                if parts.last().is_some_and(|p| p == "mod") {
                    parts.pop();
                }
                if parts == ["lib"] || parts == ["main"] {
                    continue;
                }
                out.insert(parts.join("::"), production(&std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&root, &mut out, &root);
    out
}

/// The text without its test module and without comment lines.
fn production(text: &str) -> String {
    let cut = text
        .match_indices("#[cfg(test)]")
        .find(|(i, _)| {
            let rest = text[i + "#[cfg(test)]".len()..].trim_start();
            rest.starts_with("mod ") || rest.starts_with("pub mod ") || rest.starts_with("pub(crate) mod ")
        })
        .map_or(text.len(), |(i, _)| i);
    text[..cut].lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Every `crate::…` and `super::…` path in `text`, with `{…}` groups expanded, as segments.
fn paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    for start in ["crate::", "super::"].iter().flat_map(|p| text.match_indices(p).map(|(i, _)| i)) {
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let rest = &text[start..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
        let head: Vec<String> = rest[..end].split("::").filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if rest[end..].starts_with('{') {
            let group = &rest[end + 1..rest[end..].find('}').map_or(rest.len(), |i| end + i)];
            for item in group.split(',') {
                let item = item.split(" as ").next().unwrap().trim();
                let mut path = head.clone();
                if !item.is_empty() && item != "self" {
                    path.extend(item.split("::").map(str::to_owned));
                }
                out.push(path);
            }
        } else {
            out.push(head);
        }
    }
    out
}

/// The file each production file uses, by module path.
fn edges(files: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, text) in files {
        let here: Vec<&str> = module.split("::").collect();
        for path in paths(text) {
            let absolute: Vec<String> = if path[0] == "crate" {
                path[1..].to_vec()
            } else {
                let mut base: Vec<String> = here[..here.len() - 1].iter().map(|s| s.to_string()).collect();
                let mut rest = &path[1..];
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                base
            };
            let target = (1..=absolute.len()).rev().map(|n| absolute[..n].join("::")).find(|m| files.contains_key(m));
            if let Some(target) = target.filter(|t| t != module) {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    edges
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap()
}

/// The strongly connected components with more than one member (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    impl<'g> T<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let lw = self.low[w.as_str()];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on.contains(w.as_str()) {
                    let iw = self.index[w.as_str()];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.out.push(component);
                }
            }
        }
    }
    let mut t = T {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    let nodes: BTreeSet<&str> =
        graph.keys().map(String::as_str).chain(graph.values().flatten().map(String::as_str)).collect();
    for v in nodes {
        if !t.index.contains_key(v) {
            t.visit(v);
        }
    }
    t.out
}

#[test]
fn the_parser_sees_what_the_code_uses() {
    let text = "use crate::store::{Leased, StoreHandle};\nuse super::super::x::Y;\n// crate::sinks\nlet a = crate::cen::id::f();";
    let found = paths(&production(text));
    assert!(found.contains(&vec!["crate".into(), "store".into(), "Leased".into()]), "{found:?}");
    assert!(found.contains(&vec!["super".into(), "super".into(), "x".into(), "Y".into()]), "{found:?}");
    assert!(found.contains(&vec!["crate".into(), "cen".into(), "id".into(), "f".into()]), "{found:?}");
    assert!(!found.iter().any(|p| p.get(1).is_some_and(|s| s == "sinks")), "comments are not code");
    // And the crate's own graph is not empty: the check below checks something.
    let edges = edges(&files());
    assert!(edges.get("sinks::dispatcher").is_some_and(|e| e.contains("store")), "{edges:?}");
}

#[test]
fn no_cycles_between_modules_or_files() {
    let edges = edges(&files());
    let file_cycles = cycles(&edges);
    assert!(file_cycles.is_empty(), "files that use each other: {file_cycles:?}");
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in &edges {
        for to in targets.iter().filter(|t| top(t) != top(from)) {
            modules.entry(top(from).to_owned()).or_default().insert(top(to).to_owned());
        }
    }
    let module_cycles = cycles(&modules);
    assert!(module_cycles.is_empty(), "modules that use each other: {module_cycles:?}");
}

#[test]
fn data_flows_one_way() {
    let edges = edges(&files());
    let mut violations = Vec::new();
    for (from, targets) in &edges {
        for to in targets {
            let (f, t) = (top(from), top(to));
            let forbidden = match f {
                "store" => {
                    SOURCES.contains(&t)
                        || SERVICE.contains(&t)
                        || ["sinks", "simulate", "config", "subscriptions", "server"].contains(&t)
                }
                "sinks" if from != "sinks::dispatcher" => {
                    ["store", "config"].contains(&t) || SOURCES.contains(&t) || SERVICE.contains(&t)
                }
                "sinks" => SOURCES.contains(&t) || SERVICE.contains(&t),
                "poll" | "push" | "vgs" => t == "sinks" || t == "simulate" || SERVICE.contains(&t),
                "cen" | "json" | "units" | "subscriptions" => !["cen", "json", "units", "subscriptions"].contains(&t),
                _ => false,
            };
            let simulator = t == "simulate" && !["cli", "demo", "simulate"].contains(&f);
            if forbidden || simulator {
                violations.push(format!("{from} uses {to}"));
            }
        }
    }
    assert!(violations.is_empty(), "against the layering:\n{}", violations.join("\n"));
}
