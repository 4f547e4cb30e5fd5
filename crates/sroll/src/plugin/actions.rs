//! The plugin's write verbs: each is one patch of the StatefulsetRollout (never of the StatefulSet
//! or its pods — the operator does the rest, so every change goes through the same machinery).
//!
//! Each verb returns what it did as text (one line, then `note:` lines) instead of printing it, so
//! the plugin prints it and `sroll dashboard` shows it after the same call.

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::{Value, json};
use sroll_api::{Phase, StatefulsetRollout};

use super::{Ctx, explain};

/// The field manager the plugin's patches are recorded under.
const MANAGER: &str = "kubectl-sroll";

async fn merge_patch(ctx: &Ctx, name: &str, patch: Value) -> anyhow::Result<StatefulsetRollout> {
    ctx.rollouts()
        .patch(
            name,
            &PatchParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(patch),
        )
        .await
        .map_err(explain)
}

/// `pause` / `resume`.
pub async fn set_paused(ctx: &Ctx, name: &str, paused: bool) -> anyhow::Result<String> {
    let rollout = ctx.rollout(name).await?;
    if rollout.spec.paused() == paused {
        return Ok(format!(
            "statefulsetrollout.sroll.io/{name} already {}",
            if paused { "paused" } else { "running" }
        ));
    }
    merge_patch(ctx, name, json!({"spec": {"pauseRequested": paused}})).await?;
    Ok(format!(
        "statefulsetrollout.sroll.io/{name} {}",
        if paused { "paused" } else { "resumed" }
    ))
}

/// `set-percent`.
pub async fn set_percent(ctx: &Ctx, name: &str, percent: i32) -> anyhow::Result<String> {
    let rollout = ctx.rollout(name).await?;
    let deployed = rollout
        .status
        .as_ref()
        .and_then(|s| s.percent_deployed)
        .unwrap_or(0);
    merge_patch(ctx, name, json!({"spec": {"percent": percent}})).await?;
    let mut out = format!(
        "statefulsetrollout.sroll.io/{name} percent set to {percent} ({} of {} pods)",
        sroll_api::target_updated_replicas(rollout.spec.replicas(), percent),
        rollout.spec.replicas()
    );
    if percent < deployed {
        out.push_str(&format!(
            "\nnote: {deployed}% already run the new version; lowering percent never moves pods back — use `sroll rollback {name}` for that"
        ));
    }
    Ok(out)
}

/// `retry`: a new `rolloutIdentity` re-runs a rollout that failed (or an analysis aborted).
pub async fn retry(ctx: &Ctx, name: &str) -> anyhow::Result<String> {
    let rollout = ctx.rollout(name).await?;
    let phase = rollout.status.as_ref().and_then(|s| s.phase.clone());
    let identity = uuid::Uuid::new_v4().to_string();
    merge_patch(ctx, name, json!({"spec": {"rolloutIdentity": identity}})).await?;
    let mut out =
        format!("statefulsetrollout.sroll.io/{name} retried with rolloutIdentity {identity}");
    if phase != Some(Phase::Failed) && phase != Some(Phase::Aborted) {
        out.push_str(&format!(
            "\nnote: the rollout was {}, not RolloutFailed or RolloutAborted",
            phase.map_or_else(|| "not started".to_owned(), |p| p.to_string())
        ));
    }
    Ok(out)
}

/// The StatefulSet's ControllerRevisions, oldest first.
pub async fn revisions(
    ctx: &Ctx,
    rollout: &StatefulsetRollout,
) -> anyhow::Result<(Option<StatefulSet>, Vec<ControllerRevision>)> {
    let sts_name = rollout.statefulset_name();
    let sts = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ctx.ns)
        .get_opt(&sts_name)
        .await
        .map_err(explain)?;
    let Some(sts) = sts else {
        return Ok((None, Vec::new()));
    };
    let uid = sts.metadata.uid.clone();
    let mut revs: Vec<ControllerRevision> =
        Api::<ControllerRevision>::namespaced(ctx.client.clone(), &ctx.ns)
            .list(&ListParams::default())
            .await
            .map_err(explain)?
            .items
            .into_iter()
            .filter(|r| {
                r.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| Some(&o.uid) == uid.as_ref())
            })
            .collect();
    revs.sort_by_key(|r| r.revision);
    Ok((Some(sts), revs))
}

