//! Which webhooks a request calls, the AdmissionReview they get, and what
//! their answers do.
//!
//! Upstream: `staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/`
//! — `generic/webhook.go` (`ShouldCallHook`: rules, then namespace and
//! object selectors), `predicates/namespace/matcher.go`,
//! `predicates/object/matcher.go`, `matchconditions/matcher.go`,
//! `mutating/dispatcher.go` (in order, JSONPatch applied, reinvocation),
//! `validating/dispatcher.go` (in parallel, first error returned),
//! `request/admissionreview.go` (`CreateAdmissionObjects`,
//! `VerifyAdmissionResponse`) and `errors/statuserror.go` (`ToStatusErr`).

use std::{collections::BTreeSet, time::Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::{
    Admission,
    config::{HookType, Webhook},
};
use crate::{
    api::{Api, ApiError, strict::Warnings},
    auth::UserInfo,
    registry::ResourceDescriptor,
};

/// An admission operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// CREATE (also `pods/eviction`, as upstream).
    Create,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
    /// CONNECT.
    Connect,
}

impl Operation {
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    fn options_kind(self) -> &'static str {
        match self {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
            Operation::Connect => "",
        }
    }
}

/// What is being admitted (upstream's `admission.Attributes`).
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    /// The resource.
    pub d: &'a ResourceDescriptor,
    /// Subresource or "".
    pub subresource: &'a str,
    /// Kind of the object sent (group, version, kind): the resource's kind,
    /// or e.g. `policy/v1 Eviction` for `pods/eviction`.
    pub kind: (String, String, String),
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// Name ("" for a create with `generateName`).
    pub name: String,
    /// Operation.
    pub operation: Operation,
    /// The new object (none for DELETE).
    pub object: Option<Value>,
    /// The old object (UPDATE, DELETE).
    pub old_object: Option<Value>,
    /// `dryRun`.
    pub dry_run: bool,
    /// The user making the request.
    pub user: &'a UserInfo,
    /// `fieldManager` of the request's options, if any.
    pub field_manager: Option<String>,
}

impl Attributes<'_> {
    /// `request` of the AdmissionReview (also the CEL `request` variable).
    pub fn request(&self, uid: &str) -> Value {
        let (g, v, k) = &self.kind;
        let d = self.d;
        let mut req = json!({
            "uid": uid,
            "kind": {"group": g, "version": v, "kind": k},
            "resource": {"group": d.group, "version": d.version, "resource": d.plural},
            "requestKind": {"group": g, "version": v, "kind": k},
            "requestResource": {"group": d.group, "version": d.version, "resource": d.plural},
            "name": self.name,
            "operation": self.operation.as_str(),
            "userInfo": {"username": self.user.name, "groups": self.user.groups},
            "object": self.object.clone().unwrap_or(Value::Null),
            "oldObject": self.old_object.clone().unwrap_or(Value::Null),
            "dryRun": self.dry_run,
        });
        if !self.subresource.is_empty() {
            req["subResource"] = json!(self.subresource);
            req["requestSubResource"] = json!(self.subresource);
        }
        if !self.namespace.is_empty() {
            req["namespace"] = json!(self.namespace);
        }
        let ok = self.operation.options_kind();
        if !ok.is_empty() {
            let mut o = json!({"kind": ok, "apiVersion": "meta.k8s.io/v1"});
            if let Some(fm) = &self.field_manager {
                o["fieldManager"] = json!(fm);
            }
            if self.dry_run {
                o["dryRun"] = json!(["All"]);
            }
            req["options"] = o;
        }
        req
    }

    fn group_resource(&self) -> String {
        if self.d.group.is_empty() {
            self.d.plural.clone()
        } else {
            format!("{}.{}", self.d.plural, self.d.group)
        }
    }
}

fn labels_of(v: Option<&Value>) -> Option<&serde_json::Map<String, Value>> {
    v.map(|o| o["metadata"]["labels"].as_object())
        .unwrap_or(None)
}

fn selector_matches(sel: &crate::selector::LabelSelector, obj: Option<&Value>) -> bool {
    let Some(o) = obj else {
        return false;
    };
    let labels = labels_of(Some(o));
    sel.matches_with(|k| labels.and_then(|m| m.get(k)).and_then(Value::as_str))
}

