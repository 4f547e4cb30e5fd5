//! One Event store, two APIs: `core/v1` `events` and `events.k8s.io/v1`
//! `events` read and write the same objects, stored in the `core/v1` form.
//!
//! The field mapping is `pkg/apis/events/v1/conversion.go`
//! (`Convert_v1_Event_To_core_Event`, `Convert_core_Event_To_v1_Event`):
//! `note`↔`message`, `regarding`↔`involvedObject`,
//! `deprecatedSource`↔`source`, `deprecatedFirstTimestamp`↔`firstTimestamp`,
//! `deprecatedLastTimestamp`↔`lastTimestamp`, `deprecatedCount`↔`count`,
//! `reportingController`↔`reportingComponent`; `eventTime`, `series`,
//! `reportingInstance`, `action`, `reason`, `related` and `type` keep their
//! names. Creates through `events.k8s.io/v1` are validated as
//! `ValidateEventCreate` does for that group (`pkg/apis/core/validation/events.go`).

use serde_json::{Map, Value, json};

use super::error::Cause;

/// Pairs of (`events.k8s.io/v1` field, `core/v1` field) that are renamed.
const RENAMED: [(&str, &str); 7] = [
    ("note", "message"),
    ("regarding", "involvedObject"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

/// The `apiVersion` of the events API group.
pub const EVENTS_V1: &str = "events.k8s.io/v1";

fn rename(obj: &Value, api_version: &str, to_core: bool) -> Value {
    let Some(m) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::with_capacity(m.len());
    for (k, v) in m {
        let name = RENAMED
            .iter()
            .find(|(ev, core)| if to_core { ev == k } else { core == k })
            .map_or(k.as_str(), |(ev, core)| if to_core { core } else { ev });
        out.insert(name.to_owned(), v.clone());
    }
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("kind".into(), json!("Event"));
    Value::Object(out)
}

/// A stored (`core/v1`) Event as `events.k8s.io/v1` shows it.
pub fn to_events_v1(core: &Value) -> Value {
    rename(core, EVENTS_V1, false)
}

/// An `events.k8s.io/v1` Event in its stored (`core/v1`) form.
pub fn to_core(ev: &Value) -> Value {
    rename(ev, "v1", true)
}

/// `ValidateEventCreate` for `events.k8s.io/v1` (`eventTime`,
/// `reportingController`, `reportingInstance`, `action`, `reason` required;
/// `type` Normal or Warning; `note` at most 1 kB). Takes the
/// `events.k8s.io/v1` form.
pub fn validate_create(ev: &Value) -> Vec<Cause> {
    let mut causes = vec![];
    let missing = |v: &Value| v.is_null() || v == "";
    let required = |causes: &mut Vec<Cause>, field: &str| {
        causes.push(Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: field.into(),
        });
    };
    for f in ["eventTime", "reportingController", "reportingInstance"] {
        if missing(&ev[f]) {
            required(&mut causes, f);
        }
    }
    if ev["series"].is_object() {
        if ev["series"]["count"].as_i64().unwrap_or(0) < 2 {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: "Invalid value: should be at least 2".into(),
                field: "series.count".into(),
            });
        }
        if missing(&ev["series"]["lastObservedTime"]) {
            required(&mut causes, "series.lastObservedTime");
        }
    }
    for f in ["action", "reason"] {
        if missing(&ev[f]) {
            required(&mut causes, f);
        }
    }
    match ev["type"].as_str() {
        Some("Normal" | "Warning") => {}
        other => causes.push(Cause {
            reason: if other.is_none_or(str::is_empty) {
                "FieldValueRequired".into()
            } else {
                "FieldValueNotSupported".into()
            },
            message: format!(
                "Unsupported value: {}: supported values: \"Normal\", \"Warning\"",
                crate::schema::go_quote(other.unwrap_or_default())
            ),
            field: "type".into(),
        }),
    }
    if ev["note"].as_str().is_some_and(|n| n.len() > 1024) {
        causes.push(Cause {
            reason: "FieldValueTooLong".into(),
            message: "Too long: may not be more than 1024 bytes".into(),
            field: "note".into(),
        });
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_forms_map_field_for_field_and_back() {
        let ev = json!({"apiVersion": EVENTS_V1, "kind": "Event",
            "metadata": {"name": "e", "namespace": "ns"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "x.io/ctl",
            "reportingInstance": "ctl-1", "action": "Sync", "reason": "Synced", "type": "Normal",
            "note": "hello", "regarding": {"kind": "Pod", "name": "p", "namespace": "ns"},
            "deprecatedCount": 3, "deprecatedSource": {"component": "ctl"}});
        let core = to_core(&ev);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["reportingComponent"], "x.io/ctl");
        assert_eq!(core["count"], 3);
        assert_eq!(core["source"]["component"], "ctl");
        assert!(core.get("note").is_none());
        assert_eq!(to_events_v1(&core), ev);
        assert!(validate_create(&ev).is_empty());
        let bad = json!({"type": "Fine"});
        let fields: Vec<String> = validate_create(&bad).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "eventTime",
                "reportingController",
                "reportingInstance",
                "action",
                "reason",
                "type"
            ]
        );
    }
}
