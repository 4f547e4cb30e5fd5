//! `meta.k8s.io/v1` `Table` responses, as `kubectl get` asks for them.
//!
//! # API
//!
//! ```text
//! if let Some(target) = table::table_target(accept_header) {       // Accept asks for as=Table
//!     let opts = TableOptions::from_query(include_object_param, no_headers)?;   // 400 on a bad includeObject
//!     // built-in kinds:
//!     let body = table::table(group, kind, &items, list_meta.as_ref(), &opts, target, Utc::now());
//!     // custom resources (columns compiled once per CRD version):
//!     let cols = table::PrinterColumns::from_crd_version(&version_json)?;
//!     let body = cols.table(&items, list_meta.as_ref(), &opts, target, Utc::now());
//! }
//! ```
//!
//! Cells follow the printers of `pkg/printers/internalversion/printers.go`
//! (pods: `printPod` with its STATUS/READY/RESTARTS rules; statefulsets,
//! nodes, namespaces, services, PDBs, core and events.k8s.io events,
//! endpointslices, endpoints, controllerrevisions, configmaps, secrets,
//! serviceaccounts, PVCs, deployments, leases, webhook configurations,
//! roles/bindings); any other kind gets the default convertor's
//! `Name`/`Created At` (`k8s.io/apiserver/pkg/registry/rest/table.go`).
//! Custom resources use their `additionalPrinterColumns`
//! (`apiextensions-apiserver/pkg/registry/customresource/tableconvertor`),
//! with the default `Age` column when none are declared. `row.object` is a
//! `PartialObjectMetadata` unless `includeObject=Object|None`
//! (`k8s.io/apiserver/pkg/endpoints/handlers/response.go` `asTable`).
//! Column descriptions come from the k8s-openapi schemas, so they read as
//! upstream's `SwaggerDoc()` strings.
//! Simplification: watch events in Table form are left to the caller (one
//! single-row table per event, built with the same functions).

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::schema::{JsonPath, SchemaError};

/// Failures of table requests.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// `includeObject` is not `None`, `Metadata` or `Object` (400 BadRequest).
    #[error("unrecognized includeObject value: {0:?}")]
    BadIncludeObject(String),
    /// A printer column's JSONPath does not parse.
    #[error("failed to compile printer column {name:?}: {source}")]
    BadColumn {
        /// The column.
        name: String,
        /// Why.
        #[source]
        source: SchemaError,
    },
}

/// What a row's `object` holds (`?includeObject=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The full object.
    Object,
}

/// Table request options (`metav1.TableOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableOptions {
    /// `includeObject`.
    pub include_object: IncludeObject,
    /// `noHeaders` (column definitions omitted).
    pub no_headers: bool,
}

impl TableOptions {
    /// Parses the `includeObject` query parameter.
    pub fn from_query(include_object: Option<&str>, no_headers: bool) -> Result<Self, TableError> {
        let include_object = match include_object.unwrap_or("") {
            "" | "Metadata" => IncludeObject::Metadata,
            "None" => IncludeObject::None,
            "Object" => IncludeObject::Object,
            other => return Err(TableError::BadIncludeObject(other.to_owned())),
        };
        Ok(Self {
            include_object,
            no_headers,
        })
    }
}

/// Which Table version the client accepted (`meta.k8s.io/v1` or `v1beta1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableVersion {
    /// `meta.k8s.io/v1`.
    V1,
    /// `meta.k8s.io/v1beta1`.
    V1Beta1,
}

