//! Request bodies in the Kubernetes protobuf encoding
//! (`application/vnd.kubernetes.protobuf`), decoded to the JSON the rest of
//! kubesim works on.
//!
//! client-go's typed clients — kubectl's `create namespace|secret|configmap|deployment`,
//! `create token`, `auth can-i`, `drain` (cordon patch aside: patches are JSON) —
//! send built-in kinds as protobuf and accept `application/vnd.kubernetes.protobuf,
//! application/json`, so answers stay JSON (upstream negotiates the same way:
//! `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/negotiation`).
//!
//! **How.** A body is `k8s\0` + `runtime.Unknown{typeMeta, raw, contentEncoding,
//! contentType}` (`staging/src/k8s.io/apimachinery/pkg/runtime/serializer/protobuf/protobuf.go`);
//! `raw` is the object's message. The messages are not hand-written tables: `build.rs`
//! compiles upstream's own `generated.proto` files (vendored under `proto/`, see
//! `proto/README.md`) into a descriptor set, and [`prost_reflect`] decodes any of
//! their messages dynamically. One generic walk maps a message to JSON: a
//! Kubernetes proto field is named after the Go field's JSON name, so the field
//! name *is* the JSON key. Why this and not `k8s-pb` (prost-generated structs for
//! every kind): those structs have no JSON mapping, and converting each of ~600
//! types by hand is the table this design avoids; the descriptor set covers every
//! message of the vendored groups at once, built-in kinds kubesim serves and
//! their subresource kinds (Eviction, TokenRequest, Scale, DeleteOptions,
//! SelfSubjectAccessReview), which a test checks against [`crate::registry`].
//!
//! Where the Go JSON form differs from the proto shape, the walk follows the
//! Go types' custom marshalers, named by full message name:
//! - `IntOrString` → number or string (`util/intstr/intstr.go`);
//! - `Quantity` → its string (`api/resource/quantity_proto.go`);
//! - `Time` → RFC 3339 seconds, `MicroTime` → RFC 3339 microseconds, UTC; an
//!   empty message is the zero time and is left out (`apis/meta/v1/time_proto.go`,
//!   `micro_time_proto.go`: `Time` drops the nanoseconds as upstream does);
//! - `Duration` → Go's duration string (`1m30s`);
//! - `RawExtension`, `FieldsV1`, apiextensions `JSON` → the raw bytes as JSON (a
//!   nested `k8s\0` object is decoded in turn);
//! - the `JSONSchemaPropsOr{Array,Bool,StringArray}` unions and the
//!   `$ref`/`$schema`/`x-kubernetes-*` names of `JSONSchemaProps`;
//! - messages upstream marks `+protobuf.nullable=true` wrap a Go slice
//!   (`Verbs`, `ExtraValue`): the bare array (listed by `build.rs` from the marker);
//! - Go structs embedded with `json:""` (`Volume.volumeSource`, `Probe.handler`,
//!   `*.localObjectReference`, …): their fields are inlined ([`INLINE`]);
//! - the few fields whose proto name is not the JSON name ([`RENAMED`]).
//!
//! Simplification (documented): Go's generated marshalers write every non-pointer
//! field, so an unset string arrives as `""`. Upstream's Go decode makes `""` and
//! "absent" the same value; kubesim's JSON code tells them apart, so singular
//! empty strings are dropped. A `*string` explicitly set to `""` (e.g.
//! `PersistentVolumeClaimSpec.storageClassName: ""`) is therefore read as unset.
//! Numbers and booleans are kept as sent (`replicas: 0` matters). `ObjectMeta`'s
//! zero `generation` (a non-pointer `omitempty` field) is dropped likewise.
//!
//! Custom resources have no protobuf form: their endpoints answer 415 as
//! upstream's (`apiextensions-apiserver/pkg/apiserver/customresource_handler.go`).

use std::{borrow::Cow, collections::HashMap, sync::OnceLock};

use base64::Engine as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, MapKey, MessageDescriptor, ReflectMessage as _, Value as Pb,
};
use serde_json::{Map, Value, json};

/// The protobuf media type.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4-byte prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