/// The pod template a ControllerRevision of a StatefulSet records
/// (`data = {"spec": {"template": {…, "$patch": "replace"}}}`, upstream `getPatch`).
pub fn revision_template(rev: &ControllerRevision) -> Option<Value> {
    let mut template = rev.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    if let Some(map) = template.as_object_mut() {
        map.remove("$patch");
    }
    Some(template)
}

/// `rollback`: puts an earlier revision's pod template back into the rollout (with a new identity),
/// so the operator rolls the pods to it with the same machinery — and without pacing when it is the
/// revision the pods ran just before.
pub async fn rollback(
    ctx: &Ctx,
    name: &str,
    to_revision: Option<i64>,
    percent: i32,
) -> anyhow::Result<String> {
    let rollout = ctx.rollout(name).await?;
    let (sts, revs) = revisions(ctx, &rollout).await?;
    let Some(sts) = sts else {
        bail!(
            "statefulsetrollout {name:?} has no StatefulSet yet ({:?} not found): nothing to roll back to",
            rollout.statefulset_name()
        );
    };
    let update_revision = sts
        .status
        .as_ref()
        .and_then(|s| s.update_revision.clone())
        .unwrap_or_default();
    let current_number = revs
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(update_revision.as_str()))
        .map(|r| r.revision);
    let target = match to_revision {
        Some(n) => revs.iter().find(|r| r.revision == n).with_context(|| {
            format!(
                "revision {n} does not exist; revisions: {}",
                revs.iter()
                    .map(|r| r.revision.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        None => {
            let previous = rollout
                .status
                .as_ref()
                .and_then(|s| s.previous_revision.clone());
            revs.iter()
                .rev()
                .find(|r| previous.is_some() && r.metadata.name == previous)
                .or_else(|| {
                    revs.iter()
                        .rev()
                        .find(|r| current_number.is_some_and(|c| r.revision < c))
                })
                .with_context(|| {
                    format!("statefulset {:?} has no earlier revision to roll back to (see `sroll history {name}`)", rollout.statefulset_name())
                })?
        }
    };
    if Some(target.revision) == current_number {
        bail!(
            "revision {} is already the update revision of {:?}",
            target.revision,
            rollout.statefulset_name()
        );
    }
    let template = revision_template(target).with_context(|| {
        format!(
            "revision {} ({}) holds no pod template",
            target.revision,
            target.metadata.name.as_deref().unwrap_or_default()
        )
    })?;
    let identity = uuid::Uuid::new_v4().to_string();
    // A JSON patch, not a merge patch: the template is replaced whole (a merge would keep fields the
    // old template did not have), and the resourceVersion test refuses a concurrent change.
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rollout.metadata.resource_version},
        {"op": "replace", "path": "/spec/sts/spec/template", "value": template},
        {"op": "add", "path": "/spec/percent", "value": percent},
        {"op": "add", "path": "/spec/rolloutIdentity", "value": identity},
    ]))
    .context("failed to build the rollback patch")?;
    ctx.rollouts()
        .patch(
            name,
            &PatchParams {
                field_manager: Some(MANAGER.into()),
                ..Default::default()
            },
            &Patch::Json::<()>(patch),
        )
        .await
        .map_err(explain)?;
    let mut out = format!(
        "statefulsetrollout.sroll.io/{name} rolling back to revision {} ({}) at {percent}%",
        target.revision,
        target.metadata.name.as_deref().unwrap_or_default()
    );
    if rollout.spec.paused() {
        out.push_str(&format!(
            "\nnote: the rollout is paused; `sroll resume {name}` lets the rollback proceed"
        ));
    }
    Ok(out)
}
