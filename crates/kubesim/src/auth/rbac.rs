//! RBAC evaluation, pure: a [`Policy`] snapshot (Roles, ClusterRoles and their bindings) decides
//! [`Attributes`] like upstream's RBAC authorizer.
//!
//! - Rule matching follows `pkg/apis/rbac/v1/evaluation_helpers.go` (`VerbMatches`,
//!   `APIGroupMatches`, `ResourceMatches` with `*/subresource`, `ResourceNameMatches`,
//!   `NonResourceURLMatches` with a trailing `*`) and `RuleAllows` in
//!   `plugin/pkg/auth/authorizer/rbac/rbac.go`.
//! - Rules are collected like `VisitRulesFor` in `pkg/registry/rbac/validation/rule.go`: every
//!   ClusterRoleBinding that applies to the user (its ClusterRole's rules at cluster scope, which
//!   also cover every namespace), then, for a namespaced request, every RoleBinding in that
//!   namespace (its Role, or a ClusterRole's rules limited to the namespace). Subjects match
//!   like `appliesToUser` (User by name, Group by membership, ServiceAccount by
//!   `system:serviceaccount:<ns>:<name>`, the namespace defaulting to the binding's).
//! - A binding to a missing role is an evaluation error that becomes the denial's reason
//!   (`RBAC: clusterrole.rbac.authorization.k8s.io "x" not found`), as upstream.
//! - `system:masters` is allowed everything before RBAC is asked (the privileged-group
//!   authorizer of kube-apiserver's union authorizer).
//!
//! Simplification: `aggregationRule` ClusterRoles are not aggregated (upstream a controller
//! fills their rules); their stored `rules` are used as they are.

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use super::{
    requestinfo::Attributes,
    user::{SYSTEM_MASTERS, UserInfo, service_account_username},
};

/// A snapshot of the RBAC objects.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// ClusterRoles.
    pub cluster_roles: Vec<ClusterRole>,
    /// ClusterRoleBindings.
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    /// Roles (all namespaces).
    pub roles: Vec<Role>,
    /// RoleBindings (all namespaces).
    pub role_bindings: Vec<RoleBinding>,
}

/// An authorization decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// Why (the allowing binding, or evaluation errors of a denial; may be empty).
    pub reason: String,
}

/// `VerbMatches`.
pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == "*" || v == verb)
}

/// `APIGroupMatches`.
pub fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups
        .iter()
        .flatten()
        .any(|g| g == "*" || g == group)
}

/// `ResourceMatches`: `*`, an exact `resource[/subresource]`, or `*/subresource`.
pub fn resource_matches(rule: &PolicyRule, combined: &str, subresource: &str) -> bool {
    rule.resources.iter().flatten().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty()
                && r.len() == subresource.len() + 2
                && r.starts_with("*/")
                && r.ends_with(subresource))
    })
}

/// `ResourceNameMatches`: no names means every name.
pub fn resource_name_matches(rule: &PolicyRule, name: &str) -> bool {
    match &rule.resource_names {
        None => true,
        Some(names) if names.is_empty() => true,
        Some(names) => names.iter().any(|n| n == name),
    }
}

/// `NonResourceURLMatches`: `*`, exact, or a prefix ending in `*`.
pub fn non_resource_url_matches(rule: &PolicyRule, path: &str) -> bool {
    rule.non_resource_urls.iter().flatten().any(|u| {
        u == "*" || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*')))
    })
}

/// `RuleAllows`.
pub fn rule_allows(a: &Attributes, rule: &PolicyRule) -> bool {
    if a.resource_request {
        verb_matches(rule, &a.verb)
            && api_group_matches(rule, &a.api_group)
            && resource_matches(rule, &a.combined_resource(), &a.subresource)
            && resource_name_matches(rule, &a.name)
    } else {
        verb_matches(rule, &a.verb) && non_resource_url_matches(rule, &a.path)
    }
}