const META: &str = "apimachinery.pkg.apis.meta.v1";
const UNKNOWN: &str = "apimachinery.pkg.runtime.Unknown";
const INT_OR_STRING: &str = "apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "apimachinery.pkg.api.resource.Quantity";
const RAW_EXTENSION: &str = "apimachinery.pkg.runtime.RawExtension";
const EXT: &str = "apiextensions_apiserver.pkg.apis.apiextensions.v1";

/// Meta kinds every group version registers (`AddToGroupVersion` in
/// `apimachinery/pkg/apis/meta/v1/register.go`): a DELETE body is a
/// `DeleteOptions` in the group of the resource.
const META_KINDS: &[&str] = &[
    "DeleteOptions",
    "CreateOptions",
    "UpdateOptions",
    "PatchOptions",
    "GetOptions",
    "ListOptions",
    "WatchEvent",
];

/// Go structs embedded with `json:""` whose fields JSON inlines:
/// (message, field). These are the embedded fields of upstream's `types.go`
/// (`core/v1`, `admissionregistration/v1`; the other vendored groups embed none).
const INLINE: &[(&str, &str)] = &[
    ("api.core.v1.Volume", "volumeSource"),
    ("api.core.v1.PersistentVolumeSpec", "persistentVolumeSource"),
    ("api.core.v1.Probe", "handler"),
    ("api.core.v1.EphemeralContainer", "ephemeralContainerCommon"),
    ("api.core.v1.ConfigMapEnvSource", "localObjectReference"),
    ("api.core.v1.ConfigMapKeySelector", "localObjectReference"),
    ("api.core.v1.ConfigMapProjection", "localObjectReference"),
    ("api.core.v1.ConfigMapVolumeSource", "localObjectReference"),
    ("api.core.v1.SecretEnvSource", "localObjectReference"),
    ("api.core.v1.SecretKeySelector", "localObjectReference"),
    ("api.core.v1.SecretProjection", "localObjectReference"),
    (
        "api.admissionregistration.v1.NamedRuleWithOperations",
        "ruleWithOperations",
    ),
    ("api.admissionregistration.v1.RuleWithOperations", "rule"),
];

/// Proto field names that differ from the JSON name (the proto name is the Go
/// field name where the JSON name is not a valid proto identifier or differs
/// in case): (message or `*`, proto name, JSON name).
const RENAMED: &[(&str, &str, &str)] = &[
    ("api.authentication.v1.UserInfo", "uID", "uid"),
    ("*", "Expression", "expression"),
    ("*", "Name", "name"),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
        "ref",
        "$ref",
    ),
    (
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
        "schema",
        "$schema",
    ),
];

/// Messages wrapping a Go slice type (`+protobuf.nullable=true`), from `build.rs`.
const MASKED_SLICES: &[&str] = include!(concat!(env!("OUT_DIR"), "/k8s-masked.rs"));

/// Why a protobuf body could not be read. Each renders as the message of the
/// 400 (or 415) the server answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body does not start with `k8s\0` (upstream's wording).
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    NoPrefix,
    /// Nothing after the prefix.
    #[error("empty body")]
    Empty,
    /// The `runtime.Unknown` envelope is not valid protobuf.
    #[error("failed to decode the protobuf envelope (runtime.Unknown): {0}")]
    Envelope(String),
    /// The envelope names no kind.
    #[error("Object 'Kind' is missing in the protobuf envelope (typeMeta.kind is empty)")]
    MissingKind,
    /// The envelope's `contentEncoding` is not empty (upstream writes none).
    #[error("unsupported protobuf contentEncoding {0:?}: only unencoded bodies are accepted")]
    ContentEncoding(String),
    /// No message for that kind in the API's protobuf schema.
    #[error("no kind {kind:?} is registered for version {api_version:?} in the protobuf schema")]
    UnknownKind {
        /// `apiVersion` of the envelope.
        api_version: String,
        /// `kind` of the envelope.
        kind: String,
    },
    /// The object's bytes do not decode as its message.
    #[error("failed to decode {kind} from protobuf: {reason}")]
    Message {
        /// Kind being decoded.
        kind: String,
        /// The protobuf decoder's error, or the field that could not be mapped.
        reason: String,
    },
}

