//! The operator's admission webhook server on kubesim, over real HTTPS (kubesim calls it as
//! kube-apiserver does): revision pinning with three revisions in flight, what happens while the
//! webhook is down, and certificate rotation under a stream of pod creations.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::{
        admissionregistration::v1::MutatingWebhookConfiguration, core::v1::Pod, core::v1::Secret,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, PostParams},
};
use serde_json::json;
use sroll_api::Phase;
use sroll_operator::{
    Settings,
    webhook::{CertSettings, configs::MUTATING},
};
use sroll_testkit::{DEADLINE, Env, Rollout, status::update_revision, wait_for};

async fn all_ready(env: &Env, set: &str, n: usize) {
    wait_for(&format!("{n} Ready pods of {set}"), DEADLINE, || async {
        let pods = env.pods(set).await;
        let ready = pods
            .iter()
            .filter(|p| {
                p.metadata.deletion_timestamp.is_none() && sroll_api::predicates::is_pod_ready(p)
            })
            .count();
        (ready == n).then_some(())
    })
    .await;
}

/// A bare pod carrying the pinning label (so it is sent to the pinning webhook, which leaves pods
/// no StatefulSet owns as they are).
fn labelled_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"sroll.io/revision-pinning": "true"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/app:v1"}]}
    }))
    .expect("a pod")
}

/// The scenario the drift carve-out was for: v1 everywhere, v2 on half the pods, then v3 applied
/// (paused, so frozen) while v2 is still in flight. Pods on the middle revision (v2) that die came
/// back at the set's current revision (v1); with pinning they come back at v2, and the checker,
/// which no longer allows that drift for pinned sets, finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_revisions_in_flight_killed_middle_revision_pods_return_at_it_with_pinning() {
    let env = Env::start_with_webhook().await;
    env.pdb("web", "web", IntOrString::Int(2)).await;
    env.checker.budget("web", 2);
    let v1 = Rollout::named("web").replicas(6).revision_pinning();
    env.apply(&v1).await;
    env.wait_phase("web", Phase::Done).await;
    let half = v1.clone().image("registry.example/app:v2").percent(50);
    env.apply(&half).await;
    let rev2 = update_revision(&env.wait_phase("web", Phase::Done).await);
    env.apply(&half.image("registry.example/app:v3").paused(true))
        .await;
    wait_for("revision 3 to be the update revision", DEADLINE, || async {
        let sts = env.statefulset("web").await?;
        let update = sts.status?.update_revision?;
        (update != rev2).then_some(())
    })
    .await;
    let before = env.revisions("web").await;
    assert_eq!(before.iter().filter(|(_, r)| *r == rev2).count(), 3);

    env.checker.suspend_availability();
    for pod in ["web-3", "web-4", "web-5", "web-0"] {
        env.kill_pod(pod).await;
    }
    wait_for("the killed pods to be recreated", DEADLINE, || async {
        let pods = env.pods("web").await;
        ["web-0", "web-3", "web-4", "web-5"]
            .iter()
            .all(|n| {
                pods.iter()
                    .any(|p| p.name_any() == *n && p.metadata.deletion_timestamp.is_none())
            })
            .then_some(())
    })
    .await;
    all_ready(&env, "web", 6).await;
    let after = env.revisions("web").await;
    assert_eq!(
        after, before,
        "every pod came back at its own revision, the middle one included"
    );
    env.checker.resume_availability();
    let report = env.finish(true).await;
    assert!(report.drift.is_empty(), "no drift: {:?}", report.drift);
    assert!(report.leaks.is_empty(), "no leak: {:?}", report.leaks);
}

