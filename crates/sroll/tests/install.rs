//! The install manifests, proven on kubesim with authentication and RBAC on: `kubectl apply -k
//! deploy/` with the administrator's kubeconfig, `kubectl create token` for the operator's
//! ServiceAccount, then the operator (in-process, with the settings the rendered Deployment's
//! flags describe) acting with that token only.
//!
//! - A full rollout (create, image change, Done) with two replicas under leader election and Slack
//!   notifications to a local fake, without a single request refused.
//! - Least privilege: every verb of every rule of the ClusterRole (and of the leader-election Role)
//!   is removed in turn; the operator then refuses to start with a "not allowed to <verb>
//!   <resource>" error (its start-up access reviews).
//!
//! Without kubectl these tests fail when `CI` is set and otherwise print "skipped".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use clap::Parser;
use k8s_openapi::api::{
    apps::v1::Deployment,
    coordination::v1::Lease,
    core::v1::{Namespace, Pod, Secret},
    rbac::v1::{ClusterRole, Role},
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use kubesim::cluster::ClusterConfig;
use serde_json::{Value, json};
use sroll::operator::OperatorArgs;
use sroll_api::StatefulsetRollout;
use sroll_operator::{Settings, integrations::SecretLocation};
use sroll_testkit::{
    RunningOperator,
    env::wait_rollout,
    fakes::{Fake, Server, Slack},
    kubectl::{Kubectl, kubectl_available},
    status::done_at_generation,
    wait_for,
};

const DEADLINE: Duration = Duration::from_secs(90);
const SA_USER: &str = "system:serviceaccount:sroll-system:sroll-operator";
const SLACK_TOKEN: &str = "xoxb-install-test";

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    operator: OperatorArgs,
}

/// kubesim (auth, TLS, simulation) with `deploy/` applied by kubectl.
struct Installed {
    /// The cluster and kubectl's kubeconfig (the administrator's) in a scratch directory.
    k: Kubectl,
    admin: Client,
    operator_client: Client,
    settings: Settings,
    slack: Slack,
    /// The fake Slack's server (serving while the installation lives).
    _slack_server: Server,
}

async fn install() -> Installed {
    let k = Kubectl::start_with(ClusterConfig {
        auth: true,
        tls: true,
        simulate: true,
        speed: 10.0,
        ..ClusterConfig::default()
    })
    .await;
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
    k.ok(&["apply", "-k", deploy]).await;
    let admin = k.h.client();
    let rollouts: Api<StatefulsetRollout> = Api::all(admin.clone());
    wait_for("the CRD to be served", DEADLINE, || {
        let rollouts = rollouts.clone();
        async move { rollouts.list(&ListParams::default()).await.ok() }
    })
    .await;

    // The operator's credentials: a token of the ServiceAccount the manifests create, nothing else.
    let token = k
        .ok(&["create", "token", "sroll-operator", "-n", "sroll-system"])
        .await;
    let sa_kubeconfig = k.dir.join("operator");
    std::fs::write(
        &sa_kubeconfig,
        k.h.kubeconfig_with_token(token.trim()).unwrap(),
    )
    .unwrap();
    let (operator_client, _) = sroll_operator::client_from(Some(&sa_kubeconfig), None)
        .await
        .unwrap();

    // The settings the rendered Deployment's flags describe (in-cluster, the client's namespace is
    // the pod's: sroll-system); plus what the README's Slack step adds.
    let deployment: Deployment = Api::namespaced(admin.clone(), "sroll-system")
        .get("sroll-operator")
        .await
        .unwrap();
    let args = deployment.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    assert_eq!(args[0], "operator");
    let cli =
        Cli::try_parse_from(std::iter::once("sroll".to_owned()).chain(args[1..].iter().cloned()))
            .expect("the Deployment's flags parse");
    let mut settings = cli.operator.settings("sroll-system", "replica".into());
    assert!(
        settings.leader_election.is_some(),
        "the Deployment runs with leader election"
    );
    settings.metrics_addr = None;
    // The webhook server as deployed (--webhook-addr, --webhook-service), but reached the way
    // kubesim can reach a process of this test: on 127.0.0.1 through clientConfig.url.
    let webhook = settings
        .webhook
        .as_mut()
        .expect("the Deployment serves the admission webhooks");
    assert_eq!(
        webhook.client_config,
        sroll_operator::webhook::ClientConfigMode::service("sroll-system"),
        "in the cluster the configurations name the sroll-webhook Service"
    );
    webhook.addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    webhook.client_config = sroll_operator::webhook::ClientConfigMode::Url { host: None };

    let slack = Slack::new(SLACK_TOKEN);
    let slack_server = slack.serve().await.unwrap();
    settings.integrations.slack_api_url = Some(slack_server.url("/api"));
    settings.integrations.slack_token_secret = Some(SecretLocation {
        namespace: "sroll-system".into(),
        name: "sroll-slack".into(),
        key: "token".into(),
    });
    Api::<Secret>::namespaced(admin.clone(), "sroll-system")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "sroll-slack"},
                                           "stringData": {"token": SLACK_TOKEN}}))
            .unwrap(),
        )
        .await
        .unwrap();
    Installed {
        k,
        admin,
        operator_client,
        settings,
        slack,
        _slack_server: slack_server,
    }
}

