//! The repository's Markdown links stay inside the repository and point at files that exist: a user
//! who clones the project has nothing outside it (no `../shared/`), and a renamed file must not
//! leave a dead link behind.

use std::path::{Component, Path, PathBuf};

/// The repository root (two levels above this crate).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Every Markdown file of the repository, skipping build output and VCS metadata.
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !matches!(name, "target" | ".git" | "node_modules") && !name.starts_with('.') {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The destinations of the inline links `[text](dest)` and images `![alt](dest)` of a Markdown
/// text, with their line numbers. Code spans and fenced blocks are skipped: a link there is an
/// example, not a link.
fn link_destinations(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Blank out code spans so `[a](b)` inside backticks is not read as a link.
        let mut plain = String::with_capacity(line.len());
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            }
            plain.push(if in_code { ' ' } else { c });
        }
        let mut rest = plain.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            let dest = after[..end].trim();
            // `[x](<path with spaces> "title")`: the first word, without angle brackets.
            let dest = dest.split_whitespace().next().unwrap_or("");
            let dest = dest.trim_start_matches('<').trim_end_matches('>');
            out.push((n + 1, dest.to_string()));
            rest = &after[end..];
        }
    }
    out
}

/// `path` with `.` and `..` resolved lexically (the target may not exist).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The problem with one link of `file`, if any.
fn check(root: &Path, file: &Path, dest: &str) -> Option<String> {
    let external = ["http://", "https://", "mailto:"];
    if dest.is_empty() || dest.starts_with('#') || external.iter().any(|p| dest.starts_with(p)) {
        return None;
    }
    let path_part = dest.split('#').next().unwrap_or(dest);
    let dir = file.parent().unwrap_or(root);
    let target = if Path::new(path_part).is_absolute() {
        PathBuf::from(path_part)
    } else {
        normalize(&dir.join(path_part))
    };
    if !target.starts_with(root) {
        return Some(format!(
            "links to {dest}, outside the repository (a user's clone does not have it): \
             move what it needs into docs/ and link there"
        ));
    }
    if !target.exists() {
        return Some(format!("links to {dest}, which does not exist"));
    }
    None
}

#[test]
fn markdown_links_stay_inside_the_repository_and_resolve() {
    let root = repo_root();
    let mut files = Vec::new();
    markdown_files(&root, &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("README.md")),
        "no README.md found under {}",
        root.display()
    );
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a Markdown file is UTF-8");
        for (line, dest) in link_destinations(&text) {
            if let Some(p) = check(&root, file, &dest) {
                let rel = file.strip_prefix(&root).unwrap_or(file);
                problems.push(format!("{}:{line}: {p}", rel.display()));
            }
        }
    }
    assert!(problems.is_empty(), "bad links:\n{}", problems.join("\n"));
}

#[test]
fn the_link_checker_sees_links_outside_the_repository_and_dead_ones() {
    let root = repo_root();
    let readme = root.join("README.md");
    let links = link_destinations(
        "See [design](../shared/DESIGN.md), [arch](docs/architecture.md#x), \
         `[code](../not/a/link)`, [gone](docs/no-such-file.md) and [web](https://example.org).",
    );
    let dests: Vec<&str> = links.iter().map(|(_, d)| d.as_str()).collect();
    assert_eq!(
        dests,
        [
            "../shared/DESIGN.md",
            "docs/architecture.md#x",
            "docs/no-such-file.md",
            "https://example.org"
        ]
    );
    assert!(
        check(&root, &readme, "../shared/DESIGN.md")
            .is_some_and(|p| p.contains("outside the repository"))
    );
    assert_eq!(check(&root, &readme, "docs/architecture.md#x"), None);
    assert!(
        check(&root, &readme, "docs/no-such-file.md").is_some_and(|p| p.contains("does not exist"))
    );
    assert_eq!(check(&root, &readme, "https://example.org"), None);
}
