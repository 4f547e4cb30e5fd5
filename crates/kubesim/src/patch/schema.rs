//! Type information the patch machinery needs: which lists are merged by
//! which keys, which maps are atomic, which fields carry a strategic-merge
//! strategy.
//!
//! Built-in kinds use a static table generated from the upstream OpenAPI
//! document (`schema_table.rs`: `x-kubernetes-patch-strategy`,
//! `x-kubernetes-patch-merge-key`, `x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`). Custom resources
//! use their CRD's `openAPIV3Schema` ([`TypeRef::from_openapi_v3`]). Anything
//! else is "deduced" exactly as structured-merge-diff deduces an untyped
//! value: maps are granular, lists atomic, scalars atomic
//! (sigs.k8s.io/structured-merge-diff `schema/elements.go`, `DeducedAtomic`).
//!
//! How a list is treated by server-side apply follows kube-openapi
//! `pkg/schemaconv/smd.go` `getListElementRelationship`: an explicit
//! `x-kubernetes-list-type` wins; otherwise a `merge` patch strategy with a
//! merge key makes a map keyed by it, without a key a set; anything else is
//! atomic.

use serde_json::Value;

use super::schema_table::{DEFS, ROOTS};

/// A static type in the generated table.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ty {
    /// A string, number, boolean, quantity, time or int-or-string.
    Scalar,
    /// An untyped value (`RawExtension`, `JSON`, `FieldsV1`): deduced.
    Any,
    /// A named object definition.
    Ref(&'static str),
    /// An array.
    List(&'static ListTy),
    /// A string-keyed map (`additionalProperties`).
    Map(&'static MapTy),
}

/// An array type.
#[derive(Debug)]
pub(super) struct ListTy {
    pub(super) elem: Ty,
    pub(super) kind: ListKind,
}

/// A map type.
#[derive(Debug)]
pub(super) struct MapTy {
    pub(super) elem: Ty,
    pub(super) atomic: bool,
}

/// How the items of a list are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListKind {
    /// The list is one value.
    Atomic,
    /// Scalar items identified by their value.
    Set,
    /// Object items identified by these key fields.
    Map(&'static [&'static str]),
}

/// Strategic-merge metadata of a struct field (`retainKeys` needs none: the
/// `$retainKeys` directive is honoured wherever it appears, as upstream).
#[derive(Debug, Clone, Copy)]
pub(super) struct Smp {
    pub(super) merge: bool,
    pub(super) replace: bool,
    pub(super) key: Option<&'static str>,
}

impl Smp {
    pub(super) const NONE: Smp = Smp {
        merge: false,
        replace: false,
        key: None,
    };
}

/// One field of a named definition.
#[derive(Debug)]
pub(super) struct Field {
    pub(super) name: &'static str,
    pub(super) ty: Ty,
    pub(super) smp: Smp,
}

/// A named object definition.
#[derive(Debug)]
pub(super) struct Def {
    pub(super) name: &'static str,
    /// `x-kubernetes-map-type: atomic` on the whole struct (e.g. `LabelSelector`).
    pub(super) atomic: bool,
    pub(super) fields: &'static [Field],
}

fn find_def(name: &str) -> Option<&'static Def> {
    DEFS.binary_search_by(|d| d.name.cmp(name))
        .ok()
        .map(|i| &DEFS[i])
}

fn find_field(def: &'static Def, name: &str) -> Option<&'static Field> {
    def.fields
        .binary_search_by(|f| f.name.cmp(name))
        .ok()
        .map(|i| &def.fields[i])
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The shape of a value as far as merging is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// An atomic leaf (scalar, atomic list, atomic map).
    Leaf,
    /// A granular map or struct: each key is tracked on its own.
    Map,
    /// A list whose items are tracked on their own.
    List,
}

/// A reference to the type of a value: static table, CRD schema, or deduced.
#[derive(Debug, Clone, Copy)]
pub enum TypeRef<'a> {
    /// A built-in type from the generated table.
    #[doc(hidden)]
    Static(StaticTy),
    /// A node of a CRD `openAPIV3Schema`.
    OpenApi(&'a Value),
    /// No type information: deduced from the value.
    Deduced,
}

/// Opaque wrapper so the static table stays private.
#[derive(Debug, Clone, Copy)]
pub struct StaticTy(Ty);

/// Strategic-merge metadata of a field, as the strategic merge patch needs it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FieldStrategy {
    pub(crate) merge: bool,
    pub(crate) replace: bool,
    pub(crate) key: Option<&'static str>,
}

