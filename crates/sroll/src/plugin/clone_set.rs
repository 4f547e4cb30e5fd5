//! `clone NAME [-w]`: one CloneSet as a tree — replicas, surge and unavailable pods, its
//! revisions with their images and pod counts, and every pod with its revision and state.

use std::time::Duration;

use k8s_openapi::{
    api::{apps::v1::ControllerRevision, core::v1::Pod},
    jiff::Timestamp,
};
use kube::{Api, ResourceExt, api::ListParams};
use sroll_api::{
    clone_set::{CloneSet, INSTANCE_ID_LABEL},
    labels, predicates,
};
use sroll_planner::inplace::{self, PodInPlace};

use super::{Ctx, explain, view::age};

/// What the tree shows.
pub struct CloneView {
    /// The CloneSet.
    pub set: CloneSet,
    /// Its pods (terminating ones included, shown as such).
    pub pods: Vec<Pod>,
    /// Its ControllerRevisions.
    pub revisions: Vec<ControllerRevision>,
}

async fn load(ctx: &Ctx, name: &str) -> anyhow::Result<CloneView> {
    let sets: Api<CloneSet> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let set = match sets.get_opt(name).await.map_err(explain)? {
        Some(s) => s,
        None => anyhow::bail!("no CloneSet named {name:?} in namespace {:?}", ctx.ns),
    };
    let uid = set.uid().unwrap_or_default();
    let owned = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        meta.owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == uid && o.controller == Some(true))
    };
    let pods: Vec<Pod> = Api::<Pod>::namespaced(ctx.client.clone(), &ctx.ns)
        .list(&ListParams::default().labels(INSTANCE_ID_LABEL))
        .await
        .map_err(explain)?
        .items
        .into_iter()
        .filter(|p| owned(&p.metadata))
        .collect();
    let revisions: Vec<ControllerRevision> =
        Api::<ControllerRevision>::namespaced(ctx.client.clone(), &ctx.ns)
            .list(&ListParams::default().labels(&format!("sroll.io/cloneset={name}")))
            .await
            .map_err(explain)?
            .items
            .into_iter()
            .filter(|r| owned(&r.metadata))
            .collect();
    Ok(CloneView {
        set,
        pods,
        revisions,
    })
}

/// `clone NAME [-w]`: prints the tree, and with `watch` redraws it every second until Ctrl-C.
pub async fn show(ctx: &Ctx, name: &str, watch: bool) -> anyhow::Result<()> {
    print!("{}", render(&load(ctx, name).await?, Timestamp::now()));
    if !watch {
        return Ok(());
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        if console::Term::stdout().is_term() {
            print!("\x1b[2J\x1b[H");
        } else {
            println!();
        }
        print!("{}", render(&load(ctx, name).await?, Timestamp::now()));
    }
}

fn revision_of(p: &Pod) -> &str {
    p.labels()
        .get(labels::REVISION)
        .map(String::as_str)
        .unwrap_or("-")
}