/// The `runtime.Unknown` envelope of a protobuf body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `typeMeta.apiVersion`.
    pub api_version: String,
    /// `typeMeta.kind`.
    pub kind: String,
    /// The object's message bytes.
    pub raw: Vec<u8>,
    /// `contentEncoding` (empty from every upstream client).
    pub content_encoding: String,
    /// `contentType` (empty, or the protobuf media type).
    pub content_type: String,
}

/// Whether a `Content-Type` header value is the protobuf media type.
pub fn is_protobuf(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        #[allow(clippy::expect_used)]
        // The bytes are protox's own encoding of a descriptor set it just
        // compiled and linked (build.rs fails the build otherwise), so
        // decoding them back cannot fail.
        DescriptorPool::decode(
            &include_bytes!(concat!(env!("OUT_DIR"), "/k8s-descriptors.bin"))[..],
        )
        .expect("build.rs wrote a valid descriptor set")
    })
}

/// Messages by (group's first DNS label or `core`, version, kind): the proto
/// package of group `rbac.authorization.k8s.io` version `v1` is
/// `api.rbac.v1`, of `apiextensions.k8s.io` …`.apiextensions.v1` (the package names of
/// `proto/`, upstream's `k8s.io.`-prefixed packages without the prefix).
fn kinds() -> &'static HashMap<(String, String, String), MessageDescriptor> {
    static KINDS: OnceLock<HashMap<(String, String, String), MessageDescriptor>> = OnceLock::new();
    KINDS.get_or_init(|| {
        let mut m = HashMap::new();
        for d in pool().all_messages() {
            let pkg = d.package_name();
            if !(pkg.starts_with("api.") || pkg.starts_with("apiextensions_apiserver.")) {
                continue;
            }
            let mut segs = pkg.rsplit('.');
            let (Some(version), Some(label)) = (segs.next(), segs.next()) else {
                continue;
            };
            m.insert(
                (label.to_owned(), version.to_owned(), d.name().to_owned()),
                d.clone(),
            );
        }
        m
    })
}

/// The message of `kind` in `apiVersion` (`v1`, `apps/v1`), if the schema has it.
pub fn message_for(api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    // Built-in groups are dotless (`apps`) or end in `.k8s.io`; a custom group
    // (`apps.example.com`) must not borrow a built-in message by its first label.
    if group.contains('.') && !group.ends_with(".k8s.io") {
        return None;
    }
    let label = if group.is_empty() {
        "core"
    } else {
        group.split('.').next().unwrap_or(group)
    };
    if let Some(d) = kinds().get(&(label.to_owned(), version.to_owned(), kind.to_owned())) {
        return Some(d.clone());
    }
    if META_KINDS.contains(&kind) {
        return pool().get_message_by_name(&format!("{META}.{kind}"));
    }
    None
}

