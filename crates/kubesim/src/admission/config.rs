//! `MutatingWebhookConfiguration` and `ValidatingWebhookConfiguration`
//! (admissionregistration.k8s.io/v1): defaults, validation, and the compiled
//! form the dispatcher works from.
//!
//! Defaults follow `pkg/apis/admissionregistration/v1/defaults.go`
//! (`failurePolicy: Fail`, `matchPolicy: Equivalent`, empty selectors,
//! `timeoutSeconds: 10`, `reinvocationPolicy: Never`, rule `scope: "*"`,
//! service `port: 443`). Validation follows
//! `pkg/apis/admissionregistration/validation/validation.go`
//! (`ValidateMutatingWebhookConfiguration`, `ValidateValidatingWebhookConfiguration`)
//! and `staging/src/k8s.io/apiserver/pkg/util/webhook/validation.go`
//! (`ValidateWebhookURL`, `ValidateWebhookService`). Simplifications: the
//! update-time relaxations of `Validate…Update` (which keep accepting an
//! old configuration's now-invalid values) are not made: an update is
//! validated as a create; label selectors are checked for their operators
//! only; `caBundle` is not checked here (upstream does not either: a bundle
//! without a PEM certificate fails at call time, see [`super::client`]).

use std::{sync::Arc, time::Duration};

use base64::Engine;
use kube_cel::cel::Program;
use serde_json::{Value, json};

use crate::{api::Cause, registry::ResourceDescriptor, selector::LabelSelector};

/// The API group of the webhook configurations.
pub const GROUP: &str = "admissionregistration.k8s.io";

/// Whether `d` is one of the two webhook configuration resources.
pub fn is_configuration(d: &ResourceDescriptor) -> bool {
    d.group == GROUP
        && (d.kind == "MutatingWebhookConfiguration" || d.kind == "ValidatingWebhookConfiguration")
}

fn set_default(m: &mut serde_json::Map<String, Value>, k: &str, v: Value) {
    if m.get(k).is_none_or(Value::is_null) {
        m.insert(k.into(), v);
    }
}

/// `SetDefaults_MutatingWebhook` / `SetDefaults_ValidatingWebhook` /
/// `SetDefaults_Rule` / `SetDefaults_ServiceReference`.
pub fn apply_defaults(d: &ResourceDescriptor, obj: &mut Value) {
    if !is_configuration(d) {
        return;
    }
    let mutating = d.kind == "MutatingWebhookConfiguration";
    let Some(hooks) = obj.get_mut("webhooks").and_then(Value::as_array_mut) else {
        return;
    };
    for h in hooks.iter_mut().filter_map(Value::as_object_mut) {
        set_default(h, "failurePolicy", json!("Fail"));
        set_default(h, "matchPolicy", json!("Equivalent"));
        set_default(h, "namespaceSelector", json!({}));
        set_default(h, "objectSelector", json!({}));
        set_default(h, "timeoutSeconds", json!(10));
        if mutating {
            set_default(h, "reinvocationPolicy", json!("Never"));
        }
        for r in h
            .get_mut("rules")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            set_default(r, "scope", json!("*"));
        }
        if let Some(svc) = h
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .and_then(Value::as_object_mut)
        {
            set_default(svc, "port", json!(443));
        }
    }
}

// ------------------------------------------------------------ validation

