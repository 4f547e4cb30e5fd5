//! Sets of field paths in the `FieldsV1` encoding of
//! sigs.k8s.io/structured-merge-diff (`fieldpath/serialize.go`,
//! `serialize-pe.go`): each path element is a string `f:<field or map key>`,
//! `k:<JSON object of key fields>`, `v:<JSON value>` or `i:<index>`; a
//! trie node that is itself a member and has children carries a `.` entry.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// A set of paths, stored as a trie keyed by encoded path elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Set {
    /// Whether the path leading to this node is itself in the set.
    pub(crate) member: bool,
    pub(crate) children: BTreeMap<String, Set>,
}

impl Set {
    /// Whether no path at all is in the set.
    pub(crate) fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(Set::is_empty)
    }

    /// Inserts one path.
    pub(crate) fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for pe in path {
            // Look up before inserting: cloning the key on every step is the
            // hot spot of building large sets.
            if !node.children.contains_key(pe) {
                node.children.insert(pe.clone(), Set::default());
            }
            node = match node.children.get_mut(pe) {
                Some(n) => n,
                None => return,
            };
        }
        node.member = true;
    }

    /// Whether `path` itself is a member.
    #[cfg(test)]
    pub(crate) fn has(&self, path: &[&str]) -> bool {
        let mut node = self;
        for pe in path {
            match node.children.get(*pe) {
                Some(n) => node = n,
                None => return false,
            }
        }
        node.member
    }

    /// Adds every member of `other`.
    pub(crate) fn union_with(&mut self, other: &Set) {
        self.member |= other.member;
        for (k, v) in &other.children {
            self.children.entry(k.clone()).or_default().union_with(v);
        }
    }

    /// Members of `self` that are not members of `other`.
    pub(crate) fn difference(&self, other: &Set) -> Set {
        let mut out = Set {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (k, v) in &self.children {
            let child = match other.children.get(k) {
                Some(o) => v.difference(o),
                None => v.clone(),
            };
            if !child.is_empty() {
                out.children.insert(k.clone(), child);
            }
        }
        out
    }

    /// Members of both sets.
    pub(crate) fn intersection(&self, other: &Set) -> Set {
        let mut out = Set {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (k, v) in &self.children {
            if let Some(o) = other.children.get(k) {
                let child = v.intersection(o);
                if !child.is_empty() {
                    out.children.insert(k.clone(), child);
                }
            }
        }
        out
    }

    /// Every member path, in order.
    pub(crate) fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut prefix = Vec::new();
        self.collect(&mut prefix, &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (k, v) in &self.children {
            prefix.push(k.clone());
            v.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The `fieldsV1` JSON of the set.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, v) in &self.children {
            if v.is_empty() {
                continue;
            }
            m.insert(k.clone(), v.to_fields_v1());
        }
        Value::Object(m)
    }

    /// Parses a `fieldsV1` JSON value.
    pub(crate) fn from_fields_v1(v: &Value) -> Result<Set, String> {
        let Value::Object(m) = v else {
            return Err(format!("expected an object in fieldsV1, got {v}"));
        };
        let mut out = Set::default();
        for (k, child) in m {
            if k == "." {
                out.member = true;
                continue;
            }
            if !(k.starts_with("f:")
                || k.starts_with("k:")
                || k.starts_with("v:")
                || k.starts_with("i:"))
            {
                return Err(format!("unknown path element prefix in fieldsV1: {k:?}"));
            }
            let mut c = Set::from_fields_v1(child)?;
            if c.children.is_empty() {
                c.member = true;
            }
            out.children.insert(k.clone(), c);
        }
        Ok(out)
    }
}

/// `f:<name>`.
pub(crate) fn field_pe(name: &str) -> String {
    format!("f:{name}")
}

/// `k:{…}` for the key fields of a list-map item (keys sorted by name), or
/// `None` when the item lacks one of them.
pub(crate) fn key_pe(item: &Value, keys: &[&str]) -> Option<String> {
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    let mut s = String::from("k:{");
    for (i, k) in sorted.iter().enumerate() {
        let v = item.get(*k)?;
        if i > 0 {
            s.push(',');
        }
        s.push_str(&Value::String((*k).to_owned()).to_string());
        s.push(':');
        s.push_str(&v.to_string());
    }
    s.push('}');
    Some(s)
}

/// `v:<json>` for an item of a set.
pub(crate) fn value_pe(item: &Value) -> String {
    format!("v:{item}")
}

/// `i:<index>`.
pub(crate) fn index_pe(i: usize) -> String {
    format!("i:{i}")
}

/// Renders a path as upstream `fieldpath.Path.String()` does:
/// `.spec.template.spec.containers[name="app"].image`.
pub(crate) fn path_string(path: &[String]) -> String {
    let mut s = String::new();
    for pe in path {
        if let Some(f) = pe.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            match serde_json::from_str::<Map<String, Value>>(k) {
                Ok(m) => {
                    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    s.push('[');
                    s.push_str(&parts.join(","));
                    s.push(']');
                }
                Err(_) => s.push_str(k),
            }
        } else if let Some(v) = pe.strip_prefix("v:") {
            s.push_str("[=");
            s.push_str(v);
            s.push(']');
        } else if let Some(i) = pe.strip_prefix("i:") {
            s.push('[');
            s.push_str(i);
            s.push(']');
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trips_with_dot_for_members_with_children() {
        let v = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                       "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}});
        let s = Set::from_fields_v1(&v).expect("valid fieldsV1");
        assert!(s.has(&["f:metadata", "f:labels"]));
        assert!(s.has(&["f:metadata", "f:labels", "f:app"]));
        assert!(!s.has(&["f:metadata"]));
        assert_eq!(s.to_fields_v1(), v);
    }

    #[test]
    fn set_algebra_works_on_members() {
        let mut a = Set::default();
        a.insert(&["f:spec".into(), "f:replicas".into()]);
        a.insert(&["f:spec".into(), "f:paused".into()]);
        let mut b = Set::default();
        b.insert(&["f:spec".into(), "f:replicas".into()]);
        let d = a.difference(&b);
        assert_eq!(
            d.paths(),
            vec![vec!["f:spec".to_string(), "f:paused".to_string()]]
        );
        let i = a.intersection(&b);
        assert_eq!(
            i.paths(),
            vec![vec!["f:spec".to_string(), "f:replicas".to_string()]]
        );
        assert!(b.difference(&a).is_empty());
    }

    #[test]
    fn paths_render_like_upstream() {
        let item = json!({"name": "app", "image": "x"});
        let pe = key_pe(&item, &["name"]).expect("has key");
        assert_eq!(pe, "k:{\"name\":\"app\"}");
        let p = vec![
            field_pe("spec"),
            field_pe("containers"),
            pe,
            field_pe("image"),
        ];
        assert_eq!(path_string(&p), ".spec.containers[name=\"app\"].image");
        let port = key_pe(
            &json!({"protocol": "TCP", "containerPort": 80}),
            &["containerPort", "protocol"],
        )
        .expect("keys");
        assert_eq!(port, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}");
        assert_eq!(
            path_string(&[field_pe("finalizers"), value_pe(&json!("a"))]),
            ".finalizers[=\"a\"]"
        );
        assert_eq!(path_string(&[index_pe(2)]), "[2]");
    }
}