/// Reads the `k8s\0` + `runtime.Unknown` envelope.
pub fn envelope(body: &[u8]) -> Result<Envelope, DecodeError> {
    let inner = body.strip_prefix(MAGIC).ok_or(DecodeError::NoPrefix)?;
    if inner.is_empty() {
        return Err(DecodeError::Empty);
    }
    let desc = pool()
        .get_message_by_name(UNKNOWN)
        .ok_or_else(|| DecodeError::Envelope("runtime.Unknown missing from the schema".into()))?;
    let m =
        DynamicMessage::decode(desc, inner).map_err(|e| DecodeError::Envelope(e.to_string()))?;
    let s = |m: &DynamicMessage, f: &str| match m.get_field_by_name(f).as_deref() {
        Some(Pb::String(s)) => s.clone(),
        _ => String::new(),
    };
    let (api_version, kind) = match m.get_field_by_name("typeMeta").as_deref() {
        Some(Pb::Message(t)) => (s(t, "apiVersion"), s(t, "kind")),
        _ => (String::new(), String::new()),
    };
    let raw = match m.get_field_by_name("raw").as_deref() {
        Some(Pb::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    };
    Ok(Envelope {
        api_version,
        kind,
        raw,
        content_encoding: s(&m, "contentEncoding"),
        content_type: s(&m, "contentType"),
    })
}

/// Decodes a protobuf body to the object's JSON, `apiVersion` and `kind` included.
pub fn decode(body: &[u8]) -> Result<Value, DecodeError> {
    let env = envelope(body)?;
    if env.kind.is_empty() {
        return Err(DecodeError::MissingKind);
    }
    if !env.content_encoding.is_empty() {
        return Err(DecodeError::ContentEncoding(env.content_encoding));
    }
    let desc =
        message_for(&env.api_version, &env.kind).ok_or_else(|| DecodeError::UnknownKind {
            api_version: env.api_version.clone(),
            kind: env.kind.clone(),
        })?;
    let fail = |reason: String| DecodeError::Message {
        kind: env.kind.clone(),
        reason,
    };
    let m = DynamicMessage::decode(desc, &env.raw[..]).map_err(|e| fail(e.to_string()))?;
    let mut v = message_json(&m).map_err(fail)?;
    if let Value::Object(o) = &mut v {
        // apiVersion and kind first, as in the JSON encoding.
        let mut out = Map::new();
        out.insert("apiVersion".into(), json!(env.api_version));
        out.insert("kind".into(), json!(env.kind));
        out.append(o);
        return Ok(Value::Object(out));
    }
    Ok(v)
}

fn full_name_matches(pattern: &str, name: &str) -> bool {
    pattern == "*" || pattern == name
}

fn json_name<'a>(message: &str, field: &'a str) -> Cow<'a, str> {
    if let Some(rest) = field.strip_prefix("xKubernetes")
        && message.starts_with(EXT)
    {
        // xKubernetesPreserveUnknownFields → x-kubernetes-preserve-unknown-fields
        let mut out = String::from("x-kubernetes");
        for c in rest.chars() {
            if c.is_ascii_uppercase() {
                out.push('-');
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        return Cow::Owned(out);
    }
    Cow::Borrowed(
        RENAMED
            .iter()
            .find(|(m, p, _)| *p == field && full_name_matches(m, message))
            .map_or(field, |(_, _, j)| j),
    )
}

type R = Result<Value, String>;

fn get<'a>(m: &'a DynamicMessage, f: &str) -> Option<Cow<'a, Pb>> {
    m.has_field_by_name(f)
        .then(|| m.get_field_by_name(f))
        .flatten()
}

fn int_of(v: Option<Cow<'_, Pb>>) -> i64 {
    match v.as_deref() {
        Some(Pb::I32(i)) => i64::from(*i),
        Some(Pb::I64(i)) => *i,
        Some(Pb::U32(i)) => i64::from(*i),
        Some(Pb::U64(i)) => i64::try_from(*i).unwrap_or(i64::MAX),
        _ => 0,
    }
}

