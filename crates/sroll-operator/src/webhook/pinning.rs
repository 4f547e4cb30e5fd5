//! Revision pinning, the first pod mutator: a pod of a StatefulSet managed by a rollout with
//! `spec.revisionPinning: true` is created at the revision the rollout assigns to its ordinal
//! ([`sroll_planner::pinning::assigned_revision`]): that revision's pod template (from its
//! ControllerRevision) and its `controller-revision-hash` label.
//!
//! The webhook entry selects pods carrying [`PINNING_LABEL`] (only opted-in sets' pods are sent)
//! and fails closed (`failurePolicy: Fail`): while the webhook is down, those pods are refused and
//! the StatefulSet controller retries with back-off; other pods are never sent.
//!
//! The pod is rebuilt as the StatefulSet controller would have built it at that revision
//! (upstream `pkg/controller/statefulset/stateful_set_utils.go`, `newVersionedStatefulSetPod`):
//! the revision's template (labels, annotations, spec), then the pod's identity (name, owner,
//! `hostname`, `subdomain`, the identity labels) and its claims' volumes carried over from the pod
//! as received. A pod already at its assigned revision is left untouched (the mutator is
//! idempotent).
//!
//! The caches (rollouts, StatefulSets, ControllerRevisions) are reflectors every replica runs.
//! They keep only what [`RevisionPinning::mutate`] reads ([`Trim`]): of a rollout its
//! `strategy`, `revisionPinning` and, when pinning is on, the name and revision of each pod its
//! status records; of a StatefulSet its owner references, the pinned-update annotation, its
//! update strategy and its two revisions; of a ControllerRevision its `data`. Before, the webhook
//! held a second full copy of each beside the controller's caches (a rollout of 1,000 pods
//! carries its 1,000-entry status and its whole StatefulSet spec).

use std::{collections::BTreeMap, sync::Arc};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{
    api::{
        apps::v1::{ControllerRevision, StatefulSet, StatefulSetSpec, StatefulSetStatus},
        core::v1::{Pod, PodSpec},
    },
    apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta},
};
use kube::{
    Api, Client, Resource,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use sroll_api::{
    EmbeddedStatefulSet, PodVersion, StatefulsetRollout, StatefulsetRolloutStatus, labels,
};
use sroll_planner::pinning::{
    ANNOTATION_PINNED_UPDATE, PINNING_LABEL, PinningInput, assigned_revision, pinned_update_from,
};

use super::{Denial, FailurePolicy, PluginContext, Plugins, PodMutator, WebhookEntry};
use crate::cache::{WatchBackoff, errors_logged};

/// The webhook's name.
pub const WEBHOOK_NAME: &str = "pinning.pods.sroll.io";
/// The webhook's path.
pub const PATH: &str = "/mutate/pods/pinning";

/// The revision-pinning mutator.
pub struct RevisionPinning {
    /// The watched namespaces (empty: all): the entry's `namespaceSelector` names them, so pods
    /// of namespaces this operator does not manage are never sent (nor refused).
    namespaces: Vec<String>,
    rollouts: Vec<Store<StatefulsetRollout>>,
    sets: Vec<Store<StatefulSet>>,
    revisions: Vec<Store<ControllerRevision>>,
}

/// Drops the fields of a cached object that [`RevisionPinning::mutate`] does not read.
trait Trim {
    fn trim(&mut self);
}

impl Trim for StatefulsetRollout {
    fn trim(&mut self) {
        self.metadata = trimmed_meta(&self.metadata, false);
        self.spec.sts = EmbeddedStatefulSet::default();
        let pinning = self.spec.revision_pinning();
        self.status = self
            .status
            .take()
            .filter(|_| pinning)
            .map(|s| StatefulsetRolloutStatus {
                pods: s
                    .pods
                    .into_vec()
                    .into_iter()
                    .map(|p| PodVersion {
                        name: p.name,
                        revision: p.revision,
                        ready: false,
                    })
                    .collect(),
                ..StatefulsetRolloutStatus::default()
            });
    }
}

impl Trim for StatefulSet {
    fn trim(&mut self) {
        let mut meta = trimmed_meta(&self.metadata, true);
        meta.annotations = self.metadata.annotations.take().and_then(|a| {
            let kept: BTreeMap<String, String> = a
                .into_iter()
                .filter(|(k, _)| k == ANNOTATION_PINNED_UPDATE)
                .collect();
            (!kept.is_empty()).then_some(kept)
        });
        self.metadata = meta;
        self.spec = self.spec.take().map(|s| StatefulSetSpec {
            update_strategy: s.update_strategy,
            ..StatefulSetSpec::default()
        });
        self.status = self.status.take().map(|s| StatefulSetStatus {
            update_revision: s.update_revision,
            current_revision: s.current_revision,
            ..StatefulSetStatus::default()
        });
    }
}

impl Trim for ControllerRevision {
    fn trim(&mut self) {
        self.metadata = trimmed_meta(&self.metadata, false);
    }
}

/// The metadata the caches key and read objects by: name, namespace, uid, resourceVersion and,
/// when `owners`, the owner references.
fn trimmed_meta(meta: &ObjectMeta, owners: bool) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        owner_references: meta.owner_references.clone().filter(|_| owners),
        ..ObjectMeta::default()
    }
}