/// While the webhook is down (the operator stopped; its configuration still registered), pods of
/// sets that opted into pinning are refused with kube-apiserver's message naming the webhook, and
/// the StatefulSet controller retries; pods of other sets are created as always. Once the webhook is
/// back, the refused pod is created at its own revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_webhook_is_down_only_pinned_pods_are_refused_and_they_return_once_it_is_back() {
    let mut env = Env::start_with_webhook().await;
    let pinned = Rollout::named("pinned").replicas(2).revision_pinning();
    let plain = Rollout::named("plain").replicas(2);
    env.apply(&pinned).await;
    env.apply(&plain).await;
    env.wait_phase("pinned", Phase::Done).await;
    env.wait_phase("plain", Phase::Done).await;
    let before = env.revisions("pinned").await;

    env.stop_operator().await;
    env.checker.suspend_availability();
    let pods = env.pod_api();
    let refused = pods
        .create(&PostParams::default(), &labelled_pod("stray"))
        .await
        .expect_err("a pod with the pinning label is refused while the webhook is down");
    let message = refused.to_string();
    assert!(
        message.contains("failed calling webhook \"pinning.pods.sroll.io\""),
        "{message}"
    );
    assert!(message.contains("connection refused"), "{message}");

    env.kill_pod("plain-1").await;
    env.kill_pod("pinned-1").await;
    wait_for("plain-1 to be recreated", DEADLINE, || async {
        env.pods("plain")
            .await
            .iter()
            .any(|p| p.name_any() == "plain-1" && p.metadata.deletion_timestamp.is_none())
            .then_some(())
    })
    .await;
    // The pinned set's pod stays missing: every create the StatefulSet controller tries is refused.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !env.pods("pinned")
            .await
            .iter()
            .any(|p| p.name_any() == "pinned-1" && p.metadata.deletion_timestamp.is_none()),
        "pinned-1 is not created while the webhook is down"
    );

    let settings = Settings {
        webhook: Some(env.webhook_settings()),
        ..env.settings()
    };
    env.start_operator_with(settings);
    all_ready(&env, "pinned", 2).await;
    assert_eq!(env.revisions("pinned").await, before);
    env.checker.resume_availability();
    let report = env.finish(true).await;
    assert!(report.leaks.is_empty(), "{:?}", report.leaks);
}

/// Certificates forced to rotate within seconds (serving certificate every ~5 s, the CA after
/// ~10 s): a loop creating pods through the webhook the whole time sees no failed admission, the
/// CA bundle holds old and new CA during the overlap, and every replica-visible change lands in
/// the one Secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_without_a_failed_admission() {
    let mut env = Env::without_operator().await;
    let mut webhook = env.webhook_settings();
    webhook.certs = CertSettings {
        ca_validity: Duration::from_secs(40),
        ca_renew_before: Duration::from_secs(30),
        serving_validity: Duration::from_secs(20),
        serving_renew_before: Duration::from_secs(15),
        check_interval: Duration::from_millis(500),
        ..CertSettings::default()
    };
    let settings = Settings {
        webhook: Some(webhook),
        ..env.settings()
    };
    env.start_operator_with(settings);
    env.webhook_registered().await;

    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);
    let configs: Api<MutatingWebhookConfiguration> = Api::all(env.client.clone());
    let pods = env.pod_api();
    let mut cas = std::collections::BTreeSet::new();
    let mut serving = std::collections::BTreeSet::new();
    let mut max_bundle = 0;
    let (mut created, mut failed) = (0usize, Vec::new());
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(25) {
        let name = format!("probe-{i}");
        i += 1;
        match pods
            .create(&PostParams::default(), &labelled_pod(&name))
            .await
        {
            Ok(_) => created += 1,
            Err(e) => failed.push(e.to_string()),
        }
        let _ = pods.delete(&name, &DeleteParams::default()).await;
        if let Ok(secret) = secrets.get("sroll-webhook-certs").await {
            let data = secret.data.unwrap_or_default();
            if let Some(ca) = data.get("ca.crt") {
                cas.insert(ca.0.clone());
            }
            if let Some(cert) = data.get("tls.crt") {
                serving.insert(cert.0.clone());
            }
        }
        if let Ok(config) = configs.get(MUTATING).await {
            let bundle = config.webhooks.unwrap_or_default()[0]
                .client_config
                .ca_bundle
                .clone()
                .map(|b| {
                    String::from_utf8_lossy(&b.0)
                        .matches("BEGIN CERTIFICATE")
                        .count()
                })
                .unwrap_or(0);
            max_bundle = max_bundle.max(bundle);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "rotation: {created} pods admitted, {} refused; {} CAs, {} serving certificates, bundle of up to {max_bundle}",
        failed.len(),
        cas.len(),
        serving.len()
    );
    assert!(failed.is_empty(), "no admission failed: {failed:?}");
    assert!(created > 50, "the loop kept creating pods ({created})");
    assert!(cas.len() >= 2, "the CA rotated ({} seen)", cas.len());
    assert!(
        serving.len() >= 3,
        "the serving certificate was renewed ({} seen)",
        serving.len()
    );
    assert_eq!(max_bundle, 2, "old and new CA were trusted together");
    env.finish(false).await;
}