/// The webhooks of `hooks` whose rules match the request (cheap: no
/// object, no store access).
pub fn rule_candidates(
    hooks: &[Webhook],
    ops: &[Operation],
    d: &ResourceDescriptor,
    sub: &str,
) -> Vec<Webhook> {
    hooks
        .iter()
        .filter(|h| {
            h.rules.iter().any(|r| {
                ops.iter().any(|op| {
                    r.matches(
                        op.as_str(),
                        &d.group,
                        &d.version,
                        &d.plural,
                        sub,
                        d.namespaced,
                    )
                })
            })
        })
        .cloned()
        .collect()
}

/// Outcome of the gate in front of one call.
enum Gate {
    Call,
    Skip,
    Reject(ApiError),
}

/// `ShouldCallHook` plus `matchConditions`.
fn gate(api: &Api, h: &Webhook, a: &Attributes<'_>) -> Gate {
    let op = a.operation.as_str();
    let matched = h.rules.iter().any(|r| {
        r.matches(
            op,
            &a.d.group,
            &a.d.version,
            &a.d.plural,
            a.subresource,
            a.d.namespaced,
        )
    });
    if !matched {
        return Gate::Skip;
    }
    // namespaceSelector: cluster-scoped objects other than namespaces always
    // match; a namespace is matched on its own labels.
    if !h.namespace_selector.is_empty() {
        let is_namespace = a.d.group.is_empty() && a.d.plural == "namespaces";
        let ok = if is_namespace {
            selector_matches(
                &h.namespace_selector,
                a.object.as_ref().or(a.old_object.as_ref()),
            )
        } else if a.namespace.is_empty() {
            true
        } else {
            let ns = api
                .resource("", "v1", "namespaces")
                .and_then(|d| api.get(&d, None, &a.namespace))
                .unwrap_or_else(|_| json!({}));
            selector_matches(&h.namespace_selector, Some(&ns))
        };
        if !ok {
            return Gate::Skip;
        }
    }
    if !h.object_selector.is_empty()
        && !selector_matches(&h.object_selector, a.object.as_ref())
        && !selector_matches(&h.object_selector, a.old_object.as_ref())
    {
        return Gate::Skip;
    }
    if h.match_conditions.is_empty() {
        return Gate::Call;
    }
    let null = Value::Null;
    let request = a.request("");
    let vars = [
        ("object", a.object.as_ref().unwrap_or(&null)),
        ("oldObject", a.old_object.as_ref().unwrap_or(&null)),
        ("request", &request),
    ];
    // `matchconditions/matcher.go`: any false skips the webhook; otherwise
    // evaluation errors are aggregated and `failurePolicy` decides.
    let mut errors = vec![];
    for c in &h.match_conditions {
        match crate::schema::cel::evaluate(&c.program, &vars) {
            Ok(kube_cel::cel::Value::Bool(true)) => {}
            Ok(kube_cel::cel::Value::Bool(false)) => return Gate::Skip,
            Ok(other) => errors.push(format!(
                "expression '{}' resulted in error: no such overload: result is {other:?}, not a bool",
                c.expression
            )),
            Err(e) => errors.push(format!(
                "expression '{}' resulted in error: {e}",
                c.expression
            )),
        }
    }
    if errors.is_empty() {
        return Gate::Call;
    }
    if !h.fail_closed {
        return Gate::Skip;
    }
    // `apierrors.NewForbidden` over the aggregate (`utilerrors.NewAggregate`).
    let detail = if errors.len() == 1 {
        errors.remove(0)
    } else {
        format!("[{}]", errors.join(", "))
    };
    let name = if a.name.is_empty() {
        "Unknown"
    } else {
        &a.name
    };
    Gate::Reject(with_details(
        ApiError::new(
            403,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {detail}", a.group_resource()),
        ),
        a,
        name,
    ))
}

/// What one call did.
enum Called {
    /// Allowed; the patched object when the webhook sent a patch.
    Allowed(Option<Value>),
    /// Denied or failed closed.
    Rejected(ApiError),
    /// Failed open (`failurePolicy: Ignore`).
    Ignored,
}

