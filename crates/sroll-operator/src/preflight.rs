//! Start-up checks: the operator refuses to start, with a message a person can act on, when the
//! `StatefulsetRollout` CRD is missing or RBAC forbids a verb it needs.
//!
//! 1. `SelfSubjectAccessReview`s for every (verb, resource) of [`NEEDED`] in every watched namespace
//!    (skipped when the cluster does not serve `authorization.k8s.io`, as some test clusters do not).
//! 2. A `list` (limit 1) of each watched kind: a 404 on rollouts means the CRD is not installed; a
//!    403 names the forbidden verb and resource even where access reviews are unavailable.

use futures::future::try_join_all;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    authorization::v1::{ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec},
    core::v1::Pod,
    discovery::v1::EndpointSlice,
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Client, Resource,
    api::{ListParams, PostParams},
};
use serde::de::DeserializeOwned;
use sroll_api::StatefulsetRollout;

use crate::{Error, Result, error::api_code};

/// One permission the operator needs: `(verb, group, resource, subresource)`.
pub type Permission = (&'static str, &'static str, &'static str, &'static str);

/// Every permission the reconcile loop uses, per watched namespace.
pub const NEEDED: &[Permission] = &[
    ("list", sroll_api::GROUP, "statefulsetrollouts", ""),
    ("watch", sroll_api::GROUP, "statefulsetrollouts", ""),
    ("patch", sroll_api::GROUP, "statefulsetrollouts", "status"),
    ("list", "apps", "statefulsets", ""),
    ("watch", "apps", "statefulsets", ""),
    ("create", "apps", "statefulsets", ""),
    ("patch", "apps", "statefulsets", ""),
    ("delete", "apps", "statefulsets", ""),
    ("patch", "apps", "statefulsets", "status"),
    ("list", "", "pods", ""),
    ("watch", "", "pods", ""),
    ("delete", "", "pods", ""),
    ("create", "", "pods", "eviction"),
    ("update", "", "pods", ""),
    ("update", "", "pods", "status"),
    ("list", "apps", "controllerrevisions", ""),
    ("watch", "apps", "controllerrevisions", ""),
    ("list", "policy", "poddisruptionbudgets", ""),
    ("watch", "policy", "poddisruptionbudgets", ""),
    ("list", "discovery.k8s.io", "endpointslices", ""),
    ("watch", "discovery.k8s.io", "endpointslices", ""),
    // The CloneSet controller (clone_set.rs).
    ("list", sroll_api::GROUP, "clonesets", ""),
    ("watch", sroll_api::GROUP, "clonesets", ""),
    ("patch", sroll_api::GROUP, "clonesets", ""),
    ("patch", sroll_api::GROUP, "clonesets", "status"),
    ("create", "", "pods", ""),
    ("patch", "", "pods", ""),
    ("create", "apps", "controllerrevisions", ""),
    ("delete", "apps", "controllerrevisions", ""),
    ("list", "", "persistentvolumeclaims", ""),
    ("watch", "", "persistentvolumeclaims", ""),
    ("create", "", "persistentvolumeclaims", ""),
    ("delete", "", "persistentvolumeclaims", ""),
    ("create", "events.k8s.io", "events", ""),
    ("patch", "events.k8s.io", "events", ""),
];

/// Permissions on cluster-scoped resources, needed when the operator watches every namespace
/// (the SidecarSet controller and the webhook's SidecarSet cache run only then).
pub const NEEDED_CLUSTER_WIDE: &[Permission] = &[
    ("list", sroll_api::GROUP, "sidecarsets", ""),
    ("watch", sroll_api::GROUP, "sidecarsets", ""),
    ("patch", sroll_api::GROUP, "sidecarsets", "status"),
    ("list", "", "namespaces", ""),
    ("watch", "", "namespaces", ""),
];

/// Permissions on the leader-election Lease, in its namespace.
pub const NEEDED_LEASE: &[Permission] = &[
    ("get", "coordination.k8s.io", "leases", ""),
    ("create", "coordination.k8s.io", "leases", ""),
    ("update", "coordination.k8s.io", "leases", ""),
];

