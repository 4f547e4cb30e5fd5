//! Semantic validation the CRD schema cannot express (or that we want to report as a condition with
//! a precise message, never as an opaque API error loop). The operator runs it before acting: an
//! invalid spec applies nothing and sets `SpecValid=False` with every problem listed.

use std::fmt;

use crate::StatefulsetRollout;

/// One problem in a rollout's spec, with the JSON path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path from the resource root, e.g. `spec.sts.spec.template.spec.containers[0].image`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found, in field order. Empty means valid.
pub fn validate(rollout: &StatefulsetRollout) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut err = |path: String, message: &str| {
        errs.push(FieldError {
            path,
            message: message.to_owned(),
        })
    };
    let spec = &rollout.spec;
    let sts = &spec.sts.spec;

    if !(0..=100).contains(&spec.percent) {
        err("spec.percent".into(), "must be between 0 and 100");
    }
    if spec
        .min_pod_eviction_interval_seconds
        .is_some_and(|v| v < 0)
    {
        err(
            "spec.minPodEvictionIntervalSeconds".into(),
            "must be 0 or more",
        );
    }
    if let Some(mu) = &spec.max_unavailable {
        let total = spec.replicas();
        match crate::intstr::scaled_value(mu, total, true) {
            Ok(v) if v < 1 => err(
                "spec.maxUnavailable".into(),
                "must allow at least one pod (a number ≥ 1 or a percentage ≥ 1%)",
            ),
            Ok(_) => {}
            Err(e) => err("spec.maxUnavailable".into(), &e.to_string()),
        }
    }
    if let Some(crate::PodUpdatePolicy::Unknown(v)) = &spec.pod_update_policy {
        err(
            "spec.podUpdatePolicy".into(),
            &format!("unknown value {v:?}: must be ReCreate, InPlaceIfPossible or InPlaceOnly"),
        );
    }
    if let Some(g) = spec
        .in_place_update_strategy
        .as_ref()
        .and_then(|s| s.grace_period_seconds)
        && !(0..=3600).contains(&g)
    {
        err(
            "spec.inPlaceUpdateStrategy.gracePeriodSeconds".into(),
            "must be between 0 and 3600 seconds",
        );
    }
    if sts.replicas.is_some_and(|r| r < 0) {
        err("spec.sts.spec.replicas".into(), "must be 0 or more");
    }

    let template_labels = rollout.spec.template_labels();
    let selector = &sts.selector;
    let has_selector_terms = selector
        .match_labels
        .as_ref()
        .is_some_and(|m| !m.is_empty())
        || selector
            .match_expressions
            .as_ref()
            .is_some_and(|e| !e.is_empty());
    if !has_selector_terms {
        err(
            "spec.sts.spec.selector".into(),
            "must select the pods: set matchLabels (or matchExpressions) matching spec.sts.spec.template.metadata.labels",
        );
    }
    for (k, v) in selector.match_labels.iter().flatten() {
        if template_labels.get(k) != Some(v) {
            err(
                format!("spec.sts.spec.selector.matchLabels.{k}"),
                "does not match spec.sts.spec.template.metadata.labels: the StatefulSet would not select its own pods",
            );
        }
    }

    match sts.template.spec.as_ref() {
        None => err(
            "spec.sts.spec.template.spec".into(),
            "is required: the pod template needs at least one container",
        ),
        Some(pod) => {
            if pod.containers.is_empty() {
                err(
                    "spec.sts.spec.template.spec.containers".into(),
                    "must have at least one container",
                );
            }
            for (i, c) in pod.containers.iter().enumerate() {
                if c.name.trim().is_empty() {
                    err(
                        format!("spec.sts.spec.template.spec.containers[{i}].name"),
                        "must not be empty",
                    );
                }
                if c.image.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    err(
                        format!("spec.sts.spec.template.spec.containers[{i}].image"),
                        "must name an image, e.g. registry.example.com/app:1.2.3",
                    );
                }
            }
        }
    }
    if let Some(policy) = sts.pod_management_policy.as_deref()
        && policy != "OrderedReady"
        && policy != "Parallel"
    {
        err(
            "spec.sts.spec.podManagementPolicy".into(),
            "must be Parallel (recommended for rollouts) or OrderedReady",
        );
    }
    if let Some(kind) = spec.sts.kind.as_deref()
        && kind != "StatefulSet"
    {
        err("spec.sts.kind".into(), "must be StatefulSet");
    }
    if let Some(av) = spec.sts.api_version.as_deref()
        && av != "apps/v1"
    {
        err("spec.sts.apiVersion".into(), "must be apps/v1");
    }
    if let Some(bapi) = &spec.bapi
        && !(bapi.url.starts_with("http://") || bapi.url.starts_with("https://"))
    {
        err("spec.bapi.url".into(), "must be an http:// or https:// URL");
    }
    errs.extend(crate::analysis::validate(spec));
    errs
}
