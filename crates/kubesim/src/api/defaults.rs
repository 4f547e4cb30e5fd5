//! Defaulting of the built-in kinds: the one place where a written object
//! gets the fields the API server fills in when a client leaves them out.
//!
//! Upstream runs the generated `SetObjectDefaults_*` functions when it
//! decodes a request body, for every write (create, update, each patch
//! result), so a stored object always carries them. Written from
//! `pkg/apis/core/v1/defaults.go` (`SetDefaults_PodSpec`, `SetDefaults_Pod`,
//! `SetDefaults_Container`, `SetDefaults_Service`, `SetDefaults_Secret`,
//! `SetDefaults_Probe`, `SetDefaults_HTTPGetAction`, the volume sources,
//! `SetDefaults_PersistentVolumeClaimSpec`, `SetDefaults_Endpoints`),
//! `pkg/apis/apps/v1/defaults.go` (`SetDefaults_StatefulSet`,
//! `SetDefaults_Deployment`), `pkg/apis/discovery/v1/defaults.go`
//! (`SetDefaults_EndpointPort`) and the declarative `+default` markers of
//! `k8s.io/api` (container port `protocol`). ConfigMaps, PodDisruptionBudgets,
//! Leases, Events, RBAC objects and ControllerRevisions have no defaults that
//! show in their JSON. The namespace name label, a pod's `status`, a
//! Service's cluster IP and other allocations are not defaults: they are
//! create-time strategy (`PrepareForCreate`) in `Api::prepare_for_create`.
//!
//! Timestamps are normalized here too ([`normalize_times`]): upstream decodes
//! `metav1.Time` and `metav1.MicroTime` fields into Go times and encodes them
//! back, so whatever RFC 3339 form a client sends (`+00:00`, fractions) is
//! stored and returned as UTC `Z`, whole seconds for `Time` and microseconds
//! for `MicroTime`; a value that is not RFC 3339 is a 400.
//!
//! Simplifications: resource quantities are not rounded to milli-units
//! (`SetDefaults_ResourceList`); feature-gated pod-level resources and
//! image volumes are not defaulted.

use serde_json::{Map, Value, json};

use crate::registry::ResourceDescriptor;

fn set_default(m: &mut Map<String, Value>, k: &str, v: Value) {
    if m.get(k).is_none_or(|x| x.is_null() || x == "") {
        m.insert(k.into(), v);
    }
}

fn each_object(v: Option<&mut Value>) -> impl Iterator<Item = &mut Map<String, Value>> {
    v.and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// `imagePullPolicy` when unset: `Always` for `:latest` or no tag (and no
/// digest), `IfNotPresent` otherwise (`SetDefaults_Container` through
/// `parsers.ParseImageName`).
pub fn default_pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or_default();
    match last.rsplit_once(':') {
        None => "Always",
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// `SetDefaults_Probe` + `SetDefaults_HTTPGetAction`.
fn default_probe(p: &mut Map<String, Value>) {
    set_default(p, "timeoutSeconds", json!(1));
    set_default(p, "periodSeconds", json!(10));
    set_default(p, "successThreshold", json!(1));
    set_default(p, "failureThreshold", json!(3));
    if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
        set_default(h, "path", json!("/"));
        set_default(h, "scheme", json!("HTTP"));
    }
}

fn default_container(c: &mut Map<String, Value>) {
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let policy = default_pull_policy(image);
    set_default(c, "imagePullPolicy", json!(policy));
    // A non-pointer struct in Go: always serialized.
    set_default(c, "resources", json!({}));
    for p in each_object(c.get_mut("ports")) {
        set_default(p, "protocol", json!("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            default_probe(p);
        }
    }
}

/// Volume defaults (`SetDefaults_Volume`: `emptyDir` when no source; the
/// `defaultMode` 0644 of secret, configMap, downwardAPI and projected sources).
fn default_volume(v: &mut Map<String, Value>) {
    let has_source = v.iter().any(|(k, x)| k != "name" && !x.is_null());
    if !has_source {
        v.insert("emptyDir".into(), json!({}));
    }
    for src in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(s) = v.get_mut(src).and_then(Value::as_object_mut) {
            set_default(s, "defaultMode", json!(420));
        }
    }
}

/// Pod spec defaults (`SetDefaults_PodSpec` and the nested container,
/// probe and volume defaults); also used for pod templates.
pub fn default_pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    set_default(m, "restartPolicy", json!("Always"));
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "securityContext", json!({}));
    set_default(m, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        for c in each_object(m.get_mut(key)) {
            default_container(c);
        }
    }
    for v in each_object(m.get_mut("volumes")) {
        default_volume(v);
    }
}