impl<'a> TypeRef<'a> {
    /// The type of a built-in kind, if kubesim knows it (`apiVersion`, `kind`),
    /// e.g. `("apps/v1", "StatefulSet")`.
    pub fn builtin(api_version: &str, kind: &str) -> Option<TypeRef<'static>> {
        ROOTS
            .iter()
            .find(|(av, k, _)| *av == api_version && *k == kind)
            .map(|(_, _, def)| TypeRef::Static(StaticTy(Ty::Ref(def))))
    }

    /// The type of a custom resource described by a CRD version's
    /// `schema.openAPIV3Schema` node. `metadata` is typed as `ObjectMeta`.
    pub fn from_openapi_v3(schema: &'a Value) -> TypeRef<'a> {
        TypeRef::OpenApi(schema)
    }

    /// The type of the object's root for the given kind: built-in table when
    /// known, else the CRD schema when given, else deduced.
    pub fn for_object(api_version: &str, kind: &str, crd_schema: Option<&'a Value>) -> TypeRef<'a> {
        if let Some(t) = TypeRef::builtin(api_version, kind) {
            return t;
        }
        match crd_schema {
            Some(s) => TypeRef::OpenApi(s),
            None => TypeRef::Deduced,
        }
    }

    /// Whether this is a named struct of the built-in table.
    pub(crate) fn is_struct(&self) -> bool {
        matches!(self, TypeRef::Static(StaticTy(Ty::Ref(def))) if find_def(def).is_some())
    }

    fn stat(ty: Ty) -> TypeRef<'static> {
        match ty {
            Ty::Any => TypeRef::Deduced,
            t => TypeRef::Static(StaticTy(t)),
        }
    }

    /// How values of this type are merged, looking at the value when the type
    /// does not say (deduced types).
    pub(crate) fn shape(&self, v: &Value) -> Shape {
        match self {
            TypeRef::Static(StaticTy(t)) => match t {
                Ty::Scalar => Shape::Leaf,
                Ty::Any => deduced_shape(v),
                Ty::Ref(name) => match find_def(name) {
                    Some(d) if d.atomic => Shape::Leaf,
                    Some(_) => Shape::Map,
                    None => deduced_shape(v),
                },
                Ty::List(l) => {
                    if l.kind == ListKind::Atomic {
                        Shape::Leaf
                    } else {
                        Shape::List
                    }
                }
                Ty::Map(m) => {
                    if m.atomic {
                        Shape::Leaf
                    } else {
                        Shape::Map
                    }
                }
            },
            TypeRef::OpenApi(s) => openapi_shape(s, v),
            TypeRef::Deduced => deduced_shape(v),
        }
    }

    /// The type of field or map entry `name` of this (map/struct) type.
    pub(crate) fn field(&self, name: &str) -> TypeRef<'a> {
        match self {
            TypeRef::Static(StaticTy(t)) => match t {
                Ty::Ref(def) => match find_def(def).and_then(|d| find_field(d, name)) {
                    Some(f) => TypeRef::stat(f.ty),
                    None => TypeRef::Deduced,
                },
                Ty::Map(m) => TypeRef::stat(m.elem),
                _ => TypeRef::Deduced,
            },
            TypeRef::OpenApi(s) => {
                if let Some(p) = s.get("properties").and_then(|p| p.get(name)) {
                    return TypeRef::OpenApi(p);
                }
                if name == "metadata" && is_root_schema(s) {
                    return TypeRef::Static(StaticTy(Ty::Ref(OBJECT_META)));
                }
                match s.get("additionalProperties") {
                    Some(ap @ Value::Object(_)) => TypeRef::OpenApi(ap),
                    _ => TypeRef::Deduced,
                }
            }
            TypeRef::Deduced => TypeRef::Deduced,
        }
    }

    /// Whether `name` is a declared field of this struct type (as opposed to a
    /// key of a map, or an unknown field).
    pub(crate) fn is_declared(&self, name: &str) -> bool {
        match self {
            TypeRef::Static(StaticTy(Ty::Ref(def))) => {
                find_def(def).and_then(|d| find_field(d, name)).is_some()
            }
            TypeRef::OpenApi(s) => {
                s.get("properties").and_then(|p| p.get(name)).is_some()
                    || (name == "metadata" && is_root_schema(s))
            }
            _ => false,
        }
    }

    /// The item type of a list type.
    pub(crate) fn elem(&self) -> TypeRef<'a> {
        match self {
            TypeRef::Static(StaticTy(Ty::List(l))) => TypeRef::stat(l.elem),
            TypeRef::OpenApi(s) => match s.get("items") {
                Some(i @ Value::Object(_)) => TypeRef::OpenApi(i),
                _ => TypeRef::Deduced,
            },
            _ => TypeRef::Deduced,
        }
    }

    /// The key fields of an associative list (`Some(&[])` for a set of
    /// scalars), `None` for an atomic list.
    pub(crate) fn list_keys(&self) -> Option<Vec<&'a str>> {
        match self {
            TypeRef::Static(StaticTy(Ty::List(l))) => match l.kind {
                ListKind::Atomic => None,
                ListKind::Set => Some(Vec::new()),
                ListKind::Map(keys) => Some(keys.to_vec()),
            },
            TypeRef::OpenApi(s) => match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") => Some(Vec::new()),
                Some("map") => Some(
                    s.get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default(),
                ),
                _ => None,
            },
            _ => None,
        }
    }

    /// Strategic-merge metadata of field `name` of this struct type.
    pub(crate) fn field_strategy(&self, name: &str) -> FieldStrategy {
        if let TypeRef::Static(StaticTy(Ty::Ref(def))) = self
            && let Some(f) = find_def(def).and_then(|d| find_field(d, name))
        {
            return FieldStrategy {
                merge: f.smp.merge,
                replace: f.smp.replace,
                key: f.smp.key,
            };
        }
        FieldStrategy::default()
    }
}

