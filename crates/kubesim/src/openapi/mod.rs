//! `/openapi/v3` and `/openapi/v2` documents for `kubectl explain` and
//! `kubectl apply`.
//!
//! # API
//!
//! ```text
//! // whenever the set of served resources changes (startup, CRD create/update/delete):
//! let mut gvs = openapi::builtin_group_versions();
//! gvs.extend(openapi::crd_group_versions(&crd_objects));   // CRD JSON objects
//! let docs = openapi::OpenApi::new(&gvs);                   // keep it behind an Arc
//! // GET /openapi/v3                       -> docs.v3_index()
//! // GET /openapi/v3/api/v1?hash=..        -> docs.v3_document("api/v1")      (None -> 404)
//! // GET /openapi/v3/apis/apps/v1?hash=..  -> docs.v3_document("apis/apps/v1")
//! // GET /openapi/v2  (Accept: application/json) -> docs.v2()
//! ```
//!
//! What kubectl 1.32 reads (checked in kubectl's `pkg/explain/v2` and
//! client-go's `openapi3` root and `resource.queryParamVerifierV3`):
//! * `explain` fetches `/openapi/v3`, then the group-version document named
//!   by `paths["apis/<g>/<v>"].serverRelativeURL`; it finds the kind from the
//!   `x-kubernetes-group-version-kind` of an operation on the resource's path
//!   and the schema from the `components.schemas` entry carrying that GVK,
//!   following `$ref`, `allOf`, `items` and `additionalProperties`.
//! * `create`/`apply` (default `--validate=strict`) look for a PATCH
//!   operation with that GVK whose parameters include `fieldValidation`; when
//!   found, kubectl sends `?fieldValidation=Strict` and validates nothing
//!   client-side. Otherwise it falls back to `/openapi/v2` **as protobuf**,
//!   which this module does not produce (v2 is served as JSON only).
//!
//! Built-in schemas are the k8s-openapi `schemars` schemas under their
//! upstream names (`io.k8s.api.core.v1.Pod`); custom resources get their
//! `openAPIV3Schema` with `apiVersion`/`kind`/`metadata` filled in and a
//! `…List` schema, named `<reversed group>.<version>.<Kind>` as
//! `apiextensions-apiserver/pkg/controller/openapi/builder` does.
//! Simplifications: operations carry only what clients read (GVK, action,
//! query parameters, response schema) — no per-operation descriptions;
//! the v2 document is the v3 one with refs rewritten and `nullable`,
//! `anyOf`/`oneOf`/`not` dropped (as upstream's v2 conversion of CRD
//! schemas does), not a byte-for-byte upstream swagger.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

use k8s_openapi::{ListableResource, NamespaceResourceScope, Resource, ResourceScope};
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

/// Failures building the documents.
#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    /// A CRD object lacks a field the document needs.
    #[error("failed to read CustomResourceDefinition {name:?}: missing {field}")]
    BadCrd {
        /// The CRD's name.
        name: String,
        /// The missing field.
        field: &'static str,
    },
}

/// Where a resource's schema comes from.
#[derive(Debug, Clone)]
pub enum SchemaSource {
    /// A k8s-openapi type already registered in the built-in definitions,
    /// by its definition name (`io.k8s.api.core.v1.Pod`).
    Builtin(String),
    /// A CRD version's `openAPIV3Schema`.
    Custom(Value),
}

/// One resource of a group-version.
#[derive(Debug, Clone)]
pub struct ResourceDoc {
    /// Plural name (`statefulsets`).
    pub plural: String,
    /// Kind (`StatefulSet`).
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Subresources served: `status`, `scale`.
    pub subresources: Vec<String>,
    /// The schema.
    pub schema: SchemaSource,
}

/// The resources of one group-version.
#[derive(Debug, Clone)]
pub struct GroupVersionDoc {
    /// API group (`""` for core).
    pub group: String,
    /// Version (`v1`).
    pub version: String,
    /// Its resources.
    pub resources: Vec<ResourceDoc>,
}