fn reflect<K>(
    client: &Client,
    namespace: Option<&str>,
    plugins: &mut Plugins,
    kind: &'static str,
) -> Store<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Trim
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default().any_semantic())
        .default_backoff()
        .backoff(WatchBackoff::default())
        .map_ok(|event| event.modify(Trim::trim));
    let stream = errors_logged(reflector::reflector(writer, stream), kind);
    plugins.spawn(async move {
        stream.for_each(|_| std::future::ready(())).await;
    });
    let ready = store.clone();
    plugins.wait_ready(async move {
        let _ = ready.wait_until_ready().await;
    });
    store
}

impl RevisionPinning {
    /// Starts the caches (one reflector per kind and watched namespace) and registers the
    /// mutator.
    pub fn register(ctx: &PluginContext, plugins: &mut Plugins) {
        let scopes: Vec<Option<&str>> = if ctx.namespaces.is_empty() {
            vec![None]
        } else {
            ctx.namespaces.iter().map(|n| Some(n.as_str())).collect()
        };
        let mut pinning = Self {
            namespaces: ctx.namespaces.clone(),
            rollouts: Vec::new(),
            sets: Vec::new(),
            revisions: Vec::new(),
        };
        for scope in scopes {
            pinning
                .rollouts
                .push(reflect(&ctx.client, scope, plugins, "StatefulsetRollout"));
            pinning
                .sets
                .push(reflect(&ctx.client, scope, plugins, "StatefulSet"));
            pinning
                .revisions
                .push(reflect(&ctx.client, scope, plugins, "ControllerRevision"));
        }
        plugins.mutator(pinning);
    }

    fn find<K>(stores: &[Store<K>], namespace: &str, name: &str) -> Option<Arc<K>>
    where
        K: Resource<DynamicType = ()> + Clone + 'static,
    {
        let key = ObjectRef::new(name).within(namespace);
        stores.iter().find_map(|s| s.get(&key))
    }
}

/// The ordinal of a StatefulSet pod: the number after its name's last `-`.
fn ordinal(name: &str) -> Option<i32> {
    name.rsplit_once('-')?.1.parse().ok()
}

