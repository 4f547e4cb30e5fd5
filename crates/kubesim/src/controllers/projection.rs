//! What the pod informer cache keeps of each pod version: a projection of the
//! pod onto the fields its readers read, beside the version's stored JSON
//! (`Stored::json`, shared with the store, no copy) from which the whole pod is
//! decoded when a controller needs it ([`super::runtime::Cache::full`]).
//!
//! A typed `k8s_openapi` [`Pod`] costs about 7 KiB per version (session 13's
//! heaptrack: ~4.9 KiB of heap behind it — the containers' images, commands,
//! env, resources, probes, the containers' statuses — plus its ~2.2 KiB
//! inline size), about three times its JSON. The projection keeps the
//! metadata (without `managedFields`), and of the spec and status only:
//!
//! | field | read by (without decoding the whole pod) |
//! | --- | --- |
//! | `metadata` (all but `managedFields`) | every reader: keys, labels (selectors), owners (claims, tallies), `deletionTimestamp`, uid (endpoints' `targetRef`), the revision label |
//! | `spec.nodeName` | the cache's node indexes (scheduler's spreading), the fault reactor's "pods of this node", endpoints |
//! | `spec.hostname`, `spec.subdomain` | endpoints' hostnames (`podToEndpoint`) |
//! | `spec.containers[].name`, `.ports` of the containers that declare ports | endpoints' named target ports (`podutil.FindPort`) |
//! | `spec.volumes[].name`, `.persistentVolumeClaim` | the StatefulSet controller's `storageMatches` |
//! | `status.phase`, the first `Ready` condition | `MemberFacts`, the budgets' tallies (`IsPodReady`), endpoints (serving, terminal), the kubelet-readiness re-sync of `on_pod` |
//! | `status.podIP`, `status.podIPs` | endpoints' addresses |
//!
//! Everything else (the rest of the spec, the containers' statuses, …) is read
//! only by code that acts on one whole pod: the kubelet and the scheduler
//! (`sync_pod`), the eviction subresource, and the StatefulSet controller's
//! `UpdateStatefulPod` PUT, each of which decodes the cached version's stored
//! JSON. A resourceVersion names one content, so that decode is the pod the
//! cache held before this projection existed: semantics are unchanged. The
//! tests below check that every per-pod reader gives the same answer on the
//! projection as on the whole pod.
//!
//! The cache holds the projection as a [`CachedPod`]: a hand-written struct of
//! exactly those fields (the metadata, then a few strings and vectors), whose
//! inline size is about a quarter of a `Pod`'s (~2.2 KiB: `PodSpec` and
//! `PodStatus` are structs of many inline `Option`s, nearly all `None` in a
//! projection; `tests::the_cached_pod_is_small` measures both). Every reader
//! of the cache reads pods through [`PodView`], implemented for the whole
//! [`Pod`] and for [`CachedPod`]: one implementation per reader, tested on
//! whole pods and, by the property test below, on the cached form.

use std::collections::BTreeMap;

use std::sync::Arc;

use k8s_openapi::{
    Resource,
    api::core::v1::{
        Container, ContainerPort, PersistentVolumeClaimVolumeSource, Pod, PodCondition, PodIP,
        PodSpec, PodStatus, Volume,
    },
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time},
};
use serde::{Deserialize, de::IgnoredAny};

/// What the readers of the pod cache read of a pod (see the module
/// documentation's table): implemented for the whole [`Pod`] and for the
/// cache's [`CachedPod`], which answers every method as the whole pod it was
/// made from does.
pub trait PodView {
    /// The metadata (a [`CachedPod`]'s has no `managedFields`).
    fn meta(&self) -> &ObjectMeta;
    /// `spec.nodeName` as set (possibly `""`).
    fn spec_node_name(&self) -> Option<&str>;
    /// `spec.hostname`.
    fn spec_hostname(&self) -> Option<&str>;
    /// `spec.subdomain`.
    fn spec_subdomain(&self) -> Option<&str>;
    /// The first port of the containers' declared ports (containers in
    /// order, then their ports) that `found` accepts (`podutil.FindPort`).
    fn find_container_port(&self, found: &dyn Fn(&ContainerPort) -> bool)
    -> Option<&ContainerPort>;
    /// The `persistentVolumeClaim` of the first volume named `volume`
    /// (`None`: no such volume, or it is not a claim).
    fn volume_claim(&self, volume: &str) -> Option<&PersistentVolumeClaimVolumeSource>;
    /// `status.phase`.
    fn status_phase(&self) -> Option<&str>;
    /// The first `Ready` condition (`podutil.GetPodReadyCondition`).
    fn ready_condition(&self) -> Option<&PodCondition>;
    /// `status.podIP`.
    fn status_pod_ip(&self) -> Option<&str>;
    /// The pod as a `Pod` (for the writes a controller builds from what it
    /// read): the whole pod, or for a [`CachedPod`] its projection
    /// ([`project_pod`] of the pod it was made from). A write built from a
    /// projection is rebuilt by the runtime from the whole pod of that very
    /// version (`runtime::execute_set_write`).
    fn to_pod(&self) -> Pod;
}