impl GroupVersionDoc {
    /// The key of this group-version in `/openapi/v3` (`api/v1`, `apis/apps/v1`).
    pub fn path_key(&self) -> String {
        if self.group.is_empty() {
            format!("api/{}", self.version)
        } else {
            format!("apis/{}/{}", self.group, self.version)
        }
    }
}

const V3_REF: &str = "#/components/schemas/";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DOC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA_DOC: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const LIST_METADATA_DOC: &str = "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// Registers `T` in the generator and returns its definition name.
fn reg<T: JsonSchema>(g: &mut SchemaGenerator) -> String {
    g.subschema_for::<T>();
    T::schema_name().into_owned()
}

fn is_namespaced<S: ResourceScope + 'static>() -> bool {
    std::any::TypeId::of::<S>() == std::any::TypeId::of::<NamespaceResourceScope>()
}

/// One built-in resource and its registered definition.
struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    list_kind: &'static str,
    namespaced: bool,
    subresources: &'static [&'static str],
    definition: String,
}

fn builtin<T>(g: &mut SchemaGenerator, subresources: &'static [&'static str]) -> Builtin
where
    T: Resource + ListableResource + JsonSchema,
    T::Scope: 'static,
{
    Builtin {
        group: T::GROUP,
        version: T::VERSION,
        plural: T::URL_PATH_SEGMENT,
        kind: T::KIND,
        list_kind: T::LIST_KIND,
        namespaced: is_namespaced::<T::Scope>(),
        subresources,
        definition: reg::<T>(g),
    }
}

/// The built-in definitions (v3 refs) and resources, generated once.
struct Builtins {
    definitions: Map<String, Value>,
    resources: Vec<Builtin>,
}

static BUILTINS: LazyLock<Builtins> = LazyLock::new(|| {
    use k8s_openapi::api::{
        admissionregistration::v1 as adm, apps::v1 as apps, coordination::v1 as coord,
        core::v1 as core, discovery::v1 as disc, events::v1 as events, policy::v1 as policy,
        rbac::v1 as rbac,
    };
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    let mut g = SchemaGenerator::new(SchemaSettings::openapi3());
    let st: &'static [&'static str] = &["status"];
    let resources = vec![
        builtin::<core::Namespace>(&mut g, st),
        builtin::<core::Node>(&mut g, st),
        builtin::<core::Pod>(&mut g, st),
        builtin::<core::Service>(&mut g, st),
        builtin::<core::Endpoints>(&mut g, &[]),
        builtin::<core::ConfigMap>(&mut g, &[]),
        builtin::<core::Secret>(&mut g, &[]),
        builtin::<core::ServiceAccount>(&mut g, &[]),
        builtin::<core::PersistentVolumeClaim>(&mut g, st),
        builtin::<core::Event>(&mut g, &[]),
        builtin::<apps::StatefulSet>(&mut g, &["status", "scale"]),
        builtin::<apps::Deployment>(&mut g, &["status", "scale"]),
        builtin::<apps::ControllerRevision>(&mut g, &[]),
        builtin::<policy::PodDisruptionBudget>(&mut g, st),
        builtin::<disc::EndpointSlice>(&mut g, &[]),
        builtin::<coord::Lease>(&mut g, &[]),
        builtin::<events::Event>(&mut g, &[]),
        builtin::<rbac::Role>(&mut g, &[]),
        builtin::<rbac::ClusterRole>(&mut g, &[]),
        builtin::<rbac::RoleBinding>(&mut g, &[]),
        builtin::<rbac::ClusterRoleBinding>(&mut g, &[]),
        builtin::<adm::MutatingWebhookConfiguration>(&mut g, &[]),
        builtin::<adm::ValidatingWebhookConfiguration>(&mut g, &[]),
        builtin::<apiext::CustomResourceDefinition>(&mut g, st),
    ];
    reg::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>(&mut g);
    reg::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>(&mut g);
    reg::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>(&mut g);
    reg::<k8s_openapi::api::autoscaling::v1::Scale>(&mut g);
    reg::<k8s_openapi::api::policy::v1::Eviction>(&mut g);
    let mut definitions = g.take_definitions(true);
    for b in &resources {
        if let Some(Value::Object(def)) = definitions.get_mut(&b.definition) {
            def.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": b.group, "kind": b.kind, "version": b.version}]),
            );
        }
        let list_name = format!("{}List", b.definition);
        definitions.insert(
            list_name,
            list_schema(b.kind, &b.definition, b.group, b.version, b.list_kind),
        );
    }
    for (name, g, v, k) in [
        (SCALE, "autoscaling", "v1", "Scale"),
        ("io.k8s.api.policy.v1.Eviction", "policy", "v1", "Eviction"),
        (STATUS, "", "v1", "Status"),
    ] {
        if let Some(Value::Object(def)) = definitions.get_mut(name) {
            def.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": g, "kind": k, "version": v}]),
            );
        }
    }
    Builtins {
        definitions,
        resources,
    }
});

