//! Discovery documents: `/version`, `/api`, `/apis`, `/apis/{group}`, the
//! group-version `APIResourceList`s and aggregated discovery
//! (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`, served when the client's
//! `Accept` asks for it first, as client-go 1.30+ does).
//!
//! Upstream: `k8s.io/apiserver/pkg/endpoints/discovery/` (legacy and
//! `aggregated/`), `k8s.io/api/apidiscovery/v2/types.go`.

use serde_json::{Value, json};

use crate::registry::{Registry, ResourceDescriptor, sort_versions};

/// The Content-Type of aggregated discovery responses.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header prefers aggregated discovery v2.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').next().is_some_and(|first| {
        let p: Vec<&str> = first.split(';').map(str::trim).collect();
        p.first() == Some(&"application/json")
            && p.contains(&"g=apidiscovery.k8s.io")
            && p.contains(&"v=v2")
            && p.contains(&"as=APIGroupDiscoveryList")
    })
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "35",
        "gitVersion": "v1.35.0",
        "gitCommit": "kubesim",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "gc",
        "platform": "linux/amd64",
        "emulationMajor": "1",
        "emulationMinor": "35",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "34"
    })
}

/// `/api` (legacy `APIVersions`).
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_entry(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

/// `/apis` (legacy `APIGroupList`).
pub fn api_group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}` (`APIGroup`), `None` for an unknown group.
pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    let (_, vs) = reg.groups().into_iter().find(|(g, _)| g == group)?;
    let mut e = group_entry(group, &vs);
    e["kind"] = json!("APIGroup");
    e["apiVersion"] = json!("v1");
    Some(e)
}

const FULL_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn scale_selector_path(d: &ResourceDescriptor) -> bool {
    d.scale.is_some()
}

/// `/api/v1` or `/apis/{group}/{version}` (`APIResourceList`), `None` when
/// the group version is not served.
pub fn api_resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let mut descs = reg.group_version(group, version);
    if descs.is_empty() {
        return None;
    }
    descs.sort_by(|a, b| a.plural.cmp(&b.plural));
    let mut resources = vec![];
    for d in &descs {
        let mut r = json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": FULL_VERBS,
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources.push(r);
        if d.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", d.plural), "singularName": "", "namespaced": d.namespaced,
                "kind": d.kind, "verbs": ["get", "patch", "update"]
            }));
        }
        if scale_selector_path(d) {
            resources.push(json!({
                "name": format!("{}/scale", d.plural), "singularName": "", "namespaced": d.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]
            }));
        }
        for h in &d.hook_subresources {
            resources.push(json!({
                "name": format!("{}/{}", d.plural, h.name), "singularName": "", "namespaced": d.namespaced,
                "group": h.group, "version": h.version, "kind": h.kind, "verbs": h.verbs
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn aggregated_resource(d: &ResourceDescriptor) -> Value {
    let mut r = json!({
        "resource": d.plural,
        "responseKind": {"group": d.group, "version": d.version, "kind": d.kind},
        "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": d.singular,
        "verbs": FULL_VERBS,
    });
    if !d.short_names.is_empty() {
        r["shortNames"] = json!(d.short_names);
    }
    if !d.categories.is_empty() {
        r["categories"] = json!(d.categories);
    }
    let mut subs = vec![];
    if d.status_subresource {
        subs.push(json!({"subresource": "status",
            "responseKind": {"group": d.group, "version": d.version, "kind": d.kind},
            "verbs": ["get", "patch", "update"]}));
    }
    if d.scale.is_some() {
        subs.push(json!({"subresource": "scale",
            "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
            "verbs": ["get", "patch", "update"]}));
    }
    for h in &d.hook_subresources {
        subs.push(json!({"subresource": h.name,
            "responseKind": {"group": h.group, "version": h.version, "kind": h.kind},
            "verbs": h.verbs}));
    }
    if !subs.is_empty() {
        r["subresources"] = json!(subs);
    }
    r
}

/// Aggregated discovery for `/api` (`legacy` = true: the core group only) or
/// `/apis` (every named group).
pub fn aggregated(reg: &Registry, legacy: bool) -> Value {
    let all = reg.all();
    let mut groups: Vec<(String, Vec<String>)> = if legacy {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        reg.groups()
    };
    let mut items = vec![];
    for (g, vs) in groups.iter_mut() {
        sort_versions(vs);
        let versions: Vec<Value> = vs
            .iter()
            .map(|v| {
                let mut rs: Vec<&std::sync::Arc<ResourceDescriptor>> = all
                    .iter()
                    .filter(|d| d.group == *g && d.version == *v)
                    .collect();
                rs.sort_by(|a, b| a.plural.cmp(&b.plural));
                json!({
                    "version": v,
                    "resources": rs.iter().map(|d| aggregated_resource(d)).collect::<Vec<_>>(),
                    "freshness": "Current",
                })
            })
            .collect();
        items.push(
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions}),
        );
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}
