//! SidecarSets, pure: matching, injection by Kruise's merge rules, conflicts, and the upgrade plan.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStatus, Pod, PodCondition,
        PodReadinessGate, PodStatus,
    },
    jiff::Timestamp,
};
use proptest::prelude::*;
use sroll_api::sidecar_set::SidecarSet;
use sroll_planner::{
    inplace::{self, Op},
    sidecar_set::{
        self, HASH_ANNOTATION, INJECTED_ENV, INJECTED_LIST_ANNOTATION, SidecarPod,
        SidecarSetObserved,
    },
};

fn set(yaml: &str) -> SidecarSet {
    serde_yaml_ng::from_str(yaml).expect("a SidecarSet")
}

fn pod(yaml: &str) -> Pod {
    serde_yaml_ng::from_str(yaml).expect("a pod")
}

const LOG_AGENT: &str = "
metadata: {name: log-agent}
spec:
  selector: {matchLabels: {app: web}}
  containers:
    - name: agent
      image: agent:1
      volumeMounts: [{name: logs, mountPath: /var/log/app}]
  volumes:
    - {name: logs, emptyDir: {}}
    - {name: unused, emptyDir: {}}
  imagePullSecrets: [{name: registry}]
";

const WEB_POD: &str = "
metadata: {name: web-0, namespace: shop, labels: {app: web}}
spec:
  imagePullSecrets: [{name: registry}]
  containers:
    - name: app
      image: app:1
      env: [{name: POD_IP, value: 10.0.0.1}, {name: OTHER, value: x}]
      volumeMounts: [{name: data, mountPath: /data}, {name: cache, mountPath: /var/log/app}]
  volumes:
    - {name: data, emptyDir: {}}
    - {name: cache, emptyDir: {}}
";

fn names(list: &[Container]) -> Vec<&str> {
    list.iter().map(|c| c.name.as_str()).collect()
}

#[test]
fn a_sidecar_set_matches_by_selector_and_namespace_rules() {
    let p = pod(WEB_POD);
    let mut s = set(LOG_AGENT);
    assert!(sidecar_set::matches(&s, &p, "shop", None));
    let other = pod("metadata: {name: db-0, labels: {app: db}}\nspec: {containers: []}");
    assert!(!sidecar_set::matches(&s, &other, "shop", None));
    s.spec.namespace = "prod".into();
    assert!(!sidecar_set::matches(&s, &p, "shop", None));
    assert!(sidecar_set::matches(&s, &p, "prod", None));
    s.spec.namespace.clear();
    s.spec.namespace_selector =
        Some(serde_yaml_ng::from_str("{matchLabels: {team: a}}").expect("a namespace selector"));
    let team_a = BTreeMap::from([("team".to_owned(), "a".to_owned())]);
    assert!(sidecar_set::matches(&s, &p, "shop", Some(&team_a)));
    assert!(!sidecar_set::matches(
        &s,
        &p,
        "shop",
        Some(&BTreeMap::new())
    ));
    s.spec.namespace_selector =
        Some(serde_yaml_ng::from_str("{namespaces: [shop, prod]}").expect("names"));
    assert!(sidecar_set::matches(&s, &p, "shop", None));
    assert!(!sidecar_set::matches(&s, &p, "dev", None));
    s.spec.selector = None;
    assert!(
        !sidecar_set::matches(&s, &p, "shop", None),
        "no selector matches nothing"
    );
}

