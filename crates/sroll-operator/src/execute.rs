//! The thin, acting half of the reconcile loop: each function performs one kind of write the
//! planner can ask for, with the API semantics the design relies on.
//!
//! - StatefulSet writes are server-side applies under [`sroll_api::FIELD_MANAGER`] with `force`
//!   (the operator owns the fields it sets; a person's `kubectl edit` of them is overridden, as
//!   with any controller).
//! - Evictions go through the `pods/eviction` subresource, highest ordinal first, and stop at the
//!   first 429: that is the PodDisruptionBudget saying "no more for now" (back-pressure), not a
//!   failure (`pkg/registry/core/pod/storage/eviction.go`). Each eviction (and each direct delete)
//!   carries `deleteOptions.preconditions.uid` = the uid of the incarnation the plan was made
//!   from, so a pod recreated since then is never evicted by mistake; the API server answers 409
//!   Conflict, which means "the world moved: observe again", not a failure.
//! - The rollout's status is written by server-side apply on the status subresource, so fields the
//!   new status omits are removed rather than left stale (a merge patch cannot remove them). The
//!   patch is serialized straight from the typed status, and only the answer's resourceVersion is
//!   read back ([`write_status`]).

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sroll_api::{FIELD_MANAGER, StatefulsetRollout, StatefulsetRolloutStatus};

use crate::{Error, Result, error::api_code, metrics::Metrics};

/// Server-side applies `desired` (a complete StatefulSet with apiVersion/kind, name and owner
/// reference) and returns what the server stored.
pub async fn apply_statefulset(
    api: &Api<StatefulSet>,
    desired: &StatefulSet,
) -> Result<StatefulSet> {
    let name = desired.metadata.name.clone().unwrap_or_default();
    let mut body = serde_json::to_value(desired).map_err(|source| Error::Serialize {
        what: "the StatefulSet",
        source,
    })?;
    // Status is never ours to apply (and the main resource ignores it anyway).
    if let Some(obj) = body.as_object_mut() {
        obj.remove("status");
        obj.insert("apiVersion".into(), json!("apps/v1"));
        obj.insert("kind".into(), json!("StatefulSet"));
    }
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|source| Error::ApplyStatefulSet { name, source })
}

/// Deletes the StatefulSet leaving its pods running (`propagationPolicy: Orphan`), for a recreate
/// after an immutable-field change; the new set adopts the pods.
pub async fn delete_statefulset_orphan(
    api: &Api<StatefulSet>,
    name: &str,
    uid: &str,
) -> Result<()> {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        preconditions: (!uid.is_empty()).then(|| Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => Ok(()),
        Err(e) if api_code(&e) == Some(404) => Ok(()),
        Err(source) => Err(Error::DeleteStatefulSet {
            name: name.to_owned(),
            source,
        }),
    }
}