/// Permissions of the webhook server (when it runs): its certificate Secret, by name, in its
/// namespace (`create` cannot be limited to a name), and its mutating configuration by name
/// (cluster-scoped; `deploy/` ships it, so no `create`).
pub const NEEDED_WEBHOOK: &[(Permission, Option<&str>, bool)] = &[
    (("create", "", "secrets", ""), None, true),
    (
        ("get", "", "secrets", ""),
        Some(crate::webhook::certs::SECRET_NAME),
        true,
    ),
    (
        ("update", "", "secrets", ""),
        Some(crate::webhook::certs::SECRET_NAME),
        true,
    ),
    (
        (
            "get",
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
            "",
        ),
        Some(crate::webhook::configs::MUTATING),
        false,
    ),
    (
        (
            "update",
            "admissionregistration.k8s.io",
            "mutatingwebhookconfigurations",
            "",
        ),
        Some(crate::webhook::configs::MUTATING),
        false,
    ),
];

/// Permissions of the webhook server when the operator watches every namespace: the SidecarSet
/// validator's configuration by name (`deploy/` ships it).
pub const NEEDED_WEBHOOK_CLUSTER_WIDE: &[(Permission, Option<&str>, bool)] = &[
    (
        (
            "get",
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            "",
        ),
        Some(crate::webhook::configs::VALIDATING),
        false,
    ),
    (
        (
            "update",
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
            "",
        ),
        Some(crate::webhook::configs::VALIDATING),
        false,
    ),
];

fn describe(group: &str, resource: &str, subresource: &str) -> String {
    let mut r = resource.to_owned();
    if !subresource.is_empty() {
        r.push('/');
        r.push_str(subresource);
    }
    if !group.is_empty() {
        r.push('.');
        r.push_str(group);
    }
    r
}

fn scope(namespace: Option<&str>) -> String {
    namespace.map_or_else(
        || " in all namespaces".to_owned(),
        |ns| format!(" in namespace {ns}"),
    )
}

/// Runs every check. `namespaces` empty means all namespaces; `lease_namespace` is checked for the
/// Lease verbs when leader election is on, `webhook_namespace` for [`NEEDED_WEBHOOK`] when the
/// webhook server runs.
pub async fn check(
    client: &Client,
    namespaces: &[String],
    lease_namespace: Option<&str>,
    webhook_namespace: Option<&str>,
) -> Result<()> {
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    // Lists first: a missing CRD is the most common mistake and gets the most precise message.
    for ns in &scopes {
        probe_list::<StatefulsetRollout>(client, *ns).await?;
        probe_list::<StatefulSet>(client, *ns).await?;
        probe_list::<Pod>(client, *ns).await?;
        probe_list::<PodDisruptionBudget>(client, *ns).await?;
        probe_list::<EndpointSlice>(client, *ns).await?;
    }
    let mut reviews = Vec::new();
    for ns in &scopes {
        for p in NEEDED {
            reviews.push((*ns, *p));
        }
    }
    if namespaces.is_empty() {
        for p in NEEDED_CLUSTER_WIDE {
            reviews.push((None, *p));
        }
    }
    if let Some(ns) = lease_namespace {
        for p in NEEDED_LEASE {
            reviews.push((Some(ns), *p));
        }
    }
    let results = try_join_all(
        reviews
            .iter()
            .map(|(ns, p)| review(client.clone(), *ns, *p, None)),
    )
    .await?;
    for ((ns, (verb, group, resource, sub)), allowed) in reviews.iter().zip(results) {
        // `None`: access reviews are not served; the list probes above are all we can check.
        if allowed == Some(false) {
            return Err(Error::Forbidden {
                verb: (*verb).to_owned(),
                resource: describe(group, resource, sub),
                scope: scope(*ns),
            });
        }
    }
    if let Some(webhook_ns) = webhook_namespace {
        let cluster_wide: &[_] = if namespaces.is_empty() {
            NEEDED_WEBHOOK_CLUSTER_WIDE
        } else {
            &[]
        };
        for ((verb, group, resource, sub), name, namespaced) in
            NEEDED_WEBHOOK.iter().chain(cluster_wide)
        {
            let ns = namespaced.then_some(webhook_ns);
            if review(client.clone(), ns, (verb, group, resource, sub), *name).await? == Some(false)
            {
                return Err(Error::Forbidden {
                    verb: (*verb).to_owned(),
                    resource: match name {
                        Some(n) => format!("{} {n}", describe(group, resource, sub)),
                        None => describe(group, resource, sub),
                    },
                    scope: if *namespaced {
                        scope(ns)
                    } else {
                        String::new()
                    },
                });
            }
        }
    }
    Ok(())
}

