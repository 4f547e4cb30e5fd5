//! The Kubernetes-native discovery provider: health from the EndpointSlices of named Services
//! (`spec.serviceDiscovery.provider: Kubernetes`). Pure: the operator feeds slices from its cache.
//!
//! A slice belongs to a Service through its `kubernetes.io/service-name` label. An endpoint counts
//! as passing when `conditions.ready` is true or unset — upstream documents a nil `ready` as true
//! (k8s.io/api/discovery/v1/types.go, `EndpointConditions.Ready`); terminating endpoints always have
//! `ready: false`. A Service "exists" when at least one slice carries its name: the EndpointSlice
//! controller keeps a placeholder slice for a selector Service without endpoints
//! (pkg/controller/endpointslice reconciler), so an absent slice means no such Service.

use k8s_openapi::api::discovery::v1::EndpointSlice;
use sroll_api::labels;

use super::{ServiceHealth, ServiceState};

/// Health of `services` in `namespace` from `slices` (any namespace; others are ignored).
pub fn health_from_endpoint_slices<'a>(
    namespace: &str,
    services: &[String],
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> ServiceHealth {
    let mut health = ServiceHealth {
        services: services
            .iter()
            .map(|s| (s.clone(), ServiceState::default()))
            .collect(),
    };
    for slice in slices {
        if slice.metadata.namespace.as_deref() != Some(namespace) {
            continue;
        }
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(labels::SERVICE_NAME))
        else {
            continue;
        };
        let Some(state) = health.services.get_mut(service) else {
            continue;
        };
        state.exists = true;
        for endpoint in &slice.endpoints {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            state
                .passing_addresses
                .extend(endpoint.addresses.iter().cloned());
            if let Some(target) = &endpoint.target_ref
                && target.kind.as_deref() == Some("Pod")
                && let Some(name) = &target.name
            {
                state.passing_pods.insert(name.clone());
            }
        }
    }
    health
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::{
        api::{
            core::v1::ObjectReference,
            discovery::v1::{Endpoint, EndpointConditions},
        },
        apimachinery::pkg::apis::meta::v1::ObjectMeta,
    };

    use super::*;

    fn slice(ns: &str, service: &str, endpoints: &[(&str, &str, Option<bool>)]) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{service}-abcde")),
                namespace: Some(ns.into()),
                labels: Some(BTreeMap::from([(
                    labels::SERVICE_NAME.to_owned(),
                    service.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".into(),
            endpoints: endpoints
                .iter()
                .map(|(pod, ip, ready)| Endpoint {
                    addresses: vec![(*ip).to_owned()],
                    conditions: Some(EndpointConditions {
                        ready: *ready,
                        ..EndpointConditions::default()
                    }),
                    target_ref: Some(ObjectReference {
                        kind: Some("Pod".into()),
                        name: Some((*pod).to_owned()),
                        namespace: Some(ns.into()),
                        ..ObjectReference::default()
                    }),
                    ..Endpoint::default()
                })
                .collect(),
            ..EndpointSlice::default()
        }
    }

    #[test]
    fn ready_and_unset_endpoints_pass_not_ready_ones_do_not() {
        let slices = [
            slice(
                "cache",
                "memcached",
                &[
                    ("m-0", "10.0.0.1", Some(true)),
                    ("m-1", "10.0.0.2", Some(false)),
                ],
            ),
            slice("cache", "memcached", &[("m-2", "10.0.0.3", None)]),
            slice("other", "memcached", &[("m-1", "10.0.0.2", Some(true))]),
        ];
        let h =
            health_from_endpoint_slices("cache", &["memcached".into(), "missing".into()], &slices);
        assert_eq!(h.existing_services(), vec!["memcached".to_owned()]);
        assert!(h.gates());
        assert!(h.is_healthy("m-0", Some("10.0.0.1")));
        assert!(!h.is_healthy("m-1", Some("10.0.0.2")));
        assert!(h.is_healthy("m-2", None));
        assert_eq!(
            h.count_healthy([("m-0", None), ("m-1", None), ("m-2", None)]),
            2
        );
    }

    #[test]
    fn a_pod_must_pass_in_every_existing_service() {
        let slices = [
            slice(
                "cache",
                "a",
                &[
                    ("m-0", "10.0.0.1", Some(true)),
                    ("m-1", "10.0.0.2", Some(true)),
                ],
            ),
            slice(
                "cache",
                "b",
                &[
                    ("m-0", "10.0.0.1", Some(true)),
                    ("m-1", "10.0.0.2", Some(false)),
                ],
            ),
        ];
        let h = health_from_endpoint_slices("cache", &["a".into(), "b".into()], &slices);
        assert!(h.is_healthy("m-0", None));
        assert!(!h.is_healthy("m-1", None));
    }

    #[test]
    fn no_existing_service_means_no_gate() {
        let h = health_from_endpoint_slices("cache", &["a".into()], &[]);
        assert!(!h.gates());
        assert!(h.existing_services().is_empty());
        assert!(!h.is_healthy("m-0", Some("10.0.0.1")));
    }
}