/// The built-in definitions (`#/components/schemas/` refs) and the
/// definition name of the built-in kind `group`/`kind`, for server-side
/// field validation ([`crate::api::strict`]).
pub fn builtin_schema(
    group: &str,
    kind: &str,
) -> Option<(&'static Map<String, Value>, &'static str)> {
    let b = &*BUILTINS;
    b.resources
        .iter()
        .find(|r| r.group == group && r.kind == kind)
        .map(|r| (&b.definitions, r.definition.as_str()))
}

fn list_schema(kind: &str, item_def: &str, group: &str, version: &str, list_kind: &str) -> Value {
    json!({
        "description": format!("{list_kind} is a list of {kind}"),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": API_VERSION_DOC, "type": "string"},
            "items": {"description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", kind.to_lowercase()),
                      "type": "array", "items": {"$ref": format!("{V3_REF}{item_def}")}},
            "kind": {"description": KIND_DOC, "type": "string"},
            "metadata": {"allOf": [{"$ref": format!("{V3_REF}{LIST_META}")}], "default": {}, "description": LIST_METADATA_DOC},
        },
        "x-kubernetes-group-version-kind": [{"group": group, "kind": list_kind, "version": version}],
    })
}

/// The built-in group-versions of kubesim (the kinds of the issue's API surface).
pub fn builtin_group_versions() -> Vec<GroupVersionDoc> {
    let mut by_gv: BTreeMap<(String, String), Vec<ResourceDoc>> = BTreeMap::new();
    for b in &BUILTINS.resources {
        by_gv
            .entry((b.group.to_owned(), b.version.to_owned()))
            .or_default()
            .push(ResourceDoc {
                plural: b.plural.to_owned(),
                kind: b.kind.to_owned(),
                namespaced: b.namespaced,
                subresources: b.subresources.iter().map(|s| (*s).to_owned()).collect(),
                schema: SchemaSource::Builtin(b.definition.clone()),
            });
    }
    by_gv
        .into_iter()
        .map(|((group, version), resources)| GroupVersionDoc {
            group,
            version,
            resources,
        })
        .collect()
}

/// The served versions of the given CRD objects, as group-versions.
pub fn crd_group_versions(crds: &[Value]) -> Result<Vec<GroupVersionDoc>, OpenApiError> {
    let mut by_gv: BTreeMap<(String, String), Vec<ResourceDoc>> = BTreeMap::new();
    for crd in crds {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let need = |ptr: &str, field: &'static str| {
            crd.pointer(ptr)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or(OpenApiError::BadCrd {
                    name: name.clone(),
                    field,
                })
        };
        let group = need("/spec/group", "spec.group")?;
        let plural = need("/spec/names/plural", "spec.names.plural")?;
        let kind = need("/spec/names/kind", "spec.names.kind")?;
        let namespaced = crd.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
        for v in crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if v.get("served").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let Some(version) = v.get("name").and_then(Value::as_str) else {
                continue;
            };
            let mut subresources = Vec::new();
            for s in ["status", "scale"] {
                if v.pointer(&format!("/subresources/{s}")).is_some() {
                    subresources.push(s.to_owned());
                }
            }
            let schema = v
                .pointer("/schema/openAPIV3Schema")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            by_gv
                .entry((group.clone(), version.to_owned()))
                .or_default()
                .push(ResourceDoc {
                    plural: plural.clone(),
                    kind: kind.clone(),
                    namespaced,
                    subresources,
                    schema: SchemaSource::Custom(schema),
                });
        }
    }
    Ok(by_gv
        .into_iter()
        .map(|((group, version), resources)| GroupVersionDoc {
            group,
            version,
            resources,
        })
        .collect())
}

