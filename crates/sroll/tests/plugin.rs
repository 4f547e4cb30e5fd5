//! The kubectl plugin verbs end to end: the real `sroll` binary against kubesim with the operator
//! running, so each verb's change is seen by the operator and the rollout reacts.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::api::{core::v1::Namespace, policy::v1::PodDisruptionBudget};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;
use sroll::demo::start_embedded;
use sroll_api::{Phase, StatefulsetRollout};
use sroll_testkit::{env::wait_rollout, status::done_at_generation};

const NS: &str = "shop";

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn sroll(kubeconfig: &Path, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sroll"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .await
        .expect("sroll runs");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn kubeconfig_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "sroll-plugin-{tag}-{}.kubeconfig",
        std::process::id()
    ))
}

fn template(image: &str) -> serde_json::Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": {"containers": [{"name": "web", "image": image}]}})
}

/// Waits (2 minutes at most) until rollout `web` satisfies `cond`.
async fn wait_web(
    api: &Api<StatefulsetRollout>,
    what: &str,
    cond: impl Fn(&StatefulsetRollout) -> bool,
) -> StatefulsetRollout {
    wait_rollout(api, "web", what, Duration::from_secs(120), cond).await
}

fn status(r: &StatefulsetRollout) -> sroll_api::StatefulsetRolloutStatus {
    r.status.clone().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_verbs_change_the_rollout_and_the_operator_follows() {
    let env = start_embedded(4, 8.0).await.expect("embedded cluster");
    let kubeconfig = kubeconfig_path("verbs");
    env.cluster
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig written");
    let client = env.client.clone();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": NS}})).expect("namespace"),
        )
        .await
        .expect("namespace created");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"maxUnavailable": 2, "selector": {"matchLabels": {"app": "web"}}}
    }))
    .expect("pdb");
    Api::<PodDisruptionBudget>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &pdb)
        .await
        .expect("pdb created");
    let api: Api<StatefulsetRollout> = Api::namespaced(client.clone(), NS);
    let rollout: StatefulsetRollout = serde_json::from_value(json!({
        "apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
        "metadata": {"name": "web", "namespace": NS},
        "spec": {"percent": 100, "rolloutIdentity": "r1", "sts": {"spec": {
            "replicas": 8, "serviceName": "web", "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "web"}}, "template": template("web:1")}}}
    }))
    .expect("rollout");
    api.create(&PostParams::default(), &rollout)
        .await
        .expect("rollout created");
    wait_web(&api, "the first rollout", done_at_generation).await;

    // A release at 25%: 2 of 8 pods move.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"percent": 25, "rolloutIdentity": "r2",
            "sts": {"spec": {"template": template("web:2")}}}})),
    )
    .await
    .expect("release patched");
    let r = wait_web(&api, "25% of web:2", done_at_generation).await;
    assert_eq!(status(&r).updated_replicas, Some(2));
    let v2 = status(&r).update_revision.expect("update revision");

    // list and get -o json.
    let list = sroll(&kubeconfig, &["list", "-n", NS]).await;
    assert!(list.ok, "{}", list.stderr);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("web ") && l.contains("RolloutDone")),
        "{}",
        list.stdout
    );
    let got = sroll(&kubeconfig, &["get", "web", "-n", NS, "-o", "json"]).await;
    assert!(got.ok, "{}", got.stderr);
    let parsed: StatefulsetRollout = serde_json::from_str(&got.stdout).expect("get -o json parses");
    let live = api.get("web").await.expect("live");
    assert_eq!(parsed.spec, live.spec);
    assert_eq!(parsed.metadata.uid, live.metadata.uid);
    let tree = sroll(&kubeconfig, &["get", "web", "-n", NS]).await;
    assert!(tree.ok, "{}", tree.stderr);
    assert!(
        tree.stdout.contains("Status:       ✔ RolloutDone"),
        "{}",
        tree.stdout
    );
    assert!(
        tree.stdout.contains(&format!("{v2} (update)")),
        "{}",
        tree.stdout
    );

    // pause, then promote: nothing moves while paused.
    let paused = sroll(&kubeconfig, &["pause", "web", "-n", NS]).await;
    assert!(paused.ok, "{}", paused.stderr);
    assert!(
        paused
            .stdout
            .contains("statefulsetrollout.sroll.io/web paused")
    );
    assert_eq!(
        api.get("web").await.expect("live").spec.pause_requested,
        Some(true)
    );
    let promoted = sroll(&kubeconfig, &["set-percent", "web", "100", "-n", NS]).await;
    assert!(promoted.ok, "{}", promoted.stderr);
    assert!(
        promoted.stdout.contains("percent set to 100 (8 of 8 pods)"),
        "{}",
        promoted.stdout
    );
    let r = wait_web(&api, "the paused phase", |r| {
        status(r).phase == Some(Phase::Paused)
            && status(r).observed_generation == r.metadata.generation
    })
    .await;
    assert_eq!(status(&r).paused, Some(true));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = api.get("web").await.expect("live");
    assert_eq!(
        status(&r).updated_replicas,
        Some(2),
        "pods moved while paused"
    );

    // resume: the rollout finishes at 100%.
    let resumed = sroll(&kubeconfig, &["resume", "web", "-n", NS]).await;
    assert!(resumed.ok, "{}", resumed.stderr);
    let r = wait_web(&api, "100% of web:2", done_at_generation).await;
    assert_eq!(status(&r).updated_replicas, Some(8));

    // history shows both revisions; rollback goes back to web:1 with a new identity.
    let history = sroll(&kubeconfig, &["history", "web", "-n", NS]).await;
    assert!(history.ok, "{}", history.stderr);
    assert!(history.stdout.contains("web:1"), "{}", history.stdout);
    assert!(history.stdout.contains("web:2"), "{}", history.stdout);
    let rolled = sroll(&kubeconfig, &["rollback", "web", "-n", NS]).await;
    assert!(rolled.ok, "{}", rolled.stderr);
    assert!(
        rolled.stdout.contains("rolling back to revision 1"),
        "{}",
        rolled.stdout
    );
    let r = wait_web(&api, "the rollback", done_at_generation).await;
    let image = r
        .spec
        .sts
        .spec
        .template
        .spec
        .as_ref()
        .expect("pod spec")
        .containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("web:1"));
    assert_ne!(status(&r).update_revision, Some(v2));
    assert_eq!(status(&r).updated_replicas, Some(8));
    assert_ne!(r.spec.rollout_identity.as_deref(), Some("r2"));

    // retry: a new identity.
    let before = r.spec.rollout_identity.clone();
    let retried = sroll(&kubeconfig, &["retry", "web", "-n", NS]).await;
    assert!(retried.ok, "{}", retried.stderr);
    assert_ne!(
        api.get("web").await.expect("live").spec.rollout_identity,
        before
    );

    // A missing rollout names the ones that exist.
    let missing = sroll(&kubeconfig, &["get", "nope", "-n", NS]).await;
    assert!(!missing.ok);
    assert!(
        missing.stderr.contains(
            "no StatefulsetRollout named \"nope\" in namespace \"shop\"; rollouts there: web"
        ),
        "{}",
        missing.stderr
    );

    let _ = std::fs::remove_file(&kubeconfig);
    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_the_crd_gets_install_advice() {
    let cluster = kubesim::cluster::Cluster::start(kubesim::cluster::ClusterConfig::default())
        .await
        .expect("cluster");
    let kubeconfig = kubeconfig_path("nocrd");
    cluster
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig written");
    let out = sroll(&kubeconfig, &["list", "-n", "default"]).await;
    assert!(!out.ok);
    assert!(
        out.stderr.contains("the StatefulsetRollout CRD is not installed in this cluster: install it with `sroll crd | kubectl apply -f -`"),
        "{}",
        out.stderr
    );
    let _ = std::fs::remove_file(&kubeconfig);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_shows_a_clone_sets_revisions_surge_and_pods() {
    use sroll_api::clone_set::CloneSet;
    let env = start_embedded(2, 8.0).await.expect("embedded cluster");
    let kubeconfig = kubeconfig_path("clone");
    env.cluster
        .write_kubeconfig(&kubeconfig)
        .expect("kubeconfig written");
    let client = env.client.clone();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "clones"}})).expect("namespace"),
        )
        .await
        .expect("namespace created");
    let sets: Api<CloneSet> = Api::namespaced(client.clone(), "clones");
    let cs = sroll_testkit::clone_set::clone_set(
        "web",
        3,
        "web:1",
        json!({"updateStrategy": {"maxSurge": 1, "maxUnavailable": 0}}),
    );
    sets.create(&PostParams::default(), &cs)
        .await
        .expect("CloneSet created");
    sroll_testkit::wait_for("3 Ready pods", Duration::from_secs(120), || async {
        let s = sets.get("web").await.ok()?.status?;
        (s.ready_replicas == 3 && s.updated_replicas == 3).then_some(())
    })
    .await;
    let run = sroll(&kubeconfig, &["clone", "web", "-n", "clones"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout
            .contains("3 desired, 3 pods, 3 ready, 3 updated (3 expected), partition 0"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("surge       0 of maxSurge 1"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("web:1  3 pods  [update, current]"),
        "{}",
        run.stdout
    );
    let missing = sroll(&kubeconfig, &["clone", "nope", "-n", "clones"]).await;
    assert!(!missing.ok);
    assert!(
        missing.stderr.contains("no CloneSet named \"nope\""),
        "{}",
        missing.stderr
    );
    let _ = std::fs::remove_file(&kubeconfig);
}
