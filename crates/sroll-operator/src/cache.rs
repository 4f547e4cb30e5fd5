//! Watch caches: one reflector store per watched kind and namespace scope, trimmed to what the
//! reconcile loop reads so the operator stays small when the cluster holds 100,000 pods, and the
//! mappers that turn a change of a pod or a PodDisruptionBudget into a reconcile of its rollout.
//!
//! What the stores keep:
//!
//! | kind | dropped |
//! |---|---|
//! | all | `metadata.managedFields`, the `kubectl.kubernetes.io/last-applied-configuration` annotation |
//! | Pod | `spec` (the revision label says which template a pod runs), every annotation, status except `phase`, `conditions`, container `name`/`ready`/`restartCount`/`state` |
//!
//! Pods are watched with the label selector `controller-revision-hash` (only pods of a
//! StatefulSet or DaemonSet carry it), so other pods are never listed at all. EndpointSlices are
//! watched with the label selector `kubernetes.io/service-name` (every slice of a Service carries
//! it, `pkg/controller/endpointslice` of kubernetes/kubernetes) for Kubernetes-native
//! service-discovery gating; a change of a gated Service's slice reconciles its rollouts, so a pod
//! turning healthy releases the next eviction at once.
//!
//! Pods are looked up by name (`<set>-<ordinal>`, the StatefulSet naming rule of
//! `pkg/controller/statefulset/stateful_set_utils.go` `getPodName`), an O(replicas) store lookup
//! per reconcile instead of a scan of every pod.

use std::sync::Arc;

use k8s_openapi::{
    api::{
        apps::v1::StatefulSet,
        core::v1::{ContainerStatus, Pod, PodStatus},
        discovery::v1::EndpointSlice,
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Resource, ResourceExt,
    core::{Selector, SelectorExt},
    runtime::reflector::{ObjectRef, Store},
};
use sroll_api::{DiscoveryProvider, StatefulsetRollout};

/// The label every StatefulSet pod carries with its revision (ControllerRevision name).
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The label linking an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str =
    sroll_integrations::discovery::endpointslice::SERVICE_NAME_LABEL;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The reader side of one namespace scope's caches.
#[derive(Clone)]
pub struct Caches {
    /// Rollouts.
    pub rollouts: Store<StatefulsetRollout>,
    /// StatefulSets.
    pub statefulsets: Store<StatefulSet>,
    /// StatefulSet pods (trimmed).
    pub pods: Store<Pod>,
    /// PodDisruptionBudgets.
    pub pdbs: Store<PodDisruptionBudget>,
    /// EndpointSlices of Services (label `kubernetes.io/service-name`).
    pub endpoint_slices: Store<EndpointSlice>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("rollouts", &self.rollouts.len())
            .field("statefulsets", &self.statefulsets.len())
            .field("pods", &self.pods.len())
            .field("pdbs", &self.pdbs.len())
            .field("endpoint_slices", &self.endpoint_slices.len())
            .finish()
    }
}

fn strip_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    if let Some(ann) = meta.annotations.as_mut() {
        ann.remove(LAST_APPLIED);
        if ann.is_empty() {
            meta.annotations = None;
        }
    }
}

/// Trims a rollout for the cache.
pub fn strip_rollout(r: &mut StatefulsetRollout) {
    strip_meta(&mut r.metadata);
}

/// Trims a StatefulSet for the cache.
pub fn strip_statefulset(s: &mut StatefulSet) {
    strip_meta(&mut s.metadata);
}

/// Trims a PodDisruptionBudget for the cache.
pub fn strip_pdb(p: &mut PodDisruptionBudget) {
    strip_meta(&mut p.metadata);
}

/// Trims an EndpointSlice for the cache.
pub fn strip_endpoint_slice(e: &mut EndpointSlice) {
    strip_meta(&mut e.metadata);
}

/// Trims a pod to what the planner reads.
pub fn strip_pod(p: &mut Pod) {
    p.metadata.managed_fields = None;
    p.metadata.annotations = None;
    p.metadata.generate_name = None;
    p.spec = None;
    if let Some(status) = p.status.take() {
        p.status = Some(PodStatus {
            phase: status.phase,
            // Service discovery (Consul) names pods by address.
            pod_ip: status.pod_ip,
            conditions: status.conditions,
            container_statuses: status.container_statuses.map(|cs| {
                cs.into_iter()
                    .map(|c| ContainerStatus {
                        name: c.name,
                        ready: c.ready,
                        restart_count: c.restart_count,
                        state: c.state,
                        ..ContainerStatus::default()
                    })
                    .collect()
            }),
            ..PodStatus::default()
        });
    }
}

