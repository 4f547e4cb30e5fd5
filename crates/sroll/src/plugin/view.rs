//! The plugin's read verbs: `list`, `get [-w]` (a live tree like `kubectl argo rollouts get
//! rollout -w`) and `history`. Rendering is pure (`render_tree`, `render_list`, `render_history`)
//! so it is snapshot-tested with fixed timestamps.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use console::Style;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::{
    apps::v1::{ControllerRevision, StatefulSet},
    core::v1::{Event, Pod},
};
use kube::{
    Api,
    api::ListParams,
    runtime::{WatchStreamExt, watcher},
};
use sroll_api::{
    StatefulsetRollout, labels,
    predicates::{is_pod_ready, is_terminating},
};

use super::{Ctx, Output, actions, explain, use_color};

/// Everything `get` shows about one rollout.
pub struct View {
    pub rollout: StatefulsetRollout,
    pub sts: Option<StatefulSet>,
    pub revisions: Vec<ControllerRevision>,
    pub pods: Vec<Pod>,
    pub events: Vec<Event>,
}

async fn load(ctx: &Ctx, name: &str) -> anyhow::Result<View> {
    let rollout = ctx.rollout(name).await?;
    let (sts, revisions) = actions::revisions(ctx, &rollout).await?;
    let pods = match &sts {
        Some(sts) => {
            let selector = sts
                .spec
                .as_ref()
                .and_then(|s| s.selector.match_labels.as_ref())
                .map(|labels| {
                    labels
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            Api::<Pod>::namespaced(ctx.client.clone(), &ctx.ns)
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(explain)?
                .items
        }
        None => Vec::new(),
    };
    let events = Api::<Event>::namespaced(ctx.client.clone(), &ctx.ns)
        .list(&ListParams::default())
        .await
        .map_err(explain)?
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("StatefulsetRollout")
                && e.involved_object.name.as_deref() == Some(name)
        })
        .collect();
    Ok(View {
        rollout,
        sts,
        revisions,
        pods,
        events,
    })
}

fn print_structured<T: serde::Serialize>(value: &T, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Output::Yaml => print!("{}", serde_yaml_ng::to_string(value)?),
        Output::Table => unreachable!("structured output only"),
    }
    Ok(())
}

/// `get NAME [-w]`.
pub async fn get(ctx: &Ctx, name: &str, watch: bool, output: Output) -> anyhow::Result<()> {
    if output != Output::Table {
        let rollout = ctx.rollout(name).await?;
        return print_structured(&rollout, output);
    }
    let color = use_color();
    let view = load(ctx, name).await?;
    print!("{}", render_tree(&view, Timestamp::now(), color));
    if !watch {
        return Ok(());
    }
    // Redraw on every change of the rollout (the operator writes status at each step), and at least
    // every 2 s so pods and events stay fresh.
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut changes = watcher(ctx.rollouts(), config).applied_objects().boxed();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            change = changes.next() => match change {
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::debug!(error = %e, "watch interrupted; the watcher retries"),
                None => return Ok(()),
            },
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        let view = load(ctx, name).await?;
        if console::Term::stdout().is_term() {
            // Clear the screen and home the cursor, as `watch` does.
            print!("\x1b[2J\x1b[H");
        } else {
            println!();
        }
        print!("{}", render_tree(&view, Timestamp::now(), color));
    }
}

/// `list [-A]`.
pub async fn list(ctx: &Ctx, all_namespaces: bool, output: Output) -> anyhow::Result<()> {
    let api = if all_namespaces {
        Api::<StatefulsetRollout>::all(ctx.client.clone())
    } else {
        ctx.rollouts()
    };
    let items = api
        .list(&ListParams::default())
        .await
        .map_err(explain)?
        .items;
    if output != Output::Table {
        return print_structured(&items, output);
    }
    if items.is_empty() {
        if all_namespaces {
            println!("No StatefulsetRollouts found.");
        } else {
            println!("No StatefulsetRollouts found in namespace {:?}.", ctx.ns);
        }
        return Ok(());
    }
    print!("{}", render_list(&items, all_namespaces, Timestamp::now()));
    Ok(())
}

