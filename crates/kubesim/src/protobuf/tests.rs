use prost_reflect::prost::Message as _;

use super::*;

/// A message of `name` with `fields` set (by name).
fn msg(name: &str, fields: Vec<(&str, Pb)>) -> DynamicMessage {
    let d = pool()
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("no message {name}"));
    let mut m = DynamicMessage::new(d);
    for (f, v) in fields {
        m.try_set_field_by_name(f, v)
            .unwrap_or_else(|e| panic!("{name}.{f}: {e}"));
    }
    m
}

fn s(v: &str) -> Pb {
    Pb::String(v.into())
}

fn m(v: DynamicMessage) -> Pb {
    Pb::Message(v)
}

/// `k8s\0` + runtime.Unknown{typeMeta, raw} around `obj`.
fn body(api_version: &str, kind: &str, obj: &DynamicMessage) -> Vec<u8> {
    let tm = msg(
        "apimachinery.pkg.runtime.TypeMeta",
        vec![("apiVersion", s(api_version)), ("kind", s(kind))],
    );
    let unk = msg(
        UNKNOWN,
        vec![
            ("typeMeta", m(tm)),
            ("raw", Pb::Bytes(obj.encode_to_vec().into())),
        ],
    );
    [MAGIC.as_slice(), &unk.encode_to_vec()].concat()
}

fn meta(name: &str) -> Pb {
    m(msg(
        &format!("{META}.ObjectMeta"),
        vec![
            ("name", s(name)),
            // Go's marshaler writes every non-pointer field:
            ("namespace", s("")),
            ("generation", Pb::I64(0)),
            ("creationTimestamp", m(msg(&format!("{META}.Time"), vec![]))),
        ],
    ))
}

#[test]
fn int_or_string_is_a_number_or_a_string() {
    let ios = |t: i64, i: i32, sv: &str| {
        m(msg(
            INT_OR_STRING,
            vec![
                ("type", Pb::I64(t)),
                ("intVal", Pb::I32(i)),
                ("strVal", s(sv)),
            ],
        ))
    };
    let spec = msg(
        "api.policy.v1.PodDisruptionBudgetSpec",
        vec![
            ("maxUnavailable", ios(1, 0, "25%")),
            ("minAvailable", ios(0, 2, "")),
        ],
    );
    let pdb = msg(
        "api.policy.v1.PodDisruptionBudget",
        vec![("metadata", meta("web")), ("spec", m(spec))],
    );
    let v = decode(&body("policy/v1", "PodDisruptionBudget", &pdb)).unwrap();
    assert_eq!(
        v,
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
               "metadata": {"name": "web"},
               "spec": {"maxUnavailable": "25%", "minAvailable": 2}})
    );
}