#[test]
fn a_sidecar_sets_label_namespace_selector_is_matched_against_the_namespaces_labels() {
    type Labels = BTreeMap<String, String>;
    let labels = |pairs: &[(&str, &str)]| -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let team_a = labels(&[("team", "a"), ("kubernetes.io/metadata.name", "shop")]);
    let team_b = labels(&[("team", "b"), ("kubernetes.io/metadata.name", "shop")]);
    let by_name = labels(&[("kubernetes.io/metadata.name", "shop")]);
    // (namespaceSelector, namespace labels known?, expected)
    let cases: &[(&str, Option<&Labels>, bool)] = &[
        ("{matchLabels: {team: a}}", Some(&team_a), true),
        ("{matchLabels: {team: a}}", Some(&team_b), false),
        ("{matchLabels: {team: a}}", Some(&by_name), false),
        // Not in the cache yet: only the namespace's name label is sure.
        ("{matchLabels: {team: a}}", None, false),
        (
            "{matchLabels: {kubernetes.io/metadata.name: shop}}",
            None,
            true,
        ),
        (
            "{matchLabels: {kubernetes.io/metadata.name: shop}}",
            Some(&team_b),
            true,
        ),
        (
            "{matchExpressions: [{key: team, operator: In, values: [a, c]}]}",
            Some(&team_a),
            true,
        ),
        (
            "{matchExpressions: [{key: team, operator: NotIn, values: [a]}]}",
            Some(&team_b),
            true,
        ),
        (
            "{matchExpressions: [{key: team, operator: Exists}]}",
            Some(&by_name),
            false,
        ),
        (
            "{matchExpressions: [{key: team, operator: DoesNotExist}]}",
            Some(&by_name),
            true,
        ),
        ("{namespaces: [shop]}", Some(&team_b), true),
        ("{namespaces: [prod]}", Some(&team_a), false),
    ];
    let p = pod(WEB_POD);
    for (selector, ns_labels, expected) in cases {
        let mut s = set(LOG_AGENT);
        s.spec.namespace_selector =
            Some(serde_yaml_ng::from_str(selector).expect("a namespace selector"));
        assert_eq!(
            sidecar_set::matches(&s, &p, "shop", *ns_labels),
            *expected,
            "{selector} with namespace labels {ns_labels:?}"
        );
        assert_eq!(
            sidecar_set::selects_namespaces_by_label(&s.spec),
            !selector.starts_with("{namespaces"),
            "{selector}"
        );
    }
    assert!(!sidecar_set::selects_namespaces_by_label(
        &set(LOG_AGENT).spec
    ));
}

#[test]
fn injection_merges_volumes_secrets_and_records_the_version() {
    let s = set(LOG_AGENT);
    let mut p = pod(WEB_POD);
    let done = sidecar_set::inject(&mut p, "shop", None, &[&s]);
    assert_eq!(done.sets, ["log-agent"]);
    let spec = p.spec.as_ref().expect("spec");
    assert_eq!(
        names(&spec.containers),
        ["agent", "app"],
        "BeforeAppContainer"
    );
    let agent = &spec.containers[0];
    assert!(sidecar_set::is_injected(agent));
    assert!(!sidecar_set::is_injected(&spec.containers[1]));
    let volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        volumes,
        ["data", "cache", "logs"],
        "only mounted volumes are injected"
    );
    let secrets: Vec<&str> = spec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        secrets,
        ["registry"],
        "a secret already listed is not repeated"
    );
    let ann = p.metadata.annotations.clone().expect("annotations");
    assert_eq!(ann[INJECTED_LIST_ANNOTATION], "log-agent");
    let hashes: BTreeMap<String, sidecar_set::HashEntry> =
        sidecar_set::read_map(&p, HASH_ANNOTATION);
    assert_eq!(
        hashes["log-agent"].hash,
        sidecar_set::revision_hash(&s.spec)
    );
    assert_eq!(hashes["log-agent"].sidecar_list, ["agent"]);
}

/// Kruise's `MergeVolumes` (kruise#254/#255): a volume whose name the pod already has is not
/// injected, whatever the SidecarSet's says.
#[test]
fn a_volume_the_pod_already_has_wins_over_the_sidecar_sets() {
    let s = set(&LOG_AGENT
        .replace(
            "- {name: logs, emptyDir: {}}",
            "- {name: data, hostPath: {path: /var/log}}\n    - {name: logs, emptyDir: {}}",
        )
        .replace(
            "volumeMounts: [{name: logs, mountPath: /var/log/app}]",
            "volumeMounts: [{name: logs, mountPath: /var/log/app}, {name: data, mountPath: /d}]",
        ));
    let mut p = pod(WEB_POD);
    sidecar_set::inject(&mut p, "shop", None, &[&s]);
    let vols = p.spec.expect("spec").volumes.expect("volumes");
    let data: Vec<_> = vols.iter().filter(|v| v.name == "data").collect();
    assert_eq!(data.len(), 1, "never duplicated");
    assert!(data[0].empty_dir.is_some(), "the pod's volume wins");
    assert!(data[0].host_path.is_none());
}