impl PodView for Pod {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn spec_node_name(&self) -> Option<&str> {
        self.spec.as_ref()?.node_name.as_deref()
    }

    fn spec_hostname(&self) -> Option<&str> {
        self.spec.as_ref()?.hostname.as_deref()
    }

    fn spec_subdomain(&self) -> Option<&str> {
        self.spec.as_ref()?.subdomain.as_deref()
    }

    fn find_container_port(
        &self,
        found: &dyn Fn(&ContainerPort) -> bool,
    ) -> Option<&ContainerPort> {
        self.spec
            .as_ref()?
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| found(p))
    }

    fn volume_claim(&self, volume: &str) -> Option<&PersistentVolumeClaimVolumeSource> {
        self.spec
            .as_ref()?
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == volume)?
            .persistent_volume_claim
            .as_ref()
    }

    fn status_phase(&self) -> Option<&str> {
        self.status.as_ref()?.phase.as_deref()
    }

    fn ready_condition(&self) -> Option<&PodCondition> {
        self.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Ready")
    }

    fn status_pod_ip(&self) -> Option<&str> {
        self.status.as_ref()?.pod_ip.as_deref()
    }

    fn to_pod(&self) -> Pod {
        self.clone()
    }
}

/// Implements [`PodView`] for a type that reads as another pod view: `$to`
/// maps `&self` (bound to `$s`) to the view every method is forwarded to.
macro_rules! forward_pod_view {
    (impl[$($g:tt)*] for $t:ty => |$s:ident| $to:expr) => {
        impl<$($g)*> $crate::controllers::projection::PodView for $t {
            fn meta(&self) -> &::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                let $s = self;
                $to.meta()
            }
            fn spec_node_name(&self) -> Option<&str> {
                let $s = self;
                $to.spec_node_name()
            }
            fn spec_hostname(&self) -> Option<&str> {
                let $s = self;
                $to.spec_hostname()
            }
            fn spec_subdomain(&self) -> Option<&str> {
                let $s = self;
                $to.spec_subdomain()
            }
            fn find_container_port(
                &self,
                found: &dyn Fn(&::k8s_openapi::api::core::v1::ContainerPort) -> bool,
            ) -> Option<&::k8s_openapi::api::core::v1::ContainerPort> {
                let $s = self;
                $to.find_container_port(found)
            }
            fn volume_claim(
                &self,
                volume: &str,
            ) -> Option<&::k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource> {
                let $s = self;
                $to.volume_claim(volume)
            }
            fn status_phase(&self) -> Option<&str> {
                let $s = self;
                $to.status_phase()
            }
            fn ready_condition(&self) -> Option<&::k8s_openapi::api::core::v1::PodCondition> {
                let $s = self;
                $to.ready_condition()
            }
            fn status_pod_ip(&self) -> Option<&str> {
                let $s = self;
                $to.status_pod_ip()
            }
            fn to_pod(&self) -> ::k8s_openapi::api::core::v1::Pod {
                let $s = self;
                $to.to_pod()
            }
        }
    };
}
pub(crate) use forward_pod_view;

forward_pod_view!(impl[P: PodView + ?Sized] for &P => |s| (**s));
forward_pod_view!(impl[P: PodView + ?Sized] for Arc<P> => |s| (**s));
forward_pod_view!(impl[P: PodView + ?Sized] for Box<P> => |s| (**s));

/// What the pod cache keeps of a pod version: the fields of [`project_pod`]
/// (see the module documentation), without the `Pod`'s inline size. The
/// rare parts (declared container ports, volumes, the `Ready` condition,
/// `podIPs`) are vectors or boxes, empty or `None` when absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CachedPod {
    /// The metadata without `managedFields`.
    pub metadata: ObjectMeta,
    /// Whether the pod has a `spec` (every pod the API stores has one).
    has_spec: bool,
    /// Whether the pod has a `status`.
    has_status: bool,
    node_name: Option<String>,
    hostname: Option<String>,
    subdomain: Option<String>,
    /// The containers that declare ports: name and ports, in order.
    containers: Vec<(String, Vec<ContainerPort>)>,
    /// `spec.volumes`: name and `persistentVolumeClaim` of each, in order.
    volumes: Option<Vec<(String, Option<PersistentVolumeClaimVolumeSource>)>>,
    phase: Option<String>,
    /// The first `Ready` condition.
    ready: Option<Box<PodCondition>>,
    pod_ip: Option<String>,
    pod_ips: Option<Vec<PodIP>>,
}

