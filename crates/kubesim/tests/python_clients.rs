//! Conformance through real clients: the official Python client
//! (`kubernetes` on PyPI) and a kopf operator run against an in-process
//! kubesim with the simulation on (controllers, scheduler, kubelets, GC).
//!
//! The Python side lives in `tests/python/` (pinned `requirements.txt`, the
//! pytest files, the kopf operator). Its virtualenv is created by
//! `tests/python/bootstrap.sh` under the target directory (`python-venv`),
//! once per requirements change; the script serializes concurrent callers on
//! a lock file. A machine where the venv cannot be built fails this test with
//! the script's message: it is never skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use kubesim::cluster::{Cluster, ClusterConfig};

fn python_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

/// `<target>/python-venv` (`CARGO_TARGET_TMPDIR` is `<target>/tmp`).
fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("python-venv")
}

/// Runs `bootstrap.sh` and returns the venv's `bin` directory, or fails the
/// test with the reason.
fn bootstrap() -> PathBuf {
    let venv = venv_dir();
    let out = Command::new("bash")
        .arg(python_dir().join("bootstrap.sh"))
        .arg(&venv)
        .output()
        .expect("failed to run bash tests/python/bootstrap.sh");
    assert!(
        out.status.success(),
        "could not create the Python virtualenv for the client conformance suite at {}:\n{}{}\n\
         (the suite needs python3 with the venv module and PyPI; run crates/kubesim/tests/python/bootstrap.sh to see the error)",
        venv.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    venv.join("bin")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_and_a_kopf_operator_work_against_kubesim() {
    let bin = tokio::task::spawn_blocking(bootstrap).await.unwrap();
    let scratch = tempdir();
    let kubeconfig = scratch.join("kubeconfig");
    let h = Cluster::start(ClusterConfig {
        simulate: true,
        speed: 20.0,
        // Small enough that the suite can push a resourceVersion out of the
        // window (the 410 paths) with a few hundred writes.
        history_limit: 1500,
        bookmark_interval: Duration::from_secs(1),
        write_kubeconfig: Some(kubeconfig.clone()),
        ..ClusterConfig::default()
    })
    .await
    .unwrap();
    let dir = python_dir();
    let mut cmd = tokio::process::Command::new(bin.join("python"));
    cmd.args([
        "-m",
        "pytest",
        "-q",
        "-rA",
        "--tb=short",
        "-p",
        "no:cacheprovider",
    ])
    // The whole suite, or what KUBESIM_PYTEST_ARGS names (e.g.
    // "test_clients.py::test_version_reports_a_kubernetes_version -s").
    .args(match std::env::var("KUBESIM_PYTEST_ARGS") {
        Ok(a) if !a.trim().is_empty() => a.split_whitespace().map(String::from).collect(),
        _ => vec![dir.display().to_string()],
    })
    .current_dir(&dir)
    .env("KUBECONFIG", &kubeconfig)
    .env("KUBESIM_VENV_BIN", &bin)
    .env("KUBESIM_SCRATCH", &scratch)
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .expect("pytest did not finish within 10 minutes")
        .expect("failed to start pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    h.shutdown().await;
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        out.status.success(),
        "the Python client conformance suite failed (exit {:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    println!("{stdout}");
    // The suite really ran (an empty collection exits 5, but check the count too).
    assert!(
        stdout.contains(" passed"),
        "pytest reported no passed tests:\n{stdout}\n{stderr}"
    );
}

fn tempdir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "python-clients-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