impl PodMutator for RevisionPinning {
    fn name(&self) -> &'static str {
        "revision-pinning"
    }

    fn webhook(&self) -> WebhookEntry {
        let mut entry = WebhookEntry::pod_create(WEBHOOK_NAME, PATH);
        entry.failure_policy = FailurePolicy::Fail;
        entry
            .object_selector
            .get_or_insert_default()
            .match_labels
            .get_or_insert_default()
            .insert(PINNING_LABEL.into(), "true".into());
        if !self.namespaces.is_empty() {
            entry.namespace_selector = Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "kubernetes.io/metadata.name".into(),
                    operator: "In".into(),
                    values: Some(self.namespaces.clone()),
                }]),
                match_labels: None,
            });
        }
        entry
    }

    fn mutate(&self, namespace: &str, pod: &mut Pod) -> Result<(), Denial> {
        let pod_labels = pod.metadata.labels.clone().unwrap_or_default();
        if pod_labels.get(PINNING_LABEL).map(String::as_str) != Some("true") {
            return Ok(());
        }
        let Some(owner) = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true) && o.kind == "StatefulSet")
        else {
            // Not created by a StatefulSet (a copy made by hand): nothing to pin.
            return Ok(());
        };
        let Some(name) = pod.metadata.name.clone() else {
            return Ok(());
        };
        let Some(ordinal) = ordinal(&name) else {
            return Ok(());
        };
        let Some(set) = Self::find(&self.sets, namespace, &owner.name) else {
            return Err(Denial::unavailable(format!(
                "revision pinning: StatefulSet {namespace}/{} is not in the webhook's cache yet; the StatefulSet controller retries",
                owner.name
            )));
        };
        let Some(rollout_owner) = set
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true) && o.kind == "StatefulsetRollout")
        else {
            // The set is not (or no longer) managed by a rollout: nothing decides its revisions.
            return Ok(());
        };
        let Some(rollout) = Self::find(&self.rollouts, namespace, &rollout_owner.name) else {
            return Err(Denial::unavailable(format!(
                "revision pinning: StatefulsetRollout {namespace}/{} is not in the webhook's cache yet; the StatefulSet controller retries",
                rollout_owner.name
            )));
        };
        if !rollout.spec.revision_pinning() {
            return Ok(());
        }
        let status = set.status.clone().unwrap_or_default();
        let spec = set.spec.clone().unwrap_or_default();
        let update_revision = status.update_revision.as_deref().filter(|r| !r.is_empty());
        let annotations = set.metadata.annotations.clone().unwrap_or_default();
        let recorded = rollout
            .status
            .as_ref()
            .and_then(|s| s.pods.iter().find(|p| *p.name == *name))
            .map(|p| p.revision.clone());
        let input = PinningInput {
            strategy: rollout.spec.strategy(),
            ordinal,
            update_revision,
            partition: spec
                .update_strategy
                .as_ref()
                .and_then(|s| s.rolling_update.as_ref())
                .map(|r| r.partition.unwrap_or(0)),
            moved_from: pinned_update_from(
                annotations
                    .get(ANNOTATION_PINNED_UPDATE)
                    .map(String::as_str),
                update_revision,
            ),
            recorded: recorded.as_deref(),
            current_revision: status.current_revision.as_deref().filter(|r| !r.is_empty()),
        };
        let Some(assigned) = assigned_revision(&input) else {
            return Ok(());
        };
        if pod_labels.get(labels::REVISION) == Some(&assigned) {
            return Ok(());
        }
        let Some(revision) = Self::find(&self.revisions, namespace, &assigned) else {
            // Pruned by revisionHistoryLimit: the template is gone; the pod stays as created
            // rather than never starting.
            tracing::warn!(namespace, pod = %name, revision = %assigned,
                "revision pinning: the assigned ControllerRevision is gone; the pod keeps the revision the StatefulSet gave it");
            return Ok(());
        };
        let Some(template) = sroll_planner::inplace::template_from_revision(&revision) else {
            return Err(Denial::new(format!(
                "revision pinning: ControllerRevision {namespace}/{assigned} holds no pod template; delete the rollout's spec.revisionPinning or fix the revision"
            )));
        };
        let received = pod.clone();
        pin(pod, &received, template, &assigned);
        tracing::info!(namespace, pod = %name, revision = %assigned, "pod pinned to its revision");
        Ok(())
    }
}

/// The identity labels the StatefulSet controller sets on every pod.
const IDENTITY_LABELS: [&str; 2] = [labels::POD_NAME, labels::POD_INDEX];