impl TableVersion {
    fn api_version(self) -> &'static str {
        match self {
            Self::V1 => "meta.k8s.io/v1",
            Self::V1Beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// Whether an `Accept` header asks for a Table, and which version: the
/// first media range with `as=Table;g=meta.k8s.io` wins (kubectl sends
/// `application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json`).
pub fn table_target(accept: &str) -> Option<TableVersion> {
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        if media != "application/json" && media != "*/*" && media != "application/*" {
            continue;
        }
        let params: HashMap<&str, &str> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        match params.get("as") {
            Some(&"Table") if params.get("g") == Some(&"meta.k8s.io") => match params.get("v") {
                Some(&"v1") => return Some(TableVersion::V1),
                Some(&"v1beta1") => return Some(TableVersion::V1Beta1),
                _ => continue,
            },
            Some(_) => continue,
            None => return None,
        }
    }
    None
}

/// `duration.HumanDuration` (`k8s.io/apimachinery/pkg/util/duration`).
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds();
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 60 * 2 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// `translateTimestampSince`: `<unknown>` for a missing time.
fn since(v: Option<&Value>, now: DateTime<Utc>) -> String {
    match parse_time(v) {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

/// One column definition.
#[derive(Debug, Clone, PartialEq)]
struct Column {
    name: String,
    type_: String,
    format: String,
    description: String,
    priority: i64,
}

impl Column {
    fn to_json(&self) -> Value {
        json!({"name": self.name, "type": self.type_, "format": self.format,
               "description": self.description, "priority": self.priority})
    }
}

/// Property descriptions of a k8s-openapi type, from its JSON schema.
fn docs<T: schemars::JsonSchema>() -> HashMap<String, String> {
    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    let mut out = HashMap::new();
    if let Some(props) = schema
        .as_value()
        .get("properties")
        .and_then(Value::as_object)
    {
        for (k, v) in props {
            if let Some(d) = v.get("description").and_then(Value::as_str) {
                out.insert(k.clone(), d.to_owned());
            }
        }
    }
    out
}

macro_rules! doc_table {
    ($name:ident, $t:ty) => {
        static $name: LazyLock<HashMap<String, String>> = LazyLock::new(docs::<$t>);
    };
}

use k8s_openapi::api::{apps::v1 as apps, core::v1 as core, discovery::v1 as discovery};
doc_table!(
    OBJECT_META,
    k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta
);
doc_table!(POD_STATUS, core::PodStatus);
doc_table!(POD_SPEC, core::PodSpec);
doc_table!(NODE_STATUS, core::NodeStatus);
doc_table!(NODE_INFO, core::NodeSystemInfo);
doc_table!(SERVICE_SPEC, core::ServiceSpec);
doc_table!(EVENT, core::Event);
doc_table!(OBJECT_REF, core::ObjectReference);
doc_table!(SECRET, core::Secret);
doc_table!(CONFIG_MAP, core::ConfigMap);
doc_table!(SERVICE_ACCOUNT, core::ServiceAccount);
doc_table!(ENDPOINTS, core::Endpoints);
doc_table!(PVC_SPEC, core::PersistentVolumeClaimSpec);
doc_table!(PVC_STATUS, core::PersistentVolumeClaimStatus);
doc_table!(DEPLOYMENT_STATUS, apps::DeploymentStatus);
doc_table!(DEPLOYMENT_SPEC, apps::DeploymentSpec);
doc_table!(CONTROLLER_REVISION, apps::ControllerRevision);
doc_table!(ENDPOINT_SLICE, discovery::EndpointSlice);
doc_table!(LEASE_SPEC, k8s_openapi::api::coordination::v1::LeaseSpec);
doc_table!(ROLE_BINDING, k8s_openapi::api::rbac::v1::RoleBinding);

fn d(table: &LazyLock<HashMap<String, String>>, field: &str) -> String {
    table.get(field).cloned().unwrap_or_default()
}

fn col(name: &str, type_: &str, description: String) -> Column {
    Column {
        name: name.into(),
        type_: type_.into(),
        format: String::new(),
        description,
        priority: 0,
    }
}

fn wide(mut c: Column) -> Column {
    c.priority = 1;
    c
}

fn name_col() -> Column {
    Column {
        format: "name".into(),
        ..col("Name", "string", d(&OBJECT_META, "name"))
    }
}

fn age_col() -> Column {
    col("Age", "string", d(&OBJECT_META, "creationTimestamp"))
}

const CONTAINERS_DOC: &str = "Names of each container in the template.";
const IMAGES_DOC: &str = "Images referenced by each container in the template.";

/// A row's cells and its optional `conditions`.
type Row = (Vec<Value>, Option<Value>);

/// The printer of one built-in kind: its columns and its cell function.
struct Printer {
    columns: Vec<Column>,
    cells: fn(&Value, DateTime<Utc>) -> Row,
}

impl Printer {
    /// The common three-column printer: `NAME <column> AGE`, its middle
    /// cell from `cells` (which builds the row with [`name_value_age`]).
    fn name_value_age(column: Column, cells: fn(&Value, DateTime<Utc>) -> Row) -> Self {
        Printer {
            columns: vec![name_col(), column, age_col()],
            cells,
        }
    }
}

/// The row of a [`Printer::name_value_age`] printer.
fn name_value_age(o: &Value, value: Value, now: DateTime<Utc>) -> Row {
    (vec![name(o), value, age(o, now)], None)
}

/// The length of the array at `pointer` as a cell.
fn count_cell(o: &Value, pointer: &str) -> Value {
    Value::from(arr(o, pointer).len() as i64)
}

fn s(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn i(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn name(v: &Value) -> Value {
    Value::from(s(v, "/metadata/name"))
}

fn age(v: &Value, now: DateTime<Utc>) -> Value {
    Value::from(since(v.pointer("/metadata/creationTimestamp"), now))
}

fn or_none(s: String) -> String {
    if s.is_empty() { "<none>".into() } else { s }
}

/// `IntOrString.String()`.
fn int_or_string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn layout_containers(v: &Value, ptr: &str) -> (Value, Value) {
    let cs = arr(v, ptr);
    let names: Vec<String> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<String> = cs.iter().map(|c| s(c, "/image")).collect();
    (Value::from(names.join(",")), Value::from(images.join(",")))
}

fn is_restartable_init(c: Option<&Value>) -> bool {
    c.is_some_and(|c| s(c, "/restartPolicy") == "Always")
}

fn has_condition(v: &Value, ptr: &str, type_: &str) -> Option<bool> {
    arr(v, ptr)
        .iter()
        .find(|c| s(c, "/type") == type_)
        .map(|c| s(c, "/status") == "True")
}

/// `printPod`.
fn pod_cells(pod: &Value, now: DateTime<Utc>) -> Row {
    let mut restarts: i64 = 0;
    let mut restartable_restarts: i64 = 0;
    let mut total = arr(pod, "/spec/containers").len() as i64;
    let mut ready: i64 = 0;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_restartable_restart: Option<DateTime<Utc>> = None;
    let phase = s(pod, "/status/phase");
    let mut reason = phase.clone();
    let status_reason = s(pod, "/status/reason");
    if !status_reason.is_empty() {
        reason = status_reason.clone();
    }
    for c in arr(pod, "/status/conditions") {
        if s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated" {
            reason = "SchedulingGated".into();
        }
    }
    let conditions = match phase.as_str() {
        "Succeeded" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}]),
        ),
        "Failed" => Some(
            json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ),
        _ => None,
    };
    let init_specs = arr(pod, "/spec/initContainers");
    let init_spec = |name: &str| init_specs.iter().find(|c| s(c, "/name") == name);
    total += init_specs
        .iter()
        .filter(|c| is_restartable_init(Some(c)))
        .count() as i64;
    let later = |cur: Option<DateTime<Utc>>, t: Option<DateTime<Utc>>| match (cur, t) {
        (Some(a), Some(b)) if b > a => Some(b),
        (None, Some(b)) => Some(b),
        (a, _) => a,
    };
    let mut initializing = false;
    let init_statuses = arr(pod, "/status/initContainerStatuses");
    for (idx, c) in init_statuses.iter().enumerate() {
        let rc = i(c, "/restartCount");
        restarts += rc;
        let finished = parse_time(c.pointer("/lastState/terminated/finishedAt"));
        last_restart = later(last_restart, finished);
        let restartable = is_restartable_init(init_spec(&s(c, "/name")));
        if restartable {
            restartable_restarts += rc;
            last_restartable_restart = later(last_restartable_restart, finished);
        }
        let terminated = c.pointer("/state/terminated");
        let waiting_reason = s(c, "/state/waiting/reason");
        if terminated.is_some_and(|t| i(t, "/exitCode") == 0) {
            continue;
        }
        if restartable && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            let r = s(t, "/reason");
            reason = if !r.is_empty() {
                format!("Init:{r}")
            } else if i(t, "/signal") != 0 {
                format!("Init:Signal:{}", i(t, "/signal"))
            } else {
                format!("Init:ExitCode:{}", i(t, "/exitCode"))
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{idx}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }
    if !initializing || has_condition(pod, "/status/conditions", "Initialized") == Some(true) {
        restarts = restartable_restarts;
        last_restart = last_restartable_restart;
        let mut has_running = false;
        for c in arr(pod, "/status/containerStatuses").iter().rev() {
            restarts += i(c, "/restartCount");
            last_restart = later(
                last_restart,
                parse_time(c.pointer("/lastState/terminated/finishedAt")),
            );
            let waiting = s(c, "/state/waiting/reason");
            let terminated = c.pointer("/state/terminated");
            if !waiting.is_empty() {
                reason = waiting;
            } else if let Some(t) = terminated {
                let r = s(t, "/reason");
                reason = if !r.is_empty() {
                    r
                } else if i(t, "/signal") != 0 {
                    format!("Signal:{}", i(t, "/signal"))
                } else {
                    format!("ExitCode:{}", i(t, "/exitCode"))
                };
            } else if c.get("ready").and_then(Value::as_bool) == Some(true)
                && c.pointer("/state/running").is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_condition(pod, "/status/conditions", "Ready") == Some(true) {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }
    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }
    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };
    let ip = arr(pod, "/status/podIPs")
        .first()
        .map(|p| s(p, "/ip"))
        .unwrap_or_default();
    let gates = arr(pod, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let t = gates
            .iter()
            .filter(|g| {
                has_condition(pod, "/status/conditions", &s(g, "/conditionType")) == Some(true)
            })
            .count();
        format!("{t}/{}", gates.len())
    };
    let cells = vec![
        name(pod),
        Value::from(format!("{ready}/{total}")),
        Value::from(reason),
        Value::from(restarts_str),
        age(pod, now),
        Value::from(or_none(ip)),
        Value::from(or_none(s(pod, "/spec/nodeName"))),
        Value::from(or_none(s(pod, "/status/nominatedNodeName"))),
        Value::from(readiness_gates),
    ];
    (cells, conditions)
}

fn statefulset_cells(o: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = layout_containers(o, "/spec/template/spec/containers");
    let desired = o
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    (
        vec![
            name(o),
            Value::from(format!("{}/{desired}", i(o, "/status/readyReplicas"))),
            age(o, now),
            names,
            images,
        ],
        None,
    )
}

fn deployment_cells(o: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = layout_containers(o, "/spec/template/spec/containers");
    let desired = o
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    (
        vec![
            name(o),
            Value::from(format!("{}/{desired}", i(o, "/status/readyReplicas"))),
            Value::from(i(o, "/status/updatedReplicas")),
            Value::from(i(o, "/status/availableReplicas")),
            age(o, now),
            names,
            images,
            Value::from(format_label_selector(o.pointer("/spec/selector"))),
        ],
        None,
    )
}

/// `metav1.FormatLabelSelector` for the common `matchLabels` +
/// `matchExpressions` forms.
fn format_label_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return "<none>".into();
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        let mut kv: Vec<String> = m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        kv.sort();
        parts.extend(kv);
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let key = s(e, "/key");
        let values: Vec<String> = arr(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let part = match s(e, "/operator").as_str() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key,
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        parts.push(part);
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn node_cells(o: &Value, now: DateTime<Utc>) -> Row {
    let mut status: Vec<String> = match has_condition(o, "/status/conditions", "Ready") {
        Some(true) => vec!["Ready".into()],
        Some(false) => vec!["NotReady".into()],
        None => vec!["Unknown".into()],
    };
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = Vec::new();
    if let Some(labels) = o.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k
                .strip_prefix("node-role.kubernetes.io/")
                .filter(|r| !r.is_empty())
            {
                roles.push(role.to_owned());
            } else if k == "kubernetes.io/role" && v.as_str().is_some_and(|v| !v.is_empty()) {
                roles.push(v.as_str().unwrap_or_default().to_owned());
            }
        }
    }
    roles.sort();
    roles.dedup();
    let addr = |t: &str| {
        arr(o, "/status/addresses")
            .iter()
            .find(|a| s(a, "/type") == t)
            .map(|a| s(a, "/address"))
            .unwrap_or_else(|| "<none>".into())
    };
    let unknown = |p: &str| {
        let v = s(o, p);
        if v.is_empty() {
            "<unknown>".to_owned()
        } else {
            v
        }
    };
    (
        vec![
            name(o),
            Value::from(status.join(",")),
            Value::from(or_none(roles.join(","))),
            age(o, now),
            Value::from(s(o, "/status/nodeInfo/kubeletVersion")),
            Value::from(addr("InternalIP")),
            Value::from(addr("ExternalIP")),
            Value::from(unknown("/status/nodeInfo/osImage")),
            Value::from(unknown("/status/nodeInfo/kernelVersion")),
            Value::from(unknown("/status/nodeInfo/containerRuntimeVersion")),
        ],
        None,
    )
}

