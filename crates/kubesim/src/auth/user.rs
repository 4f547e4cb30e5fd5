//! Authenticated users (`user.Info`, `staging/src/k8s.io/apiserver/pkg/authentication/user`).

/// `system:masters`: the group the privileged-group authorizer allows everything
/// (`authorizerfactory.NewPrivilegedGroups` in kube-apiserver's authorizer chain).
pub const SYSTEM_MASTERS: &str = "system:masters";
/// Every authenticated user is in this group.
pub const SYSTEM_AUTHENTICATED: &str = "system:authenticated";
/// The anonymous user's group.
pub const SYSTEM_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The anonymous user's name.
pub const ANONYMOUS: &str = "system:anonymous";
/// Group of every ServiceAccount.
pub const SYSTEM_SERVICEACCOUNTS: &str = "system:serviceaccounts";

/// An authenticated (or anonymous) user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    /// User name (`system:serviceaccount:ns:name`, `kubesim-admin`).
    pub name: String,
    /// Groups.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The ServiceAccount user `system:serviceaccount:<ns>:<name>` with its groups
    /// (`staging/src/k8s.io/apiserver/pkg/authentication/serviceaccount/util.go`).
    pub fn service_account(namespace: &str, name: &str) -> Self {
        UserInfo {
            name: service_account_username(namespace, name),
            groups: vec![
                SYSTEM_SERVICEACCOUNTS.to_owned(),
                format!("{SYSTEM_SERVICEACCOUNTS}:{namespace}"),
                SYSTEM_AUTHENTICATED.to_owned(),
            ],
        }
    }

    /// The harness's administrator (`system:masters`).
    pub fn admin() -> Self {
        UserInfo {
            name: "kubesim-admin".to_owned(),
            groups: vec![SYSTEM_MASTERS.to_owned(), SYSTEM_AUTHENTICATED.to_owned()],
        }
    }

    /// `system:anonymous` in `system:unauthenticated`.
    pub fn anonymous() -> Self {
        UserInfo {
            name: ANONYMOUS.to_owned(),
            groups: vec![SYSTEM_UNAUTHENTICATED.to_owned()],
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// `system:serviceaccount:<ns>:<name>`.
pub fn service_account_username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}