impl Installed {
    fn start_operator(&self, identity: &str) -> RunningOperator {
        let mut settings = self.settings.clone();
        settings.instance = identity.into();
        if let Some(l) = settings.leader_election.as_mut() {
            l.identity = identity.into();
        }
        RunningOperator::start(self.operator_client.clone(), settings)
    }

    async fn stop(running: RunningOperator) {
        running.stop().await.expect("the operator stops cleanly");
    }

    async fn namespace(&self, name: &str) {
        Api::<Namespace>::all(self.admin.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
            )
            .await
            .unwrap();
    }

    /// A person applies a rollout of `replicas` pods of `image`.
    async fn apply_rollout(&self, ns: &str, name: &str, image: &str, extra: Value) {
        let mut spec = json!({
            "sts": {"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": name}},
                "serviceName": name,
                "podManagementPolicy": "Parallel",
                "template": {"metadata": {"labels": {"app": name}}, "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "app", "image": image}]}}}},
            "percent": 100,
            "rolloutIdentity": image,
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        let body = json!({"apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
                          "metadata": {"name": name, "namespace": ns}, "spec": spec});
        Api::<StatefulsetRollout>::namespaced(self.admin.clone(), ns)
            .patch(
                name,
                &PatchParams::apply("a-person").force(),
                &Patch::Apply(&body),
            )
            .await
            .expect("the rollout is accepted");
    }

    async fn wait_rollout(
        &self,
        ns: &str,
        name: &str,
        what: &str,
        pred: impl Fn(&StatefulsetRollout) -> bool,
    ) -> StatefulsetRollout {
        let api: Api<StatefulsetRollout> = Api::namespaced(self.admin.clone(), ns);
        wait_rollout(&api, name, what, DEADLINE, pred).await
    }

    async fn wait_done(&self, ns: &str, name: &str) -> StatefulsetRollout {
        self.wait_rollout(
            ns,
            name,
            &format!("{ns}/{name} to be Done"),
            done_at_generation,
        )
        .await
    }

    fn denials(&self) -> Vec<kubesim::auth::Attributes> {
        self.k.h.auth().unwrap().denials_of(SA_USER)
    }

    async fn finish(self) {
        self.k.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_operator_completes_a_rollout_with_its_service_account_token_only() {
    if !kubectl_available() {
        return;
    }
    let env = install().await;
    env.namespace("shop").await;
    let a = env.start_operator("sroll-operator-a");
    let b = env.start_operator("sroll-operator-b");
    // Revision pinning on: every pod goes through the webhook the operator registered, over HTTPS
    // with the CA it keeps in its Secret, all with the ServiceAccount's token.
    let notify = json!({"channel": "#deploys", "notifications": {"level": "info"},
                        "revisionPinning": true});
    env.apply_rollout("shop", "web", "web:1.0", notify.clone())
        .await;
    env.wait_done("shop", "web").await;
    env.apply_rollout("shop", "web", "web:2.0", notify).await;
    let done = env.wait_done("shop", "web").await;
    assert_eq!(done.metadata.generation, Some(2));
    let pods: Vec<Pod> = Api::<Pod>::namespaced(env.admin.clone(), "shop")
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert_eq!(
            p.spec.as_ref().unwrap().containers[0].image.as_deref(),
            Some("web:2.0")
        );
    }
    // One replica leads; the other waits.
    let lease: Lease = Api::namespaced(env.admin.clone(), "sroll-system")
        .get("sroll-operator")
        .await
        .unwrap();
    let holder = lease.spec.unwrap().holder_identity.unwrap();
    assert!(
        holder == "sroll-operator-a" || holder == "sroll-operator-b",
        "{holder}"
    );
    // Slack heard about it, with the token from the Secret.
    wait_for("a Slack message", DEADLINE, || async {
        let s = env.slack.state();
        s.calls
            .iter()
            .any(|(path, _)| path.ends_with("chat.postMessage"))
            .then_some(())
    })
    .await;
    // The webhook configuration carries the CA of the operator's Secret.
    let secret: Secret = Api::namespaced(env.admin.clone(), "sroll-system")
        .get("sroll-webhook-certs")
        .await
        .unwrap();
    let ca = secret.data.unwrap()["ca.crt"].0.clone();
    let config: k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration =
        Api::all(env.admin.clone())
            .get("sroll-mutating-webhooks")
            .await
            .unwrap();
    let bundle = config.webhooks.unwrap()[0]
        .client_config
        .ca_bundle
        .clone()
        .unwrap()
        .0;
    assert!(
        bundle.windows(ca.len()).any(|w| w == ca.as_slice()),
        "the caBundle holds the Secret's CA"
    );
    // Not one request of the operator was refused.
    assert_eq!(env.denials(), vec![]);
    Installed::stop(a).await;
    Installed::stop(b).await;
    env.finish().await;
}

/// `resource[/sub][.group]`, as the operator's start-up errors name it.
fn describe(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// The rules with `verb` taken out of rule `i` (and the rule dropped when it has no verb left).
fn without(rules: &[Value], i: usize, verb: &str) -> Vec<Value> {
    let mut out = rules.to_vec();
    let verbs: Vec<String> = strings(&rules[i]["verbs"])
        .into_iter()
        .filter(|v| v != verb)
        .collect();
    if verbs.is_empty() {
        out.remove(i);
    } else {
        out[i]["verbs"] = json!(verbs);
    }
    out
}

async fn set_cluster_role(env: &Installed, rules: &[Value]) {
    Api::<ClusterRole>::all(env.admin.clone())
        .patch(
            "sroll-operator",
            &PatchParams::default(),
            &Patch::Merge(json!({"rules": rules})),
        )
        .await
        .unwrap();
}

async fn set_role(env: &Installed, rules: &[Value]) {
    Api::<Role>::namespaced(env.admin.clone(), "sroll-system")
        .patch(
            "sroll-operator-leader-election",
            &PatchParams::default(),
            &Patch::Merge(json!({"rules": rules})),
        )
        .await
        .unwrap();
}

async fn set_webhook_rules(env: &Installed, cluster: bool, name: &str, rules: &[Value]) {
    let patch = Patch::Merge(json!({"rules": rules}));
    if cluster {
        Api::<ClusterRole>::all(env.admin.clone())
            .patch(name, &PatchParams::default(), &patch)
            .await
            .unwrap();
    } else {
        Api::<Role>::namespaced(env.admin.clone(), "sroll-system")
            .patch(name, &PatchParams::default(), &patch)
            .await
            .unwrap();
    }
}

/// Starts the operator and expects it to refuse to start, naming `verb` and `resource`.
async fn expect_start_up_refusal(env: &Installed, verb: &str, resource: &str) {
    let Some(r) = env
        .start_operator("least-privilege")
        .exit_within(DEADLINE)
        .await
    else {
        panic!("without {verb} {resource} the operator still runs");
    };
    let err = r.expect_err("the operator must not start").to_string();
    assert!(
        err.contains(&format!("not allowed to {verb} {resource} ")),
        "without {verb} {resource}: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verb_of_every_rule_is_needed() {
    if !kubectl_available() {
        return;
    }
    let env = install().await;
    let cluster_role: Value = serde_json::to_value(
        Api::<ClusterRole>::all(env.admin.clone())
            .get("sroll-operator")
            .await
            .unwrap(),
    )
    .unwrap();
    let rules: Vec<Value> = cluster_role["rules"].as_array().unwrap().clone();
    let role: Value = serde_json::to_value(
        Api::<Role>::namespaced(env.admin.clone(), "sroll-system")
            .get("sroll-operator-leader-election")
            .await
            .unwrap(),
    )
    .unwrap();
    let role_rules: Vec<Value> = role["rules"].as_array().unwrap().clone();
    let mut shown = Vec::new();

    for (i, rule) in rules.iter().enumerate() {
        let group = strings(&rule["apiGroups"]).remove(0);
        for resource in strings(&rule["resources"]) {
            for verb in strings(&rule["verbs"]) {
                set_cluster_role(&env, &without(&rules, i, &verb)).await;
                // Every grant is checked at start-up (Secrets too: the webhook's certificate
                // Secret is read then, and later the integrations' tokens, e.g. Slack's).
                expect_start_up_refusal(&env, &verb, &describe(&group, &resource)).await;
                shown.push(format!("{verb} {}", describe(&group, &resource)));
            }
        }
    }
    set_cluster_role(&env, &rules).await;

    for (i, rule) in role_rules.iter().enumerate() {
        let group = strings(&rule["apiGroups"]).remove(0);
        for resource in strings(&rule["resources"]) {
            for verb in strings(&rule["verbs"]) {
                set_role(&env, &without(&role_rules, i, &verb)).await;
                expect_start_up_refusal(&env, &verb, &describe(&group, &resource)).await;
                shown.push(format!("{verb} {}", describe(&group, &resource)));
            }
        }
    }
    set_role(&env, &role_rules).await;

    // The webhook's grants (deploy/base/webhook.yaml): its Secret and its configuration, by name.
    for (cluster, name) in [
        (false, "sroll-operator-webhook"),
        (true, "sroll-operator-webhook"),
    ] {
        let rules: Vec<Value> = if cluster {
            serde_json::to_value(
                Api::<ClusterRole>::all(env.admin.clone())
                    .get(name)
                    .await
                    .unwrap(),
            )
            .unwrap()["rules"]
                .as_array()
                .unwrap()
                .clone()
        } else {
            serde_json::to_value(
                Api::<Role>::namespaced(env.admin.clone(), "sroll-system")
                    .get(name)
                    .await
                    .unwrap(),
            )
            .unwrap()["rules"]
                .as_array()
                .unwrap()
                .clone()
        };
        for (i, rule) in rules.iter().enumerate() {
            let group = strings(&rule["apiGroups"]).remove(0);
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    set_webhook_rules(&env, cluster, name, &without(&rules, i, &verb)).await;
                    expect_start_up_refusal(&env, &verb, &describe(&group, &resource)).await;
                    shown.push(format!("{verb} {}", describe(&group, &resource)));
                }
            }
        }
        set_webhook_rules(&env, cluster, name, &rules).await;
    }
    println!("every grant shown needed: {shown:?}");
    // The cluster-wide rules are the ones of deploy/rbac-cluster.yaml: 18 rules, 41 verbs (no
    // `get` on ControllerRevisions: the old image comes from the watch cache); the Lease Role: 3
    // verbs; the webhook's Role (Secret) 2 and ClusterRole (configurations) 4.
    assert_eq!(shown.len(), 50, "{shown:?}");
    env.finish().await;
}
