//! No import cycle between the modules of a product crate.
//!
//! A module depends on another when its source names it: `use crate::x::…`, `super::…`,
//! `self::…`, a child module's name, or an item the target module re-exports (`crate::Error` is a
//! dependency on the module `pub use` takes `Error` from). Inline modules (`mod tests { … }`) are
//! modules of their own; declaring a child (`mod x;`) is not a dependency. A cycle is a strongly
//! connected group of two or more modules, reported with one concrete path through it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates the check covers (the lab and the test peers are test infrastructure).
const PRODUCT_CRATES: &[&str] = &[
    "api",
    "vsphere",
    "esxi",
    "storage",
    "populator",
    "controller",
    "cli",
];

/// Cycles known today in crates other engineers are restructuring; each entry is a crate and the
/// exact set of modules of one cycle. An entry that no longer matches a cycle fails the test, so
/// the list only shrinks. `co-vsphere` never appears here.
const KNOWN_CYCLES: &[(&str, &[&str])] = &[];

#[test]
fn no_product_crate_has_an_import_cycle_between_its_modules() {
    let crates_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for name in PRODUCT_CRATES {
        let src = crates_dir.join(name).join("src");
        let files = read_sources(&src);
        assert!(!files.is_empty(), "no sources under {}", src.display());
        let graph = ModuleGraph::from_sources(&files);
        for (members, path) in graph.cycles() {
            found.push(((*name).to_owned(), members, path));
        }
    }

    let known: BTreeSet<(String, Vec<String>)> = KNOWN_CYCLES
        .iter()
        .map(|(krate, members)| {
            let mut members: Vec<String> = members.iter().map(|m| (*m).to_owned()).collect();
            members.sort();
            ((*krate).to_owned(), members)
        })
        .collect();
    assert!(
        known.iter().all(|(krate, _)| krate != "vsphere"),
        "co-vsphere may not allow-list a cycle"
    );
    let new: Vec<String> = found
        .iter()
        .filter(|(krate, members, _)| !known.contains(&(krate.clone(), members.clone())))
        .map(|(krate, members, path)| {
            format!(
                "crates/{krate}: {} (modules in the cycle: {members:?})",
                path.join(" -> ")
            )
        })
        .collect();
    let stale: Vec<String> = known
        .iter()
        .filter(|(krate, members)| !found.iter().any(|(k, m, _)| k == krate && m == members))
        .map(|(krate, members)| format!("crates/{krate}: {members:?}"))
        .collect();
    assert!(
        new.is_empty(),
        "import cycles between modules (break each by moving the shared piece into a module both \
         can depend on):\n  {}",
        new.join("\n  ")
    );
    assert!(
        stale.is_empty(),
        "allow-listed cycles that no longer exist; remove them from KNOWN_CYCLES:\n  {}",
        stale.join("\n  ")
    );
}

#[test]
fn a_cycle_through_use_super_and_a_root_re_export_is_found() {
    let files = sources(&[
        ("lib.rs", "mod a;\nmod b;\nmod c;\npub use b::Thing;\n"),
        (
            "a.rs",
            "use crate::Thing; // resolves to b\nfn f() { let _ = \"crate::c::x\"; }\n",
        ),
        ("b.rs", "use super::c::helper;\npub struct Thing;\n"),
        (
            "c.rs",
            "pub fn helper() { crate::a::f(); }\n#[cfg(test)]\nmod tests { use super::*; use crate::b::Thing; }\n",
        ),
    ]);
    let graph = ModuleGraph::from_sources(&files);
    let cycles = graph.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    let (members, path) = &cycles[0];
    assert_eq!(members, &["a", "b", "c"]);
    assert_eq!(path.first(), path.last(), "the path closes: {path:?}");
    assert_eq!(path.len(), 4, "{path:?}");
}