/// `appliesToUser`: whether `subject` names `user` (`namespace` is the binding's, `""` for a
/// ClusterRoleBinding).
pub fn applies_to_user(user: &UserInfo, subject: &Subject, namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.in_group(&subject.name),
        "ServiceAccount" => {
            let ns = subject
                .namespace
                .as_deref()
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace);
            !ns.is_empty() && user.name == service_account_username(ns, &subject.name)
        }
        _ => false,
    }
}

fn applies(user: &UserInfo, subjects: Option<&Vec<Subject>>, namespace: &str) -> bool {
    subjects
        .into_iter()
        .flatten()
        .any(|s| applies_to_user(user, s, namespace))
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

fn ns_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or_default()
}

impl Policy {
    /// `GetRoleReferenceRules`: the rules a binding's `roleRef` grants, or the evaluation error.
    fn role_ref_rules(&self, r: &RoleRef, namespace: &str) -> Result<&[PolicyRule], String> {
        match r.kind.as_str() {
            "ClusterRole" => self
                .cluster_roles
                .iter()
                .find(|c| name_of(&c.metadata) == r.name)
                .map(|c| c.rules.as_deref().unwrap_or_default())
                .ok_or_else(|| {
                    format!(
                        "clusterrole.rbac.authorization.k8s.io \"{}\" not found",
                        r.name
                    )
                }),
            "Role" => self
                .roles
                .iter()
                .find(|x| name_of(&x.metadata) == r.name && ns_of(&x.metadata) == namespace)
                .map(|x| x.rules.as_deref().unwrap_or_default())
                .ok_or_else(|| format!("role.rbac.authorization.k8s.io \"{}\" not found", r.name)),
            other => Err(format!("unsupported role reference kind: \"{other}\"")),
        }
    }