/// `ToStatusErr`: the denial as the client sees it.
fn denial(a: &Attributes<'_>, webhook: &str, status: &Value) -> ApiError {
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c != 0)
        .unwrap_or(403);
    let msg = status["message"].as_str().unwrap_or_default();
    let reason = status["reason"].as_str().unwrap_or_default();
    let denied_by = format!("admission webhook {webhook:?} denied the request");
    let text = if !msg.is_empty() {
        format!("{denied_by}: {msg}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    let name = if a.name.is_empty() {
        "Unknown"
    } else {
        &a.name
    };
    if code == 500 {
        let mut e = ApiError::new(
            500,
            if reason.is_empty() {
                "InternalError"
            } else {
                reason
            },
            format!("Internal error occurred: {text}"),
        );
        e.details.causes.push(crate::api::Cause {
            reason: String::new(),
            message: text,
            field: String::new(),
        });
        return e;
    }
    with_details(
        ApiError::new(
            code,
            if reason.is_empty() {
                "Forbidden"
            } else {
                reason
            },
            format!("{} \"{name}\" is forbidden: {text}", a.group_resource()),
        ),
        a,
        name,
    )
}

/// `details` as `apierrors.NewForbidden` fills them (the resource as `kind`).
fn with_details(mut e: ApiError, a: &Attributes<'_>, name: &str) -> ApiError {
    e.details.group = Some(a.d.group.clone()).filter(|g| !g.is_empty());
    e.details.kind = Some(a.d.plural.clone());
    e.details.name = Some(name.to_owned());
    e
}

/// `VerifyAdmissionResponse`: the response of the version sent, with the
/// request's `uid` (v1), and a patch type for a patch (v1; v1beta1 assumes
/// JSONPatch). Returns the response and its patch type.
fn verify(uid: &str, version: &str, body: &Value) -> Result<(Value, String), String> {
    let want = format!("admission.k8s.io/{version}");
    if body["apiVersion"].as_str() != Some(want.as_str())
        || body["kind"].as_str() != Some("AdmissionReview")
    {
        return Err(format!(
            "expected webhook response of {want}, Kind=AdmissionReview, got {}, Kind={}",
            body["apiVersion"].as_str().unwrap_or_default(),
            body["kind"].as_str().unwrap_or_default()
        ));
    }
    let resp = &body["response"];
    if !resp.is_object() {
        return Err("webhook response was absent".into());
    }
    let has_patch = patch_bytes(&resp["patch"])?.is_some();
    if version == "v1beta1" {
        let pt = resp["patchType"].as_str().unwrap_or("JSONPatch").to_owned();
        return Ok((resp.clone(), pt));
    }
    let got = resp["uid"].as_str().unwrap_or_default();
    if got != uid {
        return Err(format!("expected response.uid={uid:?}, got {got:?}"));
    }
    let pt = match resp["patchType"].as_str() {
        Some(p) => p.to_owned(),
        None if has_patch => {
            return Err("webhook returned response.patch but not response.patchType".into());
        }
        None => String::new(),
    };
    if has_patch && pt != "JSONPatch" {
        return Err(format!(
            "webhook returned invalid response.patchType of {pt:?}"
        ));
    }
    Ok((resp.clone(), pt))
}

/// `response.patch` as bytes: upstream decodes the field (a Go `[]byte`) with
/// `encoding/json`, which takes the documented base64 string and also a JSON
/// array of numbers 0–255 (what some clients, e.g. kube-rs's `AdmissionResponse`,
/// send). An absent, null or empty patch is no patch.
fn patch_bytes(v: &Value) -> Result<Option<Vec<u8>>, String> {
    let bytes = match v {
        Value::Null => return Ok(None),
        Value::String(s) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| format!("failed to decode the patch: {e}"))?,
        Value::Array(items) => items
            .iter()
            .map(|n| {
                n.as_u64()
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or_else(|| {
                        format!(
                            "json: cannot unmarshal {n} into Go struct field \
                             AdmissionResponse.response.patch of type uint8"
                        )
                    })
            })
            .collect::<Result<Vec<u8>, String>>()?,
        other => {
            return Err(format!(
                "json: cannot unmarshal {other} into Go struct field \
                 AdmissionResponse.response.patch of type []uint8"
            ));
        }
    };
    Ok((!bytes.is_empty()).then_some(bytes))
}

