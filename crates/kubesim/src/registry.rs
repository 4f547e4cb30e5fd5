//! The resource registry: which resources the simulated API server serves.
//!
//! Every served resource is described by a [`ResourceDescriptor`] (group,
//! version, plural, kind, scope, subresources, short names, categories, the
//! fields it supports in field selectors). The built-in kinds are registered
//! at start; CustomResourceDefinitions add and remove descriptors at run
//! time. Discovery, the HTTP router and the store all work from this table.
//!
//! Upstream: `k8s.io/apiserver/pkg/endpoints/installer.go` (what each
//! resource advertises) and the per-kind `strategy.go` files (which kinds
//! track `generation`, which have a status subresource).

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

use serde_json::Value;

/// How object names of a resource are validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds; `ValidateObjectMeta` default).
    Subdomain,
    /// RFC 1123 label (namespaces, statefulsets).
    Label,
    /// RFC 1035 label (services).
    Rfc1035Label,
    /// A path segment name: anything without `/`, `%` and not `.`/`..` (RBAC).
    PathSegment,
}

/// Where the scale subresource reads and writes its fields (JSON paths
/// without the leading dot, e.g. `spec.replicas`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleSpec {
    /// Path of the desired replica count.
    pub spec_replicas_path: String,
    /// Path of the observed replica count.
    pub status_replicas_path: String,
    /// Path of the serialized label selector in status (optional).
    pub label_selector_path: Option<String>,
}

/// Everything the server needs to know about one served resource.
#[derive(Clone, Debug)]
pub struct ResourceDescriptor {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version (`v1`).
    pub version: String,
    /// Plural resource name used in URLs (`pods`).
    pub plural: String,
    /// Singular name (`pod`).
    pub singular: String,
    /// Kind (`Pod`).
    pub kind: String,
    /// Kind of the list (`PodList`).
    pub list_kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names for kubectl (`po`).
    pub short_names: Vec<String>,
    /// Categories for kubectl (`all`).
    pub categories: Vec<String>,
    /// Whether a `/status` subresource exists (then main-resource writes keep
    /// the stored status and status writes keep the stored spec).
    pub status_subresource: bool,
    /// The `/scale` subresource, if any.
    pub scale: Option<ScaleSpec>,
    /// Whether `metadata.generation` is maintained (bumped on spec changes).
    pub tracks_generation: bool,
    /// Extra fields accepted in field selectors besides `metadata.name` and
    /// `metadata.namespace` (dotted paths into the object).
    pub selectable_fields: Vec<String>,
    /// Name validation rule.
    pub name_rule: NameRule,
    /// Whether updates without `metadata.resourceVersion` are allowed
    /// (`AllowUnconditionalUpdate`): true for built-ins, false for custom resources.
    pub allow_unconditional_update: bool,
    /// Whether a graceful deletion period applies (pods).
    pub graceful_delete: bool,
    /// Whether a DELETE that removes the object returns the object (pods,
    /// PVCs: `ReturnDeletedObject`) rather than a `Status`.
    pub return_deleted_object: bool,
    /// Extra subresources served only by hooks (e.g. `pods/eviction`),
    /// with their discovery data: (name, group, version, kind, verbs).
    pub hook_subresources: Vec<HookSubresource>,
    /// For custom resources: the CRD version entry (schema, printer columns).
    pub crd_version: Option<Arc<Value>>,
    /// For custom resources: the name of the owning CRD.
    pub crd_name: Option<String>,
}

/// Discovery data of a subresource served by a registered hook.
#[derive(Clone, Debug)]
pub struct HookSubresource {
    /// Subresource name (`eviction`).
    pub name: String,
    /// Group of the subresource's kind (`policy`).
    pub group: String,
    /// Version of the subresource's kind (`v1`).
    pub version: String,
    /// Kind accepted (`Eviction`).
    pub kind: String,
    /// Verbs (`create`).
    pub verbs: Vec<String>,
}