fn quote(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn go_list(v: &[String]) -> String {
    format!(
        "[]string{{{}}}",
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn required(field: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueRequired".into(),
        message: if detail.is_empty() {
            "Required value".into()
        } else {
            format!("Required value: {detail}")
        },
        field: field.into(),
    }
}

fn invalid(field: &str, value: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {value}: {detail}"),
        field: field.into(),
    }
}

fn not_supported(field: &str, value: &Value, supported: &[&str]) -> Cause {
    let list = supported
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    Cause {
        reason: "FieldValueNotSupported".into(),
        message: format!(
            "Unsupported value: {}: supported values: {list}",
            quote(v_or_empty(value))
        ),
        field: field.into(),
    }
}

fn v_or_empty(v: &Value) -> &Value {
    static EMPTY: Value = Value::String(String::new());
    if v.is_null() { &EMPTY } else { v }
}

fn duplicate(field: &str, value: &str) -> Cause {
    Cause {
        reason: "FieldValueDuplicate".into(),
        message: format!("Duplicate value: {value:?}"),
        field: field.into(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

use crate::api::validation::{is_label, is_subdomain};

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// `utilvalidation.IsFullyQualifiedName`: a subdomain of at least three segments.
fn fully_qualified_name(field: &str, name: &str, out: &mut Vec<Cause>) {
    if name.is_empty() {
        out.push(required(field, ""));
        return;
    }
    if !is_subdomain(name) {
        out.push(invalid(field, &format!("{name:?}"), SUBDOMAIN_MSG));
        return;
    }
    if name.split('.').count() < 3 {
        out.push(invalid(
            field,
            &format!("{name:?}"),
            "should be a domain with at least three segments separated by dots",
        ));
    }
}

/// `validation.IsQualifiedName` (match condition names).
fn qualified_name(field: &str, name: &str, out: &mut Vec<Cause>) {
    let (prefix, n) = match name.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, name),
    };
    let ok_name = !n.is_empty()
        && n.len() <= 63
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && n.starts_with(|c: char| c.is_ascii_alphanumeric())
        && n.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !ok_name || prefix.is_some_and(|p| !is_subdomain(p)) {
        out.push(invalid(
            field,
            &format!("{name:?}"),
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ));
    }
}

fn validate_resources(resources: &[String], field: &str, out: &mut Vec<Cause>) {
    if resources.is_empty() {
        out.push(required(field, ""));
    }
    let mut wildcard_sub_of: Vec<&str> = vec![];
    let mut wildcard_res_for: Vec<&str> = vec![];
    let (mut double, mut single, mut plain) = (false, false, false);
    for (i, rs) in resources.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if rs.is_empty() {
            out.push(required(&at, ""));
            continue;
        }
        double |= rs == "*/*";
        single |= rs == "*";
        let Some((res, sub)) = rs.split_once('/') else {
            plain = rs != "*";
            continue;
        };
        if wildcard_sub_of.contains(&res) {
            out.push(invalid(
                &at,
                &format!("{rs:?}"),
                &format!("if '{res}/*' is present, must not specify {rs}"),
            ));
        }
        if wildcard_res_for.contains(&sub) {
            out.push(invalid(
                &at,
                &format!("{rs:?}"),
                &format!("if '*/{sub}' is present, must not specify {rs}"),
            ));
        }
        if sub == "*" {
            wildcard_sub_of.push(res);
        }
        if res == "*" {
            wildcard_res_for.push(sub);
        }
    }
    if resources.len() > 1 && double {
        out.push(invalid(
            field,
            &go_list(resources),
            "if '*/*' is present, must not specify other resources",
        ));
    }
    if single && plain {
        out.push(invalid(
            field,
            &go_list(resources),
            "if '*' is present, must not specify other resources without subresources",
        ));
    }
}

fn validate_rule(r: &Value, field: &str, out: &mut Vec<Cause>) {
    let ops = strings(&r["operations"]);
    if ops.is_empty() {
        out.push(required(&format!("{field}.operations"), ""));
    }
    if ops.len() > 1 && ops.iter().any(|o| o == "*") {
        out.push(invalid(
            &format!("{field}.operations"),
            &go_list(&ops),
            "if '*' is present, must not specify other operations",
        ));
    }
    for (i, o) in ops.iter().enumerate() {
        if !["*", "CONNECT", "CREATE", "DELETE", "UPDATE"].contains(&o.as_str()) {
            out.push(not_supported(
                &format!("{field}.operations[{i}]"),
                &json!(o),
                &["*", "CONNECT", "CREATE", "DELETE", "UPDATE"],
            ));
        }
    }
    let groups = strings(&r["apiGroups"]);
    if groups.is_empty() {
        out.push(required(&format!("{field}.apiGroups"), ""));
    }
    if groups.len() > 1 && groups.iter().any(|g| g == "*") {
        out.push(invalid(
            &format!("{field}.apiGroups"),
            &go_list(&groups),
            "if '*' is present, must not specify other API groups",
        ));
    }
    let versions = strings(&r["apiVersions"]);
    if versions.is_empty() {
        out.push(required(&format!("{field}.apiVersions"), ""));
    }
    if versions.len() > 1 && versions.iter().any(|g| g == "*") {
        out.push(invalid(
            &format!("{field}.apiVersions"),
            &go_list(&versions),
            "if '*' is present, must not specify other API versions",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v.is_empty() {
            out.push(required(&format!("{field}.apiVersions[{i}]"), ""));
        }
    }
    validate_resources(
        &strings(&r["resources"]),
        &format!("{field}.resources"),
        out,
    );
    let scope = &r["scope"];
    if !scope.is_null() && !["*", "Cluster", "Namespaced"].contains(&scope.as_str().unwrap_or("?"))
    {
        out.push(not_supported(
            &format!("{field}.scope"),
            scope,
            &["*", "Cluster", "Namespaced"],
        ));
    }
}

fn validate_review_versions(v: &Value, field: &str, out: &mut Vec<Cause>) {
    let versions = strings(v);
    if versions.is_empty() {
        out.push(required(field, "must specify one of v1, v1beta1"));
        return;
    }
    let mut seen: Vec<&str> = vec![];
    for (i, ver) in versions.iter().enumerate() {
        if seen.contains(&ver.as_str()) {
            out.push(invalid(
                &format!("{field}[{i}]"),
                &format!("{ver:?}"),
                "duplicate version",
            ));
            continue;
        }
        seen.push(ver);
        if !is_label(ver) || !ver.starts_with(|c: char| c.is_ascii_lowercase()) {
            out.push(invalid(
                &format!("{field}[{i}]"),
                &format!("{ver:?}"),
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
            ));
        }
    }
    if !versions.iter().any(|v| v == "v1" || v == "v1beta1") {
        out.push(invalid(
            field,
            &go_list(&versions),
            "must include at least one of v1, v1beta1",
        ));
    }
}

/// `ValidateWebhookURL(…, forceHttps=true)`.
fn validate_url(url: &str, field: &str, out: &mut Vec<Cause>) {
    const FORM: &str = "; desired format: https://host[/path]";
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("", url),
    };
    if scheme != "https" {
        out.push(invalid(
            field,
            &format!("{scheme:?}"),
            &format!("'https' is the only allowed URL scheme{FORM}"),
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() || !url.contains("://") {
        out.push(invalid(
            field,
            &format!("{host:?}"),
            &format!("host must be provided{FORM}"),
        ));
    }
    if let Some(u) = user {
        out.push(invalid(
            field,
            &format!("{u:?}"),
            "user information is not permitted in the URL",
        ));
    }
    if let Some((_, frag)) = rest.split_once('#') {
        out.push(invalid(
            field,
            &format!("{frag:?}"),
            "fragments are not permitted in the URL",
        ));
    }
    let before_frag = rest.split('#').next().unwrap_or_default();
    if let Some((_, q)) = before_frag.split_once('?')
        && !q.is_empty()
    {
        out.push(invalid(
            field,
            &format!("{q:?}"),
            "query parameters are not permitted in the URL",
        ));
    }
}

/// `ValidateWebhookService`.
fn validate_service(svc: &Value, field: &str, out: &mut Vec<Cause>) {
    if svc["name"].as_str().unwrap_or_default().is_empty() {
        out.push(required(
            &format!("{field}.name"),
            "service name is required",
        ));
    }
    if svc["namespace"].as_str().unwrap_or_default().is_empty() {
        out.push(required(
            &format!("{field}.namespace"),
            "service namespace is required",
        ));
    }
    let port = svc["port"].as_i64().unwrap_or(443);
    if !(1..=65535).contains(&port) {
        out.push(invalid(
            &format!("{field}.port"),
            &port.to_string(),
            "port is not valid: must be between 1 and 65535, inclusive",
        ));
    }
    let Some(path) = svc["path"].as_str() else {
        return;
    };
    if path.is_empty() || path == "/" {
        return;
    }
    let at = format!("{field}.path");
    if path == "//" {
        out.push(invalid(
            &at,
            &format!("{path:?}"),
            "segment[0] may not be empty",
        ));
        return;
    }
    if !path.starts_with('/') {
        out.push(invalid(&at, &format!("{path:?}"), "must start with a '/'"));
    }
    let trimmed = path.get(1..).unwrap_or_default();
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    for (i, step) in trimmed.split('/').enumerate() {
        if step.is_empty() {
            out.push(invalid(
                &at,
                &format!("{path:?}"),
                &format!("segment[{i}] may not be empty"),
            ));
        } else if !is_subdomain(step) {
            out.push(invalid(
                &at,
                &format!("{path:?}"),
                &format!("segment[{i}]: {SUBDOMAIN_MSG}"),
            ));
        }
    }
}

fn validate_selector(v: &Value, field: &str, out: &mut Vec<Cause>) {
    for (i, e) in v["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let op = e["operator"].as_str().unwrap_or_default();
        if !["In", "NotIn", "Exists", "DoesNotExist"].contains(&op) {
            out.push(not_supported(
                &format!("{field}.matchExpressions[{i}].operator"),
                &e["operator"],
                &["In", "NotIn", "Exists", "DoesNotExist"],
            ));
        }
    }
}

fn validate_match_conditions(v: &Value, field: &str, out: &mut Vec<Cause>) {
    let conds = v.as_array().map(Vec::as_slice).unwrap_or_default();
    if conds.len() > 64 {
        out.push(Cause {
            reason: "FieldValueTooMany".into(),
            message: format!("Too many: {}: must have at most 64 items", conds.len()),
            field: field.into(),
        });
    }
    let mut names: Vec<&str> = vec![];
    for (i, c) in conds.iter().enumerate() {
        let name = c["name"].as_str().unwrap_or_default();
        let at = format!("{field}[{i}]");
        if name.is_empty() {
            out.push(required(&format!("{at}.name"), ""));
        } else {
            qualified_name(&format!("{at}.name"), name, out);
            if names.contains(&name) {
                out.push(duplicate(&format!("{at}.name"), name));
            }
            names.push(name);
        }
        let expr = c["expression"].as_str().unwrap_or_default();
        if expr.is_empty() {
            out.push(required(&format!("{at}.expression"), ""));
        } else if let Err(e) = Program::compile(expr) {
            out.push(invalid(
                &format!("{at}.expression"),
                &format!("{expr:?}"),
                &format!("compilation failed: {e}"),
            ));
        }
    }
}

/// The causes of a webhook configuration's 422 (empty when valid).
pub fn validate(d: &ResourceDescriptor, obj: &Value) -> Vec<Cause> {
    let mut out = vec![];
    if !is_configuration(d) {
        return out;
    }
    let mutating = d.kind == "MutatingWebhookConfiguration";
    let mut names: Vec<&str> = vec![];
    for (i, h) in obj["webhooks"].as_array().into_iter().flatten().enumerate() {
        let f = format!("webhooks[{i}]");
        let name = h["name"].as_str().unwrap_or_default();
        fully_qualified_name(&format!("{f}.name"), name, &mut out);
        for (j, r) in h["rules"].as_array().into_iter().flatten().enumerate() {
            validate_rule(r, &format!("{f}.rules[{j}]"), &mut out);
        }
        let fp = &h["failurePolicy"];
        if !fp.is_null() && !["Fail", "Ignore"].contains(&fp.as_str().unwrap_or("?")) {
            out.push(not_supported(
                &format!("{f}.failurePolicy"),
                fp,
                &["Fail", "Ignore"],
            ));
        }
        let mp = &h["matchPolicy"];
        if !mp.is_null() && !["Equivalent", "Exact"].contains(&mp.as_str().unwrap_or("?")) {
            out.push(not_supported(
                &format!("{f}.matchPolicy"),
                mp,
                &["Equivalent", "Exact"],
            ));
        }
        let se = &h["sideEffects"];
        if se.is_null() {
            out.push(required(
                &format!("{f}.sideEffects"),
                "must specify one of None, NoneOnDryRun",
            ));
        } else if !["None", "NoneOnDryRun"].contains(&se.as_str().unwrap_or("?")) {
            out.push(not_supported(
                &format!("{f}.sideEffects"),
                se,
                &["None", "NoneOnDryRun"],
            ));
        }
        if let Some(t) = h["timeoutSeconds"].as_i64()
            && !(1..=30).contains(&t)
        {
            out.push(invalid(
                &format!("{f}.timeoutSeconds"),
                &t.to_string(),
                "the timeout value must be between 1 and 30 seconds",
            ));
        }
        validate_selector(
            &h["namespaceSelector"],
            &format!("{f}.namespaceSelector"),
            &mut out,
        );
        validate_selector(
            &h["objectSelector"],
            &format!("{f}.objectSelector"),
            &mut out,
        );
        if mutating {
            let rp = &h["reinvocationPolicy"];
            if !rp.is_null() && !["IfNeeded", "Never"].contains(&rp.as_str().unwrap_or("?")) {
                out.push(not_supported(
                    &format!("{f}.reinvocationPolicy"),
                    rp,
                    &["IfNeeded", "Never"],
                ));
            }
        }
        let cc = &h["clientConfig"];
        match (
            cc["url"].as_str(),
            cc.get("service").filter(|s| !s.is_null()),
        ) {
            (Some(u), None) => validate_url(u, &format!("{f}.clientConfig.url"), &mut out),
            (None, Some(s)) => validate_service(s, &format!("{f}.clientConfig.service"), &mut out),
            _ => out.push(required(
                &format!("{f}.clientConfig"),
                "exactly one of url or service is required",
            )),
        }
        validate_match_conditions(
            &h["matchConditions"],
            &format!("{f}.matchConditions"),
            &mut out,
        );
        validate_review_versions(
            &h["admissionReviewVersions"],
            &format!("{f}.admissionReviewVersions"),
            &mut out,
        );
        if !name.is_empty() {
            if names.contains(&name) {
                out.push(duplicate(&format!("{f}.name"), name));
            } else {
                names.push(name);
            }
        }
    }
    out
}

// -------------------------------------------------------------- compiled

/// Mutating or validating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookType {
    /// A `MutatingWebhookConfiguration` webhook (metrics type `admit`).
    Mutating,
    /// A `ValidatingWebhookConfiguration` webhook (metrics type `validating`).
    Validating,
}

impl HookType {
    /// The `type` label of the admission metrics.
    pub fn metric_label(self) -> &'static str {
        match self {
            HookType::Mutating => "admit",
            HookType::Validating => "validating",
        }
    }
}

/// One rule (`RuleWithOperations`).
#[derive(Clone, Debug)]
pub struct Rule {
    operations: Vec<String>,
    groups: Vec<String>,
    versions: Vec<String>,
    resources: Vec<String>,
    scope: String,
}

impl Rule {
    /// `rules.Matcher.Matches`
    /// (`staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/predicates/rules/rules.go`):
    /// operation, group, version, `resource[/subresource]` with `*` forms, scope.
    pub fn matches(
        &self,
        op: &str,
        group: &str,
        version: &str,
        resource: &str,
        sub: &str,
        namespaced: bool,
    ) -> bool {
        let any = |list: &[String], x: &str| list.iter().any(|v| v == "*" || v == x);
        let scope = match self.scope.as_str() {
            "Cluster" => !namespaced,
            "Namespaced" => namespaced,
            _ => true,
        };
        scope
            && any(&self.operations, op)
            && any(&self.groups, group)
            && any(&self.versions, version)
            && self.resources.iter().any(|rs| {
                let (r, s) = rs.split_once('/').unwrap_or((rs.as_str(), ""));
                (r == "*" || r == resource) && (s == "*" || s == sub)
            })
    }
}

/// Where a webhook is called.
#[derive(Clone, Debug)]
pub enum Target {
    /// `clientConfig.url`.
    Url(String),
    /// `clientConfig.service`.
    Service {
        /// Service namespace.
        namespace: String,
        /// Service name.
        name: String,
        /// Request path (`/` when unset).
        path: String,
        /// Service port (443 when unset).
        port: i64,
    },
}

/// One compiled `matchConditions` entry.
#[derive(Clone)]
pub struct MatchCondition {
    /// Its name.
    pub name: String,
    /// The expression's source.
    pub expression: String,
    /// The compiled expression.
    pub program: Arc<Program>,
}

/// One webhook of a configuration, ready to dispatch.
#[derive(Clone)]
pub struct Webhook {
    /// `webhooks[].name`.
    pub name: String,
    /// Name of the configuration holding it (webhooks run in configuration-name order).
    pub configuration: String,
    /// Mutating or validating.
    pub hook_type: HookType,
    /// Rules.
    pub rules: Vec<Rule>,
    /// `failurePolicy: Fail` (the default); `false` for `Ignore`.
    pub fail_closed: bool,
    /// `namespaceSelector`.
    pub namespace_selector: LabelSelector,
    /// `objectSelector`.
    pub object_selector: LabelSelector,
    /// `sideEffects`.
    pub side_effects: String,
    /// `timeoutSeconds`.
    pub timeout: Duration,
    /// `reinvocationPolicy: IfNeeded`.
    pub reinvoke_if_needed: bool,
    /// The URL or service.
    pub target: Target,
    /// `caBundle` (decoded bytes), if set.
    pub ca_bundle: Option<Arc<Vec<u8>>>,
    /// `matchConditions`.
    pub match_conditions: Vec<MatchCondition>,
    /// The AdmissionReview version sent: the first of
    /// `admissionReviewVersions` kubesim speaks (`v1`, `v1beta1`).
    pub review_version: String,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("name", &self.name)
            .field("configuration", &self.configuration)
            .field("hook_type", &self.hook_type)
            .finish_non_exhaustive()
    }
}

/// Compiles the webhooks of one stored configuration (already validated).
pub fn compile(obj: &Value, hook_type: HookType) -> Vec<Webhook> {
    let configuration = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut out = vec![];
    for h in obj["webhooks"].as_array().into_iter().flatten() {
        let rules = h["rules"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| Rule {
                operations: strings(&r["operations"]),
                groups: strings(&r["apiGroups"]),
                versions: strings(&r["apiVersions"]),
                resources: strings(&r["resources"]),
                scope: r["scope"].as_str().unwrap_or("*").to_owned(),
            })
            .collect();
        let cc = &h["clientConfig"];
        let target = match cc["url"].as_str() {
            Some(u) => Target::Url(u.to_owned()),
            None => Target::Service {
                namespace: cc["service"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                name: cc["service"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                path: cc["service"]["path"].as_str().unwrap_or("/").to_owned(),
                port: cc["service"]["port"].as_i64().unwrap_or(443),
            },
        };
        let ca_bundle = cc["caBundle"].as_str().filter(|s| !s.is_empty()).map(|s| {
            Arc::new(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .unwrap_or_else(|_| s.as_bytes().to_vec()),
            )
        });
        let match_conditions = h["matchConditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let expression = c["expression"].as_str()?;
                let program = Program::compile(expression).ok()?;
                Some(MatchCondition {
                    name: c["name"].as_str().unwrap_or_default().to_owned(),
                    expression: expression.to_owned(),
                    program: Arc::new(program),
                })
            })
            .collect();
        out.push(Webhook {
            name: h["name"].as_str().unwrap_or_default().to_owned(),
            configuration: configuration.clone(),
            hook_type,
            rules,
            fail_closed: h["failurePolicy"].as_str() != Some("Ignore"),
            namespace_selector: LabelSelector::from_json(&h["namespaceSelector"])
                .unwrap_or_default(),
            object_selector: LabelSelector::from_json(&h["objectSelector"]).unwrap_or_default(),
            side_effects: h["sideEffects"].as_str().unwrap_or("Unknown").to_owned(),
            timeout: Duration::from_secs(h["timeoutSeconds"].as_u64().unwrap_or(10).clamp(1, 30)),
            reinvoke_if_needed: h["reinvocationPolicy"].as_str() == Some("IfNeeded"),
            target,
            ca_bundle,
            match_conditions,
            review_version: strings(&h["admissionReviewVersions"])
                .into_iter()
                .find(|v| v == "v1" || v == "v1beta1")
                .unwrap_or_else(|| "v1".to_owned()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(resources: &[&str], scope: &str) -> Rule {
        Rule {
            operations: vec!["CREATE".into(), "UPDATE".into()],
            groups: vec!["*".into()],
            versions: vec!["v1".into()],
            resources: resources.iter().map(|r| (*r).to_owned()).collect(),
            scope: scope.into(),
        }
    }

    #[test]
    fn resource_forms_match_like_upstream_rules() {
        let m = |r: &Rule, res: &str, sub: &str| r.matches("CREATE", "", "v1", res, sub, true);
        let star = rule(&["*"], "*");
        assert!(m(&star, "pods", ""));
        assert!(!m(&star, "pods", "status"), "`*` is main resources only");
        let all = rule(&["*/*"], "*");
        assert!(m(&all, "pods", "") && m(&all, "pods", "eviction"));
        let pods_any = rule(&["pods/*"], "*");
        assert!(m(&pods_any, "pods", "") && m(&pods_any, "pods", "status"));
        assert!(!m(&pods_any, "services", ""));
        let any_status = rule(&["*/status"], "*");
        assert!(m(&any_status, "deployments", "status") && !m(&any_status, "pods", ""));
        let eviction = rule(&["pods/eviction"], "*");
        assert!(m(&eviction, "pods", "eviction") && !m(&eviction, "pods", ""));
        let scale = rule(&["statefulsets/scale"], "*");
        assert!(m(&scale, "statefulsets", "scale"));
        assert!(!rule(&["pods"], "*").matches("DELETE", "", "v1", "pods", "", true));
        assert!(!rule(&["pods"], "*").matches("CREATE", "", "v2", "pods", "", true));
        assert!(!rule(&["pods"], "Cluster").matches("CREATE", "", "v1", "pods", "", true));
        assert!(rule(&["nodes"], "Cluster").matches("CREATE", "", "v1", "nodes", "", false));
        assert!(!rule(&["nodes"], "Namespaced").matches("CREATE", "", "v1", "nodes", "", false));
    }

    #[test]
    fn resource_lists_are_validated_like_upstream() {
        let errs = |r: &[&str]| {
            let mut out = vec![];
            let list: Vec<String> = r.iter().map(|s| (*s).to_owned()).collect();
            validate_resources(&list, "r", &mut out);
            out.into_iter().map(|c| c.message).collect::<Vec<_>>()
        };
        assert!(errs(&["pods", "pods/status", "*/scale"]).is_empty());
        assert_eq!(
            errs(&["*", "pods"]),
            [
                r#"Invalid value: []string{"*", "pods"}: if '*' is present, must not specify other resources without subresources"#
            ]
        );
        assert_eq!(
            errs(&["pods/*", "pods/status"]),
            [
                r#"Invalid value: "pods/status": if 'pods/*' is present, must not specify pods/status"#
            ]
        );
        assert_eq!(errs(&[]), ["Required value"]);
    }

    #[test]
    fn urls_must_be_https_without_credentials_fragments_or_queries() {
        let errs = |u: &str| {
            let mut out = vec![];
            validate_url(u, "url", &mut out);
            out.into_iter().map(|c| c.message).collect::<Vec<_>>()
        };
        assert!(errs("https://hooks.example.com:8443/mutate").is_empty());
        assert_eq!(
            errs("https://user@h/x#frag"),
            [
                r#"Invalid value: "user": user information is not permitted in the URL"#,
                r#"Invalid value: "frag": fragments are not permitted in the URL"#
            ]
        );
        assert_eq!(
            errs("https:///x"),
            [r#"Invalid value: "": host must be provided; desired format: https://host[/path]"#]
        );
    }
}