async fn probe_list<K>(client: &Client, namespace: Option<&str>) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let dt = K::DynamicType::default();
            let kind = K::kind(&dt);
            match api_code(&e) {
                Some(404) if kind == "StatefulsetRollout" => Err(Error::CrdMissing),
                Some(403) => Err(Error::Forbidden {
                    verb: "list".into(),
                    resource: describe(&K::group(&dt), &K::plural(&dt), ""),
                    scope: scope(namespace),
                }),
                _ => Err(Error::Preflight {
                    check: "list",
                    source: e,
                }),
            }
        }
    }
}

/// `Some(allowed)`, or `None` when the cluster does not serve access reviews.
async fn review(
    client: Client,
    namespace: Option<&str>,
    p: Permission,
    name: Option<&str>,
) -> Result<Option<bool>> {
    let (verb, group, resource, subresource) = p;
    let ssar = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: namespace.map(str::to_owned),
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource: (!subresource.is_empty()).then(|| subresource.into()),
                name: name.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client);
    match api.create(&PostParams::default(), &ssar).await {
        Ok(r) => Ok(Some(r.status.is_some_and(|s| s.allowed))),
        Err(e) if matches!(api_code(&e), Some(403..=405)) => Ok(None),
        Err(source) => Err(Error::Preflight {
            check: "selfsubjectaccessreview",
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use axum::{
        Json, Router,
        http::StatusCode,
        response::{IntoResponse, Response},
        routing::{get, post},
    };
    use serde_json::{Value, json};

    use super::*;

    fn status(code: u16, reason: &str) -> Response {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("fake {reason}"), "reason": reason, "code": code
        });
        (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            Json(body),
        )
            .into_response()
    }

    fn empty_list() -> Response {
        Json(json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": []}))
            .into_response()
    }

    /// A fake API server: every list answers `lists(path)`; access reviews answer `allowed(body)`.
    fn fake(
        lists: impl Fn(&str) -> Response + Clone + Send + Sync + 'static,
        allowed: impl Fn(&Value) -> Option<bool> + Clone + Send + Sync + 'static,
    ) -> Client {
        let router = Router::new()
            .route(
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                post(move |Json(mut body): Json<Value>| async move {
                    match allowed(&body) {
                        Some(a) => {
                            body["status"] = json!({"allowed": a});
                            Json(body).into_response()
                        }
                        None => status(404, "NotFound"),
                    }
                }),
            )
            .fallback(get(
                move |uri: axum::http::Uri| async move { lists(uri.path()) },
            ));
        Client::new(router, "default")
    }

    #[tokio::test]
    async fn a_missing_crd_is_reported_with_the_install_command() {
        let client = fake(
            |path| {
                if path.contains("statefulsetrollouts") {
                    status(404, "NotFound")
                } else {
                    empty_list()
                }
            },
            |_| Some(true),
        );
        let err = check(&client, &[], None, None)
            .await
            .expect_err("must fail");
        assert!(matches!(err, Error::CrdMissing));
        assert_eq!(
            err.to_string(),
            "the StatefulsetRollout CRD is not installed: run `sroll crd | kubectl apply -f -`"
        );
    }

    #[tokio::test]
    async fn a_forbidden_list_names_the_verb_and_resource() {
        let client = fake(
            |path| {
                if path.ends_with("/pods") {
                    status(403, "Forbidden")
                } else {
                    empty_list()
                }
            },
            |_| None,
        );
        let err = check(&client, &["team-a".into()], None, None)
            .await
            .expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "the operator is not allowed to list pods in namespace team-a: grant it in the operator's (Cluster)Role"
        );
    }

    #[tokio::test]
    async fn a_denied_access_review_names_the_verb_and_subresource() {
        let client = fake(
            |_| empty_list(),
            |body| {
                let attrs = &body["spec"]["resourceAttributes"];
                Some(!(attrs["verb"] == "create" && attrs["subresource"] == "eviction"))
            },
        );
        let err = check(&client, &[], None, None)
            .await
            .expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "the operator is not allowed to create pods/eviction in all namespaces: grant it in the operator's (Cluster)Role"
        );
    }

    #[tokio::test]
    async fn every_check_passing_starts_the_operator() {
        let client = fake(|_| empty_list(), |_| Some(true));
        check(&client, &["a".into(), "b".into()], Some("ops"), None)
            .await
            .expect("all allowed");
    }
}