impl ResourceDescriptor {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Storage key shared by all versions of one resource: `plural` or `plural.group`.
    pub fn storage_key(&self) -> String {
        storage_key(&self.group, &self.plural)
    }

    /// `plural` or `plural.group`, as used in error messages (`statefulsets.apps`).
    pub fn qualified_plural(&self) -> String {
        self.storage_key()
    }

    /// The URL prefix of this resource's group version (`/api/v1`, `/apis/apps/v1`).
    pub fn gv_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        ResourceDescriptor {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            namespaced,
            short_names: vec![],
            categories: vec![],
            status_subresource: false,
            scale: None,
            tracks_generation: false,
            selectable_fields: vec![],
            name_rule: NameRule::Subdomain,
            allow_unconditional_update: true,
            graceful_delete: false,
            return_deleted_object: false,
            hook_subresources: vec![],
            crd_version: None,
            crd_name: None,
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }
    fn cats(mut self, c: &[&str]) -> Self {
        self.categories = c.iter().map(|s| s.to_string()).collect();
        self
    }
    fn status(mut self) -> Self {
        self.status_subresource = true;
        self
    }
    fn generation(mut self) -> Self {
        self.tracks_generation = true;
        self
    }
    fn fields(mut self, f: &[&str]) -> Self {
        self.selectable_fields = f.iter().map(|s| s.to_string()).collect();
        self
    }
    fn names(mut self, rule: NameRule) -> Self {
        self.name_rule = rule;
        self
    }
}

/// Storage key for a group and plural.
pub fn storage_key(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

fn replicas_scale() -> Option<ScaleSpec> {
    Some(ScaleSpec {
        spec_replicas_path: "spec.replicas".into(),
        status_replicas_path: "status.replicas".into(),
        label_selector_path: None,
    })
}

/// The built-in kinds served by kubesim (the list of issue 3).
pub fn builtin_resources() -> Vec<ResourceDescriptor> {
    use NameRule::*;
    type D = ResourceDescriptor;
    let mut pods = D::builtin("", "v1", "pods", "Pod", true)
        .short(&["po"])
        .cats(&["all"])
        .status()
        .generation()
        .fields(&[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]);
    pods.graceful_delete = true;
    pods.return_deleted_object = true;
    let mut pvcs = D::builtin(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
    )
    .short(&["pvc"])
    .status();
    pvcs.return_deleted_object = true;
    let event_fields = [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ];
    let mut sts = D::builtin("apps", "v1", "statefulsets", "StatefulSet", true)
        .short(&["sts"])
        .cats(&["all"])
        .status()
        .generation()
        .names(Label);
    sts.scale = replicas_scale();
    let mut deploy = D::builtin("apps", "v1", "deployments", "Deployment", true)
        .short(&["deploy"])
        .cats(&["all"])
        .status()
        .generation();
    deploy.scale = replicas_scale();
    vec![
        D::builtin("", "v1", "namespaces", "Namespace", false)
            .short(&["ns"])
            .status()
            .fields(&["status.phase"])
            .names(Label),
        D::builtin("", "v1", "nodes", "Node", false)
            .short(&["no"])
            .status()
            .fields(&["spec.unschedulable"]),
        pods,
        D::builtin("", "v1", "services", "Service", true)
            .short(&["svc"])
            .cats(&["all"])
            .status()
            .names(Rfc1035Label),
        D::builtin("", "v1", "endpoints", "Endpoints", true).short(&["ep"]),
        D::builtin("", "v1", "configmaps", "ConfigMap", true).short(&["cm"]),
        D::builtin("", "v1", "secrets", "Secret", true).fields(&["type"]),
        D::builtin("", "v1", "serviceaccounts", "ServiceAccount", true).short(&["sa"]),
        pvcs,
        D::builtin("", "v1", "events", "Event", true)
            .short(&["ev"])
            .fields(&event_fields),
        sts,
        D::builtin(
            "apps",
            "v1",
            "controllerrevisions",
            "ControllerRevision",
            true,
        ),
        deploy,
        D::builtin(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
        )
        .short(&["pdb"])
        .status()
        .generation(),
        D::builtin(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
        ),
        D::builtin("coordination.k8s.io", "v1", "leases", "Lease", true),
        D::builtin("events.k8s.io", "v1", "events", "Event", true).short(&["ev"]),
        D::builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", true).names(PathSegment),
        D::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
        )
        .names(PathSegment),
        D::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
        )
        .names(PathSegment),
        D::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
        )
        .names(PathSegment),
        D::builtin(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            false,
        ),
        D::builtin(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            false,
        ),
        D::builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        )
        .short(&["crd", "crds"])
        .status()
        .generation(),
    ]
}

