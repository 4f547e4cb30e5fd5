//! Compiles upstream's `generated.proto` files under `proto/` into one
//! `FileDescriptorSet` (`$OUT_DIR/k8s-descriptors.bin`) for the protobuf
//! request decoder (`src/protobuf.rs`), with protox (a protobuf compiler in
//! Rust: no `protoc` on the machine). Also lists the messages upstream marks
//! `+protobuf.nullable=true` (`$OUT_DIR/k8s-masked.rs`): those wrap a Go slice
//! type (`Verbs`, `ExtraValue`), whose JSON form is the bare array.

use std::{fmt::Write as _, path::Path};

fn main() {
    let root = Path::new("proto");
    println!("cargo:rerun-if-changed=proto");
    let mut files = Vec::new();
    collect(root, &mut files);
    files.sort();
    let rel: Vec<_> = files
        .iter()
        .map(|f| f.strip_prefix(root).unwrap_or(f).to_path_buf())
        .collect();
    let bytes = match protox::Compiler::new([root]).and_then(|mut c| {
        c.include_imports(true)
            .include_source_info(false)
            .open_files(&rel)?;
        Ok(c.encode_file_descriptor_set())
    }) {
        Ok(b) => b,
        Err(e) => panic!("compiling proto/: {e:?}"),
    };
    let out = std::env::var("OUT_DIR").unwrap_or_else(|e| panic!("OUT_DIR: {e}"));
    let out = Path::new(&out);
    write(&out.join("k8s-descriptors.bin"), &bytes);

    let mut masked = String::from("&[\n");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let package = text
            .lines()
            .find_map(|l| l.strip_prefix("package "))
            .map(|p| p.trim_end_matches(';').trim().to_owned())
            .unwrap_or_default();
        let mut nullable = false;
        for line in text.lines() {
            if line.contains("+protobuf.nullable=true") {
                nullable = true;
            } else if let Some(m) = line.strip_prefix("message ") {
                if nullable {
                    let name = m.trim_end_matches('{').trim();
                    let _ = writeln!(masked, "    \"{package}.{name}\",");
                }
                nullable = false;
            }
        }
    }
    masked.push_str("]\n");
    write(&out.join("k8s-masked.rs"), masked.as_bytes());
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "proto") {
            out.push(p);
        }
    }
}

fn write(path: &Path, bytes: &[u8]) {
    if let Err(e) = std::fs::write(path, bytes) {
        panic!("{}: {e}", path.display());
    }
}
