//! Block Kit rendering of a rollout's Slack message(s): pure functions from a snapshot to the JSON
//! bodies of `chat.postMessage` / `chat.update`.
//!
//! Page 1 carries the header (app, namespace, cluster), old → new version (image and revision),
//! build metadata, the progress line (updated / target / total, percent, phase), the first
//! [`MAX_PODS_PER_MESSAGE`] pods being rolled and, at the end, the outcome. Further pages carry the
//! next pods, a short context line and the outcome. Limits respected (Block Kit reference):
//! header text ≤ 150 characters, section text ≤ 3000, fallback `text` kept short.

use serde_json::{Value, json};

use crate::{Outcome, RolloutSnapshot};

/// Most pods one message lists (the reference system's page size).
pub const MAX_PODS_PER_MESSAGE: usize = 50;
/// Pods per section block: 25 names of at most 63 characters fit the 3000-character section limit.
const PODS_PER_SECTION: usize = 25;

/// One rendered message: fallback text (notifications, screen readers) and Block Kit blocks.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// Plain-text fallback.
    pub text: String,
    /// The `blocks` array.
    pub blocks: Value,
}

impl Page {
    /// The pods this page lists (for tests and diagnostics).
    pub fn pods_listed(&self) -> usize {
        self.blocks
            .as_array()
            .map(|blocks| {
                blocks
                    .iter()
                    .filter(|b| {
                        b["block_id"]
                            .as_str()
                            .is_some_and(|id| id.starts_with("pods-"))
                    })
                    .map(|b| {
                        b["text"]["text"]
                            .as_str()
                            .unwrap_or_default()
                            .matches('`')
                            .count()
                            / 2
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// Number of pages the snapshot needs (at least one).
pub fn pages_needed(snapshot: &RolloutSnapshot, per_message: usize) -> usize {
    snapshot
        .rolling_pods
        .len()
        .div_ceil(per_message.max(1))
        .max(1)
}

/// Renders `pages` pages (at least [`pages_needed`]; more when earlier states needed more messages,
/// which then say that they list no pod any more).
pub fn render(snapshot: &RolloutSnapshot, per_message: usize, pages: usize) -> Vec<Page> {
    let per_message = per_message.clamp(1, MAX_PODS_PER_MESSAGE);
    let pages = pages.max(pages_needed(snapshot, per_message));
    (0..pages)
        .map(|i| render_page(snapshot, per_message, i, pages))
        .collect()
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn mrkdwn_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn outcome_line(snapshot: &RolloutSnapshot) -> Option<String> {
    let outcome = snapshot.outcome()?;
    let reason = snapshot
        .reason
        .as_deref()
        .map(|r| format!(": {}", mrkdwn_escape(&truncate(r, 2500))))
        .unwrap_or_default();
    Some(match outcome {
        Outcome::Done => format!(":white_check_mark: *{}*{reason}", outcome.as_str()),
        Outcome::Failed => format!(":x: *{}*{reason}", outcome.as_str()),
        Outcome::Aborted => format!(":no_entry: *{}*{reason}", outcome.as_str()),
    })
}

/// The analysis section: the run's phase and message (metric, values, limit), each metric's last
/// values and, once aborted, what happens to the pods.
fn analysis_text(s: &RolloutSnapshot) -> Option<String> {
    let a = s.analysis.as_ref()?;
    let mut lines = vec![format!(
        "*Analysis:* `{}`{}",
        a.phase.as_deref().unwrap_or("Running"),
        a.message
            .as_deref()
            .map(|m| format!(" · {}", mrkdwn_escape(&truncate(m, 1000))))
            .unwrap_or_default()
    )];
    for m in a.metrics.iter().take(16) {
        let values = if m.values.is_empty() {
            "no measurement yet".to_owned()
        } else {
            m.values.join(", ")
        };
        lines.push(format!(
            "• `{}` {}: {}",
            truncate(&m.name, 63),
            m.phase.as_deref().unwrap_or("Running"),
            mrkdwn_escape(&truncate(&values, 100))
        ));
    }
    if let Some(action) = s.abort_action() {
        lines.push(format!("*Pods:* {}", action.describe()));
    }
    Some(truncate(&lines.join("\n"), 3000))
}

fn title(snapshot: &RolloutSnapshot) -> &'static str {
    match snapshot.outcome() {
        Some(Outcome::Done) => "rolled out",
        Some(Outcome::Failed) => "rollout failed",
        Some(Outcome::Aborted) => "rollout aborted",
        None => "rolling out",
    }
}

fn progress_line(s: &RolloutSnapshot) -> String {
    format!(
        "*Progress:* {} updated / {} target / {} total · {}% deployed (target {}%) · `{}`",
        s.updated,
        s.target,
        s.total,
        s.percent_deployed,
        s.percent,
        s.phase.as_str()
    )
}

fn version_text(image: Option<&str>, revision: Option<&str>) -> String {
    let image = image
        .map(|i| format!("`{}`", truncate(i, 300)))
        .unwrap_or_else(|| "_unknown_".into());
    match revision {
        Some(r) => format!("{image} ({})", truncate(r, 100)),
        None => image,
    }
}

fn render_page(s: &RolloutSnapshot, per_message: usize, index: usize, pages: usize) -> Page {
    let start = (index * per_message).min(s.rolling_pods.len());
    let end = ((index + 1) * per_message).min(s.rolling_pods.len());
    let pods = &s.rolling_pods[start..end];
    let page_note = if pages > 1 {
        format!(" ({}/{pages})", index + 1)
    } else {
        String::new()
    };
    let mut blocks = Vec::new();
    let header = format!("{} {}{page_note}", s.app, title(s));
    blocks.push(json!({
        "type": "header",
        "block_id": "header",
        "text": {"type": "plain_text", "text": truncate(&header, 150), "emoji": true}
    }));
    if index == 0 {
        let mut fields = vec![
            json!({"type": "mrkdwn", "text": format!("*Namespace:*\n{}", mrkdwn_escape(&s.key.namespace))}),
            json!({"type": "mrkdwn", "text": format!("*Cluster:*\n{}", mrkdwn_escape(&s.cluster))}),
            json!({"type": "mrkdwn", "text": format!("*From:*\n{}", mrkdwn_escape(&version_text(s.from.image.as_deref(), s.from.revision.as_deref())))}),
            json!({"type": "mrkdwn", "text": format!("*To:*\n{}", mrkdwn_escape(&version_text(s.to.image.as_deref(), s.to.revision.as_deref())))}),
        ];
        if let Some(build) = &s.build {
            let mut parts = Vec::new();
            if let Some(b) = &build.branch {
                parts.push(format!("branch `{}`", truncate(b, 200)));
            }
            if let Some(c) = &build.commit {
                parts.push(format!("commit `{}`", truncate(c, 100)));
            }
            fields.push(json!({"type": "mrkdwn", "text": format!("*Build:*\n{}", mrkdwn_escape(&parts.join(", ")))}));
        }
        if let Some(id) = &s.rollout_identity {
            fields.push(json!({"type": "mrkdwn", "text": format!("*Rollout:*\n`{}`", mrkdwn_escape(&truncate(id, 200)))}));
        }
        blocks.push(json!({"type": "section", "block_id": "versions", "fields": fields}));
        blocks.push(json!({
            "type": "section",
            "block_id": "progress",
            "text": {"type": "mrkdwn", "text": progress_line(s)}
        }));
        if let Some(text) = analysis_text(s) {
            blocks.push(json!({
                "type": "section",
                "block_id": "analysis",
                "text": {"type": "mrkdwn", "text": text}
            }));
        }
    } else {
        blocks.push(json!({
            "type": "context",
            "block_id": "context",
            "elements": [{"type": "mrkdwn", "text": format!(
                "{} in {} · {} · continued from the first message", mrkdwn_escape(&s.app), mrkdwn_escape(&s.key.namespace), mrkdwn_escape(&s.cluster))}]
        }));
    }
    let rolling = if pods.is_empty() {
        if s.rolling_pods.is_empty() {
            "*Rolling now:* no pod".to_owned()
        } else {
            format!(
                "*Rolling now:* no pod on this page ({} in flight, listed in earlier messages)",
                s.rolling_pods.len()
            )
        }
    } else {
        format!(
            "*Rolling now:* pods {}–{} of {}{}",
            start + 1,
            end,
            s.rolling_pods.len(),
            match s.in_place_pods.len() {
                0 => String::new(),
                n => format!(" ({n} in place)"),
            }
        )
    };
    blocks.push(json!({
        "type": "section",
        "block_id": "rolling",
        "text": {"type": "mrkdwn", "text": rolling}
    }));
    for (n, chunk) in pods.chunks(PODS_PER_SECTION).enumerate() {
        let list: Vec<String> = chunk
            .iter()
            .map(|p| {
                let name = format!("`{}`", truncate(&p.replace('`', "'"), 63));
                if s.in_place_pods.contains(p) {
                    format!("{name} (in place)")
                } else {
                    name
                }
            })
            .collect();
        blocks.push(json!({
            "type": "section",
            "block_id": format!("pods-{n}"),
            "text": {"type": "mrkdwn", "text": list.join(", ")}
        }));
    }
    if let Some(line) = outcome_line(s) {
        blocks.push(json!({
            "type": "section",
            "block_id": "outcome",
            "text": {"type": "mrkdwn", "text": line}
        }));
    }
    let text = format!(
        "{} {} in {}/{}{page_note}: {}/{} updated, {}",
        s.app,
        title(s),
        s.cluster,
        s.key.namespace,
        s.updated,
        s.target,
        s.phase.as_str()
    );
    Page {
        text: truncate(&text, 300),
        blocks: Value::Array(blocks),
    }
}

#[cfg(test)]
mod tests {
    use sroll_api::{BuildMetadata, Phase};

    use super::*;
    use crate::{RolloutKey, Version};

    pub(crate) fn snapshot(in_flight: usize, phase: Phase) -> RolloutSnapshot {
        RolloutSnapshot {
            key: RolloutKey::new("cache", "memcached"),
            cluster: "us-east-1a".into(),
            app: "memcached".into(),
            rollout_identity: Some("r-1".into()),
            from: Version {
                image: Some("memcached:1.6.20".into()),
                revision: Some("memcached-6f7d".into()),
            },
            to: Version {
                image: Some("memcached:1.6.21".into()),
                revision: Some("memcached-7c9a".into()),
            },
            build: Some(BuildMetadata {
                branch: Some("main".into()),
                commit: Some("abc123".into()),
            }),
            updated: 300,
            target: 1000,
            total: 1000,
            percent: 100,
            percent_deployed: 30,
            phase,
            reason: Some("evicting".into()),
            rolling_pods: (0..in_flight).map(|i| format!("memcached-{i}")).collect(),
            in_place_pods: Vec::new(),
            analysis: None,
        }
    }

    #[test]
    fn an_analysis_abort_shows_the_metric_its_values_the_limit_and_the_pods_fate() {
        use sroll_api::analysis::AbortPolicy;

        use crate::{AnalysisSnapshot, MetricValues};
        let message = "metric error-ratio failed: 1 failed measurement exceeds failureLimit 0 (last values: [0.2])";
        let mut s = snapshot(1, Phase::Aborted);
        s.reason = Some(format!(
            "{message}; rolling back to revision memcached-6f7d"
        ));
        s.analysis = Some(AnalysisSnapshot {
            phase: Some("Failed".into()),
            message: Some(message.into()),
            abort_policy: None,
            metrics: vec![MetricValues {
                name: "error-ratio".into(),
                phase: Some("Failed".into()),
                values: vec!["[0.2]".into()],
            }],
        });
        let text = all_text(&render(&s, 50, 1)[0]);
        for needle in [
            "memcached rollout aborted",
            "RolloutAborted",
            "`error-ratio` Failed: [0.2]",
            "failureLimit 0",
            "*Pods:* rolling back to the previous revision",
        ] {
            assert!(text.contains(needle), "missing {needle} in {text}");
        }
        s.updated = 0;
        let text = all_text(&render(&s, 50, 1)[0]);
        assert!(text.contains("*Pods:* rolled back"), "{text}");
        s.analysis.as_mut().expect("set").abort_policy = Some(AbortPolicy::Hold);
        let text = all_text(&render(&s, 50, 1)[0]);
        assert!(text.contains("*Pods:* held where they are"), "{text}");
        // Not aborted: the measurements show, the pods' fate does not.
        s.phase = Phase::InProgress;
        let text = all_text(&render(&s, 50, 1)[0]);
        assert!(
            text.contains("`error-ratio` Failed") && !text.contains("*Pods:*"),
            "{text}"
        );
    }

    #[test]
    fn pods_updated_in_place_say_so() {
        let mut s = snapshot(3, Phase::InProgress);
        s.in_place_pods = vec!["memcached-1".into(), "memcached-2".into()];
        let page = &render(&s, 50, 1)[0];
        let text = all_text(page);
        assert!(text.contains("pods 1–3 of 3 (2 in place)"), "{text}");
        assert!(text.contains("`memcached-2` (in place)"), "{text}");
        assert!(!text.contains("`memcached-0` (in place)"), "{text}");
        assert_eq!(page.pods_listed(), 3);
    }

    fn all_text(page: &Page) -> String {
        page.blocks.to_string()
    }

    #[test]
    fn a_hundred_pods_in_flight_make_two_pages_of_fifty() {
        let pages = render(&snapshot(100, Phase::InProgress), MAX_PODS_PER_MESSAGE, 1);
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0].pods_listed(), 50);
        assert_eq!(pages[1].pods_listed(), 50);
        assert!(all_text(&pages[0]).contains("`memcached-0`"));
        assert!(all_text(&pages[1]).contains("`memcached-99`"));
        assert!(!all_text(&pages[1]).contains("`memcached-49`"));
    }

    #[test]
    fn the_first_page_shows_versions_build_and_progress() {
        let text = all_text(&render(&snapshot(3, Phase::InProgress), 50, 1)[0]);
        for needle in [
            "memcached rolling out",
            "cache",
            "us-east-1a",
            "memcached:1.6.20",
            "memcached:1.6.21",
            "memcached-7c9a",
            "abc123",
            "300 updated / 1000 target / 1000 total",
            "30% deployed",
            "RolloutInProgress",
        ] {
            assert!(text.contains(needle), "missing {needle} in {text}");
        }
    }

    #[test]
    fn every_page_shows_the_outcome_once_terminal() {
        let mut s = snapshot(0, Phase::Failed);
        s.reason = Some("pods memcached-3 not Ready after 600s".into());
        let pages = render(&s, 50, 3);
        assert_eq!(pages.len(), 3);
        for p in &pages {
            let t = all_text(p);
            assert!(
                t.contains("RolloutFailed") && t.contains("memcached-3 not Ready"),
                "{t}"
            );
            assert_eq!(p.pods_listed(), 0);
        }
        assert!(all_text(&pages[2]).contains("no pod"));
    }

    #[test]
    fn section_texts_stay_within_block_kit_limits() {
        let mut s = snapshot(50, Phase::InProgress);
        s.rolling_pods = (0..50)
            .map(|i| format!("{}{i:02}", "p".repeat(61)))
            .collect();
        s.reason = Some("x".repeat(10_000));
        s.app = "a".repeat(300);
        for page in render(&s, 50, 1) {
            for block in page.blocks.as_array().expect("array") {
                if let Some(t) = block["text"]["text"].as_str() {
                    let limit = if block["type"] == "header" { 150 } else { 3000 };
                    assert!(
                        t.chars().count() <= limit,
                        "{} chars in {}",
                        t.len(),
                        block["block_id"]
                    );
                }
            }
        }
    }

    #[test]
    fn the_page_size_is_capped_at_fifty() {
        let pages = render(&snapshot(120, Phase::InProgress), 500, 1);
        assert_eq!(pages.len(), 3);
        assert!(pages.iter().all(|p| p.pods_listed() <= 50));
    }
}