impl CachedPod {
    /// What the cache keeps of `pod`.
    pub fn of(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        Self {
            metadata: project_meta(&pod.metadata),
            has_spec: spec.is_some(),
            has_status: status.is_some(),
            node_name: spec.and_then(|s| s.node_name.clone()),
            hostname: spec.and_then(|s| s.hostname.clone()),
            subdomain: spec.and_then(|s| s.subdomain.clone()),
            containers: spec
                .into_iter()
                .flat_map(|s| &s.containers)
                .filter(|c| has_ports(c.ports.as_ref()))
                .map(|c| (c.name.clone(), c.ports.clone().unwrap_or_default()))
                .collect(),
            volumes: spec.and_then(|s| s.volumes.as_ref()).map(|vs| {
                vs.iter()
                    .map(|v| (v.name.clone(), v.persistent_volume_claim.clone()))
                    .collect()
            }),
            phase: status.and_then(|s| s.phase.clone()),
            ready: status
                .and_then(|s| ready_of(s.conditions.as_deref()))
                .map(|c| Box::new(c.clone())),
            pod_ip: status.and_then(|s| s.pod_ip.clone()),
            pod_ips: status.and_then(|s| s.pod_ips.clone()),
        }
    }
}

impl PodView for CachedPod {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn spec_node_name(&self) -> Option<&str> {
        self.node_name.as_deref()
    }

    fn spec_hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    fn spec_subdomain(&self) -> Option<&str> {
        self.subdomain.as_deref()
    }

    fn find_container_port(
        &self,
        found: &dyn Fn(&ContainerPort) -> bool,
    ) -> Option<&ContainerPort> {
        self.containers
            .iter()
            .flat_map(|(_, ports)| ports)
            .find(|p| found(p))
    }

    fn volume_claim(&self, volume: &str) -> Option<&PersistentVolumeClaimVolumeSource> {
        self.volumes
            .iter()
            .flatten()
            .find(|(name, _)| name == volume)?
            .1
            .as_ref()
    }

    fn status_phase(&self) -> Option<&str> {
        self.phase.as_deref()
    }

    fn ready_condition(&self) -> Option<&PodCondition> {
        self.ready.as_deref()
    }

    fn status_pod_ip(&self) -> Option<&str> {
        self.pod_ip.as_deref()
    }

    fn to_pod(&self) -> Pod {
        let spec = self.has_spec.then(|| PodSpec {
            containers: self
                .containers
                .iter()
                .map(|(name, ports)| Container {
                    name: name.clone(),
                    ports: Some(ports.clone()),
                    ..Container::default()
                })
                .collect(),
            hostname: self.hostname.clone(),
            node_name: self.node_name.clone(),
            subdomain: self.subdomain.clone(),
            volumes: self.volumes.as_ref().map(|vs| {
                vs.iter()
                    .map(|(name, claim)| Volume {
                        name: name.clone(),
                        persistent_volume_claim: claim.clone(),
                        ..Volume::default()
                    })
                    .collect()
            }),
            ..PodSpec::default()
        });
        let status = self.has_status.then(|| PodStatus {
            conditions: self.ready.as_ref().map(|c| vec![(**c).clone()]),
            phase: self.phase.clone(),
            pod_ip: self.pod_ip.clone(),
            pod_ips: self.pod_ips.clone(),
            ..PodStatus::default()
        });
        Pod {
            metadata: self.metadata.clone(),
            spec,
            status,
        }
    }
}

/// The metadata the projection keeps: all but `managedFields`.
fn project_meta(m: &ObjectMeta) -> ObjectMeta {
    // Every field named (no `..Default::default()`): a field added to
    // `ObjectMeta` fails to compile here instead of being dropped unseen.
    ObjectMeta {
        annotations: m.annotations.clone(),
        creation_timestamp: m.creation_timestamp.clone(),
        deletion_grace_period_seconds: m.deletion_grace_period_seconds,
        deletion_timestamp: m.deletion_timestamp.clone(),
        finalizers: m.finalizers.clone(),
        generate_name: m.generate_name.clone(),
        generation: m.generation,
        labels: m.labels.clone(),
        managed_fields: None,
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        owner_references: m.owner_references.clone(),
        resource_version: m.resource_version.clone(),
        self_link: m.self_link.clone(),
        uid: m.uid.clone(),
    }
}

/// The cache's projection of `pod` as a `Pod` (see the module documentation):
/// what [`CachedPod::of`] keeps, and [`PodView::to_pod`] of it gives back.
pub fn project_pod(pod: &Pod) -> Pod {
    let metadata = project_meta(&pod.metadata);
    let spec = pod.spec.as_ref().map(|s| PodSpec {
        containers: s
            .containers
            .iter()
            .filter(|c| has_ports(c.ports.as_ref()))
            .map(|c| Container {
                name: c.name.clone(),
                ports: c.ports.clone(),
                ..Container::default()
            })
            .collect(),
        hostname: s.hostname.clone(),
        node_name: s.node_name.clone(),
        subdomain: s.subdomain.clone(),
        volumes: s.volumes.as_ref().map(|vs| {
            vs.iter()
                .map(|v| Volume {
                    name: v.name.clone(),
                    persistent_volume_claim: v.persistent_volume_claim.clone(),
                    ..Volume::default()
                })
                .collect()
        }),
        ..PodSpec::default()
    });
    let status = pod.status.as_ref().map(|s| PodStatus {
        conditions: ready_only(s.conditions.as_deref()),
        phase: s.phase.clone(),
        pod_ip: s.pod_ip.clone(),
        pod_ips: s.pod_ips.clone(),
        ..PodStatus::default()
    });
    Pod {
        metadata,
        spec,
        status,
    }
}

