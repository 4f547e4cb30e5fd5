//! The authorization attributes of an HTTP request, derived like upstream's `RequestInfoFactory`
//! (`staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`) and
//! `authorizer.AttributesRecord` (`staging/src/k8s.io/apiserver/pkg/authorization/authorizer`).
//!
//! - `/api/{v}/…` and `/apis/{group}/{v}/…` (at least three path segments) are resource requests;
//!   everything else (`/healthz`, `/apis`, `/apis/apps/v1`, `/openapi/v2`) is a non-resource
//!   request whose verb is the lowercased HTTP method.
//! - The verb comes from the method (`POST` create, `GET`/`HEAD` get, `PUT` update, `PATCH` patch,
//!   `DELETE` delete) or from a `/watch/` or `/proxy/` path prefix; a `get` without a name is a
//!   `list`, or a `watch` with `?watch=true`; a `delete` without a name is a `deletecollection`.
//! - `/namespaces/{ns}/{resource}…` sets the namespace; `/namespaces/{ns}` and
//!   `/namespaces/{ns}/status|finalize` are the namespace object itself (with its own namespace set,
//!   as upstream does).
//! - A list or watch with the field selector `metadata.name=X` carries the name `X`, so
//!   `resourceNames` rules can allow watching one object.

use super::user::UserInfo;

/// The attributes an authorizer decides on (`authorizer.AttributesRecord`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// The requesting user.
    pub user: UserInfo,
    /// Verb (`get`, `list`, `watch`, `create`, …; lowercased HTTP method for non-resource paths).
    pub verb: String,
    /// Whether this is an API resource request.
    pub resource_request: bool,
    /// API group (`""` for core).
    pub api_group: String,
    /// API version.
    pub api_version: String,
    /// Namespace (`""` for cluster scope).
    pub namespace: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource (`status`, `eviction`, `scale`, `token`).
    pub subresource: String,
    /// Object name (`""` for collections).
    pub name: String,
    /// The URL path (used for non-resource requests).
    pub path: String,
}