/// `SetDefaults_Pod`: requests default to limits; the admission-time
/// fields every stored pod carries (`enableServiceLinks`, the `Priority`
/// plugin's `priority`/`preemptionPolicy`, the `DefaultTolerationSeconds`
/// plugin's not-ready/unreachable tolerations).
fn default_pod(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec") else {
        return;
    };
    default_pod_spec(spec);
    let Some(sm) = spec.as_object_mut() else {
        return;
    };
    for key in ["containers", "initContainers"] {
        for c in each_object(sm.get_mut(key)) {
            let Some(limits) = c
                .get("resources")
                .and_then(|r| r.get("limits"))
                .and_then(Value::as_object)
                .cloned()
            else {
                continue;
            };
            if let Some(r) = c.get_mut("resources").and_then(Value::as_object_mut) {
                let req = r.entry("requests").or_insert_with(|| json!({}));
                if let Some(req) = req.as_object_mut() {
                    for (k, v) in limits {
                        req.entry(k).or_insert(v);
                    }
                }
            }
        }
    }
    set_default(sm, "enableServiceLinks", json!(true));
    set_default(sm, "preemptionPolicy", json!("PreemptLowerPriority"));
    set_default(sm, "priority", json!(0));
    let tolerations = sm.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(t) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            if !t.iter().any(|x| x["key"] == key) {
                t.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
}

/// `SetDefaults_Service`.
fn default_service(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "sessionAffinity", json!("None"));
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP")
            if spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_none_or(Value::is_null) =>
        {
            spec.insert(
                "sessionAffinityConfig".into(),
                json!({"clientIP": {"timeoutSeconds": 10800}}),
            );
        }
        _ => {}
    }
    set_default(spec, "type", json!("ClusterIP"));
    for p in each_object(spec.get_mut("ports")) {
        set_default(p, "protocol", json!("TCP"));
        if p.get("targetPort")
            .is_none_or(|t| t.is_null() || t == 0 || t == "")
        {
            let port = p.get("port").cloned().unwrap_or(Value::Null);
            p.insert("targetPort".into(), port);
        }
    }
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let external = ty == "NodePort"
        || ty == "LoadBalancer"
        || spec
            .get("externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
    if external {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

/// `SetDefaults_StatefulSet` (with `MaxUnavailableStatefulSet` on, as in v1.35).
fn default_statefulset(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "podManagementPolicy", json!("OrderedReady"));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(
        spec,
        "updateStrategy",
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 1}}),
    );
    if let Some(us) = spec
        .get_mut("updateStrategy")
        .and_then(|u| u.as_object_mut())
    {
        if us.get("type").is_none_or(|t| t.is_null() || t == "") {
            us.insert("type".into(), json!("RollingUpdate"));
            set_default(us, "rollingUpdate", json!({}));
        }
        let rolling = us.get("type").is_some_and(|t| t == "RollingUpdate");
        if let Some(ru) = us
            .get_mut("rollingUpdate")
            .filter(|_| rolling)
            .and_then(|r| r.as_object_mut())
        {
            set_default(ru, "partition", json!(0));
            set_default(ru, "maxUnavailable", json!(1));
        }
    }
    set_default(
        spec,
        "persistentVolumeClaimRetentionPolicy",
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
    );
    if let Some(pm) = spec
        .get_mut("persistentVolumeClaimRetentionPolicy")
        .and_then(Value::as_object_mut)
    {
        set_default(pm, "whenDeleted", json!("Retain"));
        set_default(pm, "whenScaled", json!("Retain"));
    }
    if let Some(ps) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        default_pod_spec(ps);
    }
    for t in each_object(spec.get_mut("volumeClaimTemplates")) {
        default_claim_spec(t.get_mut("spec"));
        // The embedded claims' status defaults too (`SetDefaults_PersistentVolumeClaim`).
        let st = t.entry("status").or_insert_with(|| json!({}));
        if let Some(st) = st.as_object_mut() {
            set_default(st, "phase", json!("Pending"));
        }
    }
}

/// `SetDefaults_Deployment`.
fn default_deployment(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    set_default(
        spec,
        "strategy",
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}),
    );
    if let Some(st) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
        set_default(st, "type", json!("RollingUpdate"));
        if st.get("type").is_some_and(|t| t == "RollingUpdate") {
            let ru = st.entry("rollingUpdate").or_insert_with(|| json!({}));
            if let Some(ru) = ru.as_object_mut() {
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
        }
    }
    if let Some(ps) = spec.get_mut("template").and_then(|t| t.get_mut("spec")) {
        default_pod_spec(ps);
    }
}

