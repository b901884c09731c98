//! Every `§N` the project cites names a section of `docs/protocol.md` that exists, and
//! nothing cites a protocol document outside the repository.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Folders that are not the project's own text: build output, installed tools, caches,
/// generated code.
const SKIP: [&str; 7] = [
    "target",
    ".tools",
    ".cache",
    ".git",
    "node_modules",
    "gen",
    "snapshots",
];
const TEXT: [&str; 10] = [
    "rs", "md", "yaml", "yml", "toml", "py", "go", "mjs", "json", "txt",
];

fn project_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !SKIP.iter().any(|s| name == *s) {
                project_files(&path, out);
            }
        } else if path
            .extension()
            .is_some_and(|e| TEXT.iter().any(|t| e == *t))
        {
            out.push(path);
        }
    }
}

/// The numbers of the document's `## N.` and `### N.M` headings.
fn sections(protocol: &str) -> BTreeSet<String> {
    protocol
        .lines()
        .filter_map(|line| {
            let heading = line
                .strip_prefix("### ")
                .or_else(|| line.strip_prefix("## "))?;
            let number = heading.split_whitespace().next()?.trim_end_matches('.');
            number
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.')
                .then(|| number.to_owned())
        })
        .collect()
}

/// Every `§N` or `§N.M` in `text`.
fn citations(text: &str) -> Vec<String> {
    text.split('§')
        .skip(1)
        .map(|rest| {
            let number: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            number.trim_end_matches('.').to_owned()
        })
        .collect()
}

#[test]
fn every_cited_section_exists() {
    let root = xtask::workspace_root();
    let protocol =
        std::fs::read_to_string(root.join("docs/protocol.md")).expect("docs/protocol.md");
    let known = sections(&protocol);
    assert!(
        known.contains("5.1") && known.contains("9"),
        "headings not found: {known:?}"
    );
    let mut files = Vec::new();
    project_files(&root, &mut files);
    let mut broken = Vec::new();
    let mut outside = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let shown = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .display()
            .to_string();
        // This file's own examples are not citations.
        if file.ends_with(file!().rsplit('/').next().unwrap_or_default()) {
            continue;
        }
        for number in citations(&text) {
            // A `§` followed by no number (`§N` in prose) cites nothing.
            if !number.is_empty() && !known.contains(&number) {
                broken.push(format!("{shown}: §{number}"));
            }
        }
        if text.contains("PROTOCOL.md") {
            outside.push(shown);
        }
    }
    assert!(
        broken.is_empty(),
        "sections cited but not in docs/protocol.md:\n{}",
        broken.join("\n")
    );
    assert!(
        outside.is_empty(),
        "these cite PROTOCOL.md, which is not in the repository (cite docs/protocol.md §N):\n{}",
        outside.join("\n")
    );
}

#[test]
fn the_check_catches_a_missing_section() {
    let known = sections("## 1. One\n### 1.1 Sub\n## 2. Two\n");
    assert_eq!(
        known,
        BTreeSet::from(["1".into(), "1.1".into(), "2".into()])
    );
    assert_eq!(citations("see §2 and §1.1, and §7."), ["2", "1.1", "7"]);
    assert!(!known.contains(&citations("see §7")[0]));
}