/// Whether a container declares ports: the projection keeps only those
/// containers (`podutil.FindPort` walks the containers' ports in order, so the
/// others change nothing it finds; a `Container` is over a kilobyte inline).
fn has_ports(ports: Option<&Vec<ContainerPort>>) -> bool {
    ports.is_some_and(|p| !p.is_empty())
}

/// The condition the projection keeps: the first `Ready` one, the one
/// `podutil.GetPodReadyCondition` (and so `IsPodReady`, `MemberFacts`) reads.
fn ready_of(conditions: Option<&[PodCondition]>) -> Option<&PodCondition> {
    conditions?.iter().find(|c| c.type_ == "Ready")
}

/// The conditions the projection keeps as a `Pod` ([`ready_of`]).
fn ready_only(conditions: Option<&[PodCondition]>) -> Option<Vec<PodCondition>> {
    ready_of(conditions).map(|c| vec![c.clone()])
}

/// [`CachedPod::of`] the pod whose JSON is `json`, decoded without building
/// the whole pod: the dropped fields are skipped by the parser, never
/// allocated (the informer's decode of every pod version it does not hold).
///
/// Decodes as `k8s_openapi`'s `Pod` does: unknown fields ignored, a missing or
/// `null` required field (`containers`, a container's or volume's `name`) is
/// its default, `apiVersion` and `kind` must be `v1` and `Pod` when present.
/// Unlike the whole decode, a dropped field of the wrong type is not an
/// error: the store only holds pods that passed validation, which the whole
/// decode of every one of them ([`super::runtime::Cache::full`]) relies on too.
pub fn decode_projection(json: &[u8]) -> Result<CachedPod, serde_json::Error> {
    let p: PodShadow = serde_json::from_slice(json)?;
    if let Some(v) = p.api_version.as_deref().filter(|v| *v != Pod::API_VERSION) {
        return Err(serde::de::Error::invalid_value(
            serde::de::Unexpected::Str(v),
            &Pod::API_VERSION,
        ));
    }
    if let Some(k) = p.kind.as_deref().filter(|k| *k != Pod::KIND) {
        return Err(serde::de::Error::invalid_value(
            serde::de::Unexpected::Str(k),
            &Pod::KIND,
        ));
    }
    let m = p.metadata.unwrap_or_default();
    let metadata = ObjectMeta {
        annotations: m.annotations,
        creation_timestamp: m.creation_timestamp,
        deletion_grace_period_seconds: m.deletion_grace_period_seconds,
        deletion_timestamp: m.deletion_timestamp,
        finalizers: m.finalizers,
        generate_name: m.generate_name,
        generation: m.generation,
        labels: m.labels,
        managed_fields: None,
        name: m.name,
        namespace: m.namespace,
        owner_references: m.owner_references,
        resource_version: m.resource_version,
        self_link: m.self_link,
        uid: m.uid,
    };
    let mut kept = CachedPod {
        metadata,
        has_spec: p.spec.is_some(),
        has_status: p.status.is_some(),
        ..CachedPod::default()
    };
    if let Some(s) = p.spec {
        kept.containers = s
            .containers
            .unwrap_or_default()
            .into_iter()
            .filter(|c| has_ports(c.ports.as_ref()))
            .map(|c| (c.name.unwrap_or_default(), c.ports.unwrap_or_default()))
            .collect();
        kept.hostname = s.hostname;
        kept.node_name = s.node_name;
        kept.subdomain = s.subdomain;
        kept.volumes = s.volumes.map(|vs| {
            vs.into_iter()
                .map(|v| (v.name.unwrap_or_default(), v.persistent_volume_claim))
                .collect()
        });
    }
    if let Some(s) = p.status {
        kept.ready = s
            .conditions
            .and_then(|cs| cs.into_iter().find(|c| c.type_ == "Ready"))
            .map(Box::new);
        kept.phase = s.phase;
        kept.pod_ip = s.pod_ip;
        kept.pod_ips = s.pod_ips;
    }
    Ok(kept)
}

/// The fields of a pod's JSON [`decode_projection`] reads (the others are skipped).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodShadow {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<MetaShadow>,
    #[serde(default)]
    spec: Option<SpecShadow>,
    #[serde(default)]
    status: Option<StatusShadow>,
}

/// `ObjectMeta` without `managedFields` (skipped, not decoded).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetaShadow {
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    creation_timestamp: Option<Time>,
    #[serde(default)]
    deletion_grace_period_seconds: Option<i64>,
    #[serde(default)]
    deletion_timestamp: Option<Time>,
    #[serde(default)]
    finalizers: Option<Vec<String>>,
    #[serde(default)]
    generate_name: Option<String>,
    #[serde(default)]
    generation: Option<i64>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "managedFields")]
    _managed_fields: Option<IgnoredAny>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    owner_references: Option<Vec<OwnerReference>>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    self_link: Option<String>,
    #[serde(default)]
    uid: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecShadow {
    #[serde(default)]
    containers: Option<Vec<ContainerShadow>>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    node_name: Option<String>,
    #[serde(default)]
    subdomain: Option<String>,
    #[serde(default)]
    volumes: Option<Vec<VolumeShadow>>,
}