/// `SetDefaults_PersistentVolumeClaimSpec`.
fn default_claim_spec(spec: Option<&mut Value>) {
    if let Some(s) = spec.and_then(Value::as_object_mut) {
        set_default(s, "volumeMode", json!("Filesystem"));
    }
}

/// `stringData` is write-only: its entries are merged into `data`
/// (base64-encoded, overriding) and it is never stored
/// (`Convert_v1_Secret_To_core_Secret`; decoding, not defaulting, upstream,
/// but done at the same point of every write).
fn merge_string_data(m: &mut Map<String, Value>) {
    use base64::Engine;
    let Some(Value::Object(sd)) = m.remove("stringData") else {
        return;
    };
    let data = m.entry("data").or_insert_with(|| json!({}));
    if data.is_null() {
        *data = json!({});
    }
    if let Some(d) = data.as_object_mut() {
        for (k, v) in sd {
            let s = v.as_str().unwrap_or_default();
            d.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(s.as_bytes())),
            );
        }
    }
}

/// Applies upstream's defaults for the built-in kind `d` to `obj` (every
/// write: create, update, patch result).
pub fn apply_defaults(d: &ResourceDescriptor, obj: &mut Value) {
    // Webhook configurations (`pkg/apis/admissionregistration/v1/defaults.go`).
    crate::admission::config::apply_defaults(d, obj);
    match (d.group.as_str(), d.kind.as_str()) {
        ("", "Pod") => default_pod(obj),
        ("", "Service") => default_service(obj),
        ("", "Secret") => {
            if let Some(m) = obj.as_object_mut() {
                set_default(m, "type", json!("Opaque"));
                merge_string_data(m);
            }
        }
        ("", "PersistentVolumeClaim") => {
            default_claim_spec(obj.get_mut("spec"));
            if let Some(m) = obj.as_object_mut() {
                let st = m.entry("status").or_insert_with(|| json!({}));
                if let Some(st) = st.as_object_mut() {
                    set_default(st, "phase", json!("Pending"));
                }
            }
        }
        ("", "Endpoints") => {
            for ss in each_object(obj.get_mut("subsets")) {
                for p in each_object(ss.get_mut("ports")) {
                    set_default(p, "protocol", json!("TCP"));
                }
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for p in each_object(obj.get_mut("ports")) {
                set_default(p, "protocol", json!("TCP"));
                if p.get("name").is_none_or(Value::is_null) {
                    p.insert("name".into(), json!(""));
                }
            }
        }
        ("apps", "StatefulSet") => default_statefulset(obj),
        ("apps", "Deployment") => default_deployment(obj),
        _ => {}
    }
}

/// Fields of the built-in kinds typed `metav1.Time` (by name: no built-in
/// kind kubesim serves uses these names for anything else).
const TIME_FIELDS: &[&str] = &[
    "creationTimestamp",
    "deletionTimestamp",
    "firstTimestamp",
    "lastTimestamp",
    "lastTransitionTime",
    "lastProbeTime",
    "lastHeartbeatTime",
    "lastUpdateTime",
    "startTime",
    "startedAt",
    "finishedAt",
    "completionTime",
];

/// Fields of the built-in kinds typed `metav1.MicroTime`.
const MICRO_TIME_FIELDS: &[&str] = &["eventTime", "lastObservedTime", "renewTime", "acquireTime"];

fn normalize_time(
    d: &ResourceDescriptor,
    v: &mut Value,
    micro: bool,
) -> Result<(), super::ApiError> {
    let Some(s) = v.as_str() else {
        return Ok(());
    };
    let t: k8s_openapi::jiff::Timestamp = s.parse().map_err(|_| {
        super::ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: parsing time \"{s}\" as \"2006-01-02T15:04:05Z07:00\": cannot parse \"{s}\" as an RFC 3339 time",
            kind = d.kind,
            version = d.version,
        ))
    })?;
    let out = if micro {
        t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
    } else {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    };
    if out != s {
        *v = Value::String(out);
    }
    Ok(())
}