#[test]
fn shared_mounts_merge_by_mount_path_and_the_sidecars_own_wins() {
    let s = set(&LOG_AGENT.replace(
        "      image: agent:1\n",
        "      image: agent:1\n      shareVolumePolicy: {type: enabled}\n      podInjectPolicy: AfterAppContainer\n",
    ));
    let mut p = pod(WEB_POD);
    sidecar_set::inject(&mut p, "shop", None, &[&s]);
    let spec = p.spec.expect("spec");
    assert_eq!(
        names(&spec.containers),
        ["app", "agent"],
        "AfterAppContainer"
    );
    let mounts: Vec<(String, String)> = spec.containers[1]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.clone(), m.mount_path.clone()))
        .collect();
    assert_eq!(
        mounts,
        [
            ("logs".into(), "/var/log/app".into()),
            ("data".into(), "/data".into()),
        ],
        "the app's /var/log/app mount (volume cache) loses to the sidecar's own"
    );
}

#[test]
fn transfer_env_copies_named_variables_and_the_sidecars_own_win() {
    let s = set(&LOG_AGENT.replace(
        "      image: agent:1\n",
        "      image: agent:1\n      env: [{name: OTHER, value: mine}]\n      transferEnv:\n        - {sourceContainerName: app, envNames: [POD_IP, OTHER, MISSING]}\n",
    ));
    let mut p = pod(WEB_POD);
    sidecar_set::inject(&mut p, "shop", None, &[&s]);
    let env: Vec<(String, Option<String>)> = p.spec.expect("spec").containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    assert_eq!(
        env,
        [
            (INJECTED_ENV.into(), Some("true".into())),
            ("POD_IP".into(), Some("10.0.0.1".into())),
            ("OTHER".into(), Some("mine".into())),
        ]
    );
}

#[test]
fn init_containers_sorted_by_name_go_after_the_pods_own_and_metadata_is_patched() {
    let s = set(&format!(
        "{LOG_AGENT}  initContainers:\n    - {{name: z-init, image: i:1}}\n    - {{name: a-init, image: i:1}}\n  patchPodMetadata:\n    - annotations: {{keep: sidecar, fresh: v}}\n    - annotations: {{over: sidecar}}\n      patchPolicy: Overwrite\n    - annotations: {{merged: '{{\"agent\": 1}}'}}\n      patchPolicy: MergePatchJson\n"
    ));
    let mut p = pod(&WEB_POD.replace(
        "metadata: {name: web-0, namespace: shop, labels: {app: web}}",
        "metadata:\n  name: web-0\n  labels: {app: web}\n  annotations: {keep: pod, over: pod, merged: '{\"app\": 2}'}",
    )
    .replace("spec:\n", "spec:\n  initContainers: [{name: own, image: o:1}]\n"));
    sidecar_set::inject(&mut p, "shop", None, &[&s]);
    let inits = p
        .spec
        .clone()
        .expect("spec")
        .init_containers
        .expect("inits");
    assert_eq!(names(&inits), ["own", "a-init", "z-init"]);
    let ann = p.metadata.annotations.expect("annotations");
    assert_eq!(ann["keep"], "pod", "Retain");
    assert_eq!(ann["fresh"], "v");
    assert_eq!(ann["over"], "sidecar", "Overwrite");
    let merged: serde_json::Value = serde_json::from_str(&ann["merged"]).expect("JSON");
    assert_eq!(
        merged,
        serde_json::json!({"app": 2, "agent": 1}),
        "MergePatchJson"
    );
}

#[test]
fn paused_injection_and_containers_already_present_are_skipped() {
    let mut s = set(LOG_AGENT);
    s.spec.injection_strategy.paused = true;
    let mut p = pod(WEB_POD);
    assert!(
        sidecar_set::inject(&mut p, "shop", None, &[&s])
            .sets
            .is_empty()
    );
    assert_eq!(p, pod(WEB_POD), "untouched");
    s.spec.injection_strategy.paused = false;
    sidecar_set::inject(&mut p, "shop", None, &[&s]);
    let once = p.clone();
    sidecar_set::inject(&mut p, "shop", None, &[&s]);
    assert_eq!(
        names(&p.spec.clone().expect("spec").containers),
        names(&once.spec.expect("spec").containers),
        "never injected twice"
    );
}