#[test]
fn children_siblings_groups_and_test_modules_do_not_make_cycles() {
    let files = sources(&[
        (
            "lib.rs",
            "mod object;\nmod client;\npub use object::{HostSystem, datastore::Datastore};\npub use client::Client;\n",
        ),
        ("client.rs", "use crate::object as _unused_in_real_code;\n"),
        (
            "object/mod.rs",
            "mod datastore;\nmod host_system;\npub use datastore::Datastore;\npub use host_system::HostSystem;\n",
        ),
        (
            "object/host_system.rs",
            "use super::datastore::Datastore;\nuse crate::client::Client;\nconst X: &str = r#\"crate::object\"#;\n",
        ),
        (
            "object/datastore.rs",
            "use crate::{client::Client, Client as C};\nfn f<'a>(c: &'a Client) -> char { 'x' }\n#[cfg(test)]\nmod tests {\n    use crate::object::HostSystem;\n}\n",
        ),
    ]);
    let graph = ModuleGraph::from_sources(&files);
    assert!(
        graph.edges["object::host_system"].contains("object::datastore"),
        "{:?}",
        graph.edges
    );
    assert!(graph.edges["object::datastore::tests"].contains("object::host_system"));
    // client -> object -> {datastore, host_system} -> client: a real cycle.
    let cycles = graph.cycles();
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].0.contains(&"client".to_owned()));

    let without_client_edge = sources(&[
        (
            "lib.rs",
            "mod object;\nmod client;\npub use client::Client;\n",
        ),
        ("client.rs", "pub struct Client;\n"),
        (
            "object/mod.rs",
            "mod datastore;\npub use datastore::Datastore;\n",
        ),
        (
            "object/datastore.rs",
            "use crate::Client;\n#[cfg(test)]\nmod tests { use super::*; use crate::object::Datastore; }\n",
        ),
    ]);
    assert!(
        ModuleGraph::from_sources(&without_client_edge)
            .cycles()
            .is_empty()
    );
}

/// Source files as (path relative to `src/`, text).
type Sources = Vec<(PathBuf, String)>;

fn sources(files: &[(&str, &str)]) -> Sources {
    files
        .iter()
        .map(|(path, text)| (PathBuf::from(path), (*text).to_owned()))
        .collect()
}

fn read_sources(src: &Path) -> Sources {
    let mut out = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                out.push((path.strip_prefix(src).unwrap().to_path_buf(), text));
            }
        }
    }
    out.sort();
    out
}

/// The module path of a file: `lib.rs` → "", `a/mod.rs` → "a", `a/b.rs` → "a::b".
fn file_module(path: &Path) -> String {
    let mut parts: Vec<String> = path
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    let crate_root = parts.is_empty() && matches!(stem, "lib" | "main");
    if stem != "mod" && !crate_root {
        parts.push(stem.to_owned());
    }
    parts.join("::")
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}::{child}")
    }
}

fn parent_of(module: &str) -> String {
    module
        .rsplit_once("::")
        .map(|(p, _)| p.to_owned())
        .unwrap_or_default()
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Semi,
    Other(char),
}

/// Tokens of Rust source with comments, strings and char literals removed.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '/' if next == Some('/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            'r' | 'b' if is_raw_string_start(&chars, i) => {
                let mut j = i + 1;
                if chars[j] == 'r' {
                    j += 1;
                }
                let mut hashes = 0;
                while chars[j] == '#' {
                    hashes += 1;
                    j += 1;
                }
                j += 1; // the opening quote
                loop {
                    if j >= chars.len() {
                        break;
                    }
                    if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                i = j;
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '\'' => {
                // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
                if next == Some('\\') {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            ':' if next == Some(':') => {
                tokens.push(Token::PathSep);
                i += 2;
            }
            '{' => {
                tokens.push(Token::Open);
                i += 1;
            }
            '}' => {
                tokens.push(Token::Close);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            ';' => {
                tokens.push(Token::Semi);
                i += 1;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            }
            c if c.is_whitespace() => i += 1,
            c => {
                tokens.push(Token::Other(c));
                i += 1;
            }
        }
    }
    tokens
}

fn is_raw_string_start(chars: &[char], i: usize) -> bool {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return false;
    }
    let mut j = i;
    if chars[j] == 'b' {
        j += 1;
        if chars.get(j) != Some(&'r') {
            return false;
        }
    }
    j += 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    chars.get(j) == Some(&'"')
}

/// Where a name re-exported by a module comes from.
#[derive(Debug, Clone)]
enum ReExport {
    /// The module the name resolves to, and the item name there when it is not a module.
    Module(String, Option<String>),
    /// Another crate (`pub use co_api::Secret`): no dependency inside this crate.
    External,
}

/// One path as written, with the module it is written in.
struct PathUse {
    from: String,
    segments: Vec<String>,
    /// Written in a `pub use` of `from`.
    re_export: bool,
}