#[derive(Deserialize)]
struct ContainerShadow {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    ports: Option<Vec<ContainerPort>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeShadow {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
}

#[derive(Deserialize)]
struct StatusShadow {
    #[serde(default)]
    conditions: Option<Vec<PodCondition>>,
    #[serde(default)]
    phase: Option<String>,
    #[serde(default, rename = "podIP")]
    pod_ip: Option<String>,
    #[serde(default, rename = "podIPs")]
    pod_ips: Option<Vec<PodIP>>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::{
        api::{
            apps::v1::{ControllerRevision, StatefulSet},
            core::v1::{Node, Service},
            policy::v1::PodDisruptionBudget,
        },
        apimachinery::pkg::apis::meta::v1::OwnerReference,
        jiff::Timestamp,
    };
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::controllers::{
        Error, POD_NAME_LABEL, REVISION_LABEL, controller_of, disruption, endpointslice, history,
        is_pod_available, is_pod_ready, is_terminating, phase, ready_condition,
        statefulset::{self, MemberFacts, SetWrite, SyncInput},
        test_pods,
    };

    const SET_UID: &str = "uid-web";

    /// An arbitrary pod version of set `web`, with what every reader looks at
    /// varied (name, labels, owners, deletion, node, hostname, subdomain,
    /// named container ports, volumes, phase, conditions, IPs) and the fields
    /// the projection drops filled in (image, env, resources, probes, other
    /// volume sources, container statuses, …).
    fn arb_pod() -> impl Strategy<Value = Pod> {
        (
            (0usize..6, 0usize..3, 0usize..4, 0usize..3, any::<bool>()),
            (0usize..3, 0usize..3, 0usize..3, 0usize..4, 0usize..4),
            (0usize..6, 0usize..5, 0i64..50, 0usize..3, any::<bool>()),
        )
            .prop_map(
                |(
                    (name, pod_name_label, rev, owner, deleting),
                    (node, host, sub, ports, volumes),
                    (ph, ready, at, ip, noise),
                )| {
                    let name = ["web-0", "web-1", "web-2", "web-4", "web-x", "other-1"][name];
                    let mut labels = serde_json::Map::new();
                    labels.insert("app".into(), json!("web"));
                    if let Some(n) = [Some(name), Some("web-9"), None][pod_name_label] {
                        labels.insert(POD_NAME_LABEL.into(), json!(n));
                    }
                    if let Some(r) = [Some("web-r1"), Some("web-r2"), Some(""), None][rev] {
                        labels.insert(REVISION_LABEL.into(), json!(r));
                    }
                    let owners = match owner {
                        0 => json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": SET_UID, "controller": true}]),
                        1 => json!([{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "uid-other", "controller": true}]),
                        _ => json!([]),
                    };
                    let mut meta = json!({
                        "name": name, "namespace": "ns", "uid": format!("uid-{name}-{at}"),
                        "resourceVersion": (10 + at).to_string(), "labels": labels,
                        "ownerReferences": owners, "generateName": "web-",
                        "creationTimestamp": "2026-01-01T00:00:00Z",
                        "annotations": {"a": "b"},
                        "managedFields": [{"manager": "kubesim", "operation": "Update", "apiVersion": "v1",
                                           "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
                    });
                    if deleting {
                        meta["deletionTimestamp"] = json!("2026-01-01T00:00:10Z");
                        meta["deletionGracePeriodSeconds"] = json!(30);
                    }
                    let container_ports = match ports {
                        0 => json!([]),
                        1 => json!([{"name": "http", "containerPort": 8080}]),
                        2 => json!([{"name": "http", "containerPort": 8081, "protocol": "UDP"},
                                    {"name": "metrics", "containerPort": 9090}]),
                        _ => Value::Null,
                    };
                    let mut c0 = json!({"name": "app", "image": "nginx:1", "env": [{"name": "A", "value": "1"}],
                        "resources": {"requests": {"cpu": "100m"}},
                        "readinessProbe": {"httpGet": {"port": 8080, "path": "/"}}});
                    if !container_ports.is_null() {
                        c0["ports"] = container_ports;
                    }
                    let claim = |n: &str| json!({"name": "data", "persistentVolumeClaim": {"claimName": n}});
                    let vols = match volumes {
                        0 => Value::Null,
                        1 => json!([claim(&format!("data-{name}"))]),
                        2 => json!([{"name": "cfg", "configMap": {"name": "c"}}, claim("data-web-9")]),
                        _ => json!([{"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}]),
                    };
                    let mut side = json!({"name": "side", "image": "busybox", "command": ["sleep"]});
                    if ports == 3 {
                        // Ports on the second container only (the first declares none).
                        side["ports"] = json!([{"name": "http", "containerPort": 7070}]);
                    }
                    let mut spec = json!({
                        "containers": [c0, side],
                        "serviceAccountName": "default", "restartPolicy": "Always",
                        "tolerations": [{"key": "k", "operator": "Exists"}],
                    });
                    if let Some(n) = [Some("node-0"), Some(""), None][node] {
                        spec["nodeName"] = json!(n);
                    }
                    if let Some(h) = [Some(name), Some(""), None][host] {
                        spec["hostname"] = json!(h);
                    }
                    if let Some(s) = [Some("web"), Some("other"), None][sub] {
                        spec["subdomain"] = json!(s);
                    }
                    if !vols.is_null() {
                        spec["volumes"] = vols;
                    }
                    let mut status = json!({});
                    if let Some(p) = test_pods::PHASES[ph] {
                        status["phase"] = json!(p);
                    }
                    let ready = test_pods::ready_condition(ready, at);
                    if let Some(r) = ready {
                        let mut conds = vec![json!({"type": "PodScheduled", "status": "True"}), r];
                        if noise {
                            // A second `Ready` entry: the first one is the one read.
                            conds.push(json!({"type": "Ready", "status": "True", "reason": "second"}));
                        }
                        status["conditions"] = Value::Array(conds);
                    }
                    if let Some(ip) = [Some("10.0.0.7"), Some(""), None][ip] {
                        status["podIP"] = json!(ip);
                        status["podIPs"] = json!([{"ip": ip}]);
                    }
                    if noise {
                        status["hostIP"] = json!("192.168.0.1");
                        status["startTime"] = json!("2026-01-01T00:00:01Z");
                        status["containerStatuses"] = json!([{"name": "app", "ready": true, "restartCount": 0,
                            "image": "nginx:1", "imageID": "sha256:x", "started": true,
                            "state": {"running": {"startedAt": "2026-01-01T00:00:02Z"}}}]);
                    }
                    serde_json::from_value(json!({"metadata": meta, "spec": spec, "status": status}))
                        .unwrap_or_else(|e| panic!("pod fixture: {e}"))
                },
            )
    }

    fn service(ports: usize, publish: bool) -> Service {
        let port = match ports {
            0 => json!({"port": 80}),
            1 => json!({"name": "web", "port": 80, "targetPort": "http"}),
            2 => json!({"name": "udp", "port": 81, "protocol": "UDP", "targetPort": "http"}),
            _ => json!({"name": "m", "port": 90, "targetPort": "metrics"}),
        };
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"selector": {"app": "web"}, "ports": [port, {"name": "n", "port": 7, "targetPort": 7}],
                     "publishNotReadyAddresses": publish},
        }))
        .unwrap_or_else(|e| panic!("service fixture: {e}"))
    }

    fn pdb(kind: usize) -> PodDisruptionBudget {
        let spec = match kind {
            0 => json!({"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 2}),
            1 => json!({"selector": {"matchLabels": {"app": "web"}}, "maxUnavailable": 1}),
            _ => json!({"selector": {"matchLabels": {"app": "web"}}, "minAvailable": "50%"}),
        };
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "generation": 1},
            "spec": spec,
            "status": {"disruptedPods": {"web-1": "2026-01-01T00:00:20Z", "web-2": "2026-01-01T00:00:05Z"},
                       "observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 0,
                       "desiredHealthy": 0, "expectedPods": 0},
        }))
        .unwrap_or_else(|e| panic!("pdb fixture: {e}"))
    }