fn namespace_cells(o: &Value, now: DateTime<Utc>) -> Row {
    name_value_age(o, Value::from(s(o, "/status/phase")), now)
}

fn service_cells(o: &Value, now: DateTime<Utc>) -> Row {
    let t = s(o, "/spec/type");
    let cluster_ip = arr(o, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or("<none>")
        .to_owned();
    let external: Vec<String> = arr(o, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let lb: Vec<String> = arr(o, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| {
            if s(i, "/ip").is_empty() {
                s(i, "/hostname")
            } else {
                s(i, "/ip")
            }
        })
        .filter(|s| !s.is_empty())
        .collect();
    let external_ip = match t.as_str() {
        "ClusterIP" | "NodePort" => or_none(external.join(",")),
        "LoadBalancer" => {
            let all: Vec<String> = lb.iter().chain(external.iter()).cloned().collect();
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => s(o, "/spec/externalName"),
        _ => "<unknown>".into(),
    };
    let ports: Vec<String> = arr(o, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = s(p, "/protocol");
            let np = i(p, "/nodePort");
            if np > 0 {
                format!("{}:{np}/{proto}", i(p, "/port"))
            } else {
                format!("{}/{proto}", i(p, "/port"))
            }
        })
        .collect();
    let selector = o
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| {
            let mut kv: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            kv.sort();
            kv.join(",")
        })
        .unwrap_or_default();
    (
        vec![
            name(o),
            Value::from(t),
            Value::from(cluster_ip),
            Value::from(external_ip),
            Value::from(or_none(ports.join(","))),
            age(o, now),
            Value::from(or_none(selector)),
        ],
        None,
    )
}

fn pdb_cells(o: &Value, now: DateTime<Utc>) -> Row {
    let na = |p: &str| int_or_string(o.pointer(p)).unwrap_or_else(|| "N/A".into());
    (
        vec![
            name(o),
            Value::from(na("/spec/minAvailable")),
            Value::from(na("/spec/maxUnavailable")),
            Value::from(i(o, "/status/disruptionsAllowed")),
            age(o, now),
        ],
        None,
    )
}

/// `printEvent` for both `v1` and `events.k8s.io/v1` shapes.
fn event_cells(o: &Value, now: DateTime<Utc>) -> Row {
    let new_api = o.get("regarding").is_some() || o.get("note").is_some();
    let field = |core: &str, new: &str| if new_api { o.get(new) } else { o.get(core) };
    let first_ts = field("firstTimestamp", "deprecatedFirstTimestamp");
    let first = if parse_time(first_ts).is_some() {
        since(first_ts, now)
    } else {
        since(o.get("eventTime"), now)
    };
    let last_ts = field("lastTimestamp", "deprecatedLastTimestamp");
    let mut last = if parse_time(last_ts).is_some() {
        since(last_ts, now)
    } else {
        first.clone()
    };
    let mut count = field("count", "deprecatedCount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(series) = o.get("series").filter(|s| !s.is_null()) {
        last = since(series.get("lastObservedTime"), now);
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let obj = field("involvedObject", "regarding")
        .cloned()
        .unwrap_or(Value::Null);
    let kind = s(&obj, "/kind").to_lowercase();
    let target = if s(&obj, "/name").is_empty() {
        kind
    } else {
        format!("{kind}/{}", s(&obj, "/name"))
    };
    let source = field("source", "deprecatedSource")
        .cloned()
        .unwrap_or(Value::Null);
    let component = Some(s(&source, "/component"))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| s(o, "/reportingController"));
    let host = Some(s(&source, "/host"))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| s(o, "/reportingInstance"));
    let source_str = if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    };
    let message = field("message", "note")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned();
    (
        vec![
            Value::from(last),
            Value::from(s(o, "/type")),
            Value::from(s(o, "/reason")),
            Value::from(target),
            Value::from(s(&obj, "/fieldPath")),
            Value::from(source_str),
            Value::from(message),
            Value::from(first),
            Value::from(count),
            name(o),
        ],
        None,
    )
}

fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let ret = list.join(",");
    if count > max {
        format!("{ret} + {} more...", count - max)
    } else if ret.is_empty() {
        "<unset>".into()
    } else {
        ret
    }
}

fn endpointslice_cells(o: &Value, now: DateTime<Utc>) -> Row {
    let ports = arr(o, "/ports");
    let port_list: Vec<String> = ports
        .iter()
        .take(3)
        .map(|p| match p.get("port").and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => p
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("*")
                .to_owned(),
        })
        .collect();
    let addrs: Vec<String> = arr(o, "/endpoints")
        .iter()
        .flat_map(|e| {
            arr(e, "/addresses")
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    (
        vec![
            name(o),
            Value::from(s(o, "/addressType")),
            Value::from(list_with_more(&port_list, ports.len(), 3)),
            Value::from(list_with_more(&addrs[..addrs.len().min(3)], addrs.len(), 3)),
            age(o, now),
        ],
        None,
    )
}

fn endpoints_cells(o: &Value, now: DateTime<Utc>) -> Row {
    let subsets = arr(o, "/subsets");
    let text = if subsets.is_empty() {
        "<none>".to_owned()
    } else {
        let mut list: Vec<String> = Vec::new();
        let mut count = 0;
        for ss in subsets {
            let addrs = arr(ss, "/addresses");
            let ports = arr(ss, "/ports");
            if ports.is_empty() {
                count += addrs.len();
                list.extend(
                    addrs
                        .iter()
                        .map(|a| s(a, "/ip"))
                        .take(3usize.saturating_sub(list.len())),
                );
                continue;
            }
            for p in ports {
                count += addrs.len();
                for a in addrs {
                    if list.len() == 3 {
                        break;
                    }
                    let ip = s(a, "/ip");
                    let host = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip
                    };
                    list.push(format!("{host}:{}", i(p, "/port")));
                }
            }
        }
        if count > 3 {
            format!("{} + {} more...", list.join(","), count - 3)
        } else {
            list.join(",")
        }
    };
    name_value_age(o, Value::from(text), now)
}