struct ModuleGraph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl ModuleGraph {
    fn from_sources(files: &Sources) -> Self {
        let mut modules: BTreeSet<String> = BTreeSet::new();
        let mut uses: Vec<PathUse> = Vec::new();
        let mut file_tokens = Vec::new();
        for (path, text) in files {
            let module = file_module(path);
            modules.insert(module.clone());
            file_tokens.push((module, tokenize(text)));
        }
        // Declared children (file and inline), so that `child::x` paths resolve.
        for (module, tokens) in &file_tokens {
            collect_paths(module, tokens, &mut modules, &mut uses);
        }
        let known = modules.clone();
        let resolve_base = |u: &PathUse| -> Option<(String, Vec<String>)> {
            let mut segments = u.segments.iter().peekable();
            let first = segments.next()?;
            let mut base = match first.as_str() {
                "crate" => String::new(),
                "self" => u.from.clone(),
                "super" => parent_of(&u.from),
                child if known.contains(&join(&u.from, child)) => join(&u.from, child),
                _ => return None,
            };
            while segments.peek().is_some_and(|s| s.as_str() == "super") {
                segments.next();
                base = parent_of(&base);
            }
            Some((base, segments.cloned().collect()))
        };
        // Longest module prefix of a path, and the item name after it.
        let walk = |base: String, rest: &[String]| -> (String, Option<String>) {
            let mut module = base;
            let mut rest = rest.iter();
            for seg in rest.by_ref() {
                let candidate = join(&module, seg);
                if seg != "self" && known.contains(&candidate) {
                    module = candidate;
                } else {
                    return (module, (seg != "self" && seg != "*").then(|| seg.clone()));
                }
            }
            (module, None)
        };

        let mut re_exports: BTreeMap<(String, String), ReExport> = BTreeMap::new();
        for u in uses.iter().filter(|u| u.re_export) {
            let Some(name) = u.segments.last() else {
                continue;
            };
            let target = match resolve_base(u) {
                Some((base, rest)) => {
                    let (module, item) = walk(base, &rest);
                    ReExport::Module(module, item)
                }
                None => ReExport::External,
            };
            re_exports.insert((u.from.clone(), name.clone()), target);
        }

        let mut edges: BTreeMap<String, BTreeSet<String>> = modules
            .iter()
            .map(|m| (m.clone(), BTreeSet::new()))
            .collect();
        for u in &uses {
            let Some((base, rest)) = resolve_base(u) else {
                continue;
            };
            let (mut module, mut item) = walk(base, &rest);
            // Follow re-exports (a chain of them, bounded by the number of modules).
            for _ in 0..modules.len() {
                let Some(name) = item.clone() else { break };
                match re_exports.get(&(module.clone(), name)) {
                    Some(ReExport::Module(target, target_item)) if *target != module => {
                        module = target.clone();
                        item = target_item.clone();
                    }
                    Some(ReExport::External) => {
                        module = u.from.clone();
                        break;
                    }
                    _ => break,
                }
            }
            if module != u.from {
                edges.entry(u.from.clone()).or_default().insert(module);
            }
        }
        ModuleGraph { edges }
    }

    /// Each strongly connected group of two or more modules, sorted, with a closed path through it.
    fn cycles(&self) -> Vec<(Vec<String>, Vec<String>)> {
        let mut out = Vec::new();
        for component in self.components() {
            if component.len() < 2 {
                continue;
            }
            let members: BTreeSet<&String> = component.iter().collect();
            let path = self.closed_path(&component[0], &members);
            let mut sorted = component.clone();
            sorted.sort();
            out.push((sorted, path));
        }
        out.sort();
        out
    }

    /// Strongly connected components (Kosaraju: order by finish time, then the reverse graph).
    fn components(&self) -> Vec<Vec<String>> {
        let nodes: Vec<&String> = self.edges.keys().collect();
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for start in &nodes {
            if seen.contains(*start) {
                continue;
            }
            let mut stack: Vec<(&String, Vec<&String>)> = Vec::new();
            seen.insert((*start).clone());
            stack.push((start, self.edges[*start].iter().collect()));
            while let Some((node, pending)) = stack.last_mut() {
                match pending.pop() {
                    Some(next) if self.edges.contains_key(next) && !seen.contains(next) => {
                        seen.insert(next.clone());
                        let children = self.edges[next].iter().collect();
                        stack.push((next, children));
                    }
                    Some(_) => {}
                    None => {
                        order.push((*node).clone());
                        stack.pop();
                    }
                }
            }
        }
        let mut reverse: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
        for (from, tos) in &self.edges {
            for to in tos {
                reverse.entry(to).or_default().push(from);
            }
        }
        let mut assigned = BTreeSet::new();
        let mut components = Vec::new();
        for root in order.iter().rev() {
            if assigned.contains(root) {
                continue;
            }
            let mut component = Vec::new();
            let mut stack = vec![root];
            assigned.insert(root.clone());
            while let Some(node) = stack.pop() {
                component.push(node.clone());
                for prev in reverse.get(node).into_iter().flatten() {
                    if assigned.insert((*prev).clone()) {
                        stack.push(prev);
                    }
                }
            }
            components.push(component);
        }
        components
    }