/// Rebuilds `pod` from `template` at `revision`, keeping what the StatefulSet controller added
/// for the pod's identity and storage.
fn pin(
    pod: &mut Pod,
    received: &Pod,
    template: k8s_openapi::api::core::v1::PodTemplateSpec,
    revision: &str,
) {
    let template_meta = template.metadata.unwrap_or_default();
    let received_labels = received.metadata.labels.clone().unwrap_or_default();
    let mut new_labels = template_meta.labels.unwrap_or_default();
    for key in IDENTITY_LABELS {
        if let Some(v) = received_labels.get(key) {
            new_labels.insert(key.to_owned(), v.clone());
        }
    }
    new_labels.insert(labels::REVISION.to_owned(), revision.to_owned());
    pod.metadata.labels = Some(new_labels);
    pod.metadata.annotations = template_meta.annotations.filter(|a| !a.is_empty());

    let received_spec = received.spec.clone().unwrap_or_default();
    let mut spec: PodSpec = template.spec.unwrap_or_default();
    spec.hostname = received_spec.hostname.clone();
    spec.subdomain = received_spec.subdomain.clone();
    // The claims' volumes (volumeClaimTemplates) replace the template's volumes of the same name,
    // as upstream's updateStorage.
    let claims: Vec<_> = received_spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.persistent_volume_claim.is_some())
        .cloned()
        .collect();
    if !claims.is_empty() {
        let volumes = spec.volumes.get_or_insert_default();
        volumes.retain(|v| !claims.iter().any(|c| c.name == v.name));
        volumes.extend(claims);
    }
    pod.spec = Some(spec);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, PersistentVolumeClaimVolumeSource, PodTemplateSpec, Volume,
    };
    use kube::api::ObjectMeta;
    use std::collections::BTreeMap;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([
                    ("app".to_owned(), "web".to_owned()),
                    (PINNING_LABEL.to_owned(), "true".to_owned()),
                ])),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "app".into(),
                    image: Some(image.into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    #[test]
    fn a_pinned_pod_gets_the_revisions_template_and_keeps_its_identity_and_claims() {
        let t = template("web:2");
        let mut pod = Pod {
            metadata: ObjectMeta {
                name: Some("web-3".into()),
                labels: Some(BTreeMap::from([
                    ("app".to_owned(), "web".to_owned()),
                    (labels::REVISION.to_owned(), "web-2".to_owned()),
                    (labels::POD_NAME.to_owned(), "web-3".to_owned()),
                ])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                hostname: Some("web-3".into()),
                subdomain: Some("web".into()),
                volumes: Some(vec![Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: "data-web-3".into(),
                        read_only: None,
                    }),
                    ..Volume::default()
                }]),
                ..t.spec.clone().unwrap_or_default()
            }),
            status: None,
        };
        let received = pod.clone();
        pin(&mut pod, &received, template("web:1"), "web-1");
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels[labels::REVISION], "web-1");
        assert_eq!(labels[labels::POD_NAME], "web-3");
        let spec = pod.spec.expect("a spec");
        assert_eq!(spec.containers[0].image.as_deref(), Some("web:1"));
        assert_eq!(spec.hostname.as_deref(), Some("web-3"));
        assert_eq!(spec.volumes.expect("volumes")[0].name, "data");
        assert_eq!(pod.metadata.name.as_deref(), Some("web-3"));
    }

    fn store_of<K>(objs: Vec<K>) -> Vec<Store<K>>
    where
        K: kube::runtime::reflector::Lookup + Clone + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        vec![crate::cache::tests::writer_with(objs).0]
    }

    fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).expect("a valid object")
    }

    /// The webhook decides the same on its trimmed caches as on the full objects: every pod of a
    /// pinned set mid-rollout (pods recorded at both revisions) comes out the same, and some are
    /// pinned (rebuilt from their revision's template).
    #[test]
    fn trimmed_caches_pin_as_the_full_objects() {
        let template_json = |image: &str| {
            serde_json::json!({
                "metadata": {"labels": {"app": "web", PINNING_LABEL: "true"}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            })
        };
        let rollout: StatefulsetRollout = from_json(serde_json::json!({
            "apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
            "metadata": {"name": "web", "namespace": "ns", "uid": "r-uid",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"revisionPinning": true, "percent": 50,
                "sts": {"spec": {"replicas": 4, "serviceName": "web",
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": template_json("web:2")}}},
            "status": {"phase": "RolloutInProgress", "percentDeployed": 50, "pods": [
                {"name": "web-0", "revision": "web-1", "ready": true},
                {"name": "web-1", "revision": "web-2", "ready": true},
                {"name": "web-2", "revision": "web-1", "ready": true},
                {"name": "web-3", "revision": "web-2", "ready": false}
            ]}
        }));
        let set: StatefulSet = from_json(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "s-uid",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "other": "x"},
                "ownerReferences": [{"apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
                    "name": "web", "uid": "r-uid", "controller": true}]},
            "spec": {"replicas": 4, "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "template": template_json("web:2"),
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}},
            "status": {"replicas": 4, "updateRevision": "web-2", "currentRevision": "web-1"}
        }));
        let revision = |name: &str, image: &str| -> ControllerRevision {
            from_json(serde_json::json!({
                "metadata": {"name": name, "namespace": "ns", "uid": format!("{name}-uid"),
                    "annotations": {"a": "b"}},
                "revision": 1,
                "data": {"spec": {"template": template_json(image)}}
            }))
        };
        let revisions = vec![revision("web-1", "web:1"), revision("web-2", "web:2")];
        let pinning = |trim: bool| {
            let mut rollout = rollout.clone();
            let mut set = set.clone();
            let mut revisions = revisions.clone();
            if trim {
                rollout.trim();
                set.trim();
                revisions.iter_mut().for_each(Trim::trim);
            }
            RevisionPinning {
                namespaces: Vec::new(),
                rollouts: store_of(vec![rollout]),
                sets: store_of(vec![set]),
                revisions: store_of(revisions),
            }
        };
        let (full, trimmed) = (pinning(false), pinning(true));
        let mut pinned = 0;
        for ordinal in 0..4 {
            let pod: Pod = from_json(serde_json::json!({
                "metadata": {"name": format!("web-{ordinal}"), "namespace": "ns",
                    "labels": {"app": "web", PINNING_LABEL: "true", labels::REVISION: "web-2"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                        "name": "web", "uid": "s-uid", "controller": true}]},
                "spec": {"containers": [{"name": "app", "image": "web:2"}]}
            }));
            let (mut a, mut b) = (pod.clone(), pod.clone());
            assert_eq!(
                full.mutate("ns", &mut a).is_ok(),
                trimmed.mutate("ns", &mut b).is_ok()
            );
            assert_eq!(a, b, "web-{ordinal}");
            pinned += usize::from(a != pod);
        }
        assert!(pinned > 0, "some pod is pinned to the old revision");
    }

    #[test]
    fn ordinals_come_from_the_name() {
        assert_eq!(ordinal("web-12"), Some(12));
        assert_eq!(ordinal("my-web-0"), Some(0));
        assert_eq!(ordinal("web"), None);
    }
}