fn controller_of<'a>(meta: &'a ObjectMeta, kind: &str) -> Option<&'a str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == kind)
        .map(|o| o.name.as_str())
}

/// The rollout managing the StatefulSet `sts_name` in `namespace`: its controller owner reference,
/// else the rollout whose `statefulset_name()` it is (a StatefulSet not yet adopted, or deleted).
pub fn rollout_of_statefulset(
    rollouts: &Store<StatefulsetRollout>,
    statefulsets: &Store<StatefulSet>,
    namespace: &str,
    sts_name: &str,
) -> Option<ObjectRef<StatefulsetRollout>> {
    let sts_ref = ObjectRef::<StatefulSet>::new(sts_name).within(namespace);
    if let Some(sts) = statefulsets.get(&sts_ref)
        && let Some(owner) = controller_of(&sts.metadata, StatefulsetRollout::kind(&()).as_ref())
    {
        return Some(ObjectRef::new(owner).within(namespace));
    }
    rollouts
        .find(|r| r.namespace().as_deref() == Some(namespace) && r.statefulset_name() == sts_name)
        .map(|r| ObjectRef::from_obj(&*r))
}

/// Maps a pod event to the rollout whose StatefulSet controls the pod.
pub fn rollout_of_pod(
    rollouts: &Store<StatefulsetRollout>,
    statefulsets: &Store<StatefulSet>,
    pod: &Pod,
) -> Option<ObjectRef<StatefulsetRollout>> {
    let ns = pod.namespace()?;
    let sts = controller_of(&pod.metadata, "StatefulSet")
        .map(str::to_owned)
        .or_else(|| {
            // An orphaned pod (StatefulSet deleted with orphan propagation): fall back to the name.
            let name = pod.name_any();
            name.rsplit_once('-').map(|(set, _)| set.to_owned())
        })?;
    rollout_of_statefulset(rollouts, statefulsets, &ns, &sts)
}

/// The labels of the pods a rollout's StatefulSet creates.
pub fn template_labels(r: &StatefulsetRollout) -> std::collections::BTreeMap<String, String> {
    r.spec
        .sts
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

/// Whether a PDB selects the pods of a rollout (same namespace, selector matching the template
/// labels). In policy/v1 a null selector selects nothing and an empty one selects every pod of the
/// namespace (`pkg/controller/disruption/disruption.go` `getPodsForPdb`).
pub fn pdb_selects(pdb: &PodDisruptionBudget, r: &StatefulsetRollout) -> bool {
    if pdb.namespace() != r.namespace() {
        return false;
    }
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.clone()) else {
        return false;
    };
    match Selector::try_from(sel) {
        Ok(selector) => selector.matches(&template_labels(r)),
        Err(_) => false,
    }
}

/// Maps a PDB event to every rollout whose pods it selects.
pub fn rollouts_of_pdb(
    rollouts: &Store<StatefulsetRollout>,
    pdb: &PodDisruptionBudget,
) -> Vec<ObjectRef<StatefulsetRollout>> {
    rollouts
        .state()
        .iter()
        .filter(|r| pdb_selects(pdb, r))
        .map(|r| ObjectRef::from_obj(&**r))
        .collect()
}

/// The Services whose EndpointSlices gate a rollout (`serviceDiscovery.provider: Kubernetes`).
pub fn gating_services(r: &StatefulsetRollout) -> &[String] {
    match &r.spec.service_discovery {
        Some(sd) if sd.provider == Some(DiscoveryProvider::Kubernetes) => &sd.services,
        _ => &[],
    }
}

/// Maps an EndpointSlice event to every rollout of its namespace gated on its Service.
pub fn rollouts_of_endpoint_slice(
    rollouts: &Store<StatefulsetRollout>,
    slice: &EndpointSlice,
) -> Vec<ObjectRef<StatefulsetRollout>> {
    let Some(service) = slice.labels().get(SERVICE_NAME_LABEL) else {
        return Vec::new();
    };
    let namespace = slice.namespace();
    rollouts
        .state()
        .iter()
        .filter(|r| r.namespace() == namespace && gating_services(r).contains(service))
        .map(|r| ObjectRef::from_obj(&**r))
        .collect()
}