#[test]
fn quantities_are_strings_and_inline_structs_are_flattened() {
    let q = |v: &str| m(msg(QUANTITY, vec![("string", s(v))]));
    let limits = Pb::Map(
        [
            (MapKey::String("cpu".into()), q("500m")),
            (MapKey::String("memory".into()), q("1Gi")),
        ]
        .into(),
    );
    let resources = msg("api.core.v1.ResourceRequirements", vec![("limits", limits)]);
    let probe = msg(
        "api.core.v1.Probe",
        vec![
            (
                "handler",
                m(msg(
                    "api.core.v1.ProbeHandler",
                    vec![(
                        "exec",
                        m(msg(
                            "api.core.v1.ExecAction",
                            vec![("command", Pb::List(vec![s("true")]))],
                        )),
                    )],
                )),
            ),
            ("periodSeconds", Pb::I32(5)),
        ],
    );
    let c = msg(
        "api.core.v1.Container",
        vec![
            ("name", s("app")),
            ("image", s("nginx")),
            ("imagePullPolicy", s("")),
            ("resources", m(resources)),
            ("readinessProbe", m(probe)),
        ],
    );
    let vol = msg(
        "api.core.v1.Volume",
        vec![
            ("name", s("cache")),
            (
                "volumeSource",
                m(msg(
                    "api.core.v1.VolumeSource",
                    vec![(
                        "emptyDir",
                        m(msg("api.core.v1.EmptyDirVolumeSource", vec![])),
                    )],
                )),
            ),
        ],
    );
    let spec = msg(
        "api.core.v1.PodSpec",
        vec![
            ("containers", Pb::List(vec![m(c)])),
            ("volumes", Pb::List(vec![m(vol)])),
            ("hostNetwork", Pb::Bool(false)),
        ],
    );
    let pod = msg(
        "api.core.v1.Pod",
        vec![("metadata", meta("p")), ("spec", m(spec))],
    );
    let v = decode(&body("v1", "Pod", &pod)).unwrap();
    assert_eq!(
        v["spec"],
        json!({
            "containers": [{"name": "app", "image": "nginx",
                            "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
                            "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5}}],
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "hostNetwork": false,
        })
    );
    assert_eq!(
        v["metadata"],
        json!({"name": "p"}),
        "zero ObjectMeta fields are unset"
    );
}

#[test]
fn times_are_rfc3339_utc_and_durations_go_strings() {
    let t = |secs: i64, nanos: i32| {
        m(msg(
            &format!("{META}.Time"),
            vec![("seconds", Pb::I64(secs)), ("nanos", Pb::I32(nanos))],
        ))
    };
    let mt = m(msg(
        &format!("{META}.MicroTime"),
        vec![
            ("seconds", Pb::I64(1_700_000_000)),
            ("nanos", Pb::I32(123_456_000)),
        ],
    ));
    let lease = msg(
        "api.coordination.v1.LeaseSpec",
        vec![("holderIdentity", s("a")), ("renewTime", mt)],
    );
    let lease = msg(
        "api.coordination.v1.Lease",
        vec![("metadata", meta("l")), ("spec", m(lease))],
    );
    let v = decode(&body("coordination.k8s.io/v1", "Lease", &lease)).unwrap();
    assert_eq!(v["spec"]["renewTime"], json!("2023-11-14T22:13:20.123456Z"));

    let cond = msg(
        "api.core.v1.PodCondition",
        vec![
            ("type", s("Ready")),
            ("status", s("True")),
            // Time keeps whole seconds, as upstream's Time.Unmarshal.
            ("lastTransitionTime", t(1_700_000_000, 999)),
            ("lastProbeTime", m(msg(&format!("{META}.Time"), vec![]))),
        ],
    );
    let j = message_json(&cond).unwrap();
    assert_eq!(
        j,
        json!({"type": "Ready", "status": "True", "lastTransitionTime": "2023-11-14T22:13:20Z"})
    );
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(1_500_000), "1.5ms");
    assert_eq!(go_duration(90_000_000_000), "1m30s");
    assert_eq!(go_duration(3_723_500_000_000), "1h2m3.5s");
    assert_eq!(go_duration(-2_000_000_000), "-2s");
    let d = msg(
        &format!("{META}.Duration"),
        vec![("duration", Pb::I64(300_000_000_000))],
    );
    assert_eq!(message_json(&d).unwrap(), json!("5m0s"));
}

#[test]
fn raw_extensions_hold_json_or_a_nested_protobuf_object() {
    let raw = |b: Vec<u8>| m(msg(RAW_EXTENSION, vec![("raw", Pb::Bytes(b.into()))]));
    let cm = msg(
        "api.core.v1.ConfigMap",
        vec![
            ("metadata", meta("c")),
            (
                "data",
                Pb::Map([(MapKey::String("k".into()), s(""))].into()),
            ),
        ],
    );
    let cr = msg(
        "api.apps.v1.ControllerRevision",
        vec![
            ("metadata", meta("r")),
            ("data", raw(br#"{"spec":{"template":{"x":1}}}"#.to_vec())),
            ("revision", Pb::I64(3)),
        ],
    );
    let v = decode(&body("apps/v1", "ControllerRevision", &cr)).unwrap();
    assert_eq!(v["data"], json!({"spec": {"template": {"x": 1}}}));
    assert_eq!(v["revision"], json!(3));

    let nested = msg(
        "api.apps.v1.ControllerRevision",
        vec![
            ("metadata", meta("r")),
            ("data", raw(body("v1", "ConfigMap", &cm))),
        ],
    );
    let v = decode(&body("apps/v1", "ControllerRevision", &nested)).unwrap();
    assert_eq!(
        v["data"],
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
               "data": {"k": ""}}),
        "map values keep empty strings"
    );

    let bad = msg(
        "api.apps.v1.ControllerRevision",
        vec![("data", raw(b"\x01\x02".to_vec()))],
    );
    let e = decode(&body("apps/v1", "ControllerRevision", &bad)).unwrap_err();
    assert!(
        e.to_string().contains("ControllerRevision") && e.to_string().contains("raw JSON"),
        "{e}"
    );
}

#[test]
fn secret_bytes_are_base64_and_masked_slices_are_arrays() {
    let secret = msg(
        "api.core.v1.Secret",
        vec![
            ("metadata", meta("token")),
            (
                "data",
                Pb::Map(
                    [(
                        MapKey::String("t".into()),
                        Pb::Bytes(b"xoxb".to_vec().into()),
                    )]
                    .into(),
                ),
            ),
            ("type", s("")),
        ],
    );
    let v = decode(&body("v1", "Secret", &secret)).unwrap();
    assert_eq!(v["data"], json!({"t": "eG94Yg=="}));
    assert!(v.get("type").is_none(), "empty type is unset: {v}");

    let extra = msg(
        "api.authorization.v1.ExtraValue",
        vec![("items", Pb::List(vec![s("a"), s("b")]))],
    );
    let spec = msg(
        "api.authorization.v1.SubjectAccessReviewSpec",
        vec![
            ("user", s("u")),
            (
                "extra",
                Pb::Map([(MapKey::String("k".into()), m(extra))].into()),
            ),
        ],
    );
    assert_eq!(
        message_json(&spec).unwrap(),
        json!({"user": "u", "extra": {"k": ["a", "b"]}})
    );
    assert!(MASKED_SLICES.contains(&"apimachinery.pkg.apis.meta.v1.Verbs"));
}

#[test]
fn schema_props_use_their_json_names() {
    let p = format!("{EXT}.JSONSchemaProps");
    let inner = msg(&p, vec![("type", s("string"))]);
    let props = msg(
        &p,
        vec![
            ("ref", s("#/x")),
            ("xKubernetesPreserveUnknownFields", Pb::Bool(true)),
            (
                "additionalProperties",
                m(msg(
                    &format!("{EXT}.JSONSchemaPropsOrBool"),
                    vec![("allows", Pb::Bool(false))],
                )),
            ),
            (
                "items",
                m(msg(
                    &format!("{EXT}.JSONSchemaPropsOrArray"),
                    vec![("schema", m(inner))],
                )),
            ),
        ],
    );
    assert_eq!(
        message_json(&props).unwrap(),
        json!({"$ref": "#/x", "x-kubernetes-preserve-unknown-fields": true,
               "additionalProperties": false, "items": {"type": "string"}})
    );
}

#[test]
fn every_kind_kubesim_serves_has_a_message() {
    for d in crate::registry::builtin_resources() {
        let av = d.api_version();
        assert!(message_for(&av, &d.kind).is_some(), "{av} {}", d.kind);
        assert!(
            message_for(&av, &d.list_kind).is_some(),
            "{av} {}",
            d.list_kind
        );
        assert!(
            message_for(&av, "DeleteOptions").is_some(),
            "{av} DeleteOptions"
        );
        for h in &d.hook_subresources {
            let hv = if h.group.is_empty() {
                h.version.clone()
            } else {
                format!("{}/{}", h.group, h.version)
            };
            assert!(message_for(&hv, &h.kind).is_some(), "{hv} {}", h.kind);
        }
    }
    for (av, kind) in [
        ("policy/v1", "Eviction"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("autoscaling/v1", "Scale"),
        ("events.k8s.io/v1", "Event"),
    ] {
        assert!(message_for(av, kind).is_some(), "{av} {kind}");
    }
    assert!(message_for("apps.example.com/v1", "Deployment").is_none());
    assert!(message_for("apps/v1", "Widget").is_none());
    assert_ne!(
        message_for("v1", "Event").map(|d| d.full_name().to_owned()),
        message_for("events.k8s.io/v1", "Event").map(|d| d.full_name().to_owned())
    );
}

#[test]
fn garbage_and_unknown_kinds_are_named_errors() {
    assert_eq!(decode(b"{\"kind\":\"Pod\"}"), Err(DecodeError::NoPrefix));
    assert_eq!(decode(b"k8s\0"), Err(DecodeError::Empty));
    assert!(matches!(
        decode(b"k8s\0\xff\xff\xff"),
        Err(DecodeError::Envelope(_))
    ));
    let cm = msg("api.core.v1.ConfigMap", vec![("metadata", meta("c"))]);
    assert_eq!(
        decode(&body("v1", "Frobnicator", &cm)),
        Err(DecodeError::UnknownKind {
            api_version: "v1".into(),
            kind: "Frobnicator".into()
        })
    );
    assert_eq!(decode(&body("v1", "", &cm)), Err(DecodeError::MissingKind));
    let mut b = body("v1", "ConfigMap", &cm);
    b.truncate(b.len() - 3);
    let e = decode(&b).unwrap_err();
    assert!(e.to_string().contains("protobuf"), "{e}");
}
