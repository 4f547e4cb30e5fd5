//! CRD generation: the committed `deploy/crds/` files are this module's output.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde_json::Value;

use crate::{StatefulsetRollout, clone_set::CloneSet, sidecar_set::SidecarSet};

/// Every CRD sroll serves, in install order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        finish(StatefulsetRollout::crd()),
        finish(CloneSet::crd()),
        finish(SidecarSet::crd()),
    ]
}

/// Post-processes a derived CRD so its schema says what the API server should enforce and reads
/// well in `kubectl explain`:
///
/// - `nullable: true` (schemars' rendering of `Option<T>`) is removed, and so is `null` from
///   enums: an absent field is how "unset" is written, and without `nullable` the API server prunes an
///   explicit `null` instead of storing it (apiextensions-apiserver `pkg/apiserver/schema/defaulting`
///   `PruneNonNullableNullsWithoutDefaults`).
/// - Descriptions are unwrapped ([`unwrap_description`]): the doc comments they come from are
///   wrapped at 100 columns, and `kubectl explain` wraps again at the terminal's width.
fn finish(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn clean(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if map.get("nullable") == Some(&Value::Bool(true)) {
                    map.remove("nullable");
                }
                if let Some(Value::Array(values)) = map.get_mut("enum") {
                    values.retain(|e| !e.is_null());
                }
                // A string under `description` is a schema's description; a property named
                // `description` would be a schema (an object) and is walked like any other.
                if let Some(Value::String(text)) = map.get_mut("description") {
                    *text = unwrap_description(text);
                }
                map.values_mut().for_each(clean);
            }
            Value::Array(items) => items.iter_mut().for_each(clean),
            _ => {}
        }
    }
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        // Round-trip through JSON: JSONSchemaProps has dozens of fields; a Value walk is simpler.
        if let Ok(mut value) = serde_json::to_value(&*schema) {
            clean(&mut value);
            if let Ok(cleaned) = serde_json::from_value(value) {
                *schema = cleaned;
            }
        }
    }
    crd
}

/// Joins the lines of a doc comment that were wrapped only to fit the source: lines of one
/// paragraph become one line. Kept as they are: paragraph breaks (blank lines, collapsed to one),
/// list items (`- `, `* `, `+ `, `1. `, `1) `; a more indented line continues the item above),
/// and fenced code blocks (```` ``` ````).
pub fn unwrap_description(text: &str) -> String {
    fn is_list_item(line: &str) -> bool {
        let t = line.trim_start();
        if ["- ", "* ", "+ "].iter().any(|m| t.starts_with(m)) {
            return true;
        }
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && (t[digits..].starts_with(". ") || t[digits..].starts_with(") "))
    }

    let mut out = String::with_capacity(text.len());
    // Whether the output ends inside a paragraph (the next plain line continues it).
    let mut in_paragraph = false;
    let mut in_fence = false;
    let mut blank_pending = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if in_fence {
            out.push('\n');
            out.push_str(line.trim_end());
            in_fence = !trimmed.starts_with("```");
            continue;
        }
        if trimmed.is_empty() {
            blank_pending = !out.is_empty();
            in_paragraph = false;
            continue;
        }
        let separator = if out.is_empty() {
            ""
        } else if blank_pending {
            "\n\n"
        } else if in_paragraph && !is_list_item(line) && !trimmed.starts_with("```") {
            " "
        } else {
            "\n"
        };
        out.push_str(separator);
        blank_pending = false;
        if trimmed.starts_with("```") {
            out.push_str(line.trim_end());
            in_fence = true;
            in_paragraph = false;
        } else if separator == " " {
            out.push_str(trimmed);
        } else {
            out.push_str(line.trim_end());
            in_paragraph = true;
        }
    }
    out
}

/// The CRDs as one multi-document YAML stream, exactly what `sroll crd` prints: each CRD as
/// [`crd_yaml_named`] renders it, separated by `---`.
pub fn crd_yaml() -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for (i, crd) in crds().iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&render(crd)?);
    }
    Ok(out)
}

/// One CRD by name (`statefulsetrollouts.sroll.io`, `clonesets.sroll.io`, `sidecarsets.sroll.io`), exactly what
/// `sroll crd NAME` prints and what `deploy/crds/NAME.yaml` holds; `None` for an unknown name.
pub fn crd_yaml_named(name: &str) -> Option<Result<String, serde_yaml_ng::Error>> {
    crds()
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .map(render)
}

/// The names of every CRD, in install order.
pub fn crd_names() -> Vec<String> {
    crds().into_iter().filter_map(|c| c.metadata.name).collect()
}

fn render(crd: &CustomResourceDefinition) -> Result<String, serde_yaml_ng::Error> {
    let name = crd.metadata.name.as_deref().unwrap_or_default();
    Ok(format!(
        "# Generated by `sroll crd` from crates/sroll-api; do not edit by hand.\n\
         # Regenerate with: cargo run -p sroll -- crd {name} > deploy/crds/{name}.yaml\n{}",
        serde_yaml_ng::to_string(crd)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_doc_lines_are_joined_and_paragraphs_lists_and_code_kept() {
        let doc = "First line wrapped\nonto a second.\n\n\nNext paragraph:\n- item one\n  continued\n- item two\n2. numbered\n```\nkeep\n  as is\n```\nafter code";
        assert_eq!(
            unwrap_description(doc),
            "First line wrapped onto a second.\n\nNext paragraph:\n- item one continued\n- item two\n2. numbered\n```\nkeep\n  as is\n```\nafter code"
        );
    }

    /// What `kubectl explain statefulsetrollouts.spec.percent` prints comes from here.
    #[test]
    fn the_percent_description_reads_as_one_paragraph() {
        let crd = &crds()[0];
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("a schema"),
        )
        .expect("a schema serializes");
        let percent = schema["properties"]["spec"]["properties"]["percent"]["description"]
            .as_str()
            .expect("spec.percent has a description");
        assert!(!percent.contains('\n'), "{percent}");
        assert!(
            percent.contains("the target number of updated pods is ceil(replicas × percent / 100)"),
            "{percent}"
        );
        let spec = schema["properties"]["spec"]["description"]
            .as_str()
            .expect("spec has a description");
        assert_eq!(
            spec.matches("\n\n").count(),
            1,
            "the spec's two paragraphs stay apart: {spec}"
        );
        assert!(!spec.replace("\n\n", "").contains('\n'), "{spec}");
    }
}