fn controller_revision_cells(o: &Value, now: DateTime<Utc>) -> Row {
    let controller = arr(o, "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            let api_version = s(r, "/apiVersion");
            let group = api_version
                .split_once('/')
                .map(|(g, _)| g)
                .unwrap_or_default();
            let kind = s(r, "/kind");
            let gk = if group.is_empty() {
                kind
            } else {
                format!("{kind}.{group}")
            };
            format!("{}/{}", gk.to_lowercase(), s(r, "/name"))
        })
        .unwrap_or_else(|| "<none>".into());
    (
        vec![
            name(o),
            Value::from(controller),
            Value::from(i(o, "/revision")),
            age(o, now),
        ],
        None,
    )
}

fn configmap_cells(o: &Value, now: DateTime<Utc>) -> Row {
    let n = |p: &str| o.pointer(p).and_then(Value::as_object).map_or(0, Map::len);
    name_value_age(o, Value::from((n("/data") + n("/binaryData")) as i64), now)
}

fn secret_cells(o: &Value, now: DateTime<Utc>) -> Row {
    let n = o
        .pointer("/data")
        .and_then(Value::as_object)
        .map_or(0, Map::len);
    (
        vec![
            name(o),
            Value::from(s(o, "/type")),
            Value::from(n as i64),
            age(o, now),
        ],
        None,
    )
}

fn service_account_cells(o: &Value, now: DateTime<Utc>) -> Row {
    name_value_age(o, count_cell(o, "/secrets"), now)
}

fn lease_cells(o: &Value, now: DateTime<Utc>) -> Row {
    name_value_age(o, Value::from(s(o, "/spec/holderIdentity")), now)
}

fn webhook_cells(o: &Value, now: DateTime<Utc>) -> Row {
    name_value_age(o, count_cell(o, "/webhooks"), now)
}

fn pvc_cells(o: &Value, now: DateTime<Utc>) -> Row {
    let deleting = o
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    let phase = if deleting {
        "Terminating".to_owned()
    } else {
        s(o, "/status/phase")
    };
    let volume = s(o, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        let modes: Vec<&str> = arr(o, "/status/accessModes")
            .iter()
            .filter_map(Value::as_str)
            .map(|m| match m {
                "ReadWriteOnce" => "RWO",
                "ReadOnlyMany" => "ROX",
                "ReadWriteMany" => "RWX",
                "ReadWriteOncePod" => "RWOP",
                other => other,
            })
            .collect();
        (s(o, "/status/capacity/storage"), modes.join(","))
    };
    let class = o
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            o.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let vac = o
        .pointer("/spec/volumeAttributesClassName")
        .and_then(Value::as_str)
        .unwrap_or("<unset>")
        .to_owned();
    let mode = o
        .pointer("/spec/volumeMode")
        .and_then(Value::as_str)
        .unwrap_or("<unset>")
        .to_owned();
    (
        vec![
            name(o),
            Value::from(phase),
            Value::from(volume),
            Value::from(capacity),
            Value::from(modes),
            Value::from(class),
            Value::from(vac),
            age(o, now),
            Value::from(mode),
        ],
        None,
    )
}