/// The tree, as text.
pub fn render(v: &CloneView, now: Timestamp) -> String {
    let spec = &v.set.spec;
    let status = v.set.status.clone().unwrap_or_default();
    let r = spec.resolved();
    let active: Vec<&Pod> = v
        .pods
        .iter()
        .filter(|p| !predicates::is_terminating(&p.metadata))
        .collect();
    let unavailable: Vec<&Pod> = active
        .iter()
        .copied()
        .filter(|p| !predicates::is_pod_ready(p))
        .collect();
    let surge = (active.len() as i32 - r.replicas).max(0);
    let mut out = String::new();
    out.push_str(&format!(
        "CloneSet {}/{}  ({}{})\n",
        v.set.namespace().unwrap_or_default(),
        v.set.name_any(),
        spec.update_type(),
        if spec.update_strategy.paused {
            ", paused"
        } else {
            ""
        }
    ));
    out.push_str(&format!(
        "├─ replicas    {} desired, {} pods, {} ready, {} updated ({} expected), partition {}\n",
        r.replicas,
        active.len(),
        status.ready_replicas,
        status.updated_replicas,
        status.expected_updated_replicas,
        r.partition
    ));
    out.push_str(&format!(
        "├─ surge       {surge} of maxSurge {}\n",
        r.max_surge
    ));
    out.push_str(&format!(
        "├─ unavailable {} of maxUnavailable {}{}\n",
        unavailable.len(),
        r.max_unavailable,
        if unavailable.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                unavailable
                    .iter()
                    .map(|p| p.name_any())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    out.push_str("├─ revisions\n");
    let mut revisions: Vec<&ControllerRevision> = v.revisions.iter().collect();
    revisions.sort_by_key(|r| std::cmp::Reverse(r.revision));
    for rev in &revisions {
        let name = rev.name_any();
        let pods = active.iter().filter(|p| revision_of(p) == name).count();
        let images = inplace::template_from_revision(rev)
            .and_then(|t| t.spec)
            .map(|s| {
                s.containers
                    .iter()
                    .filter_map(|c| c.image.clone())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let mut tags = Vec::new();
        if name == status.update_revision {
            tags.push("update");
        }
        if name == status.current_revision {
            tags.push("current");
        }
        out.push_str(&format!(
            "│  ├─ #{} {name}  {images}  {pods} pods{}\n",
            rev.revision,
            if tags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", tags.join(", "))
            }
        ));
    }
    out.push_str("└─ pods\n");
    let mut pods: Vec<&Pod> = v.pods.iter().collect();
    pods.sort_by_key(|p| p.name_any());
    for p in pods {
        let view = PodInPlace::from_pod(p);
        let state = if predicates::is_terminating(&p.metadata) {
            "Terminating"
        } else if view.in_progress(Some(revision_of(p))) {
            "UpdatingInPlace"
        } else if predicates::is_pod_ready(p) {
            "Ready"
        } else {
            "NotReady"
        };
        let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        out.push_str(&format!(
            "   ├─ {}  {}  {state}  {}\n",
            p.name_any(),
            revision_of(p),
            age(created, now)
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use k8s_openapi::{
        api::core::v1::{PodCondition, PodStatus},
        apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    };
    use serde_json::json;

    use super::*;

    fn pod(name: &str, revision: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([(labels::REVISION.to_owned(), revision.to_owned())].into()),
                creation_timestamp: Some(Time(Timestamp::from_second(1_700_000_000).unwrap())),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn the_tree_shows_surge_unavailable_pods_and_revisions() {
        let set: CloneSet = serde_json::from_value(json!({
            "apiVersion": "sroll.io/v1alpha1", "kind": "CloneSet",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "app", "image": "app:2"}]}},
                "updateStrategy": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 1,
                       "expectedUpdatedReplicas": 2, "updateRevision": "web-b",
                       "currentRevision": "web-a"},
        }))
        .unwrap();
        let rev = |name: &str, n: i64, image: &str| ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            data: Some(sroll_planner::clone_set::revision_data(
                &serde_json::from_value(
                    json!({"spec": {"containers": [{"name": "app", "image": image}]}}),
                )
                .unwrap(),
            )),
            revision: n,
        };
        let v = CloneView {
            set,
            pods: vec![
                pod("web-aaaaa", "web-a", true),
                pod("web-bbbbb", "web-a", true),
                pod("web-ccccc", "web-b", false),
            ],
            revisions: vec![rev("web-a", 1, "app:1"), rev("web-b", 2, "app:2")],
        };
        let text = render(&v, Timestamp::from_second(1_700_000_060).unwrap());
        assert!(text.contains("surge       1 of maxSurge 1"), "{text}");
        assert!(
            text.contains("unavailable 1 of maxUnavailable 0: web-ccccc"),
            "{text}"
        );
        assert!(text.contains("#2 web-b  app:2  1 pods  [update]"), "{text}");
        assert!(
            text.contains("#1 web-a  app:1  2 pods  [current]"),
            "{text}"
        );
        assert!(text.contains("web-ccccc  web-b  NotReady  60s"), "{text}");
    }
}