    /// Decides `a` (`RBACAuthorizer.Authorize` behind the privileged-group authorizer).
    pub fn authorize(&self, a: &Attributes) -> Decision {
        if a.user.in_group(SYSTEM_MASTERS) {
            return Decision {
                allowed: true,
                reason: String::new(),
            };
        }
        let mut errors: Vec<String> = Vec::new();
        for b in &self.cluster_role_bindings {
            if !applies(&a.user, b.subjects.as_ref(), "") {
                continue;
            }
            match self.role_ref_rules(&b.role_ref, "") {
                Ok(rules) => {
                    if rules.iter().any(|r| rule_allows(a, r)) {
                        return Decision {
                            allowed: true,
                            reason: format!(
                                "RBAC: allowed by ClusterRoleBinding \"{}\" of ClusterRole \"{}\" to User \"{}\"",
                                name_of(&b.metadata),
                                b.role_ref.name,
                                a.user.name
                            ),
                        };
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if !a.namespace.is_empty() {
            for b in self
                .role_bindings
                .iter()
                .filter(|b| ns_of(&b.metadata) == a.namespace)
            {
                if !applies(&a.user, b.subjects.as_ref(), &a.namespace) {
                    continue;
                }
                match self.role_ref_rules(&b.role_ref, &a.namespace) {
                    Ok(rules) => {
                        if rules.iter().any(|r| rule_allows(a, r)) {
                            return Decision {
                                allowed: true,
                                reason: format!(
                                    "RBAC: allowed by RoleBinding \"{}/{}\" of {} \"{}\" to User \"{}\"",
                                    name_of(&b.metadata),
                                    a.namespace,
                                    b.role_ref.kind,
                                    b.role_ref.name,
                                    a.user.name
                                ),
                            };
                        }
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        // utilerrors.NewAggregate: one error prints alone, several as "[a, b]".
        let reason = match errors.len() {
            0 => String::new(),
            1 => format!("RBAC: {}", errors[0]),
            _ => format!("RBAC: [{}]", errors.join(", ")),
        };
        Decision {
            allowed: false,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::auth::requestinfo::attributes;

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: Some(groups.iter().map(|s| (*s).into()).collect()),
            resources: Some(resources.iter().map(|s| (*s).into()).collect()),
            verbs: verbs.iter().map(|s| (*s).into()).collect(),
            ..PolicyRule::default()
        }
    }

    fn meta(ns: Option<&str>, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: ns.map(Into::into),
            ..ObjectMeta::default()
        }
    }

    fn sa(ns: Option<&str>, name: &str) -> Subject {
        Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: ns.map(Into::into),
            ..Subject::default()
        }
    }

    fn cluster_policy(rules: Vec<PolicyRule>) -> Policy {
        Policy {
            cluster_roles: vec![ClusterRole {
                metadata: meta(None, "op"),
                rules: Some(rules),
                ..ClusterRole::default()
            }],
            cluster_role_bindings: vec![ClusterRoleBinding {
                metadata: meta(None, "op"),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: "op".into(),
                },
                subjects: Some(vec![sa(Some("sys"), "op")]),
            }],
            ..Policy::default()
        }
    }

    fn req(method: &str, path: &str, q: Option<&str>, user: &UserInfo) -> Attributes {
        Attributes {
            user: user.clone(),
            ..attributes(method, path, q)
        }
    }

    #[test]
    fn verbs_groups_and_resources_must_all_match() {
        let p = cluster_policy(vec![rule(&["apps"], &["statefulsets"], &["get", "list"])]);
        let u = UserInfo::service_account("sys", "op");
        let ok = |m, path, q| p.authorize(&req(m, path, q, &u)).allowed;
        assert!(ok(
            "GET",
            "/apis/apps/v1/namespaces/d/statefulsets/web",
            None
        ));
        assert!(ok("GET", "/apis/apps/v1/statefulsets", None));
        assert!(!ok("GET", "/apis/apps/v1/statefulsets", Some("watch=true")));
        assert!(!ok(
            "DELETE",
            "/apis/apps/v1/namespaces/d/statefulsets/web",
            None
        ));
        // A subresource needs its own rule.
        assert!(!ok(
            "GET",
            "/apis/apps/v1/namespaces/d/statefulsets/web/status",
            None
        ));
        // Another group with the same resource name.
        assert!(!ok(
            "GET",
            "/apis/other.io/v1/namespaces/d/statefulsets/web",
            None
        ));
    }

    #[test]
    fn subresource_rules_and_star_slash_subresource() {
        let p = cluster_policy(vec![
            rule(&[""], &["pods/eviction"], &["create"]),
            rule(&["*"], &["*/scale"], &["update"]),
        ]);
        let u = UserInfo::service_account("sys", "op");
        let ok = |m, path| p.authorize(&req(m, path, None, &u)).allowed;
        assert!(ok("POST", "/api/v1/namespaces/d/pods/p/eviction"));
        assert!(!ok("POST", "/api/v1/namespaces/d/pods"));
        assert!(!ok("DELETE", "/api/v1/namespaces/d/pods/p"));
        assert!(ok(
            "PUT",
            "/apis/apps/v1/namespaces/d/statefulsets/web/scale"
        ));
        assert!(ok("PUT", "/apis/apps/v1/namespaces/d/deployments/x/scale"));
        assert!(!ok(
            "PUT",
            "/apis/apps/v1/namespaces/d/deployments/x/status"
        ));
    }

    #[test]
    fn wildcard_verbs_and_resource_names() {
        let mut r = rule(&["coordination.k8s.io"], &["leases"], &["*"]);
        r.resource_names = Some(vec!["sroll".into()]);
        let p = cluster_policy(vec![r]);
        let u = UserInfo::service_account("sys", "op");
        let ok = |m, path, q| p.authorize(&req(m, path, q, &u)).allowed;
        assert!(ok(
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/s/leases/sroll",
            None
        ));
        assert!(!ok(
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/s/leases/other",
            None
        ));
        // A list has no name unless a metadata.name field selector pins one.
        assert!(!ok(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/s/leases",
            None
        ));
        assert!(ok(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/s/leases",
            Some("fieldSelector=metadata.name%3Dsroll")
        ));
    }

    #[test]
    fn role_bindings_only_grant_in_their_namespace() {
        let policy = Policy {
            roles: vec![Role {
                metadata: meta(Some("team"), "r"),
                rules: Some(vec![rule(&[""], &["pods"], &["list"])]),
            }],
            cluster_roles: vec![ClusterRole {
                metadata: meta(None, "view-secrets"),
                rules: Some(vec![rule(&[""], &["secrets"], &["get"])]),
                ..ClusterRole::default()
            }],
            role_bindings: vec![
                RoleBinding {
                    metadata: meta(Some("team"), "rb"),
                    role_ref: RoleRef {
                        api_group: "rbac.authorization.k8s.io".into(),
                        kind: "Role".into(),
                        name: "r".into(),
                    },
                    // No namespace on the subject: the binding's namespace.
                    subjects: Some(vec![sa(None, "op")]),
                },
                RoleBinding {
                    metadata: meta(Some("team"), "rb2"),
                    role_ref: RoleRef {
                        api_group: "rbac.authorization.k8s.io".into(),
                        kind: "ClusterRole".into(),
                        name: "view-secrets".into(),
                    },
                    subjects: Some(vec![sa(Some("team"), "op")]),
                },
            ],
            ..Policy::default()
        };
        let u = UserInfo::service_account("team", "op");
        let ok = |m, path| policy.authorize(&req(m, path, None, &u)).allowed;
        assert!(ok("GET", "/api/v1/namespaces/team/pods"));
        assert!(!ok("GET", "/api/v1/namespaces/other/pods"));
        assert!(!ok("GET", "/api/v1/pods"));
        assert!(ok("GET", "/api/v1/namespaces/team/secrets/s"));
        assert!(!ok("GET", "/api/v1/namespaces/other/secrets/s"));
        let stranger = UserInfo::service_account("other", "op");
        assert!(
            !policy
                .authorize(&req("GET", "/api/v1/namespaces/team/pods", None, &stranger))
                .allowed
        );
    }

    #[test]
    fn groups_users_masters_and_non_resource_urls() {
        let policy = Policy {
            cluster_roles: vec![ClusterRole {
                metadata: meta(None, "discovery"),
                rules: Some(vec![PolicyRule {
                    non_resource_urls: Some(vec!["/apis/*".into(), "/healthz".into()]),
                    verbs: vec!["get".into()],
                    ..PolicyRule::default()
                }]),
                ..ClusterRole::default()
            }],
            cluster_role_bindings: vec![ClusterRoleBinding {
                metadata: meta(None, "discovery"),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: "discovery".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "Group".into(),
                    name: "system:authenticated".into(),
                    ..Subject::default()
                }]),
            }],
            ..Policy::default()
        };
        let u = UserInfo::service_account("a", "b");
        let ok = |m, path, u: &UserInfo| policy.authorize(&req(m, path, None, u)).allowed;
        assert!(ok("GET", "/apis/apps/v1", &u));
        assert!(ok("GET", "/healthz", &u));
        assert!(!ok("GET", "/healthz/etcd", &u));
        assert!(!ok("POST", "/healthz", &u));
        assert!(!ok("GET", "/healthz", &UserInfo::anonymous()));
        assert!(ok(
            "DELETE",
            "/api/v1/namespaces/x/pods",
            &UserInfo::admin()
        ));
    }

    #[test]
    fn a_binding_to_a_missing_role_is_the_reason_of_the_denial() {
        let mut p = cluster_policy(vec![]);
        p.cluster_roles.clear();
        let d = p.authorize(&req(
            "GET",
            "/api/v1/pods",
            None,
            &UserInfo::service_account("sys", "op"),
        ));
        assert!(!d.allowed);
        assert_eq!(
            d.reason,
            "RBAC: clusterrole.rbac.authorization.k8s.io \"op\" not found"
        );
    }
}