    fn set(templates: bool, parallel: bool) -> StatefulSet {
        let mut v = json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": SET_UID},
            "spec": {"replicas": 3, "serviceName": "web",
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}},
        });
        if templates {
            v["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"}, "spec": {}}]);
        }
        if parallel {
            v["spec"]["podManagementPolicy"] = json!("Parallel");
        }
        serde_json::from_value(v).unwrap_or_else(|e| panic!("set fixture: {e}"))
    }

    fn nodes() -> Vec<Node> {
        vec![
            serde_json::from_value(json!({"metadata": {"name": "node-0",
                "labels": {"topology.kubernetes.io/zone": "z0"}}}))
            .unwrap_or_else(|e| panic!("node fixture: {e}")),
        ]
    }

    /// Unique names (a cache holds one version per name), in name order.
    fn by_name(pods: Vec<Pod>) -> Vec<Pod> {
        let mut m: BTreeMap<String, Pod> = BTreeMap::new();
        for p in pods {
            m.insert(p.metadata.name.clone().unwrap_or_default(), p);
        }
        m.into_values().collect()
    }

    /// The StatefulSet sync over `pods` (claimed, then synced at `now`).
    fn set_sync<P: PodView>(
        set: &StatefulSet,
        pods: &[P],
        now: Timestamp,
    ) -> Result<statefulset::SyncOutcome, Error> {
        let plan = history::plan_revisions(set, &[] as &[ControllerRevision])?;
        let claims = statefulset::claim_pods(set, pods)?;
        let pvcs = BTreeMap::new();
        statefulset::sync(SyncInput {
            set,
            current: &plan.current,
            update: &plan.update,
            collision_count: 0,
            pods: &claims.owned,
            claims: &pvcs,
            now,
        })
    }

    /// The straight decode reads what `k8s_openapi`'s decode reads: absent or
    /// `null` required fields are their defaults, a wrong `kind` or
    /// `apiVersion` fails, unknown fields are ignored.
    #[test]
    fn the_projection_decodes_as_the_whole_pod_does() {
        let mut failed = 0;
        for v in [
            json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": null}}),
            json!({"spec": {"containers": [{"ports": null}, {"name": null, "ports": [{"containerPort": 1}]}]}}),
            json!({"spec": {"volumes": [{"persistentVolumeClaim": {"claimName": "c"}}]}}),
            json!({"metadata": null, "status": {"podIP": "1.2.3.4", "podIPs": null}, "extra": [1]}),
            json!({"metadata": {"managedFields": null, "name": "a"}, "spec": null}),
            json!({"status": {"conditions": null}}),
            json!({}),
            json!({"apiVersion": "v2", "kind": "Pod"}),
            json!({"apiVersion": "v1", "kind": "Service"}),
            json!({"metadata": {"name": 7}}),
            json!({"status": {"conditions": [{"type": "Ready"}]}}),
            json!("pod"),
        ] {
            let json = serde_json::to_vec(&v).unwrap();
            match (
                serde_json::from_slice::<Pod>(&json),
                decode_projection(&json),
            ) {
                (Ok(whole), Ok(kept)) => {
                    assert_eq!(kept, CachedPod::of(&whole), "{v}");
                    assert_eq!(kept.to_pod(), project_pod(&whole), "{v}");
                }
                (Err(_), Err(_)) => failed += 1,
                (whole, kept) => panic!("{v}: whole {whole:?}, projection {kept:?}"),
            }
        }
        // The wrong apiVersion, kind and name type, and a string, fail both ways.
        assert_eq!(failed, 4);
    }

    /// What the cache keeps per pod beside the heap behind it: the inline
    /// size of a cached pod against the `Pod` it replaced (the figures are in
    /// `docs/kubesim-scale.md`, "simcompact").
    #[test]
    fn the_cached_pod_is_small() {
        let pod = std::mem::size_of::<Pod>();
        let kept = std::mem::size_of::<CachedPod>();
        let meta = std::mem::size_of::<ObjectMeta>();
        eprintln!("size_of: Pod {pod} B, CachedPod {kept} B (ObjectMeta {meta} B)");
        assert!(kept * 3 < pod, "CachedPod {kept} B against Pod {pod} B");
        // Beyond the metadata: a few strings, vectors and a box.
        assert!(
            kept <= meta + 256,
            "CachedPod {kept} B, ObjectMeta {meta} B"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Every reader of the pod cache gives on the projection what it gives on
        /// the whole pod: the per-pod predicates and facts, the endpoints and
        /// slices, the budget's status, the StatefulSet's claim and sync (whose
        /// `UpdatePod` write the runtime rebuilds from the whole pod with
        /// `update_stateful_pod`: the same pod as the sync over whole pods writes).
        #[test]
        fn every_cache_reader_reads_the_projection_as_the_whole_pod(
            pods in proptest::collection::vec(arb_pod(), 0..6),
            (ports, publish, budget, now_s) in (0usize..4, any::<bool>(), 0usize..3, 0i64..200),
            (templates, parallel) in (any::<bool>(), any::<bool>()),
        ) {
            let pods = by_name(pods);
            let kept: Vec<CachedPod> = pods.iter().map(CachedPod::of).collect();
            let now = Timestamp::from_second(1_767_225_600 + now_s).unwrap();
            for (w, k) in pods.iter().zip(&kept) {
                prop_assert_eq!(MemberFacts::of(w), MemberFacts::of(k));
                prop_assert_eq!(is_pod_ready(w), is_pod_ready(k));
                prop_assert_eq!(ready_condition(w), ready_condition(k));
                prop_assert_eq!(is_pod_available(w, 10, now), is_pod_available(k, 10, now));
                prop_assert_eq!(phase(w), phase(k));
                prop_assert_eq!(is_terminating(w), is_terminating(k));
                prop_assert_eq!(controller_of(&w.metadata), controller_of(&k.metadata));
                prop_assert_eq!(&w.metadata.labels, &k.metadata.labels);
                // Every method of the view, as the readers call them.
                let mut meta = w.metadata.clone();
                meta.managed_fields = None;
                prop_assert_eq!(&meta, k.meta());
                prop_assert_eq!(w.spec_node_name(), k.spec_node_name());
                prop_assert_eq!(w.spec_hostname(), k.spec_hostname());
                prop_assert_eq!(w.spec_subdomain(), k.spec_subdomain());
                prop_assert_eq!(w.status_phase(), k.status_phase());
                prop_assert_eq!(PodView::ready_condition(w), PodView::ready_condition(k));
                prop_assert_eq!(w.status_pod_ip(), k.status_pod_ip());
                for v in ["data", "cfg", "other", ""] {
                    prop_assert_eq!(w.volume_claim(v), k.volume_claim(v));
                }
                for (port, protocol) in [("http", "TCP"), ("http", "UDP"), ("metrics", "TCP"), ("", "TCP")] {
                    let found = |p: &ContainerPort| {
                        p.name.as_deref() == Some(port)
                            && p.protocol.as_deref().unwrap_or("TCP") == protocol
                    };
                    prop_assert_eq!(w.find_container_port(&found), k.find_container_port(&found));
                }
                prop_assert_eq!(
                    statefulset::pod_revision(w),
                    statefulset::pod_revision(k)
                );
                for include in [false, true] {
                    prop_assert_eq!(
                        endpointslice::should_pod_be_in_endpoints(w, include),
                        endpointslice::should_pod_be_in_endpoints(k, include)
                    );
                }
                // As a `Pod`, the cached pod is the projection, and the
                // projection of a projection is itself (a version written
                // back into the cache is kept as it was).
                prop_assert_eq!(&k.to_pod(), &project_pod(w));
                prop_assert_eq!(&CachedPod::of(&k.to_pod()), k);
                prop_assert_eq!(&project_pod(&k.to_pod()), &k.to_pod());
                // Decoded straight from the JSON, as the informer does.
                let json = serde_json::to_vec(w).unwrap();
                prop_assert_eq!(&decode_projection(&json).unwrap(), k);
            }
            let svc = service(ports, publish);
            prop_assert_eq!(
                endpointslice::desired_slices(&svc, &pods, &nodes()),
                endpointslice::desired_slices(&svc, &kept, &nodes())
            );
            prop_assert_eq!(endpointslice::endpoints(&svc, &pods), endpointslice::endpoints(&svc, &kept));
            let pdb = pdb(budget);
            let scale = |r: &OwnerReference, _: &str| -> Result<Option<(String, i32)>, Error> {
                Ok((r.kind == "StatefulSet").then(|| (r.uid.clone(), 3)))
            };
            prop_assert_eq!(
                disruption::sync(&pdb, &pods, &scale, now),
                disruption::sync(&pdb, &kept, &scale, now)
            );
            let set = set(templates, parallel);
            let whole = set_sync(&set, &pods, now);
            let projected = set_sync(&set, &kept, now);
            match (whole, projected) {
                (Ok(w), Ok(k)) => {
                    prop_assert_eq!(&w.status, &k.status);
                    prop_assert_eq!(w.write_status, k.write_status);
                    prop_assert_eq!(&w.error, &k.error);
                    prop_assert_eq!(w.requeue_after, k.requeue_after);
                    prop_assert_eq!(w.writes.len(), k.writes.len());
                    for (ww, kw) in w.writes.iter().zip(&k.writes) {
                        match (ww, kw) {
                            (SetWrite::UpdatePod(wp), SetWrite::UpdatePod(kp)) => {
                                // What the runtime sends: the whole pod of the
                                // version the sync read, with the same fix.
                                let name = kp.metadata.name.as_deref().unwrap_or_default();
                                let mut rebuilt = pods
                                    .iter()
                                    .find(|p| p.metadata.name.as_deref() == Some(name))
                                    .cloned()
                                    .unwrap();
                                prop_assert_eq!(&rebuilt.metadata.resource_version, &kp.metadata.resource_version);
                                prop_assert_eq!(&project_pod(wp), kp);
                                // An adopted pod's fix is of the copy with the new owner
                                // reference: its version is gone from the cache after the
                                // adoption's patch, so the runtime answers a conflict, as the
                                // API would to a PUT at that version.
                                if controller_of(&rebuilt.metadata).is_some() {
                                    statefulset::update_stateful_pod(&set, &mut rebuilt);
                                    prop_assert_eq!(&rebuilt, wp);
                                }
                            }
                            // A cached pod without a phase, created again: the
                            // runtime sends the whole pod of that version.
                            (SetWrite::CreatePod(wp), SetWrite::CreatePod(kp))
                                if kp.metadata.resource_version.is_some() =>
                            {
                                let name = kp.metadata.name.as_deref().unwrap_or_default();
                                let cached = pods
                                    .iter()
                                    .find(|p| p.metadata.name.as_deref() == Some(name))
                                    .unwrap();
                                prop_assert_eq!(&cached.metadata.resource_version, &kp.metadata.resource_version);
                                prop_assert_eq!(&project_pod(wp), kp);
                                // An adopted copy: gone from the cache after the adoption
                                // (see the `UpdatePod` case).
                                if controller_of(&cached.metadata).is_some() {
                                    prop_assert_eq!(cached, wp);
                                }
                            }
                            (ww, kw) => prop_assert_eq!(ww, kw),
                        }
                    }
                }
                (Err(w), Err(k)) => prop_assert_eq!(w, k),
                (w, k) => prop_assert!(false, "whole {:?} vs projection {:?}", w.is_ok(), k.is_ok()),
            }
        }
    }
}