fn walk_times(d: &ResourceDescriptor, v: &mut Value) -> Result<(), super::ApiError> {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if TIME_FIELDS.contains(&k.as_str()) {
                    normalize_time(d, x, false)?;
                } else if MICRO_TIME_FIELDS.contains(&k.as_str()) {
                    normalize_time(d, x, true)?;
                } else if k == "managedFields" {
                    for e in each_object(Some(x)) {
                        if let Some(t) = e.get_mut("time") {
                            normalize_time(d, t, false)?;
                        }
                    }
                } else if k == "disruptedPods" {
                    // PodDisruptionBudget: a map of pod name to `metav1.Time`.
                    if let Some(pods) = x.as_object_mut() {
                        for t in pods.values_mut() {
                            normalize_time(d, t, false)?;
                        }
                    }
                } else if x.is_object() || x.is_array() {
                    walk_times(d, x)?;
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                walk_times(d, x)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Normalizes the `metav1.Time`/`metav1.MicroTime` fields of a built-in
/// kind's object as upstream's decode/encode round trip does (custom
/// resources keep their strings: upstream stores them as JSON).
pub fn normalize_times(d: &ResourceDescriptor, obj: &mut Value) -> Result<(), super::ApiError> {
    if d.crd_version.is_some() {
        return Ok(());
    }
    walk_times(d, obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(plural: &str) -> ResourceDescriptor {
        crate::registry::builtin_resources()
            .into_iter()
            .find(|d| d.plural == plural)
            .unwrap_or_else(|| panic!("no built-in {plural}"))
    }

    #[test]
    fn statefulset_gets_rolling_update_defaults_only_when_strategy_is_omitted() {
        let d = desc("statefulsets");
        let mut a = json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        apply_defaults(&d, &mut a);
        assert_eq!(a["spec"]["updateStrategy"]["rollingUpdate"]["partition"], 0);
        assert_eq!(
            a["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
        let mut b = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        apply_defaults(&d, &mut b);
        assert!(b["spec"]["updateStrategy"].get("rollingUpdate").is_none());
    }

    #[test]
    fn pull_policy_is_always_for_latest_or_untagged_images_only() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("registry:5000/nginx"), "Always");
        assert_eq!(
            default_pull_policy("registry:5000/nginx:1.2"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("nginx@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn a_service_port_targets_its_own_port_over_tcp_by_default() {
        let mut s = json!({"spec": {"ports": [{"port": 80}, {"port": 81, "targetPort": "http", "protocol": "UDP"}]}});
        apply_defaults(&desc("services"), &mut s);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(s["spec"]["ports"][1]["targetPort"], "http");
        assert_eq!(s["spec"]["ports"][1]["protocol"], "UDP");
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["sessionAffinity"], "None");
        assert_eq!(s["spec"]["internalTrafficPolicy"], "Cluster");
        assert!(s["spec"].get("externalTrafficPolicy").is_none());
    }

    #[test]
    fn times_come_back_in_utc_at_the_precision_of_their_go_type() {
        let d = desc("events");
        let mut e = json!({"firstTimestamp": "2026-12-06T18:11:27.284622+01:00",
            "eventTime": "2026-12-06T17:11:27.284622901+00:00",
            "metadata": {"managedFields": [{"time": "2026-12-06T17:11:27.5Z"}]}});
        normalize_times(&d, &mut e).unwrap();
        assert_eq!(e["firstTimestamp"], "2026-12-06T17:11:27Z");
        assert_eq!(e["eventTime"], "2026-12-06T17:11:27.284622Z");
        assert_eq!(
            e["metadata"]["managedFields"][0]["time"],
            "2026-12-06T17:11:27Z"
        );
        let mut bad = json!({"lastTimestamp": "yesterday"});
        let err = normalize_times(&d, &mut bad).unwrap_err();
        assert_eq!(err.code, 400);
        assert!(
            err.message.contains("parsing time \"yesterday\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_secret_without_a_type_is_opaque() {
        let mut s = json!({"data": {}});
        apply_defaults(&desc("secrets"), &mut s);
        assert_eq!(s["type"], "Opaque");
        let mut t = json!({"type": "kubernetes.io/tls"});
        apply_defaults(&desc("secrets"), &mut t);
        assert_eq!(t["type"], "kubernetes.io/tls");
        let mut u = json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "hunter2"}});
        apply_defaults(&desc("secrets"), &mut u);
        assert_eq!(u["data"], json!({"a": "eA==", "b": "aHVudGVyMg=="}));
        assert!(u.get("stringData").is_none());
    }

    #[test]
    fn pod_requests_default_to_limits_and_probes_get_their_thresholds() {
        let mut p = json!({"spec": {"containers": [{"name": "c", "image": "x:1",
            "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}},
            "readinessProbe": {"httpGet": {"port": 8080}}}],
            "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}]}});
        apply_defaults(&desc("pods"), &mut p);
        let c = &p["spec"]["containers"][0];
        assert_eq!(
            c["resources"]["requests"],
            json!({"cpu": "1", "memory": "1Gi"})
        );
        assert_eq!(c["readinessProbe"]["periodSeconds"], 10);
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/");
        assert_eq!(p["spec"]["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(p["spec"]["volumes"][1]["secret"]["defaultMode"], 420);
        assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 30);
    }
}
