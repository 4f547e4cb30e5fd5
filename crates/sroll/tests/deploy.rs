//! The install manifests under `deploy/` render with kubectl's kustomize and ask for no wildcard
//! power. (Applying them to kubesim and running a rollout with the ServiceAccount's token only is
//! the RBAC scenario of the install issue.)

use std::process::Command;

fn kustomize(dir: &str) -> Option<Vec<serde_json::Value>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../");
    let out = match Command::new("kubectl")
        .args(["kustomize", &format!("{root}{dir}")])
        .output()
    {
        Ok(out) => out,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: kubectl not found ({e})");
            return None;
        }
        Err(e) => panic!("kubectl is required in CI: {e}"),
    };
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    Some(
        serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML document"))
            .collect(),
    )
}

fn kinds(objs: &[serde_json::Value]) -> Vec<String> {
    let mut k: Vec<String> = objs
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    k.sort();
    k
}

#[test]
fn cluster_install_renders_every_piece() {
    let Some(objs) = kustomize("deploy") else {
        return;
    };
    assert_eq!(
        kinds(&objs),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "CustomResourceDefinition",
            "Deployment",
            "MutatingWebhookConfiguration",
            "Namespace",
            "PodDisruptionBudget",
            "Role",
            "Role",
            "RoleBinding",
            "RoleBinding",
            "Service",
            "Service",
            "ServiceAccount",
            "ValidatingWebhookConfiguration"
        ]
    );
    let deployment = objs
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert!(c["livenessProbe"]["httpGet"]["path"] == "/healthz");
    assert!(c["readinessProbe"]["httpGet"]["path"] == "/readyz");
    assert!(c["resources"]["requests"]["memory"].is_string());
}

#[test]
fn namespaced_install_watches_only_its_namespace() {
    let Some(objs) = kustomize("deploy/overlays/namespaced") else {
        return;
    };
    let deployment = objs
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("deployment");
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args");
    assert!(
        args.iter().any(|a| a == "--namespace=sroll-system"),
        "{args:?}"
    );
    // Nothing cluster-wide for the workloads: their rules are a Role in the operator's namespace.
    // The one ClusterRole is the webhook's, and every rule of it names its objects.
    let cluster_roles: Vec<_> = objs.iter().filter(|o| o["kind"] == "ClusterRole").collect();
    assert_eq!(
        cluster_roles
            .iter()
            .map(|r| r["metadata"]["name"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["sroll-operator-webhook"],
        "the namespaced install must not grant cluster-wide access beyond its webhook configuration"
    );
    let rules = cluster_roles[0]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        rules[0]["resources"],
        serde_json::json!(["mutatingwebhookconfigurations"])
    );
    assert_eq!(
        rules[0]["resourceNames"],
        serde_json::json!(["sroll-mutating-webhooks"])
    );
    // SidecarSets are not served by a namespaced install: no configuration refuses their writes.
    assert!(
        !objs
            .iter()
            .any(|o| o["kind"] == "ValidatingWebhookConfiguration"),
        "the namespaced install must not ship the SidecarSet validating webhook"
    );
    assert!(
        objs.iter()
            .any(|o| o["kind"] == "Role" && o["metadata"]["name"] == "sroll-operator")
    );
}

#[test]
fn rbac_has_no_wildcards() {
    for dir in ["deploy", "deploy/overlays/namespaced"] {
        let Some(objs) = kustomize(dir) else {
            return;
        };
        for role in objs
            .iter()
            .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
        {
            for rule in role["rules"].as_array().expect("rules") {
                for field in ["verbs", "resources", "apiGroups"] {
                    let values = rule[field].as_array().expect(field);
                    assert!(
                        !values.iter().any(|v| v == "*"),
                        "{dir}: {} has a wildcard in {field}: {rule}",
                        role["metadata"]["name"]
                    );
                }
            }
        }
    }
}

#[test]
fn deployment_args_are_flags_sroll_operator_accepts() {
    for dir in ["deploy", "deploy/overlays/namespaced"] {
        let Some(objs) = kustomize(dir) else {
            return;
        };
        let deployment = objs
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("deployment");
        let args: Vec<String> = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_owned())
            .collect();
        assert_eq!(args[0], "operator");
        // clap parses left to right: an unknown flag fails before `--help` is reached.
        let out = Command::new(env!("CARGO_BIN_EXE_sroll"))
            .args(&args)
            .arg("--help")
            .output()
            .expect("sroll runs");
        assert!(
            out.status.success(),
            "{dir}: `sroll {}` is rejected: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