/// Sets `status.currentRevision` of an `OnDelete` StatefulSet once every pod runs the update
/// revision, as grafana's rollout-operator does (the StatefulSet controller never advances it for
/// `OnDelete`, so "rollout not finished" alerts would fire forever).
pub async fn set_current_revision(
    api: &Api<StatefulSet>,
    name: &str,
    revision: &str,
) -> Result<()> {
    let patch = json!({"status": {"currentRevision": revision}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(|source| Error::PatchStatefulSetStatus {
            name: name.to_owned(),
            source,
        })
}

/// A pod to evict or delete: its name and the uid of the incarnation the plan was made from
/// (empty: no precondition).
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.uid` as observed.
    pub uid: &'a str,
}

fn uid_precondition(uid: &str) -> Option<Preconditions> {
    (!uid.is_empty()).then(|| Preconditions {
        uid: Some(uid.to_owned()),
        resource_version: None,
    })
}

/// What an eviction batch achieved.
#[derive(Debug, Default)]
pub struct EvictionOutcome {
    /// Pods the API server accepted evictions for, in order.
    pub evicted: Vec<String>,
    /// The pod whose eviction was refused with 429 (the batch stopped there), if any.
    pub throttled: Option<String>,
    /// The pod whose uid precondition failed (409: it was recreated since it was observed; the
    /// batch stopped there and the next reconcile observes again), if any.
    pub conflicted: Option<String>,
    /// Pods already gone (404): nothing to do for them.
    pub gone: Vec<String>,
    /// The error that stopped the batch, other than a 429 or a 409.
    pub error: Option<Error>,
}

impl EvictionOutcome {
    /// How many pods from the front of the batch are taken care of (evicted or already gone).
    pub fn done(&self) -> usize {
        self.evicted.len() + self.gone.len()
    }
}

/// Evicts `pods` in the given order (the planner orders them, highest ordinal first), each with a
/// uid precondition, stopping at the first 429 (back-pressure) or 409 (a newer incarnation: observe
/// again). Any other error stops the batch and is returned in `error`; evictions already accepted
/// stay done (the next reconcile sees their pods terminating) and are reported.
pub async fn evict(api: &Api<Pod>, pods: &[Target<'_>], metrics: &Metrics) -> EvictionOutcome {
    let mut out = EvictionOutcome::default();
    for pod in pods {
        // A policy/v1 Eviction written here rather than with `Api::evict`: kube 5 serialises the
        // delete options under `delete_options`, a key the API server ignores as unknown, so the
        // uid precondition would be silently dropped.
        let body = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod.name},
            "deleteOptions": {"preconditions": uid_precondition(pod.uid)},
        });
        let result = api
            .create_subresource::<_, serde_json::Value>(
                "eviction",
                pod.name,
                &PostParams::default(),
                &body,
            )
            .await;
        match result {
            Ok(_) => {
                metrics.eviction("evicted");
                out.evicted.push(pod.name.to_owned());
            }
            Err(e) if api_code(&e) == Some(429) => {
                metrics.eviction("throttled");
                tracing::debug!(
                    pod = pod.name,
                    "eviction refused by the disruption budget (429): back-pressure"
                );
                out.throttled = Some(pod.name.to_owned());
                break;
            }
            Err(e) if api_code(&e) == Some(409) => {
                metrics.eviction("conflict");
                tracing::debug!(
                    pod = pod.name,
                    uid = pod.uid,
                    "eviction precondition failed (409): the pod changed; observing again"
                );
                out.conflicted = Some(pod.name.to_owned());
                break;
            }
            Err(e) if api_code(&e) == Some(404) => {
                metrics.eviction("gone");
                out.gone.push(pod.name.to_owned());
            }
            Err(source) => {
                metrics.eviction("error");
                out.error = Some(Error::Evict {
                    pod: pod.name.to_owned(),
                    source,
                });
                break;
            }
        }
    }
    out
}

/// Deletes pods that are broken (not Ready and not at their target revision): they are already
/// unavailable, so no disruption budget is spent on them. Each delete carries the observed uid as
/// a precondition; a pod already gone (404) or recreated since (409) is skipped. Returns the pods
/// deleted.
pub async fn delete_pods(api: &Api<Pod>, pods: &[Target<'_>]) -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    for pod in pods {
        let params = DeleteParams {
            preconditions: uid_precondition(pod.uid),
            ..DeleteParams::default()
        };
        match api.delete(pod.name, &params).await {
            Ok(_) => deleted.push(pod.name.to_owned()),
            Err(e) if matches!(api_code(&e), Some(404 | 409)) => {}
            Err(source) => {
                return Err(Error::DeletePod {
                    pod: pod.name.to_owned(),
                    source,
                });
            }
        }
    }
    Ok(deleted)
}

/// `apiVersion` of the rollout resource, as sent in a status patch.
const ROLLOUT_API_VERSION: &str = "sroll.io/v1alpha1";

/// The body of a status write: server-side apply needs `apiVersion` and `kind`; the name comes
/// from the URL.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusApply<'a> {
    api_version: &'static str,
    kind: &'static str,
    status: &'a StatefulsetRolloutStatus,
}

/// The bytes of the server-side apply patch that writes `status`, serialized straight from the
/// typed status (no intermediate `serde_json::Value`: a 1,000-pod status is about 60 KB of JSON
/// and tens of thousands of small allocations as a `Value`).
pub fn status_body(status: &StatefulsetRolloutStatus) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&StatusApply {
        api_version: ROLLOUT_API_VERSION,
        kind: "StatefulsetRollout",
        status,
    })
}

/// What the operator reads of the API server's answer to a status write: the new
/// `metadata.resourceVersion`. The answer is the whole rollout (spec and the status just sent);
/// deserializing it into a `StatefulsetRollout` would rebuild the status the caller already holds,
/// so every other field is skipped unparsed.
#[derive(Deserialize)]
struct StatusAnswer {
    metadata: AnswerMeta,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerMeta {
    #[serde(default)]
    resource_version: Option<String>,
}

/// Writes the rollout's status through the status subresource (server-side apply, forced) with
/// `body` from [`status_body`]; returns the rollout's new resourceVersion (`None` if the answer
/// carries none).
pub async fn write_status(
    client: &Client,
    api: &Api<StatefulsetRollout>,
    name: &str,
    body: Vec<u8>,
) -> Result<Option<String>> {
    let failed = |source| Error::PatchStatus {
        name: name.to_owned(),
        source,
    };
    // kube builds the URL, query and content type; the body is the bytes already serialized
    // (`Patch::Apply(())` only stands in for them).
    let mut request = kube::core::Request::new(api.resource_url())
        .patch_subresource(
            "status",
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(()),
        )
        .map_err(|e| failed(kube::Error::BuildRequest(e)))?;
    *request.body_mut() = body;
    request.extensions_mut().insert("patch_status");
    let answer: StatusAnswer = client.request(request).await.map_err(failed)?;
    Ok(answer.metadata.resource_version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> StatefulsetRolloutStatus {
        StatefulsetRolloutStatus {
            phase: Some(sroll_api::Phase::InProgress),
            reason: Some("1 of 2 pods updated".into()),
            pods: vec![
                sroll_api::PodVersion {
                    name: "web-0".into(),
                    revision: "web-2".into(),
                    ready: true,
                },
                sroll_api::PodVersion {
                    name: "web-1".into(),
                    revision: "web-1".into(),
                    ready: false,
                },
            ]
            .into(),
            ..StatefulsetRolloutStatus::default()
        }
    }

    #[test]
    fn the_status_body_is_the_apply_patch_of_the_status() {
        let body = status_body(&status()).expect("serializes");
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(
            parsed,
            json!({
                "apiVersion": format!("{}/{}", sroll_api::GROUP, sroll_api::VERSION),
                "kind": "StatefulsetRollout",
                "status": serde_json::to_value(status()).expect("serializes"),
            })
        );
        assert_eq!(
            parsed["status"]["pods"][1],
            json!({"name": "web-1", "revision": "web-1", "ready": false})
        );
        assert_eq!(
            status_body(&status()).expect("serializes"),
            body,
            "the same status gives the same bytes"
        );
    }

    #[test]
    fn only_the_resource_version_is_read_from_the_answer() {
        let answer = json!({
            "apiVersion": "sroll.io/v1alpha1",
            "kind": "StatefulsetRollout",
            "metadata": {"name": "web", "namespace": "ns", "resourceVersion": "42", "generation": 3},
            "spec": {"anything": [1, 2, 3]},
            "status": serde_json::to_value(status()).expect("serializes"),
        });
        let read: StatusAnswer = serde_json::from_value(answer).expect("decodes");
        assert_eq!(read.metadata.resource_version.as_deref(), Some("42"));
    }
}