async fn call_one(
    api: &Api,
    adm: &Admission,
    h: &Webhook,
    a: &Attributes<'_>,
    warnings: &Warnings,
) -> Called {
    if a.dry_run && !(h.side_effects == "None" || h.side_effects == "NoneOnDryRun") {
        return Called::Rejected(ApiError::bad_request(format!(
            "admission webhook {:?} does not support dry run",
            h.name
        )));
    }
    let uid = uuid::Uuid::new_v4().to_string();
    let review = json!({
        "apiVersion": format!("admission.k8s.io/{}", h.review_version),
        "kind": "AdmissionReview",
        "request": a.request(&uid),
    });
    let started = Instant::now();
    let result = super::client::call(
        api,
        &adm.clients,
        &h.target,
        h.ca_bundle.as_ref(),
        h.timeout,
        &review,
    )
    .await
    .and_then(|body| verify(&uid, &h.review_version, &body));
    let op = a.operation.as_str();
    let fail = |reason: String| {
        if h.fail_closed {
            adm.metrics.observe(
                h,
                op,
                true,
                started.elapsed(),
                Some(("calling_webhook_error", 0)),
            );
            Called::Rejected(ApiError::internal(format!(
                "failed calling webhook {:?}: {reason}",
                h.name
            )))
        } else {
            adm.metrics.observe(h, op, false, started.elapsed(), None);
            tracing::warn!(webhook = %h.name, error = %reason, "Failed calling webhook, failing open");
            Called::Ignored
        }
    };
    let (resp, patch_type) = match result {
        Ok(r) => r,
        Err(reason) => return fail(reason),
    };
    let ws: Vec<String> = resp["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str().map(String::from))
        .collect();
    warnings.extend(ws);
    // auditAnnotations are accepted; kubesim keeps no audit log.
    if resp["allowed"].as_bool() != Some(true) {
        let e = denial(a, &h.name, &resp["status"]);
        adm.metrics.observe(
            h,
            op,
            true,
            started.elapsed(),
            Some(("no_error", i64::from(e.code))),
        );
        return Called::Rejected(e);
    }
    let patch = match patch_bytes(&resp["patch"]) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let Some(patch) = patch.filter(|_| h.hook_type == HookType::Mutating) else {
        adm.metrics.observe(h, op, false, started.elapsed(), None);
        return Called::Allowed(None);
    };
    if patch_type != "JSONPatch" {
        return fail(format!(
            "webhook returned invalid response.patchType of {patch_type:?}"
        ));
    }
    let ops = match serde_json::from_slice::<json_patch::Patch>(&patch) {
        Ok(p) => p,
        Err(e) => return fail(format!("failed to decode the patch: {e}")),
    };
    let Some(mut obj) = a.object.clone() else {
        // DELETE and CONNECT carry no object to patch.
        adm.metrics.observe(h, op, false, started.elapsed(), None);
        return Called::Allowed(None);
    };
    if let Err(e) = json_patch::patch(&mut obj, &ops) {
        adm.metrics.observe(
            h,
            op,
            true,
            started.elapsed(),
            Some(("apiserver_internal_error", 0)),
        );
        return Called::Rejected(ApiError::internal(e.to_string()));
    }
    adm.metrics.observe(h, op, false, started.elapsed(), None);
    Called::Allowed(Some(obj))
}

/// Runs the mutating webhooks in order and returns the (possibly) changed
/// object. A webhook with `reinvocationPolicy: IfNeeded` runs once more when
/// a webhook after it changed the object (`mutating/reinvocationcontext.go`:
/// at most one reinvocation round, only webhooks invoked before the last change).
pub async fn run_mutating(
    api: &Api,
    adm: &Admission,
    hooks: &[Webhook],
    a: &mut Attributes<'_>,
    warnings: &Warnings,
) -> Result<(), ApiError> {
    let mut invoked_reinvocable: BTreeSet<usize> = BTreeSet::new();
    let mut reinvoke: BTreeSet<usize> = BTreeSet::new();
    for (i, h) in hooks.iter().enumerate() {
        if apply_one(api, adm, h, a, warnings).await? {
            reinvoke.extend(invoked_reinvocable.iter().copied());
        }
        if h.reinvoke_if_needed {
            invoked_reinvocable.insert(i);
        }
    }
    for i in reinvoke {
        apply_one(api, adm, &hooks[i], a, warnings).await?;
    }
    Ok(())
}

/// Calls one mutating webhook if it applies; whether it changed the object.
async fn apply_one(
    api: &Api,
    adm: &Admission,
    h: &Webhook,
    a: &mut Attributes<'_>,
    warnings: &Warnings,
) -> Result<bool, ApiError> {
    match gate(api, h, a) {
        Gate::Skip => return Ok(false),
        Gate::Reject(e) => return Err(e),
        Gate::Call => {}
    }
    match call_one(api, adm, h, a, warnings).await {
        Called::Allowed(Some(obj)) => {
            let changed = a.object.as_ref() != Some(&obj);
            a.object = Some(obj);
            Ok(changed)
        }
        Called::Allowed(None) | Called::Ignored => Ok(false),
        Called::Rejected(e) => Err(e),
    }
}

/// Runs the validating webhooks in parallel; the first error (in webhook order) wins.
pub async fn run_validating(
    api: &Api,
    adm: &Admission,
    hooks: &[Webhook],
    a: &Attributes<'_>,
    warnings: &Warnings,
) -> Result<(), ApiError> {
    let mut calls = vec![];
    for h in hooks {
        match gate(api, h, a) {
            Gate::Skip => {}
            Gate::Reject(e) => return Err(e),
            Gate::Call => calls.push(call_one(api, adm, h, a, warnings)),
        }
    }
    for r in futures::future::join_all(calls).await {
        if let Called::Rejected(e) = r {
            return Err(e);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::config::{Target, compile};

    #[test]
    fn a_patch_is_read_from_base64_or_from_an_array_of_bytes_as_go_decodes_a_byte_slice() {
        let ops = br#"[{"op":"add","path":"/a","value":1}]"#;
        let b64 = json!(base64::engine::general_purpose::STANDARD.encode(ops));
        let array = json!(ops.to_vec());
        assert_eq!(patch_bytes(&b64).unwrap().as_deref(), Some(&ops[..]));
        assert_eq!(patch_bytes(&array).unwrap().as_deref(), Some(&ops[..]));
        for none in [json!(null), json!(""), json!([])] {
            assert_eq!(patch_bytes(&none).unwrap(), None, "{none}");
        }
        let e = patch_bytes(&json!([1, 256])).unwrap_err();
        assert!(e.contains("cannot unmarshal 256"), "{e}");
        assert!(patch_bytes(&json!({"op": "add"})).is_err());
        assert!(patch_bytes(&json!("not base64!")).is_err());
    }

    fn webhook(side_effects: &str) -> Webhook {
        let cfg = json!({"metadata": {"name": "c"}, "webhooks": [{
            "name": "side.effects.example.com",
            // Nothing listens here: a call would fail, not be refused.
            "clientConfig": {"url": "https://127.0.0.1:1/"},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "sideEffects": side_effects, "admissionReviewVersions": ["v1"]}]});
        compile(&cfg, HookType::Validating).remove(0)
    }

    #[tokio::test]
    async fn dry_run_is_refused_by_webhooks_with_side_effects_before_any_call() {
        let api = Api::new(100);
        let adm = Admission::default();
        let d = api.resource("", "v1", "pods").unwrap();
        let user = UserInfo::admin();
        let a = Attributes {
            d: &d,
            subresource: "",
            kind: ("".into(), "v1".into(), "Pod".into()),
            namespace: "default".into(),
            name: "p".into(),
            operation: Operation::Create,
            object: Some(json!({"metadata": {"name": "p"}})),
            old_object: None,
            dry_run: true,
            user: &user,
            field_manager: None,
        };
        for se in ["Some", "Unknown"] {
            let h = webhook(se);
            assert!(matches!(h.target, Target::Url(_)));
            let Called::Rejected(e) = call_one(&api, &adm, &h, &a, &Warnings::default()).await
            else {
                panic!("{se}: not refused");
            };
            assert_eq!(e.code, 400);
            assert_eq!(
                e.message,
                "admission webhook \"side.effects.example.com\" does not support dry run"
            );
        }
        // NoneOnDryRun is called (and here fails to connect, failing closed).
        let Called::Rejected(e) = call_one(
            &api,
            &adm,
            &webhook("NoneOnDryRun"),
            &a,
            &Warnings::default(),
        )
        .await
        else {
            panic!("NoneOnDryRun: not called");
        };
        assert_eq!(e.code, 500, "{}", e.message);
        assert!(e.message.contains("connection refused"), "{}", e.message);
    }
}
