//! OpenAPI document tests: what kubectl reads must be there and resolve.

use serde_json::{Value, json};

use super::*;

fn rollout_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "statefulsetrollouts.sroll.io"},
        "spec": {"group": "sroll.io", "scope": "Namespaced",
                 "names": {"plural": "statefulsetrollouts", "kind": "StatefulsetRollout", "singular": "statefulsetrollout"},
                 "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "description": "Rolls out a StatefulSet.",
                                   "properties": {"spec": {"type": "object", "description": "Desired rollout.",
                                       "properties": {"percent": {"type": "integer", "description": "How far."}}},
                                                  "status": {"type": "object"}}}}},
                              {"name": "v0", "served": false, "storage": false}]}
    })
}

fn docs() -> OpenApi {
    let mut gvs = builtin_group_versions();
    gvs.extend(crd_group_versions(&[rollout_crd()]).expect("crd parses"));
    OpenApi::new(&gvs)
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let mut s = schema;
    loop {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let name = r.strip_prefix("#/components/schemas/").expect("v3 ref");
            s = &doc["components"]["schemas"][name];
        } else if let Some([one]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            s = one;
        } else if s.get("properties").is_none() && s.get("items").is_some() {
            s = &s["items"];
        } else {
            return s;
        }
    }
}

/// What `kubectl explain <resource>.<a>.<b>` does: GVK from the path's
/// operation, schema by GVK extension, then field by field.
fn explain<'a>(doc: &'a Value, gvk: &Value, fields: &[&str]) -> Option<&'a Value> {
    let root = doc["components"]["schemas"]
        .as_object()?
        .values()
        .find(|s| {
            s.get("x-kubernetes-group-version-kind")
                .and_then(Value::as_array)
                .is_some_and(|l| l.contains(gvk))
        })?;
    let mut cur = resolve(doc, root);
    for f in fields {
        cur = resolve(doc, cur.get("properties")?.get(*f)?);
    }
    Some(cur)
}

#[test]
fn index_lists_every_group_version_with_a_hashed_url() {
    let d = docs();
    let idx = d.v3_index();
    for key in [
        "api/v1",
        "apis/apps/v1",
        "apis/policy/v1",
        "apis/sroll.io/v1alpha1",
        "apis/coordination.k8s.io/v1",
    ] {
        let url = idx["paths"][key]["serverRelativeURL"]
            .as_str()
            .unwrap_or_default();
        assert!(
            url.starts_with(&format!("/openapi/v3/{key}?hash=")),
            "{key}: {url}"
        );
        assert!(d.v3_document(key).is_some());
        assert!(url.ends_with(d.v3_hash(key).unwrap_or("missing")));
    }
    assert!(
        idx["paths"].get("apis/sroll.io/v0").is_none(),
        "unserved versions are not published"
    );
}

#[test]
fn patch_operations_advertise_field_validation_for_each_gvk() {
    let d = docs();
    let cases = [
        (
            "apis/apps/v1",
            "/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}",
            json!({"group": "apps", "kind": "StatefulSet", "version": "v1"}),
        ),
        (
            "api/v1",
            "/api/v1/namespaces/{name}",
            json!({"group": "", "kind": "Namespace", "version": "v1"}),
        ),
        (
            "apis/sroll.io/v1alpha1",
            "/apis/sroll.io/v1alpha1/namespaces/{namespace}/statefulsetrollouts/{name}",
            json!({"group": "sroll.io", "kind": "StatefulsetRollout", "version": "v1alpha1"}),
        ),
        (
            "apis/apiextensions.k8s.io/v1",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
            json!({"group": "apiextensions.k8s.io", "kind": "CustomResourceDefinition", "version": "v1"}),
        ),
    ];
    for (key, path, gvk) in cases {
        let doc = d.v3_document(key).expect("doc");
        let patch = &doc["paths"][path]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"], gvk, "{path}");
        let names: Vec<&str> = patch["parameters"]
            .as_array()
            .expect("params")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            names.contains(&"fieldValidation")
                && names.contains(&"fieldManager")
                && names.contains(&"force"),
            "{path}: {names:?}"
        );
    }
    let scale = &d.v3_document("apis/apps/v1").expect("apps")["paths"]["/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}/scale"]
        ["patch"];
    assert_eq!(scale["x-kubernetes-group-version-kind"]["kind"], "Scale");
}

#[test]
fn every_reference_resolves_inside_its_document() {
    let d = docs();
    for key in [
        "api/v1",
        "apis/apps/v1",
        "apis/sroll.io/v1alpha1",
        "apis/rbac.authorization.k8s.io/v1",
    ] {
        let doc = d.v3_document(key).expect("doc");
        let mut refs = BTreeSet::new();
        refs_of(doc, &mut refs);
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for r in refs {
            assert!(schemas.contains_key(&r), "{key}: dangling ref {r}");
        }
    }
}

#[test]
fn explain_paths_resolve_for_builtin_and_custom_kinds() {
    let d = docs();
    let core = d.v3_document("api/v1").expect("core");
    let pod = json!({"group": "", "kind": "Pod", "version": "v1"});
    let containers = explain(core, &pod, &["spec", "containers"]).expect("pods.spec.containers");
    assert!(
        containers["properties"]["image"]["description"]
            .as_str()
            .is_some_and(|s| s.contains("Container image name"))
    );
    assert!(explain(core, &pod, &["metadata", "labels"]).is_some());
    assert!(explain(core, &pod, &["spec", "nope"]).is_none());

    let sroll = d.v3_document("apis/sroll.io/v1alpha1").expect("sroll");
    let gvk = json!({"group": "sroll.io", "kind": "StatefulsetRollout", "version": "v1alpha1"});
    let spec = explain(sroll, &gvk, &["spec"]).expect("statefulsetrollouts.spec");
    assert_eq!(spec["description"], "Desired rollout.");
    assert_eq!(spec["properties"]["percent"]["type"], "integer");
    assert!(
        explain(sroll, &gvk, &["metadata", "name"]).is_some(),
        "metadata resolves to ObjectMeta"
    );
    let list = &sroll["paths"]["/apis/sroll.io/v1alpha1/namespaces/{namespace}/statefulsetrollouts"]
        ["get"];
    assert_eq!(list["x-kubernetes-group-version-kind"], gvk);
    assert_eq!(
        sroll["components"]["schemas"]["io.sroll.v1alpha1.StatefulsetRolloutList"]["x-kubernetes-group-version-kind"]
            [0]["kind"],
        "StatefulsetRolloutList"
    );
}

#[test]
fn v2_is_swagger_with_definition_refs_only() {
    let v2 = docs().v2();
    assert_eq!(v2["swagger"], "2.0");
    let text = v2.to_string();
    assert!(!text.contains("#/components/schemas/"));
    assert!(
        v2["definitions"]["io.k8s.api.apps.v1.StatefulSet"]["x-kubernetes-group-version-kind"]
            .is_array()
    );
    let patch = &v2["paths"]["/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"]["patch"];
    assert!(
        patch["consumes"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("application/strategic-merge-patch+json")))
    );
    assert!(patch["parameters"].as_array().is_some_and(|p| {
        p.iter()
            .any(|p| p["name"] == "fieldValidation" && p["type"] == "string")
    }));
}

#[test]
fn crds_missing_names_are_reported() {
    let bad = json!({"metadata": {"name": "x"}, "spec": {"group": "g"}});
    assert_eq!(
        crd_group_versions(&[bad]).expect_err("missing").to_string(),
        "failed to read CustomResourceDefinition \"x\": missing spec.names.plural"
    );
}