/// The cached EndpointSlices of `services` in `namespace`.
pub fn endpoint_slices_of(
    caches: &Caches,
    namespace: &str,
    services: &[String],
) -> Vec<Arc<EndpointSlice>> {
    caches.endpoint_slices.state_filter(|e| {
        e.metadata.namespace.as_deref() == Some(namespace)
            && e.labels()
                .get(SERVICE_NAME_LABEL)
                .is_some_and(|s| services.contains(s))
    })
}

/// The PDBs selecting a rollout's pods (more than one makes evictions fail upstream).
pub fn pdbs_for(caches: &Caches, r: &StatefulsetRollout) -> Vec<Arc<PodDisruptionBudget>> {
    caches.pdbs.state_filter(|p| pdb_selects(p, r))
}

/// The pods of StatefulSet `sts_name` with ordinals `start..start+replicas`, from the cache.
pub fn pods_of(
    caches: &Caches,
    namespace: &str,
    sts_name: &str,
    start: i32,
    replicas: i32,
) -> Vec<Arc<Pod>> {
    (start..start.saturating_add(replicas.max(0)))
        .filter_map(|ordinal| {
            caches
                .pods
                .get(&ObjectRef::new(&format!("{sts_name}-{ordinal}")).within(namespace))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::{
        api::{
            core::v1::{PodCondition, PodSpec},
            policy::v1::PodDisruptionBudgetSpec,
        },
        apimachinery::pkg::apis::meta::v1::{LabelSelector, ManagedFieldsEntry, OwnerReference},
    };
    use kube::runtime::{reflector, watcher};

    use super::*;

    fn rollout(name: &str, ns: &str, labels: &[(&str, &str)]) -> StatefulsetRollout {
        let mut r: StatefulsetRollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "sroll.io/v1alpha1",
            "kind": "StatefulsetRollout",
            "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")},
            "spec": {"sts": {"spec": {
                "selector": {"matchLabels": {}},
                "template": {"metadata": {"labels": {}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}},
                "serviceName": name
            }}}
        }))
        .expect("valid rollout");
        let l: std::collections::BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        r.spec.sts.spec.template.metadata = Some(ObjectMeta {
            labels: Some(l),
            ..ObjectMeta::default()
        });
        r
    }

    fn pdb(ns: &str, selector: Option<LabelSelector>) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some("budget".into()),
                namespace: Some(ns.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                selector,
                ..PodDisruptionBudgetSpec::default()
            }),
            status: None,
        }
    }

    fn match_labels(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            match_expressions: None,
        }
    }

    /// A reflector store already holding `objs` (as after a completed initial list), and its
    /// writer for tests that change it later. Shared with the other modules' tests.
    pub(crate) fn writer_with<K>(objs: Vec<K>) -> (Store<K>, reflector::store::Writer<K>)
    where
        K: kube::Resource
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for o in objs {
            writer.apply_watcher_event(&watcher::Event::InitApply(o));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        (reader, writer)
    }

    fn store_of<K>(objs: Vec<K>) -> Store<K>
    where
        K: kube::Resource
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        writer_with(objs).0
    }

    #[test]
    fn a_pdb_selects_rollouts_whose_template_labels_match_in_its_namespace() {
        let web = rollout("web", "ns", &[("app", "web")]);
        let other_ns = rollout("web", "elsewhere", &[("app", "web")]);
        let db = rollout("db", "ns", &[("app", "db")]);
        let p = pdb("ns", Some(match_labels(&[("app", "web")])));
        assert!(pdb_selects(&p, &web));
        assert!(!pdb_selects(&p, &other_ns));
        assert!(!pdb_selects(&p, &db));
        let store = store_of(vec![web.clone(), other_ns, db]);
        let refs = rollouts_of_pdb(&store, &p);
        assert_eq!(refs, vec![ObjectRef::from_obj(&web)]);
    }

    #[test]
    fn a_null_pdb_selector_selects_nothing_and_an_empty_one_everything() {
        let web = rollout("web", "ns", &[("app", "web")]);
        assert!(!pdb_selects(&pdb("ns", None), &web));
        assert!(pdb_selects(
            &pdb("ns", Some(LabelSelector::default())),
            &web
        ));
    }

    fn owned_by(kind: &str, name: &str) -> Option<Vec<OwnerReference>> {
        Some(vec![OwnerReference {
            api_version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            controller: Some(true),
            block_owner_deletion: None,
        }])
    }

    #[test]
    fn a_pod_maps_to_the_rollout_owning_its_statefulset() {
        // The rollout "web" manages a set named "cache" (spec.sts.metadata.name).
        let mut web = rollout("web", "ns", &[("app", "cache")]);
        web.spec.sts.metadata.name = Some("cache".into());
        let sts = StatefulSet {
            metadata: ObjectMeta {
                name: Some("cache".into()),
                namespace: Some("ns".into()),
                owner_references: owned_by("StatefulsetRollout", "web"),
                ..ObjectMeta::default()
            },
            ..StatefulSet::default()
        };
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("cache-3".into()),
                namespace: Some("ns".into()),
                owner_references: owned_by("StatefulSet", "cache"),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        let rollouts = store_of(vec![web.clone()]);
        let with_set = store_of(vec![sts]);
        let want = Some(ObjectRef::new("web").within("ns"));
        assert_eq!(rollout_of_pod(&rollouts, &with_set, &pod), want);
        // The set is gone (deleted under the rollout): the rollout's set name still maps the pod.
        let without_set = store_of(Vec::<StatefulSet>::new());
        assert_eq!(rollout_of_pod(&rollouts, &without_set, &pod), want);
        // An orphaned pod maps by its name.
        let orphan = Pod {
            metadata: ObjectMeta {
                owner_references: None,
                ..pod.metadata.clone()
            },
            ..Pod::default()
        };
        assert_eq!(rollout_of_pod(&rollouts, &without_set, &orphan), want);
    }

    fn slice(ns: &str, service: &str) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{service}-abcde")),
                namespace: Some(ns.into()),
                labels: Some([(SERVICE_NAME_LABEL.to_owned(), service.to_owned())].into()),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".into(),
            endpoints: vec![],
            ports: None,
        }
    }

    #[test]
    fn an_endpoint_slice_maps_to_the_rollouts_gated_on_its_service() {
        let gated = |name: &str, ns: &str, provider: DiscoveryProvider| {
            let mut r = rollout(name, ns, &[("app", name)]);
            r.spec.service_discovery = Some(sroll_api::ServiceDiscovery {
                services: vec!["web".into()],
                provider: Some(provider),
                ..sroll_api::ServiceDiscovery::default()
            });
            r
        };
        let web = gated("web", "ns", DiscoveryProvider::Kubernetes);
        let consul = gated("consul", "ns", DiscoveryProvider::Consul);
        let elsewhere = gated("web", "other", DiscoveryProvider::Kubernetes);
        let plain = rollout("plain", "ns", &[]);
        let store = store_of(vec![web.clone(), consul, elsewhere, plain]);
        assert_eq!(
            rollouts_of_endpoint_slice(&store, &slice("ns", "web")),
            vec![ObjectRef::from_obj(&web)]
        );
        assert!(rollouts_of_endpoint_slice(&store, &slice("ns", "db")).is_empty());
        let slices = store_of(vec![
            slice("ns", "web"),
            slice("ns", "db"),
            slice("other", "web"),
        ]);
        let caches = Caches {
            rollouts: store_of(Vec::new()),
            statefulsets: store_of(Vec::new()),
            pods: store_of(Vec::new()),
            pdbs: store_of(Vec::new()),
            endpoint_slices: slices,
        };
        let found = endpoint_slices_of(&caches, "ns", &["web".to_owned()]);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].namespace().as_deref(), Some("ns"));
    }

    #[test]
    fn a_pod_of_an_unmanaged_statefulset_maps_to_nothing() {
        let rollouts = store_of(vec![rollout("web", "ns", &[])]);
        let sets = store_of(Vec::<StatefulSet>::new());
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("other-0".into()),
                namespace: Some("ns".into()),
                owner_references: owned_by("StatefulSet", "other"),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        assert_eq!(rollout_of_pod(&rollouts, &sets, &pod), None);
    }

    #[test]
    fn stripped_pods_keep_what_the_planner_reads_and_nothing_heavy() {
        let mut pod = Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                labels: Some([(REVISION_LABEL.to_owned(), "web-abc".to_owned())].into()),
                annotations: Some([("big".to_owned(), "x".repeat(10_000))].into()),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some("10.0.0.1".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        };
        strip_pod(&mut pod);
        assert!(pod.spec.is_none());
        assert!(pod.metadata.annotations.is_none());
        assert!(pod.metadata.managed_fields.is_none());
        let status = pod.status.as_ref().expect("status kept");
        assert_eq!(status.phase.as_deref(), Some("Running"));
        // Kept: service discovery (Consul) names pods by address.
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        let view = sroll_planner::ObservedPod::from_pod(&pod, "web").expect("a member");
        assert!(view.ready);
        assert_eq!(view.revision.as_deref(), Some("web-abc"));
    }
}