/// `io.sroll.v1alpha1.StatefulsetRollout` for group `sroll.io`.
fn crd_definition_name(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').collect();
    parts.reverse();
    format!("{}.{version}.{kind}", parts.join("."))
}

/// The published form of a CRD schema (`builder.go`: type meta and
/// `ObjectMeta` filled in, GVK extension added).
fn crd_schema(schema: &Value, group: &str, version: &str, kind: &str) -> Value {
    let mut s = schema.clone();
    if let Some(o) = s.as_object_mut() {
        o.entry("type").or_insert_with(|| json!("object"));
        let props = o.entry("properties").or_insert_with(|| json!({}));
        if let Some(p) = props.as_object_mut() {
            p.insert(
                "apiVersion".into(),
                json!({"description": API_VERSION_DOC, "type": "string"}),
            );
            p.insert(
                "kind".into(),
                json!({"description": KIND_DOC, "type": "string"}),
            );
            p.insert(
                "metadata".into(),
                json!({"allOf": [{"$ref": format!("{V3_REF}{OBJECT_META}")}], "default": {}, "description": METADATA_DOC}),
            );
        }
        o.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": group, "kind": kind, "version": version}]),
        );
    }
    s
}

/// Collects the `$ref` targets (definition names) of a schema.
fn refs_of(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix(V3_REF))
            {
                out.insert(r.to_owned());
            }
            m.values().for_each(|c| refs_of(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| refs_of(c, out)),
        _ => {}
    }
}

fn param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "description": desc, "schema": {"type": "string", "uniqueItems": true}})
}

fn bool_param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "description": desc, "schema": {"type": "boolean", "uniqueItems": true}})
}