fn subjects(o: &Value, kind: &str) -> String {
    arr(o, "/subjects")
        .iter()
        .filter(|s_| s(s_, "/kind") == kind)
        .map(|s_| {
            if kind == "ServiceAccount" {
                format!("{}/{}", s(s_, "/namespace"), s(s_, "/name"))
            } else {
                s(s_, "/name")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn role_binding_cells(o: &Value, now: DateTime<Utc>) -> Row {
    (
        vec![
            name(o),
            Value::from(format!(
                "{}/{}",
                s(o, "/roleRef/kind"),
                s(o, "/roleRef/name")
            )),
            age(o, now),
            Value::from(subjects(o, "User")),
            Value::from(subjects(o, "Group")),
            Value::from(subjects(o, "ServiceAccount")),
        ],
        None,
    )
}

fn default_cells(o: &Value, _now: DateTime<Utc>) -> Row {
    let created = parse_time(o.pointer("/metadata/creationTimestamp"))
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
    (vec![name(o), Value::from(created)], None)
}

fn printers() -> HashMap<(&'static str, &'static str), Printer> {
    let mut m: HashMap<(&'static str, &'static str), Printer> = HashMap::new();
    let containers = || wide(col("Containers", "string", CONTAINERS_DOC.into()));
    let images = || wide(col("Images", "string", IMAGES_DOC.into()));
    m.insert(
        ("", "Pod"),
        Printer {
            columns: vec![
                name_col(),
                col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic.".into()),
                col("Status", "string", "The aggregate status of the containers in this pod.".into()),
                col(
                    "Restarts",
                    "string",
                    "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.".into(),
                ),
                age_col(),
                wide(col("IP", "string", d(&POD_STATUS, "podIP"))),
                wide(col("Node", "string", d(&POD_SPEC, "nodeName"))),
                wide(col("Nominated Node", "string", d(&POD_STATUS, "nominatedNodeName"))),
                wide(col("Readiness Gates", "string", d(&POD_SPEC, "readinessGates"))),
            ],
            cells: pod_cells,
        },
    );
    m.insert(
        ("apps", "StatefulSet"),
        Printer {
            columns: vec![
                name_col(),
                col(
                    "Ready",
                    "string",
                    "Number of the pod with ready state".into(),
                ),
                age_col(),
                containers(),
                images(),
            ],
            cells: statefulset_cells,
        },
    );
    m.insert(
        ("apps", "Deployment"),
        Printer {
            columns: vec![
                name_col(),
                col(
                    "Ready",
                    "string",
                    "Number of the pod with ready state".into(),
                ),
                col(
                    "Up-to-date",
                    "string",
                    d(&DEPLOYMENT_STATUS, "updatedReplicas"),
                ),
                col(
                    "Available",
                    "string",
                    d(&DEPLOYMENT_STATUS, "availableReplicas"),
                ),
                age_col(),
                containers(),
                images(),
                wide(col("Selector", "string", d(&DEPLOYMENT_SPEC, "selector"))),
            ],
            cells: deployment_cells,
        },
    );
    m.insert(
        ("", "Node"),
        Printer {
            columns: vec![
                name_col(),
                col("Status", "string", "The status of the node".into()),
                col("Roles", "string", "The roles of the node".into()),
                age_col(),
                col("Version", "string", d(&NODE_INFO, "kubeletVersion")),
                wide(col("Internal-IP", "string", d(&NODE_STATUS, "addresses"))),
                wide(col("External-IP", "string", d(&NODE_STATUS, "addresses"))),
                wide(col("OS-Image", "string", d(&NODE_INFO, "osImage"))),
                wide(col(
                    "Kernel-Version",
                    "string",
                    d(&NODE_INFO, "kernelVersion"),
                )),
                wide(col(
                    "Container-Runtime",
                    "string",
                    d(&NODE_INFO, "containerRuntimeVersion"),
                )),
            ],
            cells: node_cells,
        },
    );
    m.insert(
        ("", "Namespace"),
        Printer::name_value_age(
            col("Status", "string", "The status of the namespace".into()),
            namespace_cells,
        ),
    );
    m.insert(
        ("", "Service"),
        Printer {
            columns: vec![
                name_col(),
                col("Type", "string", d(&SERVICE_SPEC, "type")),
                col("Cluster-IP", "string", d(&SERVICE_SPEC, "clusterIP")),
                col("External-IP", "string", d(&SERVICE_SPEC, "externalIPs")),
                col("Port(s)", "string", d(&SERVICE_SPEC, "ports")),
                age_col(),
                wide(col("Selector", "string", d(&SERVICE_SPEC, "selector"))),
            ],
            cells: service_cells,
        },
    );
    m.insert(
        ("policy", "PodDisruptionBudget"),
        Printer {
            columns: vec![
                name_col(),
                col(
                    "Min Available",
                    "string",
                    "The minimum number of pods that must be available.".into(),
                ),
                col(
                    "Max Unavailable",
                    "string",
                    "The maximum number of pods that may be unavailable.".into(),
                ),
                col(
                    "Allowed Disruptions",
                    "integer",
                    "Calculated number of pods that may be disrupted at this time.".into(),
                ),
                age_col(),
            ],
            cells: pdb_cells,
        },
    );
    let event_columns = || {
        vec![
            col("Last Seen", "string", d(&EVENT, "lastTimestamp")),
            col("Type", "string", d(&EVENT, "type")),
            col("Reason", "string", d(&EVENT, "reason")),
            col("Object", "string", d(&EVENT, "involvedObject")),
            wide(col("Subobject", "string", d(&OBJECT_REF, "fieldPath"))),
            wide(col("Source", "string", d(&EVENT, "source"))),
            col("Message", "string", d(&EVENT, "message")),
            wide(col("First Seen", "string", d(&EVENT, "firstTimestamp"))),
            wide(col("Count", "string", d(&EVENT, "count"))),
            wide(name_col()),
        ]
    };
    m.insert(
        ("", "Event"),
        Printer {
            columns: event_columns(),
            cells: event_cells,
        },
    );
    m.insert(
        ("events.k8s.io", "Event"),
        Printer {
            columns: event_columns(),
            cells: event_cells,
        },
    );
    m.insert(
        ("discovery.k8s.io", "EndpointSlice"),
        Printer {
            columns: vec![
                name_col(),
                col("AddressType", "string", d(&ENDPOINT_SLICE, "addressType")),
                col("Ports", "string", d(&ENDPOINT_SLICE, "ports")),
                col("Endpoints", "string", d(&ENDPOINT_SLICE, "endpoints")),
                age_col(),
            ],
            cells: endpointslice_cells,
        },
    );
    m.insert(
        ("", "Endpoints"),
        Printer::name_value_age(
            col("Endpoints", "string", d(&ENDPOINTS, "subsets")),
            endpoints_cells,
        ),
    );
    m.insert(
        ("apps", "ControllerRevision"),
        Printer {
            columns: vec![
                name_col(),
                col("Controller", "string", "Controller of the object".into()),
                col("Revision", "string", d(&CONTROLLER_REVISION, "revision")),
                age_col(),
            ],
            cells: controller_revision_cells,
        },
    );
    m.insert(
        ("", "ConfigMap"),
        Printer::name_value_age(
            col("Data", "string", d(&CONFIG_MAP, "data")),
            configmap_cells,
        ),
    );
    m.insert(
        ("", "Secret"),
        Printer {
            columns: vec![
                name_col(),
                col("Type", "string", d(&SECRET, "type")),
                col("Data", "string", d(&SECRET, "data")),
                age_col(),
            ],
            cells: secret_cells,
        },
    );
    m.insert(
        ("", "ServiceAccount"),
        Printer::name_value_age(
            col("Secrets", "string", d(&SERVICE_ACCOUNT, "secrets")),
            service_account_cells,
        ),
    );
    m.insert(
        ("", "PersistentVolumeClaim"),
        Printer {
            columns: vec![
                name_col(),
                col("Status", "string", d(&PVC_STATUS, "phase")),
                col("Volume", "string", d(&PVC_SPEC, "volumeName")),
                col("Capacity", "string", d(&PVC_STATUS, "capacity")),
                col("Access Modes", "string", d(&PVC_STATUS, "accessModes")),
                col("StorageClass", "string", "StorageClass of the pvc".into()),
                col(
                    "VolumeAttributesClass",
                    "string",
                    "VolumeAttributesClass of the pvc".into(),
                ),
                age_col(),
                wide(col("VolumeMode", "string", d(&PVC_SPEC, "volumeMode"))),
            ],
            cells: pvc_cells,
        },
    );
    m.insert(
        ("coordination.k8s.io", "Lease"),
        Printer::name_value_age(
            col("Holder", "string", d(&LEASE_SPEC, "holderIdentity")),
            lease_cells,
        ),
    );
    for kind in [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ] {
        m.insert(
            ("admissionregistration.k8s.io", kind),
            Printer::name_value_age(
                col(
                    "Webhooks",
                    "integer",
                    "Webhooks indicates the number of webhooks registered in this configuration"
                        .into(),
                ),
                webhook_cells,
            ),
        );
    }
    for (kind, what) in [
        ("RoleBinding", "roleBinding"),
        ("ClusterRoleBinding", "clusterRoleBinding"),
    ] {
        m.insert(
            ("rbac.authorization.k8s.io", kind),
            Printer {
                columns: vec![
                    name_col(),
                    col("Role", "string", d(&ROLE_BINDING, "roleRef")),
                    age_col(),
                    wide(col("Users", "string", format!("Users in the {what}"))),
                    wide(col("Groups", "string", format!("Groups in the {what}"))),
                    wide(col(
                        "ServiceAccounts",
                        "string",
                        format!("ServiceAccounts in the {what}"),
                    )),
                ],
                cells: role_binding_cells,
            },
        );
    }
    m
}

static PRINTERS: LazyLock<HashMap<(&'static str, &'static str), Printer>> = LazyLock::new(printers);

static DEFAULT_PRINTER: LazyLock<Printer> = LazyLock::new(|| Printer {
    columns: vec![
        name_col(),
        col("Created At", "date", d(&OBJECT_META, "creationTimestamp")),
    ],
    cells: default_cells,
});

/// The row `object` for `opts` (`asTable` in `handlers/response.go`).
fn row_object(obj: &Value, opts: &TableOptions, target: TableVersion) -> Option<Value> {
    match opts.include_object {
        IncludeObject::None => None,
        IncludeObject::Object => Some(obj.clone()),
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": target.api_version(),
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
    }
}

fn assemble(
    columns: &[Column],
    rows: Vec<Value>,
    list_meta: Option<&Value>,
    opts: &TableOptions,
    target: TableVersion,
) -> Value {
    let mut meta = Map::new();
    if let Some(lm) = list_meta {
        for k in ["resourceVersion", "continue", "remainingItemCount"] {
            if let Some(v) = lm.get(k).filter(|v| !v.is_null() && v.as_str() != Some("")) {
                meta.insert(k.into(), v.clone());
            }
        }
    }
    let mut t = json!({"kind": "Table", "apiVersion": target.api_version(), "metadata": Value::Object(meta), "rows": rows});
    t["columnDefinitions"] = if opts.no_headers {
        Value::Null
    } else {
        Value::Array(columns.iter().map(Column::to_json).collect())
    };
    t
}

fn make_row(
    cells: Vec<Value>,
    conditions: Option<Value>,
    obj: &Value,
    opts: &TableOptions,
    target: TableVersion,
) -> Value {
    let mut row = json!({"cells": cells});
    if let Some(c) = conditions {
        row["conditions"] = c;
    }
    if let Some(o) = row_object(obj, opts, target) {
        row["object"] = o;
    }
    row
}

/// The Table for `items` of built-in kind `kind` in API group `group`
/// (`""` for core); `list_meta` is the list's `metadata` (or the single
/// object's, for a GET: pass `None` and its resourceVersion is used).
pub fn table(
    group: &str,
    kind: &str,
    items: &[Value],
    list_meta: Option<&Value>,
    opts: &TableOptions,
    target: TableVersion,
    now: DateTime<Utc>,
) -> Value {
    let printer = PRINTERS.get(&(group, kind)).unwrap_or(&DEFAULT_PRINTER);
    let rows = items
        .iter()
        .map(|o| {
            let (cells, conditions) = (printer.cells)(o, now);
            make_row(cells, conditions, o, opts, target)
        })
        .collect();
    let single_meta;
    let meta = match (list_meta, items) {
        (None, [one]) => {
            single_meta = json!({"resourceVersion": one.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
            Some(&single_meta)
        }
        _ => list_meta,
    };
    assemble(&printer.columns, rows, meta, opts, target)
}

/// A CRD version's printer columns, compiled once
/// (`tableconvertor.New`).
#[derive(Debug, Clone)]
pub struct PrinterColumns {
    columns: Vec<Column>,
    paths: Vec<JsonPath>,
}

impl PrinterColumns {
    /// From a CRD version object (its `additionalPrinterColumns`; the
    /// default `Age` column when there are none, as the CRD handler does).
    pub fn from_crd_version(version: &Value) -> Result<Self, TableError> {
        let declared = version
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let declared = if declared.is_empty() {
            vec![json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"})]
        } else {
            declared
        };
        let mut columns = vec![name_col()];
        let mut paths = Vec::new();
        for c in &declared {
            let cname = s(c, "/name");
            let path = s(c, "/jsonPath");
            let jp = JsonPath::parse(&format!("{{{path}}}")).map_err(|source| {
                TableError::BadColumn {
                    name: cname.clone(),
                    source,
                }
            })?;
            let desc = s(c, "/description");
            columns.push(Column {
                name: cname,
                type_: s(c, "/type"),
                format: s(c, "/format"),
                description: if desc.is_empty() {
                    format!("Custom resource definition column (in JSONPath format): {path}")
                } else {
                    desc
                },
                priority: i(c, "/priority"),
            });
            paths.push(jp);
        }
        Ok(Self { columns, paths })
    }

    /// The cells of one custom resource (`convertor.ConvertToTable`).
    pub fn cells(&self, obj: &Value, now: DateTime<Utc>) -> Vec<Value> {
        let mut cells = vec![name(obj)];
        for (c, p) in self.columns[1..].iter().zip(&self.paths) {
            let found = p.find(obj);
            let Some(v) = found.first() else {
                cells.push(Value::Null);
                continue;
            };
            cells.push(cell_for(&c.type_, v, now));
        }
        cells
    }

    /// The Table of custom resources `items`.
    pub fn table(
        &self,
        items: &[Value],
        list_meta: Option<&Value>,
        opts: &TableOptions,
        target: TableVersion,
        now: DateTime<Utc>,
    ) -> Value {
        let rows = items
            .iter()
            .map(|o| make_row(self.cells(o, now), None, o, opts, target))
            .collect();
        let single_meta;
        let meta = match (list_meta, items) {
            (None, [one]) => {
                single_meta = json!({"resourceVersion": one.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
                Some(&single_meta)
            }
            _ => list_meta,
        };
        assemble(&self.columns, rows, meta, opts, target)
    }
}

/// `cellForJSONValue` plus the jsonpath text printer for `string` columns.
fn cell_for(type_: &str, v: &Value, now: DateTime<Utc>) -> Value {
    match (type_, v) {
        (_, Value::Null) => Value::Null,
        ("string", Value::String(s)) => Value::from(s.clone()),
        ("string", Value::Number(n)) => Value::from(crate::schema::go_number_string(n)),
        ("string", Value::Bool(b)) => Value::from(b.to_string()),
        ("string", other) => Value::from(other.to_string()),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_f64().map(|f| Value::from(f as i64)))
            .unwrap_or(Value::Null),
        ("number", Value::Number(n)) => n.as_f64().map(Value::from).unwrap_or(Value::Null),
        ("boolean", Value::Bool(b)) => Value::from(*b),
        ("date", Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Value::from(human_duration(now - t.with_timezone(&Utc))),
            Err(_) => Value::from("<invalid>"),
        },
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests;