    /// A shortest path from `start` back to itself inside `members` (breadth first).
    fn closed_path(&self, start: &String, members: &BTreeSet<&String>) -> Vec<String> {
        let mut previous: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            for next in &self.edges[node] {
                if !members.contains(next) {
                    continue;
                }
                if next == start {
                    let mut path = vec![start.clone(), node.clone()];
                    let mut cur = node;
                    while cur != start {
                        cur = previous[cur];
                        path.push(cur.clone());
                    }
                    path.reverse();
                    return path;
                }
                if !previous.contains_key(next) {
                    previous.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
        vec![start.clone()]
    }
}

/// Collects the paths a file writes, in which (inline) module each is written, and the inline
/// modules it declares.
fn collect_paths(
    file_module: &str,
    tokens: &[Token],
    modules: &mut BTreeSet<String>,
    uses: &mut Vec<PathUse>,
) {
    // (module, brace depth at which its body closes)
    let mut scopes: Vec<(String, usize)> = vec![(file_module.to_owned(), 0)];
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let current = scopes.last().map(|s| s.0.clone()).unwrap_or_default();
        match &tokens[i] {
            Token::Open => {
                depth += 1;
                i += 1;
            }
            Token::Close => {
                if scopes.len() > 1 && scopes.last().is_some_and(|s| s.1 == depth) {
                    scopes.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Token::Ident(word) if word == "mod" => {
                if let Some(Token::Ident(name)) = tokens.get(i + 1) {
                    let child = join(&current, name);
                    if tokens.get(i + 2) == Some(&Token::Open) {
                        modules.insert(child.clone());
                        depth += 1;
                        scopes.push((child, depth));
                        i += 3;
                        continue;
                    }
                }
                i += 1;
            }
            Token::Ident(word) if word == "use" => {
                let re_export = i > 0 && matches!(&tokens[i - 1], Token::Ident(p) if p == "pub")
                    || i > 3
                        && tokens[i - 1] == Token::Other(')')
                        && matches!(&tokens[i - 4], Token::Ident(p) if p == "pub");
                let (paths, end) = use_tree(tokens, i + 1, Vec::new());
                for segments in paths {
                    uses.push(PathUse {
                        from: current.clone(),
                        segments,
                        re_export,
                    });
                }
                i = end;
            }
            Token::Ident(first) => {
                let preceded = i > 0
                    && matches!(
                        tokens[i - 1],
                        Token::PathSep | Token::Other('.') | Token::Other('$')
                    );
                if !preceded && tokens.get(i + 1) == Some(&Token::PathSep) {
                    let mut segments = vec![first.clone()];
                    let mut j = i + 1;
                    while tokens.get(j) == Some(&Token::PathSep) {
                        match tokens.get(j + 1) {
                            Some(Token::Ident(seg)) => {
                                segments.push(seg.clone());
                                j += 2;
                            }
                            _ => break,
                        }
                    }
                    uses.push(PathUse {
                        from: current.clone(),
                        segments,
                        re_export: false,
                    });
                    i = j;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
}

/// The paths of a `use` tree starting at `start`, and the index after it.
fn use_tree(tokens: &[Token], start: usize, prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let mut paths = Vec::new();
    let mut segments = prefix;
    let mut i = start;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(word) if word == "as" => {
                // `as alias`: the alias names nothing in this crate's module tree.
                i += 2;
            }
            Token::Ident(seg) => {
                segments.push(seg.clone());
                i += 1;
            }
            Token::Other('*') => {
                segments.push("*".into());
                i += 1;
            }
            Token::PathSep => i += 1,
            Token::Open => {
                i += 1;
                loop {
                    let (inner, end) = use_tree(tokens, i, segments.clone());
                    paths.extend(inner);
                    i = end;
                    match tokens.get(i) {
                        Some(Token::Comma) => {
                            i += 1;
                            if tokens.get(i) == Some(&Token::Close) {
                                i += 1;
                                break;
                            }
                        }
                        Some(Token::Close) => {
                            i += 1;
                            break;
                        }
                        _ => break,
                    }
                }
                return (paths, i);
            }
            Token::Comma | Token::Close | Token::Semi => break,
            Token::Other(_) => i += 1,
        }
    }
    if !segments.is_empty() {
        paths.push(segments);
    }
    // A top-level tree ends at `;`.
    if tokens.get(i) == Some(&Token::Semi) {
        i += 1;
    }
    (paths, i)
}
