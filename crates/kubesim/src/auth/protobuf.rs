//! Just enough of the Kubernetes protobuf encoding to read the two request bodies kubectl sends
//! as `application/vnd.kubernetes.protobuf` to this module: `TokenRequest` (`kubectl create
//! token`) and `SelfSubjectAccessReview` (`kubectl auth can-i`). The envelope is
//! `k8s\0` + `runtime.Unknown{typeMeta=1, raw=2, …}`
//! (`staging/src/k8s.io/apimachinery/pkg/runtime/serializer/protobuf/protobuf.go`); field numbers
//! are those of `staging/src/k8s.io/api/{authentication,authorization}/v1/generated.proto`.
//! Answers are JSON, which kubectl accepts.

use serde_json::{Value, json};

/// The protobuf media type.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// One decoded field: number and payload.
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn fields(b: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (num, wire) = (key >> 3, key & 7);
        match wire {
            0 => out.push((num, Field::Varint(varint(b, &mut i)?))),
            1 => i += 8,
            5 => i += 4,
            2 => {
                let len = usize::try_from(varint(b, &mut i)?).ok()?;
                let end = i.checked_add(len)?;
                out.push((num, Field::Bytes(b.get(i..end)?)));
                i = end;
            }
            _ => return None,
        }
    }
    Some(out)
}

fn string_fields(b: &[u8], names: &[(u64, &str)]) -> Option<Value> {
    let mut m = serde_json::Map::new();
    for (num, f) in fields(b)? {
        if let (Some((_, name)), Field::Bytes(s)) = (names.iter().find(|(n, _)| *n == num), f) {
            m.insert((*name).to_owned(), json!(String::from_utf8_lossy(s)));
        }
    }
    Some(Value::Object(m))
}

/// The object inside the `k8s\0` envelope.
fn unwrap_envelope(body: &[u8]) -> Option<&[u8]> {
    let inner = body.strip_prefix(b"k8s\0")?;
    fields(inner)?.into_iter().find_map(|(n, f)| match (n, f) {
        (2, Field::Bytes(raw)) => Some(raw),
        _ => None,
    })
}

fn spec_of(body: &[u8]) -> Option<&[u8]> {
    fields(unwrap_envelope(body)?)?
        .into_iter()
        .find_map(|(n, f)| match (n, f) {
            (2, Field::Bytes(spec)) => Some(spec),
            _ => None,
        })
}

/// A `SelfSubjectAccessReview` body as JSON (`spec` only).
pub fn self_subject_access_review(body: &[u8]) -> Option<Value> {
    let mut spec = serde_json::Map::new();
    for (n, f) in fields(spec_of(body)?)? {
        match (n, f) {
            (1, Field::Bytes(r)) => {
                spec.insert(
                    "resourceAttributes".into(),
                    string_fields(
                        r,
                        &[
                            (1, "namespace"),
                            (2, "verb"),
                            (3, "group"),
                            (4, "version"),
                            (5, "resource"),
                            (6, "subresource"),
                            (7, "name"),
                        ],
                    )?,
                );
            }
            (2, Field::Bytes(r)) => {
                spec.insert(
                    "nonResourceAttributes".into(),
                    string_fields(r, &[(1, "path"), (2, "verb")])?,
                );
            }
            _ => {}
        }
    }
    Some(
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "metadata": {}, "spec": spec}),
    )
}

/// A `TokenRequest` body as JSON (`spec.audiences`, `spec.expirationSeconds`).
pub fn token_request(body: &[u8]) -> Option<Value> {
    let mut audiences = Vec::new();
    let mut spec = json!({});
    for (n, f) in fields(spec_of(body)?)? {
        match (n, f) {
            (1, Field::Bytes(a)) => audiences.push(json!(String::from_utf8_lossy(a))),
            (4, Field::Varint(s)) => spec["expirationSeconds"] = json!(s),
            _ => {}
        }
    }
    spec["audiences"] = json!(audiences);
    Some(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(num: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(num << 3) | 2, u8::try_from(payload.len()).unwrap()];
        v.extend_from_slice(payload);
        v
    }

    fn envelope(obj: &[u8]) -> Vec<u8> {
        let mut v = b"k8s\0".to_vec();
        let type_meta = [field(1, b"v1"), field(2, b"X")].concat();
        v.extend(field(1, &type_meta));
        v.extend(field(2, obj));
        v
    }

    #[test]
    fn access_review_attributes_are_read() {
        let attrs = [
            field(1, b"d"),
            field(2, b"create"),
            field(5, b"pods"),
            field(6, b"eviction"),
        ]
        .concat();
        let spec = field(1, &attrs);
        let obj = [field(1, b""), field(2, &spec)].concat();
        let v = self_subject_access_review(&envelope(&obj)).unwrap();
        assert_eq!(
            v["spec"]["resourceAttributes"],
            json!({"namespace": "d", "verb": "create", "resource": "pods", "subresource": "eviction"})
        );
    }

    #[test]
    fn token_request_spec_is_read() {
        let spec = [field(1, b"api"), vec![4 << 3, 0x90, 0x1c]].concat();
        let obj = [field(1, b""), field(2, &spec)].concat();
        let v = token_request(&envelope(&obj)).unwrap();
        assert_eq!(
            v["spec"],
            json!({"audiences": ["api"], "expirationSeconds": 3600})
        );
        assert!(token_request(b"not protobuf").is_none());
    }
}