/// Builds the descriptors a CustomResourceDefinition (as JSON) serves: one
/// per served version. Returns an empty list for a malformed CRD.
pub fn descriptors_from_crd(crd: &Value) -> Vec<ResourceDescriptor> {
    let spec = &crd["spec"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let group = s(&spec["group"]);
    let names = &spec["names"];
    let plural = s(&names["plural"]);
    let kind = s(&names["kind"]);
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return vec![];
    }
    let singular = names["singular"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let list_kind = names["listKind"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("{kind}List"));
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let crd_name = crd["metadata"]["name"].as_str().map(String::from);
    let mut out = vec![];
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let version = s(&v["name"]);
        if version.is_empty() {
            continue;
        }
        let sub = &v["subresources"];
        let scale = sub
            .get("scale")
            .filter(|x| x.is_object())
            .map(|sc| ScaleSpec {
                spec_replicas_path: s(&sc["specReplicasPath"])
                    .trim_start_matches('.')
                    .to_string(),
                status_replicas_path: s(&sc["statusReplicasPath"])
                    .trim_start_matches('.')
                    .to_string(),
                label_selector_path: sc["labelSelectorPath"]
                    .as_str()
                    .map(|p| p.trim_start_matches('.').to_string()),
            });
        let selectable = v["selectableFields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["jsonPath"].as_str())
                    .map(|p| p.trim_start_matches('.').to_string())
                    .collect()
            })
            .unwrap_or_default();
        out.push(ResourceDescriptor {
            group: group.clone(),
            version,
            plural: plural.clone(),
            singular: singular.clone(),
            kind: kind.clone(),
            list_kind: list_kind.clone(),
            namespaced,
            short_names: list(&names["shortNames"]),
            categories: list(&names["categories"]),
            status_subresource: sub.get("status").is_some_and(|x| x.is_object()),
            scale,
            tracks_generation: true,
            selectable_fields: selectable,
            name_rule: NameRule::Subdomain,
            allow_unconditional_update: false,
            graceful_delete: false,
            return_deleted_object: false,
            hook_subresources: vec![],
            crd_version: Some(Arc::new(v.clone())),
            crd_name: crd_name.clone(),
        });
    }
    out
}

/// The table of served resources, shared by the API layer and the server.
#[derive(Debug, Default)]
pub struct Registry {
    inner: RwLock<RegistryInner>,
}

#[derive(Debug, Default)]
struct RegistryInner {
    /// (group, version, plural) -> descriptor
    by_gvr: BTreeMap<(String, String, String), Arc<ResourceDescriptor>>,
    /// Group order of first registration (for `/apis`).
    group_order: Vec<String>,
}