#[test]
fn conflicting_sidecar_sets_are_named_with_the_field() {
    let a = set(LOG_AGENT);
    let same = set(&LOG_AGENT.replace("log-agent", "copy"));
    assert!(
        sidecar_set::conflicts(&a, &[&same]).is_empty(),
        "identical containers and volumes do not conflict"
    );
    let other_image = set(&LOG_AGENT
        .replace("log-agent", "proxy")
        .replace("agent:1", "agent:2"));
    let c = sidecar_set::conflicts(&a, &[&other_image]);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].other, "proxy");
    assert_eq!(c[0].field, "spec.containers[0].name");
    assert!(c[0].to_string().contains("\"agent\""), "{}", c[0]);
    let other_volume = set(&LOG_AGENT
        .replace("log-agent", "vol")
        .replace(
            "- {name: logs, emptyDir: {}}",
            "- {name: logs, hostPath: {path: /l}}",
        )
        .replace("name: agent", "name: agent2"));
    let c = sidecar_set::conflicts(&a, &[&other_volume]);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].field, "spec.volumes[0]");
    // Disjoint selectors or namespaces never conflict.
    let elsewhere = set(&LOG_AGENT
        .replace("log-agent", "db")
        .replace("agent:1", "agent:2")
        .replace("app: web", "app: db"));
    assert!(sidecar_set::conflicts(&a, &[&elsewhere]).is_empty());
    let mut other_ns = other_image.clone();
    other_ns.spec.namespace = "b".into();
    let mut a_ns = a.clone();
    a_ns.spec.namespace = "a".into();
    assert!(sidecar_set::conflicts(&a_ns, &[&other_ns]).is_empty());
    let not_in = set(&LOG_AGENT
        .replace("log-agent", "notin")
        .replace("agent:1", "agent:2")
        .replace(
            "selector: {matchLabels: {app: web}}",
            "selector: {matchExpressions: [{key: app, operator: NotIn, values: [web]}]}",
        ));
    assert!(sidecar_set::conflicts(&a, &[&not_in]).is_empty());
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).expect("in range")
}

fn running(name: &str, image: &str, ready: bool) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        image: image.into(),
        image_id: format!("id-{image}"),
        ready,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }
}

/// A pod injected with `s`, Running and Ready (or not), with or without the readiness gate.
fn injected(s: &SidecarSet, name: &str, ready: bool, gate: bool) -> Pod {
    let mut p = pod(&WEB_POD.replace("web-0", name));
    p.metadata.uid = Some(format!("uid-{name}"));
    if gate {
        p.spec.as_mut().expect("spec").readiness_gates = Some(vec![PodReadinessGate {
            condition_type: inplace::READINESS_GATE.into(),
        }]);
    }
    sidecar_set::inject(&mut p, "shop", None, &[s]);
    let statuses = p
        .spec
        .as_ref()
        .expect("spec")
        .containers
        .iter()
        .map(|c| running(&c.name, c.image.as_deref().unwrap_or_default(), ready))
        .collect();
    let mut conditions = vec![PodCondition {
        type_: "Ready".into(),
        status: if ready { "True" } else { "False" }.into(),
        ..PodCondition::default()
    }];
    if gate {
        conditions.push(PodCondition {
            type_: inplace::READINESS_GATE.into(),
            status: "True".into(),
            ..PodCondition::default()
        });
    }
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        conditions: Some(conditions),
        container_statuses: Some(statuses),
        ..PodStatus::default()
    });
    p
}

fn observed<'a>(s: &'a SidecarSet, pods: &[Pod]) -> SidecarSetObserved<'a> {
    SidecarSetObserved {
        set: s,
        pods: pods
            .iter()
            .map(|p| SidecarPod {
                pod: p.clone(),
                pdb: None,
            })
            .collect(),
        pdb_allowed: BTreeMap::new(),
        now: at(0),
    }
}

fn started(plan: &sidecar_set::SidecarSetPlan) -> Vec<String> {
    plan.started.clone()
}