impl Attributes {
    /// `resource` or `resource/subresource`.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

fn split_path(path: &str) -> Vec<&str> {
    let p = path.trim_matches('/');
    if p.is_empty() {
        Vec::new()
    } else {
        p.split('/').collect()
    }
}

fn query_values(query: Option<&str>, key: &str) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// The name an exact `metadata.name` field selector pins (`RequiresExactMatch`), if any.
fn field_selector_name(query: Option<&str>) -> Option<String> {
    let sel = query_values(query, "fieldSelector").into_iter().next()?;
    sel.split(',').find_map(|term| {
        let (k, v) = term
            .split_once("==")
            .or_else(|| term.split_once('='))
            .filter(|(k, _)| !k.ends_with('!'))?;
        (k.trim() == "metadata.name" && !v.is_empty() && !v.contains('/') && v != "." && v != "..")
            .then(|| v.trim().to_owned())
    })
}

/// Parses a request into [`Attributes`] (the user is filled in by the caller).
pub fn attributes(method: &str, path: &str, query: Option<&str>) -> Attributes {
    let mut a = Attributes {
        path: path.to_owned(),
        verb: method.to_ascii_lowercase(),
        ..Attributes::default()
    };
    let mut parts = split_path(path);
    if parts.len() < 3 || (parts[0] != "api" && parts[0] != "apis") {
        return a;
    }
    let prefix = parts.remove(0);
    if prefix == "apis" {
        // The prefix is consumed: "do we have four parts?"
        if parts.len() < 3 {
            return a;
        }
        a.api_group = parts.remove(0).to_owned();
    }
    a.resource_request = true;
    a.api_version = parts.remove(0).to_owned();

    let mut verb_via_path = false;
    if matches!(parts.first(), Some(&"watch") | Some(&"proxy")) {
        if parts.len() < 2 {
            // upstream: "unable to determine kind and namespace from url"; no useful attributes
            a.verb = parts[0].to_owned();
            return a;
        }
        a.verb = parts.remove(0).to_owned();
        verb_via_path = true;
    } else {
        a.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_owned();
    }

    if parts.first() == Some(&"namespaces") && parts.len() > 1 {
        a.namespace = parts[1].to_owned();
        if parts.len() > 2 && parts[2] != "status" && parts[2] != "finalize" {
            parts.drain(..2);
        }
    }

    if parts.len() >= 3 && a.verb != "proxy" {
        a.subresource = parts[2].to_owned();
    }
    if parts.len() >= 2 {
        a.name = parts[1].to_owned();
    }
    if let Some(r) = parts.first() {
        a.resource = (*r).to_owned();
    }

    if a.name.is_empty() && a.verb == "get" {
        let watch = query_values(query, "watch")
            .first()
            .is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0"));
        a.verb = if watch { "watch" } else { "list" }.to_owned();
        if let Some(n) = field_selector_name(query) {
            a.name = n;
        }
    }
    if verb_via_path
        && a.verb == "watch"
        && a.name.is_empty()
        && let Some(n) = field_selector_name(query)
    {
        a.name = n;
    }
    if a.name.is_empty() && a.verb == "delete" {
        a.verb = "deletecollection".to_owned();
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(
        method: &str,
        path: &str,
        q: Option<&str>,
    ) -> (String, String, String, String, String) {
        let a = attributes(method, path, q);
        let r = a.combined_resource();
        (a.verb, a.api_group, a.namespace, r, a.name)
    }

    fn t(v: &str, g: &str, ns: &str, r: &str, n: &str) -> (String, String, String, String, String) {
        (v.into(), g.into(), ns.into(), r.into(), n.into())
    }

    #[test]
    fn collection_gets_are_lists_or_watches() {
        assert_eq!(
            parse("GET", "/api/v1/namespaces/d/pods", None),
            t("list", "", "d", "pods", "")
        );
        assert_eq!(
            parse(
                "GET",
                "/api/v1/namespaces/d/pods",
                Some("watch=true&resourceVersion=5")
            ),
            t("watch", "", "d", "pods", "")
        );
        assert_eq!(
            parse("GET", "/api/v1/pods", Some("watch=1")),
            t("watch", "", "", "pods", "")
        );
        assert_eq!(
            parse("GET", "/api/v1/pods", Some("watch=false")),
            t("list", "", "", "pods", "")
        );
        assert_eq!(
            parse("GET", "/apis/apps/v1/watch/namespaces/d/statefulsets", None),
            t("watch", "apps", "d", "statefulsets", "")
        );
    }

    #[test]
    fn a_name_field_selector_names_the_object() {
        assert_eq!(
            parse(
                "GET",
                "/apis/coordination.k8s.io/v1/namespaces/s/leases",
                Some("fieldSelector=metadata.name%3Dsroll&watch=true")
            ),
            t("watch", "coordination.k8s.io", "s", "leases", "sroll")
        );
    }

    #[test]
    fn writes_map_to_their_verbs() {
        assert_eq!(
            parse("POST", "/api/v1/namespaces/d/pods/web-0/eviction", None),
            t("create", "", "d", "pods/eviction", "web-0")
        );
        assert_eq!(
            parse(
                "PATCH",
                "/apis/sroll.io/v1alpha1/namespaces/d/statefulsetrollouts/r/status",
                None
            ),
            t("patch", "sroll.io", "d", "statefulsetrollouts/status", "r")
        );
        assert_eq!(
            parse(
                "PUT",
                "/apis/apps/v1/namespaces/d/statefulsets/web/scale",
                None
            ),
            t("update", "apps", "d", "statefulsets/scale", "web")
        );
        assert_eq!(
            parse("DELETE", "/api/v1/namespaces/d/pods", None),
            t("deletecollection", "", "d", "pods", "")
        );
        assert_eq!(
            parse("DELETE", "/api/v1/namespaces/d/pods/p", None),
            t("delete", "", "d", "pods", "p")
        );
    }

    #[test]
    fn namespaces_are_their_own_namespace() {
        assert_eq!(
            parse("GET", "/api/v1/namespaces/kube-system", None),
            t("get", "", "kube-system", "namespaces", "kube-system")
        );
        assert_eq!(
            parse("PUT", "/api/v1/namespaces/x/finalize", None),
            t("update", "", "x", "namespaces/finalize", "x")
        );
        assert_eq!(
            parse("GET", "/api/v1/namespaces", None),
            t("list", "", "", "namespaces", "")
        );
    }

    #[test]
    fn discovery_and_health_are_non_resource_requests() {
        for p in [
            "/healthz",
            "/apis",
            "/apis/apps",
            "/apis/apps/v1",
            "/api/v1",
            "/version",
        ] {
            let a = attributes("GET", p, None);
            assert!(!a.resource_request, "{p}");
            assert_eq!(a.verb, "get");
            assert_eq!(a.path, p);
        }
        assert_eq!(attributes("POST", "/sim/faults", None).verb, "post");
    }
}