fn is_root_schema(s: &Value) -> bool {
    s.get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| {
            p.contains_key("apiVersion") || p.contains_key("kind") || p.contains_key("spec")
        })
        || s.get("properties").is_none()
}

fn deduced_shape(v: &Value) -> Shape {
    match v {
        Value::Object(_) => Shape::Map,
        _ => Shape::Leaf,
    }
}

fn openapi_shape(s: &Value, v: &Value) -> Shape {
    if s.get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
        && s.get("properties").is_none()
    {
        return deduced_shape(v);
    }
    if s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return Shape::Leaf;
    }
    match s.get("type").and_then(Value::as_str) {
        Some("object") => {
            if s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic") {
                Shape::Leaf
            } else {
                Shape::Map
            }
        }
        Some("array") => match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") | Some("map") => Shape::List,
            _ => Shape::Leaf,
        },
        Some(_) => Shape::Leaf,
        None => deduced_shape(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_table_is_sorted_for_binary_search() {
        assert!(DEFS.windows(2).all(|w| w[0].name < w[1].name));
        for d in DEFS {
            assert!(
                d.fields.windows(2).all(|w| w[0].name < w[1].name),
                "{}",
                d.name
            );
        }
    }

    #[test]
    fn pod_containers_are_a_list_map_keyed_by_name() {
        let pod = TypeRef::builtin("v1", "Pod").expect("pod is built in");
        let containers = pod.field("spec").field("containers");
        assert_eq!(containers.list_keys(), Some(vec!["name"]));
        let s = pod.field("spec").field_strategy("containers");
        assert!(s.merge);
        assert_eq!(s.key, Some("name"));
        let ports = containers.elem().field("ports");
        assert_eq!(ports.list_keys(), Some(vec!["containerPort", "protocol"]));
        assert_eq!(
            containers.elem().field_strategy("ports").key,
            Some("containerPort")
        );
    }

    #[test]
    fn finalizers_are_a_set_and_label_selectors_atomic() {
        let sts = TypeRef::builtin("apps/v1", "StatefulSet").expect("sts is built in");
        assert_eq!(
            sts.field("metadata").field("finalizers").list_keys(),
            Some(vec![])
        );
        let sel = sts.field("spec").field("selector");
        assert_eq!(
            sel.shape(&serde_json::json!({"matchLabels": {}})),
            Shape::Leaf
        );
        assert_eq!(
            sts.field("metadata")
                .field("labels")
                .shape(&serde_json::json!({})),
            Shape::Map
        );
    }

    #[test]
    fn crd_schema_list_types_are_honoured() {
        let schema = serde_json::json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"],
                      "items": {"type": "object"}},
            "tags": {"type": "array", "items": {"type": "string"}}}}}});
        let t = TypeRef::from_openapi_v3(&schema);
        assert_eq!(t.field("spec").field("items").list_keys(), Some(vec!["id"]));
        assert_eq!(t.field("spec").field("tags").list_keys(), None);
        assert_eq!(
            t.field("metadata").field("finalizers").list_keys(),
            Some(vec![])
        );
    }
}