#[test]
fn an_image_change_upgrades_pods_in_place_bounded_by_max_unavailable_traffic_first() {
    let v1 = set(LOG_AGENT);
    let pods: Vec<Pod> = (0..5)
        .map(|i| injected(&v1, &format!("web-{i}"), true, true))
        .collect();
    let mut v2 = set(&LOG_AGENT.replace("agent:1", "agent:2"));
    v2.spec.update_strategy.max_unavailable =
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("40%".into()));
    let plan = sidecar_set::plan_upgrade(&observed(&v2, &pods));
    assert_eq!(plan.status.matched_pods, 5);
    assert_eq!(plan.status.updated_pods, 0);
    assert_eq!(plan.status.ready_pods, 5);
    assert_eq!(started(&plan), ["shop/web-0", "shop/web-1"], "40% of 5 = 2");
    assert!(plan.not_upgradable.is_empty());
    let ops: Vec<&str> = plan.writes.iter().map(|(_, w)| w.op.name()).collect();
    assert_eq!(
        ops,
        [
            "TakeOutOfTraffic",
            "PatchSidecars",
            "TakeOutOfTraffic",
            "PatchSidecars"
        ],
        "traffic first, then only the sidecar's image"
    );
    // Apply the writes as the executor would.
    let mut pods = pods;
    for (_, w) in &plan.writes {
        let p = pods
            .iter_mut()
            .find(|p| p.metadata.name.as_deref() == Some(w.pod.as_str()))
            .expect("pod");
        *p = w.op.apply(p, at(1)).expect("applies");
    }
    let p0 = &pods[0];
    let spec = p0.spec.as_ref().expect("spec");
    assert_eq!(spec.containers[0].image.as_deref(), Some("agent:2"));
    assert_eq!(
        spec.containers[1].image.as_deref(),
        Some("app:1"),
        "app untouched"
    );
    assert!(!sroll_api::predicates::is_pod_ready(p0), "out of traffic");
    // The sidecar has not restarted: the two pods are unavailable, nothing else starts.
    let plan = sidecar_set::plan_upgrade(&observed(&v2, &pods));
    assert_eq!(plan.status.updated_pods, 2);
    assert!(started(&plan).is_empty(), "{:?}", plan.started);
    assert!(plan.writes.is_empty(), "{:?}", plan.writes);
    // The kubelet restarted the sidecar on web-0: it goes back in traffic, and one more starts.
    let st = pods[0].status.as_mut().expect("status");
    st.container_statuses.as_mut().expect("statuses")[0] = running("agent", "agent:2", true);
    let plan = sidecar_set::plan_upgrade(&observed(&v2, &pods));
    let ops: Vec<(String, &str)> = plan
        .writes
        .iter()
        .map(|(_, w)| (w.pod.clone(), w.op.name()))
        .collect();
    assert_eq!(ops[0], ("web-0".into(), "MarkReady"));
    assert!(
        started(&plan).is_empty(),
        "web-0 still counts as unavailable until it is back: {ops:?}"
    );
}

#[test]
fn partition_paused_selector_and_not_update_hold_pods_back() {
    let v1 = set(LOG_AGENT);
    let mut pods: Vec<Pod> = (0..4)
        .map(|i| injected(&v1, &format!("web-{i}"), true, false))
        .collect();
    pods[3]
        .metadata
        .labels
        .as_mut()
        .expect("labels")
        .insert("canary".into(), "true".into());
    let base = set(&LOG_AGENT.replace("agent:1", "agent:2"));
    let with = |f: &dyn Fn(&mut SidecarSet)| {
        let mut s = base.clone();
        s.spec.update_strategy.max_unavailable =
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(10));
        f(&mut s);
        sidecar_set::plan_upgrade(&observed(&s, &pods)).started
    };
    assert_eq!(with(&|_| {}).len(), 4);
    assert_eq!(
        with(&|s| s.spec.update_strategy.partition =
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(3)))
        .len(),
        1,
        "partition 3 keeps three pods back"
    );
    assert!(with(&|s| s.spec.update_strategy.paused = true).is_empty());
    assert!(
        with(&|s| s.spec.update_strategy.type_ =
            Some(sroll_api::sidecar_set::SidecarSetUpdateType::NotUpdate))
        .is_empty()
    );
    assert_eq!(
        with(&|s| s.spec.update_strategy.selector =
            Some(serde_yaml_ng::from_str("{matchLabels: {canary: 'true'}}").expect("selector"))),
        ["shop/web-3"]
    );
    // Without the gate the images are patched at once (no out-of-traffic write).
    let plan = sidecar_set::plan_upgrade(&observed(&base, &pods));
    assert_eq!(plan.writes.len(), 1);
    assert!(matches!(plan.writes[0].1.op, Op::PatchSidecars { .. }));
}