impl Registry {
    /// A registry holding the built-in kinds.
    pub fn with_builtins() -> Self {
        let r = Registry::default();
        for d in builtin_resources() {
            r.add(d);
        }
        r
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, RegistryInner> {
        // A poisoned lock only means a panic elsewhere; the table itself is
        // always left consistent (each write is one insert or remove).
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, RegistryInner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or replaces) a descriptor.
    pub fn add(&self, d: ResourceDescriptor) -> Arc<ResourceDescriptor> {
        let mut w = self.write();
        if !d.group.is_empty() && !w.group_order.contains(&d.group) {
            w.group_order.push(d.group.clone());
        }
        let d = Arc::new(d);
        w.by_gvr.insert(
            (d.group.clone(), d.version.clone(), d.plural.clone()),
            d.clone(),
        );
        d
    }

    /// Adds a hook subresource (e.g. `pods/eviction`) to a resource's discovery data.
    pub fn add_hook_subresource(&self, group: &str, plural: &str, sub: HookSubresource) {
        let mut w = self.write();
        let keys: Vec<_> = w
            .by_gvr
            .keys()
            .filter(|(g, _, p)| g == group && p == plural)
            .cloned()
            .collect();
        for k in keys {
            if let Some(d) = w.by_gvr.get(&k) {
                let mut d2 = (**d).clone();
                d2.hook_subresources.retain(|h| h.name != sub.name);
                d2.hook_subresources.push(sub.clone());
                w.by_gvr.insert(k, Arc::new(d2));
            }
        }
    }

    /// Removes all versions of a resource (`group`, `plural`).
    pub fn remove_resource(&self, group: &str, plural: &str) {
        let mut w = self.write();
        w.by_gvr.retain(|(g, _, p), _| !(g == group && p == plural));
        let still = w.by_gvr.keys().any(|(g, _, _)| g == group);
        if !still {
            w.group_order.retain(|g| g != group);
        }
    }

    /// Looks up a resource by group, version and plural.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDescriptor>> {
        self.read()
            .by_gvr
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Looks up a resource by group and kind (any served version, preferring `version`).
    pub fn get_by_kind(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Option<Arc<ResourceDescriptor>> {
        let r = self.read();
        let mut found = None;
        for ((g, v, _), d) in &r.by_gvr {
            if g == group && d.kind == kind {
                if v == version {
                    return Some(d.clone());
                }
                found.get_or_insert_with(|| d.clone());
            }
        }
        found
    }

    /// All descriptors.
    pub fn all(&self) -> Vec<Arc<ResourceDescriptor>> {
        self.read().by_gvr.values().cloned().collect()
    }

    /// All descriptors of one group version.
    pub fn group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceDescriptor>> {
        self.read()
            .by_gvr
            .values()
            .filter(|d| d.group == group && d.version == version)
            .cloned()
            .collect()
    }

    /// Named groups with their versions, in registration order (preferred version first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let r = self.read();
        r.group_order
            .iter()
            .map(|g| {
                let mut versions: Vec<String> = r
                    .by_gvr
                    .keys()
                    .filter(|(gg, _, _)| gg == g)
                    .map(|(_, v, _)| v.clone())
                    .collect();
                versions.dedup();
                sort_versions(&mut versions);
                (g.clone(), versions)
            })
            .collect()
    }

    /// Other served versions sharing storage with `d` (same group and plural).
    pub fn versions_of(&self, group: &str, plural: &str) -> Vec<Arc<ResourceDescriptor>> {
        self.read()
            .by_gvr
            .values()
            .filter(|d| d.group == group && d.plural == plural)
            .cloned()
            .collect()
    }
}

/// Sorts versions by Kubernetes version priority (GA > beta > alpha, higher first).
/// Upstream: `k8s.io/apimachinery/pkg/version/helpers.go` `CompareKubeAwareVersionStrings`.
pub fn sort_versions(v: &mut [String]) {
    fn key(s: &str) -> (u8, u64, u64) {
        let Some(rest) = s.strip_prefix('v') else {
            return (0, 0, 0);
        };
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major = digits.parse().unwrap_or(0);
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            (3, major, 0)
        } else if let Some(n) = tail.strip_prefix("beta") {
            (2, major, n.parse().unwrap_or(0))
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (1, major, n.parse().unwrap_or(0))
        } else {
            (0, 0, 0)
        }
    }
    v.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| a.cmp(b)));
}