/// `history NAME`.
pub async fn history(ctx: &Ctx, name: &str, output: Output) -> anyhow::Result<()> {
    let view = load(ctx, name).await?;
    if output != Output::Table {
        return print_structured(&view.revisions, output);
    }
    print!("{}", render_history(&view));
    Ok(())
}

/// Human duration exactly like kubectl's AGE column
/// (k8s.io/apimachinery/pkg/util/duration `HumanDuration`).
pub fn age(since: Option<Timestamp>, now: Timestamp) -> String {
    let Some(since) = since else {
        return "<unknown>".into();
    };
    let secs = now.as_second().saturating_sub(since.as_second()).max(0);
    let (minutes, hours) = (secs / 60, secs / 3600);
    let with = |big: i64, unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{unit}")
        } else {
            format!("{big}{unit}{small}{small_unit}")
        }
    };
    if secs < 120 {
        format!("{secs}s")
    } else if minutes < 10 {
        with(minutes, "m", secs % 60, "s")
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        with(hours, "h", minutes % 60, "m")
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        with(hours / 24, "d", hours % 24, "h")
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        with(hours / 24 / 365, "y", (hours / 24) % 365, "d")
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// The `list` table.
pub fn render_list(items: &[StatefulsetRollout], namespaces: bool, now: Timestamp) -> String {
    let mut rows = vec![
        [
            "NAMESPACE",
            "NAME",
            "PHASE",
            "PERCENT",
            "DEPLOYED",
            "UPDATED",
            "READY",
            "AGE",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for r in items {
        let s = r.status.clone().unwrap_or_default();
        rows.push(vec![
            r.metadata.namespace.clone().unwrap_or_default(),
            r.metadata.name.clone().unwrap_or_default(),
            s.phase.map_or_else(|| "-".into(), |p| p.to_string()),
            format!("{}%", r.spec.percent),
            s.percent_deployed
                .map_or_else(|| "-".into(), |p| format!("{p}%")),
            format!("{}/{}", s.updated_replicas.unwrap_or(0), r.spec.replicas()),
            format!("{}/{}", s.ready_replicas.unwrap_or(0), r.spec.replicas()),
            age(r.metadata.creation_timestamp.as_ref().map(|t| t.0), now),
        ]);
    }
    if !namespaces {
        for row in &mut rows {
            row.remove(0);
        }
    }
    table(&rows)
}

fn images(template: Option<&serde_json::Value>) -> String {
    template
        .and_then(|t| t.pointer("/spec/containers"))
        .and_then(|c| c.as_array())
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c.get("image").and_then(|i| i.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn pod_revision(p: &Pod) -> &str {
    p.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::REVISION))
        .map_or("", String::as_str)
}

fn ordinal(name: &str) -> i64 {
    name.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1)
}

/// The `get` tree.
pub fn render_tree(view: &View, now: Timestamp, color: bool) -> String {
    let style = |s: Style| if color { s } else { Style::new() };
    let bold = style(Style::new().bold());
    let green = style(Style::new().green());
    let yellow = style(Style::new().yellow());
    let red = style(Style::new().red());
    let dim = style(Style::new().dim());

    let r = &view.rollout;
    let s = r.status.clone().unwrap_or_default();
    let mut out = String::new();
    let phase = s.phase.clone();
    let (icon, phase_style) = match &phase {
        Some(sroll_api::Phase::Done) => ("✔", &green),
        Some(sroll_api::Phase::Failed) | Some(sroll_api::Phase::Blocked) => ("✖", &red),
        Some(sroll_api::Phase::Paused) => ("॥", &yellow),
        _ => ("◌", &yellow),
    };
    let replicas = r.spec.replicas();
    let target = r.spec.target_updated_replicas();
    let updated = s.updated_replicas.unwrap_or(0);
    let _ = writeln!(
        out,
        "{} {}",
        bold.apply_to("Name:        "),
        r.metadata.name.as_deref().unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "{} {}",
        bold.apply_to("Namespace:   "),
        r.metadata.namespace.as_deref().unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "{} {} {}",
        bold.apply_to("Status:      "),
        phase_style.apply_to(icon),
        phase_style.apply_to(phase.map_or_else(|| "-".to_owned(), |p| p.to_string()))
    );
    if let Some(reason) = &s.reason {
        let _ = writeln!(out, "{} {reason}", bold.apply_to("Message:     "));
    }
    let _ = writeln!(
        out,
        "{} {}{}{}",
        bold.apply_to("Strategy:    "),
        r.spec.strategy(),
        if r.spec.in_place_allowed() {
            format!(
                ", pods {} (grace {}s)",
                r.spec.pod_update_policy(),
                r.spec.in_place_grace_period_seconds()
            )
        } else {
            String::new()
        },
        if r.spec.paused() {
            yellow.apply_to(" (pause requested)").to_string()
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "{} {}% ({target} of {replicas} pods); deployed {}",
        bold.apply_to("Percent:     "),
        r.spec.percent,
        s.percent_deployed
            .map_or_else(|| "-".into(), |p| format!("{p}%"))
    );
    let width = 30usize;
    let filled = if target > 0 {
        usize::try_from(updated.clamp(0, target)).unwrap_or(0) * width
            / usize::try_from(target).unwrap_or(1)
    } else {
        width
    };
    let _ = writeln!(
        out,
        "{} [{}{}] {updated}/{target} updated, {} ready",
        bold.apply_to("Progress:    "),
        green.apply_to("#".repeat(filled)),
        dim.apply_to(".".repeat(width - filled)),
        s.ready_replicas.unwrap_or(0)
    );
    if let Some(id) = &r.spec.rollout_identity {
        let _ = writeln!(out, "{} {id}", bold.apply_to("Identity:    "));
    }

    // Revisions, newest first, with pod counts.
    let sts_status = view.sts.as_ref().and_then(|x| x.status.clone());
    let current = sts_status.as_ref().and_then(|x| x.current_revision.clone());
    let update = sts_status.as_ref().and_then(|x| x.update_revision.clone());
    let mut counts: BTreeMap<&str, i32> = BTreeMap::new();
    for p in &view.pods {
        *counts.entry(pod_revision(p)).or_default() += 1;
    }
    let _ = writeln!(out, "{}", bold.apply_to("Revisions:"));
    if view.revisions.is_empty() {
        let _ = writeln!(out, "  (none yet)");
    }
    let mut revisions: Vec<&ControllerRevision> = view.revisions.iter().collect();
    revisions.sort_by_key(|r| std::cmp::Reverse(r.revision));
    for rev in revisions {
        let name = rev.metadata.name.clone().unwrap_or_default();
        let mut marks = Vec::new();
        if update.as_deref() == Some(name.as_str()) {
            marks.push("update");
        }
        if current.as_deref() == Some(name.as_str()) {
            marks.push("current");
        }
        if s.previous_revision.as_deref() == Some(name.as_str()) {
            marks.push("previous");
        }
        let pods = counts.get(name.as_str()).copied().unwrap_or(0);
        let template = rev
            .data
            .as_ref()
            .and_then(|d| d.0.pointer("/spec/template"));
        let _ = writeln!(
            out,
            "  #{:<3} {name}{}  {pods} pod{}  {}",
            rev.revision,
            if marks.is_empty() {
                String::new()
            } else {
                format!(" ({})", marks.join(", "))
            },
            if pods == 1 { "" } else { "s" },
            dim.apply_to(images(template))
        );
    }

    // Pods in flight: not Ready or terminating. A 1,000-pod set shows only those.
    let mut in_flight: Vec<&Pod> = view
        .pods
        .iter()
        .filter(|p| !is_pod_ready(p) || is_terminating(&p.metadata))
        .collect();
    in_flight.sort_by_key(|p| std::cmp::Reverse(ordinal(p.metadata.name.as_deref().unwrap_or(""))));
    let _ = writeln!(
        out,
        "{} {} of {} pods ready",
        bold.apply_to("Pods:"),
        view.pods.iter().filter(|p| is_pod_ready(p)).count(),
        view.pods.len()
    );
    for p in in_flight.iter().take(50) {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        let state = if p.metadata.deletion_timestamp.is_some() {
            red.apply_to("terminating".to_owned())
        } else if s.in_place_updating.iter().any(|n| n == name) {
            yellow.apply_to("updating in place, not ready".to_owned())
        } else {
            yellow.apply_to(
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .map_or_else(|| "Pending".into(), |ph| format!("{ph}, not ready")),
            )
        };
        let _ = writeln!(out, "  ⟳ {name:<24} {:<12} {state}", pod_revision(p));
    }
    if in_flight.len() > 50 {
        let _ = writeln!(out, "  … and {} more", in_flight.len() - 50);
    }

    if !s.conditions.is_empty() {
        let _ = writeln!(out, "{}", bold.apply_to("Conditions:"));
        for c in &s.conditions {
            let st = match c.status.as_str() {
                "True" => green.apply_to(c.status.as_str()),
                "False" => red.apply_to(c.status.as_str()),
                other => yellow.apply_to(other),
            };
            let _ = writeln!(
                out,
                "  {:<22} {st:<5} {:<24} {}",
                c.type_, c.reason, c.message
            );
        }
    }

    let mut events: Vec<&Event> = view.events.iter().collect();
    events.sort_by_key(|e| event_time(e));
    if !events.is_empty() {
        let _ = writeln!(out, "{}", bold.apply_to("Events:"));
        for e in events.iter().rev().take(8).rev() {
            let _ = writeln!(
                out,
                "  {:>6}  {:<7} {:<18} {}",
                age(event_time(e), now),
                e.type_.as_deref().unwrap_or("Normal"),
                e.reason.as_deref().unwrap_or_default(),
                e.message.as_deref().unwrap_or_default()
            );
        }
    }
    out
}

fn event_time(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The `history` table.
pub fn render_history(view: &View) -> String {
    let mut counts: BTreeMap<String, i32> = BTreeMap::new();
    for p in &view.pods {
        *counts.entry(pod_revision(p).to_owned()).or_default() += 1;
    }
    let update = view
        .sts
        .as_ref()
        .and_then(|x| x.status.as_ref())
        .and_then(|x| x.update_revision.clone());
    let mut rows = vec![
        ["REVISION", "NAME", "PODS", "IMAGES", ""]
            .map(str::to_owned)
            .to_vec(),
    ];
    for rev in &view.revisions {
        let name = rev.metadata.name.clone().unwrap_or_default();
        rows.push(vec![
            rev.revision.to_string(),
            name.clone(),
            // Pods carry the full revision name in `controller-revision-hash` (upstream
            // `ApplyRevision`/`newVersionedStatefulSetPod`).
            counts.get(&name).copied().unwrap_or(0).to_string(),
            images(
                rev.data
                    .as_ref()
                    .and_then(|d| d.0.pointer("/spec/template")),
            ),
            if update.as_deref() == Some(name.as_str()) {
                "(update)".into()
            } else {
                String::new()
            },
        ]);
    }
    table(&rows)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("RFC 3339 timestamp")
    }

    fn fixture() -> View {
        let rollout: StatefulsetRollout = serde_json::from_value(json!({
            "apiVersion": "sroll.io/v1alpha1",
            "kind": "StatefulsetRollout",
            "metadata": {"name": "web", "namespace": "shop", "creationTimestamp": "2026-11-23T10:00:00Z"},
            "spec": {
                "percent": 50,
                "rolloutIdentity": "rel-7",
                "sts": {"spec": {
                    "replicas": 6,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "web", "image": "web:2"}]}}
                }}
            },
            "status": {
                "phase": "RolloutInProgress",
                "reason": "evicting 1 pod (web-3); 2 of 3 target pods updated",
                "percentDeployed": 33,
                "updatedReplicas": 2,
                "readyReplicas": 5,
                "previousRevision": "web-1111",
                "conditions": [{
                    "type": "Progressing", "status": "True", "reason": "PodsEvicted",
                    "message": "1 pod evicted", "lastTransitionTime": "2026-11-23T10:04:00Z"
                }]
            }
        }))
        .expect("rollout fixture");
        let sts: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "serviceName": "web",
                     "template": {"metadata": {"labels": {"app": "web"}}}},
            "status": {"replicas": 6, "currentRevision": "web-1111", "updateRevision": "web-2222"}
        }))
        .expect("sts fixture");
        let rev = |name: &str, n: i64, image: &str| -> ControllerRevision {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop",
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u1"}]},
                "revision": n,
                "data": {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}, "$patch": "replace"}}}
            }))
            .expect("revision fixture")
        };
        let pod = |i: usize, rev: &str, ready: bool, deleting: bool| -> Pod {
            let mut p = json!({
                "metadata": {"name": format!("web-{i}"), "namespace": "shop",
                             "labels": {"app": "web", (labels::REVISION): rev}},
                "status": {"phase": if ready { "Running" } else { "Pending" },
                           "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
            });
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2026-11-23T10:05:00Z");
            }
            serde_json::from_value(p).expect("pod fixture")
        };
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": "web.1", "namespace": "shop"},
            "involvedObject": {"kind": "StatefulsetRollout", "name": "web"},
            "reason": "PodsEvicted", "message": "evicted web-3", "type": "Normal",
            "lastTimestamp": "2026-11-23T10:04:30Z"
        }))
        .expect("event fixture");
        View {
            rollout,
            sts: Some(sts),
            revisions: vec![rev("web-2222", 2, "web:2"), rev("web-1111", 1, "web:1")],
            pods: vec![
                pod(0, "web-1111", true, false),
                pod(1, "web-1111", true, false),
                pod(2, "web-1111", true, false),
                pod(3, "web-1111", true, true),
                pod(4, "web-2222", false, false),
                pod(5, "web-2222", true, false),
            ],
            events: vec![event],
        }
    }

    #[test]
    fn tree_shows_phase_progress_revisions_pods_in_flight_and_events() {
        let out = render_tree(&fixture(), ts("2026-11-23T10:05:10Z"), false);
        insta::assert_snapshot!(out);
    }

    #[test]
    fn tree_shows_pods_updating_in_place() {
        let mut view = fixture();
        view.rollout.spec.pod_update_policy = Some(sroll_api::PodUpdatePolicy::InPlaceIfPossible);
        view.rollout.spec.in_place_update_strategy = Some(sroll_api::InPlaceUpdateStrategy {
            grace_period_seconds: Some(5),
        });
        if let Some(s) = view.rollout.status.as_mut() {
            s.reason = Some("updating 1 pod in place (web-4); 2 of 3 target pods updated".into());
            s.in_place_updating = vec!["web-4".into()];
        }
        view.pods
            .retain(|p| p.metadata.name.as_deref() != Some("web-3"));
        let out = render_tree(&view, ts("2026-11-23T10:05:10Z"), false);
        assert!(
            out.contains("Partitioned, pods InPlaceIfPossible (grace 5s)"),
            "{out}"
        );
        assert!(out.contains("updating in place"), "{out}");
        insta::assert_snapshot!(out);
    }

    #[test]
    fn tree_without_color_has_no_escape_codes() {
        let out = render_tree(&fixture(), ts("2026-11-23T10:05:10Z"), false);
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn list_and_history_tables() {
        let view = fixture();
        insta::assert_snapshot!(
            "list",
            render_list(
                std::slice::from_ref(&view.rollout),
                true,
                ts("2026-11-23T12:30:00Z")
            )
        );
        let mut sorted = view;
        sorted.revisions.sort_by_key(|r| r.revision);
        insta::assert_snapshot!("history", render_history(&sorted));
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = ts("2026-11-23T12:00:00Z");
        assert_eq!(age(Some(ts("2026-11-23T11:59:15Z")), now), "45s");
        assert_eq!(age(Some(ts("2026-11-23T11:55:30Z")), now), "4m30s");
        assert_eq!(age(Some(ts("2026-11-23T11:56:00Z")), now), "4m");
        assert_eq!(age(Some(ts("2026-11-23T11:00:00Z")), now), "60m");
        assert_eq!(age(Some(ts("2026-11-23T06:30:00Z")), now), "5h30m");
        assert_eq!(age(Some(ts("2026-11-22T12:00:00Z")), now), "24h");
        assert_eq!(age(Some(ts("2026-11-20T10:00:00Z")), now), "3d2h");
        assert_eq!(age(Some(ts("2026-10-01T12:00:00Z")), now), "53d");
        assert_eq!(age(None, now), "<unknown>");
    }
}