#[test]
fn not_ready_pods_go_first_and_a_pods_budget_is_honoured() {
    let v1 = set(LOG_AGENT);
    let pods = vec![
        injected(&v1, "web-0", true, false),
        injected(&v1, "web-1", true, false),
        injected(&v1, "web-2", false, false),
    ];
    let v2 = set(&LOG_AGENT.replace("agent:1", "agent:2"));
    let plan = sidecar_set::plan_upgrade(&observed(&v2, &pods));
    assert_eq!(started(&plan), ["shop/web-2"], "not Ready first");
    let mut o = observed(&v2, &pods);
    for p in &mut o.pods {
        p.pdb = Some("shop/web".into());
    }
    o.pdb_allowed.insert("shop/web".into(), 0);
    o.pods.truncate(2);
    let plan = sidecar_set::plan_upgrade(&o);
    assert!(
        plan.started.is_empty(),
        "a Ready pod is not taken when its budget allows no disruption"
    );
    assert!(plan.in_progress, "waiting for the budget");
}

#[test]
fn a_change_beyond_the_image_marks_pods_not_upgradable() {
    let v1 = set(LOG_AGENT);
    let pods = vec![injected(&v1, "web-0", true, true)];
    let v2 = set(&LOG_AGENT.replace(
        "      image: agent:1\n",
        "      image: agent:1\n      env: [{name: LEVEL, value: debug}]\n",
    ));
    let plan = sidecar_set::plan_upgrade(&observed(&v2, &pods));
    assert!(plan.started.is_empty());
    assert_eq!(plan.not_upgradable, ["shop/web-0"]);
    assert_eq!(plan.conditions.len(), 1);
    assert!(!plan.conditions[0].upgradable);
    let marked = sidecar_set::with_upgradable_condition(&pods[0], "log-agent", false, at(0))
        .expect("a change");
    let c = marked
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| {
            c.iter()
                .find(|c| c.type_ == sidecar_set::UPGRADABLE_CONDITION)
        })
        .expect("condition");
    assert_eq!(c.status, "False");
    assert_eq!(
        c.reason.as_deref(),
        Some(sidecar_set::REASON_UPDATE_IMMUTABLE_FIELD)
    );
    assert_eq!(c.message.as_deref(), Some(r#"{"log-agent":false}"#));
    assert_eq!(
        sidecar_set::condition_says(&marked, "log-agent"),
        Some(false)
    );
    assert!(
        sidecar_set::with_upgradable_condition(&marked, "log-agent", false, at(1)).is_none(),
        "written once"
    );
    // Back to an image-only difference: the condition turns True.
    let v3 = set(&LOG_AGENT.replace("agent:1", "agent:3"));
    let plan = sidecar_set::plan_upgrade(&observed(&v3, std::slice::from_ref(&marked)));
    assert!(plan.conditions.iter().any(|c| c.upgradable));
    let back = sidecar_set::with_upgradable_condition(&marked, "log-agent", true, at(2))
        .expect("a change");
    assert_eq!(sidecar_set::condition_says(&back, "log-agent"), None);
}

#[test]
fn a_stale_patch_never_applies_twice() {
    let v1 = set(LOG_AGENT);
    let p = injected(&v1, "web-0", true, false);
    let v2 = set(&LOG_AGENT.replace("agent:1", "agent:2"));
    let plan = sidecar_set::plan_upgrade(&observed(&v2, std::slice::from_ref(&p)));
    let op = &plan.writes[0].1.op;
    let once = op.apply(&p, at(1)).expect("applies");
    assert!(
        op.apply(&once, at(2)).is_none(),
        "the recorded version moved"
    );
    // The restarting sidecar is pending for every in-place user of the pod.
    let view = inplace::PodInPlace::from_pod(&once);
    assert_eq!(view.containers_pending, ["agent"]);
}

proptest! {
    /// Whatever the pods' states and the strategy: never more unavailable than maxUnavailable
    /// because of starts, never more started than the partition allows, nothing started while
    /// paused, and only upgradable pods started.
    #[test]
    fn the_upgrade_plan_respects_every_bound(
        states in prop::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 1..12),
        max_unavailable in 1..5i32,
        partition in 0..12i32,
        paused in any::<bool>(),
    ) {
        let v1 = set(LOG_AGENT);
        let v2 = set(&LOG_AGENT.replace("agent:1", "agent:2"));
        let v_env = set(&LOG_AGENT.replace(
            "      image: agent:1\n",
            "      image: agent:1\n      env: [{name: LEVEL, value: debug}]\n",
        ));
        let pods: Vec<Pod> = states
            .iter()
            .enumerate()
            .map(|(i, (ready, gate, at_env))| {
                injected(if *at_env { &v_env } else { &v1 }, &format!("web-{i}"), *ready, *gate)
            })
            .collect();
        let mut s = v2.clone();
        s.spec.update_strategy.max_unavailable =
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(max_unavailable));
        s.spec.update_strategy.partition =
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(partition));
        s.spec.update_strategy.paused = paused;
        let plan = sidecar_set::plan_upgrade(&observed(&s, &pods));
        let n = plan.started.len() as i32;
        if paused {
            prop_assert_eq!(n, 0);
        }
        prop_assert!(n <= max_unavailable, "{} > {}", n, max_unavailable);
        prop_assert!(n <= (pods.len() as i32 - partition).max(0));
        for k in &plan.started {
            let i: usize = k.trim_start_matches("shop/web-").parse().expect("index");
            prop_assert!(!states[i].2, "a not-upgradable pod was started");
        }
        prop_assert_eq!(
            plan.not_upgradable.len(),
            states.iter().filter(|(_, _, e)| *e).count()
        );
    }
}