fn str_of(v: Option<Cow<'_, Pb>>) -> String {
    match v.as_deref() {
        Some(Pb::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// The JSON of one message, following the Go types' JSON marshalers.
fn message_json(m: &DynamicMessage) -> R {
    let d = m.descriptor();
    let name = d.full_name();
    match name {
        INT_OR_STRING => {
            return Ok(if int_of(get(m, "type")) == 1 {
                json!(str_of(get(m, "strVal")))
            } else {
                json!(int_of(get(m, "intVal")))
            });
        }
        QUANTITY => return Ok(json!(str_of(get(m, "string")))),
        _ if name == format!("{META}.Time") => {
            if !m.has_field_by_name("seconds") {
                return Ok(Value::Null);
            }
            return timestamp(int_of(get(m, "seconds")), 0, chrono::SecondsFormat::Secs);
        }
        _ if name == format!("{META}.MicroTime") => {
            if !m.has_field_by_name("seconds") && !m.has_field_by_name("nanos") {
                return Ok(Value::Null);
            }
            return timestamp(
                int_of(get(m, "seconds")),
                int_of(get(m, "nanos")),
                chrono::SecondsFormat::Micros,
            );
        }
        _ if name == format!("{META}.Duration") => {
            return Ok(json!(go_duration(int_of(get(m, "duration")))));
        }
        _ if name == RAW_EXTENSION || name == format!("{EXT}.JSON") => {
            return raw_json(get(m, "raw"));
        }
        _ if name == format!("{META}.FieldsV1") => return raw_json(get(m, "Raw")),
        _ if name == format!("{EXT}.JSONSchemaPropsOrArray") => {
            if let Some(s) = get(m, "schema") {
                return value_json(&s);
            }
            return get(m, "jSONSchemas").map_or(Ok(json!([])), |v| value_json(&v));
        }
        _ if name == format!("{EXT}.JSONSchemaPropsOrBool") => {
            if let Some(s) = get(m, "schema") {
                return value_json(&s);
            }
            return Ok(json!(matches!(
                get(m, "allows").as_deref(),
                Some(Pb::Bool(true))
            )));
        }
        _ if name == format!("{EXT}.JSONSchemaPropsOrStringArray") => {
            if let Some(s) = get(m, "schema") {
                return value_json(&s);
            }
            return get(m, "property").map_or(Ok(json!([])), |v| value_json(&v));
        }
        _ if MASKED_SLICES.contains(&name) => {
            return get(m, "items").map_or(Ok(json!([])), |v| value_json(&v));
        }
        _ => {}
    }
    let mut out = Map::new();
    let is_meta = name == format!("{META}.ObjectMeta");
    for (f, v) in m.fields() {
        let field = f.name();
        if matches!(v, Pb::String(s) if s.is_empty()) && !f.is_list() {
            continue;
        }
        if is_meta && field == "generation" && matches!(v, Pb::I64(0)) {
            continue;
        }
        let j = value_json(v)?;
        if INLINE
            .iter()
            .any(|(msg, fl)| *fl == field && full_name_matches(msg, name))
            && let Value::Object(inner) = j
        {
            out.extend(inner);
            continue;
        }
        if j.is_null() {
            continue;
        }
        out.insert(json_name(name, field).into_owned(), j);
    }
    Ok(Value::Object(out))
}

fn value_json(v: &Pb) -> R {
    Ok(match v {
        Pb::Bool(b) => json!(b),
        Pb::I32(i) => json!(i),
        Pb::I64(i) => json!(i),
        Pb::U32(i) => json!(i),
        Pb::U64(i) => json!(i),
        Pb::F32(f) => json!(f),
        Pb::F64(f) => json!(f),
        Pb::String(s) => json!(s),
        Pb::Bytes(b) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        Pb::EnumNumber(n) => json!(n),
        Pb::Message(m) => message_json(m)?,
        Pb::List(l) => Value::Array(l.iter().map(value_json).collect::<Result<_, _>>()?),
        Pb::Map(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let k = match k {
                    MapKey::String(s) => s.clone(),
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(i) => i.to_string(),
                    MapKey::I64(i) => i.to_string(),
                    MapKey::U32(i) => i.to_string(),
                    MapKey::U64(i) => i.to_string(),
                };
                out.insert(k, value_json(v)?);
            }
            Value::Object(out)
        }
    })
}

/// Raw bytes holding a JSON document (or, in a RawExtension, a nested
/// protobuf object).
fn raw_json(raw: Option<Cow<'_, Pb>>) -> R {
    let Some(Pb::Bytes(b)) = raw.as_deref() else {
        return Ok(Value::Null);
    };
    if b.is_empty() {
        return Ok(Value::Null);
    }
    if b.starts_with(MAGIC) {
        return decode(b).map_err(|e| format!("embedded object: {e}"));
    }
    serde_json::from_slice(b).map_err(|e| format!("embedded raw JSON: {e}"))
}

fn timestamp(seconds: i64, nanos: i64, format: chrono::SecondsFormat) -> R {
    let nanos =
        u32::try_from(nanos).map_err(|_| format!("timestamp nanos {nanos} out of range"))?;
    chrono::DateTime::from_timestamp(seconds, nanos)
        .map(|t| json!(t.to_rfc3339_opts(format, true)))
        .ok_or_else(|| format!("timestamp {seconds}s out of range"))
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    let frac = |v: u64, unit: u64| -> String {
        let whole = v / unit;
        let rest = v % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.to_string().len() - 1;
        let f = format!("{rest:0digits$}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    };
    if u < 1_000 {
        return format!("{sign}{u}ns");
    }
    if u < 1_000_000 {
        return format!("{sign}{}µs", frac(u, 1_000));
    }
    if u < 1_000_000_000 {
        return format!("{sign}{}ms", frac(u, 1_000_000));
    }
    let secs = u / 1_000_000_000;
    let sub = u % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let s = frac(s * 1_000_000_000 + sub, 1_000_000_000);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

#[cfg(test)]
mod tests;
