//! `pods/binding`: how the scheduler sets a pod's `spec.nodeName`.
//!
//! A pod's spec is immutable to updates ([`crate::api::validation::pod_update`]),
//! `spec.nodeName` included; the scheduler binds through this subresource,
//! which writes storage directly as upstream's `BindingREST.Create` /
//! `setPodNodeAndMetadata` (`pkg/registry/core/pod/storage/storage.go`) does:
//! no pod update validation, the node name set once, the binding's
//! annotations copied, and the `PodScheduled` condition set `True`.
//!
//! Simplification: the binding's `metadata.resourceVersion` precondition is
//! not checked (the uid precondition is).

use k8s_openapi::{
    api::core::v1::{Binding, Pod},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use serde_json::json;

use crate::api::{Api, ApiError, error::Cause};

/// Binds pod `ns/name` to the node `binding.target.name` at `now`; returns the
/// bound pod.
pub fn bind(
    api: &Api,
    ns: &str,
    name: &str,
    binding: &Binding,
    now: Timestamp,
) -> Result<Pod, ApiError> {
    let d = api.resource_of::<Pod>()?;
    if binding.metadata.name.as_deref().is_some_and(|n| n != name) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Binding object",
        ));
    }
    let target = &binding.target;
    let mut causes = Vec::new();
    if !matches!(target.kind.as_deref(), None | Some("" | "Node")) {
        causes.push(Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: {}: supported values: \"Node\", \"<empty>\"",
                crate::schema::go_quote(target.kind.as_deref().unwrap_or_default())
            ),
            field: "target.kind".into(),
        });
    }
    if target.name.as_deref().is_none_or(str::is_empty) {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "target.name".into(),
        });
    }
    if !causes.is_empty() {
        // `Binding "name" is invalid: …` (bindings are not served as a
        // resource of their own here; the pod's descriptor lends the rest).
        let mut bd = (*d).clone();
        bd.kind = "Binding".into();
        bd.plural = "bindings".into();
        return Err(ApiError::invalid(&bd, name, causes));
    }
    let node = target.name.clone().unwrap_or_default();
    let stored = api.store().write(|t| {
        let old = t
            .get(&d.storage_key(), ns, name)
            .ok_or_else(|| ApiError::not_found_in(&d, name))?;
        let mut pod = old.value();
        if let Some(uid) = binding.metadata.uid.as_deref()
            && uid != old.uid()
        {
            return Err(ApiError::conflict(
                &d,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    old.uid()
                ),
            ));
        }
        if old.terminating {
            return Err(ApiError::conflict(
                &d,
                name,
                &format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        if let Some(current) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict(
                &d,
                name,
                &format!("pod {name} is already assigned to node \"{current}\""),
            ));
        }
        pod["spec"]["nodeName"] = json!(node);
        if let Some(ann) = &binding.metadata.annotations {
            let meta = &mut pod["metadata"];
            if !meta["annotations"].is_object() {
                meta["annotations"] = json!({});
            }
            for (k, v) in ann {
                meta["annotations"][k] = json!(v);
            }
        }
        // podutil.UpdatePodCondition: PodScheduled=True, transition time on change.
        if !pod["status"].is_object() {
            pod["status"] = json!({});
        }
        let conds = &mut pod["status"]["conditions"];
        if !conds.is_array() {
            *conds = json!([]);
        }
        if let Some(list) = conds.as_array_mut() {
            let fresh = json!({
                "type": "PodScheduled",
                "status": "True",
                "lastTransitionTime": Time(now),
            });
            match list.iter_mut().find(|c| c["type"] == "PodScheduled") {
                Some(c) if c["status"] == "True" => {}
                Some(c) => *c = fresh,
                None => list.push(fresh),
            }
        }
        let rv = t.next_rv();
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        t.put(&d, &pod)
            .map_err(|e| ApiError::internal(format!("failed to store the bound pod: {e}")))?;
        Ok(pod)
    })?;
    serde_json::from_value(stored)
        .map_err(|e| ApiError::internal(format!("failed to decode the bound pod: {e}")))
}