fn write_params(with_force: bool) -> Vec<Value> {
    let mut v = vec![
        param(
            "dryRun",
            "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
        ),
        param(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
        ),
        param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. This is the default behavior prior to v1.23. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. The request will still succeed if there are no other errors, and will only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.",
        ),
    ];
    if with_force {
        v.push(bool_param("force", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests."));
    }
    v
}

fn list_params() -> Vec<Value> {
    let mut v: Vec<Value> = [
        ("continue", "The continue option should be set when retrieving more results from the server."),
        ("fieldSelector", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        ("labelSelector", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        ("resourceVersion", "resourceVersion sets a constraint on what resource versions a request may be served from."),
        ("resourceVersionMatch", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
    ]
    .iter()
    .map(|(n, d)| param(n, d))
    .collect();
    v.push(json!({"name": "limit", "in": "query", "description": "limit is a maximum number of responses to return for a list call.", "schema": {"type": "integer", "uniqueItems": true}}));
    v.push(json!({"name": "timeoutSeconds", "in": "query", "description": "Timeout for the list/watch call.", "schema": {"type": "integer", "uniqueItems": true}}));
    v.push(bool_param(
        "allowWatchBookmarks",
        "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
    ));
    v.push(bool_param(
        "sendInitialEvents",
        "`sendInitialEvents=true` may be set together with `watch=true`.",
    ));
    v.push(bool_param("watch", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."));
    v
}

fn response(def: &str) -> Value {
    let schema = json!({"$ref": format!("{V3_REF}{def}")});
    json!({"200": {"description": "OK", "content": {
        "application/json": {"schema": schema}, "application/yaml": {"schema": schema}}}})
}

fn op(
    action: &str,
    id: String,
    gvk: &Value,
    def: &str,
    params: Vec<Value>,
    body: Option<Vec<&str>>,
) -> Value {
    let mut o = json!({
        "operationId": id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "responses": response(def),
    });
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    if let Some(types) = body {
        let schema = if action == "patch" {
            json!({"type": "object"})
        } else {
            json!({"$ref": format!("{V3_REF}{def}")})
        };
        let content: Map<String, Value> = types
            .into_iter()
            .map(|t| (t.to_owned(), json!({"schema": schema})))
            .collect();
        o["requestBody"] = json!({"content": content, "required": true});
    }
    o
}

fn camel(s: &str) -> String {
    s.split(['.', '-'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Adds the paths of one resource to `paths` (the upstream URL layout).
fn add_resource_paths(
    gv: &GroupVersionDoc,
    r: &ResourceDoc,
    def: &str,
    builtin: bool,
    paths: &mut Map<String, Value>,
) {
    let prefix = if gv.group.is_empty() {
        format!("/api/{}", gv.version)
    } else {
        format!("/apis/{}/{}", gv.group, gv.version)
    };
    let gvk = json!({"group": gv.group, "kind": r.kind, "version": gv.version});
    let gv_camel = format!(
        "{}{}",
        camel(if gv.group.is_empty() {
            "core"
        } else {
            &gv.group
        }),
        camel(&gv.version)
    );
    let scope = if r.namespaced { "Namespaced" } else { "" };
    let id = |verb: &str, suffix: &str| format!("{verb}{gv_camel}{scope}{}{suffix}", r.kind);
    let list_def = format!("{def}List");
    let collection = if r.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{prefix}/{}", r.plural)
    };
    let name_param = json!({"name": "name", "in": "path", "description": format!("name of the {}", r.kind), "required": true, "schema": {"type": "string", "uniqueItems": true}});
    let ns_param = json!({"name": "namespace", "in": "path", "description": "object name and auth scope, such as for teams and projects", "required": true, "schema": {"type": "string", "uniqueItems": true}});
    let pretty = param("pretty", "If 'true', then the output is pretty printed.");
    let path_params = |with_name: bool| {
        let mut v = Vec::new();
        if with_name {
            v.push(name_param.clone());
        }
        if r.namespaced {
            v.push(ns_param.clone());
        }
        v.push(pretty.clone());
        Value::Array(v)
    };
    let mut patch_types = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    if builtin {
        patch_types.push("application/strategic-merge-patch+json");
    }
    let json_types = vec!["application/json", "application/yaml"];
    paths.insert(
        collection.clone(),
        json!({
            "get": op("list", id("list", ""), &gvk, &list_def, list_params(), None),
            "post": op("post", id("create", ""), &gvk, def, write_params(false), Some(json_types.clone())),
            "delete": op("deletecollection", id("deleteCollection", ""), &gvk, STATUS, list_params(), None),
            "parameters": path_params(false),
        }),
    );
    if r.namespaced {
        paths.insert(
            format!("{prefix}/{}", r.plural),
            json!({
                "get": op("list", format!("list{gv_camel}{}ForAllNamespaces", r.kind), &gvk, &list_def, list_params(), None),
                "parameters": [pretty.clone()],
            }),
        );
    }
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "get": op("get", id("read", ""), &gvk, def, vec![], None),
            "put": op("put", id("replace", ""), &gvk, def, write_params(false), Some(json_types.clone())),
            "patch": op("patch", id("patch", ""), &gvk, def, write_params(true), Some(patch_types.clone())),
            "delete": op("delete", id("delete", ""), &gvk, STATUS, vec![
                param("dryRun", "When present, indicates that modifications should not be persisted."),
                json!({"name": "gracePeriodSeconds", "in": "query", "description": "The duration in seconds before the object should be deleted.", "schema": {"type": "integer", "uniqueItems": true}}),
                param("propagationPolicy", "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background', 'Foreground'."),
            ], None),
            "parameters": path_params(true),
        }),
    );
    for sub in &r.subresources {
        let (sub_def, sub_gvk) = if sub == "scale" {
            (
                SCALE.to_owned(),
                json!({"group": "autoscaling", "kind": "Scale", "version": "v1"}),
            )
        } else {
            (def.to_owned(), gvk.clone())
        };
        let suffix = camel(sub);
        paths.insert(
            format!("{collection}/{{name}}/{sub}"),
            json!({
                "get": op("get", id("read", &suffix), &sub_gvk, &sub_def, vec![], None),
                "put": op("put", id("replace", &suffix), &sub_gvk, &sub_def, write_params(false), Some(json_types.clone())),
                "patch": op("patch", id("patch", &suffix), &sub_gvk, &sub_def, write_params(true), Some(patch_types.clone())),
                "parameters": path_params(true),
            }),
        );
    }
    if gv.group.is_empty() && r.plural == "pods" {
        paths.insert(
            format!("{collection}/{{name}}/eviction"),
            json!({
                "post": op("post", id("create", "Eviction"), &json!({"group": "policy", "kind": "Eviction", "version": "v1"}),
                           "io.k8s.api.policy.v1.Eviction", write_params(false), Some(json_types.clone())),
                "parameters": path_params(true),
            }),
        );
    }
}

/// Builds the v3 document of one group-version.
fn v3_gv_document(gv: &GroupVersionDoc) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut roots: BTreeSet<String> = [STATUS.to_owned(), DELETE_OPTIONS.to_owned()].into();
    for r in &gv.resources {
        match &r.schema {
            SchemaSource::Builtin(def) => {
                add_resource_paths(gv, r, def, true, &mut paths);
                roots.insert(def.clone());
                roots.insert(format!("{def}List"));
            }
            SchemaSource::Custom(schema) => {
                let def = crd_definition_name(&gv.group, &gv.version, &r.kind);
                add_resource_paths(gv, r, &def, false, &mut paths);
                let list_kind = format!("{}List", r.kind);
                schemas.insert(
                    def.clone(),
                    crd_schema(schema, &gv.group, &gv.version, &r.kind),
                );
                schemas.insert(
                    format!("{def}List"),
                    list_schema(&r.kind, &def, &gv.group, &gv.version, &list_kind),
                );
                roots.insert(OBJECT_META.to_owned());
                roots.insert(LIST_META.to_owned());
            }
        }
        if r.subresources.iter().any(|s| s == "scale") {
            roots.insert(SCALE.to_owned());
        }
        if gv.group.is_empty() && r.plural == "pods" {
            roots.insert("io.k8s.api.policy.v1.Eviction".to_owned());
        }
    }
    // Transitive closure of referenced built-in definitions.
    let defs = &BUILTINS.definitions;
    let mut todo: Vec<String> = roots.into_iter().collect();
    for s in schemas.values() {
        let mut r = BTreeSet::new();
        refs_of(s, &mut r);
        todo.extend(r);
    }
    while let Some(name) = todo.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        let Some(def) = defs.get(&name) else { continue };
        let mut r = BTreeSet::new();
        refs_of(def, &mut r);
        schemas.insert(name, def.clone());
        todo.extend(r.into_iter().filter(|n| !schemas.contains_key(n)));
    }
    let sorted: BTreeMap<String, Value> = schemas.into_iter().collect();
    let sorted_paths: BTreeMap<String, Value> = paths.into_iter().collect();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": sorted_paths,
        "components": {"schemas": sorted},
    })
}

fn content_hash(v: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// Rewrites a v3 schema tree into swagger 2.0 form.
fn to_v2(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, val) in m {
                match k.as_str() {
                    "nullable" | "anyOf" | "oneOf" | "not" => {}
                    "$ref" => {
                        let r = val
                            .as_str()
                            .unwrap_or_default()
                            .replace(V3_REF, "#/definitions/");
                        out.insert(k.clone(), Value::from(r));
                    }
                    _ => {
                        out.insert(k.clone(), to_v2(val));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(to_v2).collect()),
        other => other.clone(),
    }
}

/// The v3 operation turned into a swagger 2.0 operation.
fn op_to_v2(op: &Value) -> Value {
    let mut o = op.clone();
    if let Some(m) = o.as_object_mut() {
        if let Some(Value::Array(params)) = m.get_mut("parameters") {
            for p in params.iter_mut() {
                if let Some(pm) = p.as_object_mut()
                    && let Some(Value::Object(schema)) = pm.remove("schema")
                {
                    pm.extend(schema);
                }
            }
        }
        let consumes: Option<Vec<String>> = m.remove("requestBody").and_then(|b| {
            b.get("content")
                .and_then(Value::as_object)
                .map(|c| c.keys().cloned().collect())
        });
        if let Some(c) = consumes {
            m.insert("consumes".into(), json!(c));
            let mut params = m
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            params.insert(0, json!({"name": "body", "in": "body", "required": true, "schema": {"type": "object"}}));
            m.insert("parameters".into(), Value::Array(params));
        }
        if let Some(schema) = m
            .get("responses")
            .and_then(|r| r.pointer("/200/content/application~1json/schema"))
            .cloned()
        {
            m.insert(
                "responses".into(),
                json!({"200": {"description": "OK", "schema": to_v2(&schema)}}),
            );
        }
        m.insert(
            "produces".into(),
            json!(["application/json", "application/yaml"]),
        );
        m.insert("schemes".into(), json!(["https"]));
    }
    o
}

/// The OpenAPI documents of a set of group-versions, built once.
#[derive(Debug, Clone)]
pub struct OpenApi {
    v3: BTreeMap<String, (String, Value)>,
}

impl OpenApi {
    /// Builds every group-version document.
    pub fn new(gvs: &[GroupVersionDoc]) -> Self {
        let mut v3 = BTreeMap::new();
        for gv in gvs {
            let doc = v3_gv_document(gv);
            v3.insert(gv.path_key(), (content_hash(&doc), doc));
        }
        Self { v3 }
    }

    /// `GET /openapi/v3`: `{"paths": {"apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=…"}}}`.
    pub fn v3_index(&self) -> Value {
        let paths: Map<String, Value> = self
            .v3
            .iter()
            .map(|(k, (hash, _))| {
                (
                    k.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={hash}")}),
                )
            })
            .collect();
        json!({"paths": paths})
    }

    /// `GET /openapi/v3/<key>` (`key` as in the index: `api/v1`, `apis/apps/v1`).
    pub fn v3_document(&self, key: &str) -> Option<&Value> {
        self.v3.get(key.trim_start_matches('/')).map(|(_, d)| d)
    }

    /// The content hash of one v3 document (for `ETag` / the `hash` query).
    pub fn v3_hash(&self, key: &str) -> Option<&str> {
        self.v3
            .get(key.trim_start_matches('/'))
            .map(|(h, _)| h.as_str())
    }

    /// `GET /openapi/v2` as JSON (swagger 2.0).
    pub fn v2(&self) -> Value {
        let mut paths = Map::new();
        let mut definitions = Map::new();
        for (_, doc) in self.v3.values() {
            if let Some(ps) = doc.get("paths").and_then(Value::as_object) {
                for (p, item) in ps {
                    let mut out = Map::new();
                    if let Some(im) = item.as_object() {
                        for (method, o) in im {
                            if method == "parameters" {
                                out.insert(
                                    method.clone(),
                                    op_to_v2(&json!({"parameters": o}))["parameters"].clone(),
                                );
                            } else {
                                out.insert(method.clone(), op_to_v2(o));
                            }
                        }
                    }
                    paths.insert(p.clone(), Value::Object(out));
                }
            }
            if let Some(s) = doc
                .pointer("/components/schemas")
                .and_then(Value::as_object)
            {
                for (k, v) in s {
                    definitions.entry(k.clone()).or_insert_with(|| to_v2(v));
                }
            }
        }
        let paths: BTreeMap<String, Value> = paths.into_iter().collect();
        let definitions: BTreeMap<String, Value> = definitions.into_iter().collect();
        json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.35.0"}, "paths": paths, "definitions": definitions})
    }
}

#[cfg(test)]
mod tests;