/// The readiness gate is shared with the workload's own in-place updates: a SidecarSet neither
/// patches nor puts back a pod its workload took out of traffic, and puts back the pods it took
/// out even when its latest version moved on in between.
#[test]
fn a_sidecar_set_only_puts_back_the_pods_it_took_out_of_traffic() {
    let v1 = set(LOG_AGENT);
    let v2 = set(&LOG_AGENT.replace("agent:1", "agent:2"));
    let v3 = set(&LOG_AGENT.replace("agent:1", "agent:3"));
    let p = injected(&v1, "web-0", true, true);
    // Out of traffic for the workload (its target is a revision name).
    let workloads = inplace::out_of_traffic(&p, "web-7d9f", at(0));
    let plan = sidecar_set::plan_upgrade(&observed(&v2, std::slice::from_ref(&workloads)));
    assert!(plan.writes.is_empty(), "{:?}", plan.writes);
    // Out of traffic for v2, then v3 arrives before the images are patched: patched to v3 …
    let plan = sidecar_set::plan_upgrade(&observed(&v2, std::slice::from_ref(&p)));
    let out = plan.writes[0]
        .1
        .op
        .apply(&p, at(1))
        .expect("out of traffic");
    let plan = sidecar_set::plan_upgrade(&observed(&v3, std::slice::from_ref(&out)));
    assert_eq!(plan.writes.len(), 1);
    let patched = plan.writes[0].1.op.apply(&out, at(2)).expect("patched");
    assert_eq!(
        patched.spec.as_ref().expect("spec").containers[0]
            .image
            .as_deref(),
        Some("agent:3")
    );
    // … and put back once the sidecar runs it.
    let mut done = patched.clone();
    done.status
        .as_mut()
        .and_then(|s| s.container_statuses.as_mut())
        .expect("statuses")[0] = running("agent", "agent:3", true);
    let plan = sidecar_set::plan_upgrade(&observed(&v3, std::slice::from_ref(&done)));
    let ops: Vec<&str> = plan.writes.iter().map(|(_, w)| w.op.name()).collect();
    assert_eq!(ops, ["MarkReady"]);
    assert!(plan.writes[0].1.op.apply(&done, at(3)).is_some());
}
