//! EndpointSlice and Endpoints for Services with selectors, as the
//! EndpointSlice controller (`staging/src/k8s.io/endpointslice/utils.go`:
//! `podToEndpoint`, `getEndpointPorts`; `pkg/api/v1/endpoints` /
//! `pkg/controller/util/endpoint`: `ShouldPodBeInEndpoints`,
//! `ShouldSetHostname`) and the Endpoints controller
//! (`pkg/controller/endpoint/endpoints_controller.go`) compute them.
//!
//! Per pod: `serving` = pod Ready, `terminating` = deletionTimestamp set,
//! `ready` = serving and not terminating (or `publishNotReadyAddresses`).
//!
//! Simplifications: only IPv4 slices; the reconciler keeps at most 100
//! endpoints per slice and reuses existing slices in name order instead of
//! upstream's placement heuristics (`reconciler.go`); Endpoints subsets are
//! grouped by port set without `RepackSubsets`' exact ordering.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        core::v1::{
            EndpointAddress, EndpointPort as CorePort, EndpointSubset, Endpoints, Node,
            ObjectReference, Service, ServicePort,
        },
        discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice},
    },
    apimachinery::pkg::{apis::meta::v1::ObjectMeta, util::intstr::IntOrString},
};

use super::{Error, PodView, ZONE_LABEL, controller_ref, is_pod_ready, phase, selector_matches};

/// Label naming the Service of a slice.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the slice's manager.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] for the in-tree controller.
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
/// Maximum endpoints per slice (`--max-endpoints-per-slice` default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

fn selector_of(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

/// Pods a Service selects (none when it has no selector).
pub fn service_pods<'p, P: PodView>(svc: &Service, pods: &'p [P]) -> Vec<&'p P> {
    let Some(sel) = selector_of(svc) else {
        return Vec::new();
    };
    let ls = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some(sel.clone()),
        match_expressions: None,
    };
    pods.iter()
        .filter(|p| p.meta().namespace == svc.metadata.namespace)
        .filter(|p| selector_matches(&ls, p.meta().labels.as_ref()).unwrap_or(false))
        .collect()
}

fn pod_ip(pod: &impl PodView) -> Option<&str> {
    pod.status_pod_ip().filter(|s| !s.is_empty())
}

/// `ShouldPodBeInEndpoints`: has an IP, not terminal, and (unless
/// `include_terminating`) not terminating.
pub fn should_pod_be_in_endpoints(pod: &impl PodView, include_terminating: bool) -> bool {
    if pod_ip(pod).is_none() {
        return false;
    }
    if !include_terminating && pod.meta().deletion_timestamp.is_some() {
        return false;
    }
    !matches!(phase(pod), "Failed" | "Succeeded")
}

/// `podutil.FindPort`: the container port a service port targets.
fn find_port(pod: &impl PodView, sp: &ServicePort) -> Option<i32> {
    let protocol = sp.protocol.as_deref().unwrap_or("TCP");
    match sp.target_port.as_ref() {
        None => Some(sp.port),
        Some(IntOrString::Int(i)) => Some(*i),
        Some(IntOrString::String(name)) => pod
            .find_container_port(&|p| {
                p.name.as_deref() == Some(name.as_str())
                    && p.protocol.as_deref().unwrap_or("TCP") == protocol
            })
            .map(|p| p.container_port),
    }
}

fn endpoint_ports(svc: &Service, pod: &impl PodView) -> Vec<EndpointPort> {
    svc.spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|sp| {
            find_port(pod, sp).map(|port| EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

fn should_set_hostname(pod: &impl PodView, svc: &Service) -> bool {
    pod.spec_hostname().is_some_and(|h| !h.is_empty())
        && pod.spec_subdomain() == svc.metadata.name.as_deref()
        && pod.meta().namespace == svc.metadata.namespace
}

/// `podToEndpoint`.
pub fn pod_to_endpoint(pod: &impl PodView, node: Option<&Node>, svc: &Service) -> Endpoint {
    let serving = is_pod_ready(pod);
    let terminating = pod.meta().deletion_timestamp.is_some();
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let ready = publish || (serving && !terminating);
    Endpoint {
        addresses: pod_ip(pod).map(str::to_owned).into_iter().collect(),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.meta().namespace.clone(),
            name: pod.meta().name.clone(),
            uid: pod.meta().uid.clone(),
            ..ObjectReference::default()
        }),
        node_name: pod
            .spec_node_name()
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
        zone: node
            .and_then(|n| n.metadata.labels.as_ref())
            .and_then(|l| l.get(ZONE_LABEL))
            .filter(|z| !z.is_empty())
            .cloned(),
        hostname: should_set_hostname(pod, svc)
            .then(|| pod.spec_hostname().map(str::to_owned))
            .flatten(),
        ..Endpoint::default()
    }
}

/// The slices a Service should have: endpoints grouped by port set, at most
/// [`MAX_ENDPOINTS_PER_SLICE`] per slice, without names (see [`reconcile`]).
pub fn desired_slices(
    svc: &Service,
    pods: &[impl PodView],
    nodes: &[Node],
) -> Result<Vec<EndpointSlice>, Error> {
    if selector_of(svc).is_none() {
        return Ok(Vec::new());
    }
    let node_by_name: BTreeMap<&str, &Node> = nodes
        .iter()
        .filter_map(|n| n.metadata.name.as_deref().map(|name| (name, n)))
        .collect();
    let mut by_ports: BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    let mut selected = service_pods(svc, pods);
    selected.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    for pod in selected {
        if !should_pod_be_in_endpoints(pod, true) {
            continue;
        }
        let ports = endpoint_ports(svc, pod);
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let node = pod
            .spec_node_name()
            .and_then(|n| node_by_name.get(n).copied());
        by_ports
            .entry(key)
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(pod_to_endpoint(pod, node, svc));
    }
    let base_meta = slice_meta(svc)?;
    let mut out = Vec::new();
    for (_, (ports, endpoints)) in by_ports {
        for chunk in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE) {
            out.push(EndpointSlice {
                metadata: base_meta.clone(),
                address_type: "IPv4".into(),
                endpoints: chunk.to_vec(),
                ports: Some(ports.clone()),
            });
        }
    }
    if out.is_empty() {
        // The controller keeps one (empty) placeholder slice per Service.
        out.push(EndpointSlice {
            metadata: base_meta,
            address_type: "IPv4".into(),
            endpoints: Vec::new(),
            ports: None,
        });
    }
    Ok(out)
}

fn slice_meta(svc: &Service) -> Result<ObjectMeta, Error> {
    let name = svc.metadata.name.clone().unwrap_or_default();
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    }
    Ok(ObjectMeta {
        generate_name: Some(format!("{name}-")),
        namespace: svc.metadata.namespace.clone(),
        labels: Some(labels),
        owner_references: Some(vec![controller_ref("v1", "Service", &svc.metadata)?]),
        ..ObjectMeta::default()
    })
}

/// A write that brings a Service's slices to the desired state.
#[derive(Debug, Clone, PartialEq)]
pub enum SliceWrite {
    /// POST a new slice (uses `generateName`).
    Create(EndpointSlice),
    /// PUT an existing slice with new content.
    Update(EndpointSlice),
    /// DELETE a slice by name.
    Delete(String),
}

/// Reconciles `existing` slices (those labelled with the Service and managed by
/// the controller) towards `desired`: existing slices are reused in name
/// order, unchanged ones are left alone, extra ones deleted.
pub fn reconcile(desired: Vec<EndpointSlice>, existing: &[EndpointSlice]) -> Vec<SliceWrite> {
    let mut existing: Vec<&EndpointSlice> = existing.iter().collect();
    existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut writes = Vec::new();
    let mut it = existing.into_iter();
    for want in desired {
        match it.next() {
            Some(have) => {
                if have.endpoints != want.endpoints
                    || have.ports != want.ports
                    || have.metadata.labels != want.metadata.labels
                {
                    let mut updated = have.clone();
                    updated.endpoints = want.endpoints;
                    updated.ports = want.ports;
                    updated.metadata.labels = want.metadata.labels;
                    writes.push(SliceWrite::Update(updated));
                }
            }
            None => writes.push(SliceWrite::Create(want)),
        }
    }
    writes.extend(
        it.filter_map(|s| s.metadata.name.clone())
            .map(SliceWrite::Delete),
    );
    writes
}

/// Ports, ready addresses and not-ready addresses of one Endpoints subset.
type SubsetParts = (Vec<CorePort>, Vec<EndpointAddress>, Vec<EndpointAddress>);

/// The core/v1 Endpoints object of a Service (Endpoints controller): ready
/// pods in `addresses`, others in `notReadyAddresses`, terminating pods left
/// out unless `publishNotReadyAddresses`.
pub fn endpoints(svc: &Service, pods: &[impl PodView]) -> Option<Endpoints> {
    selector_of(svc)?;
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut groups: BTreeMap<String, SubsetParts> = BTreeMap::new();
    let mut selected = service_pods(svc, pods);
    selected.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
    for pod in selected {
        if !should_pod_be_in_endpoints(pod, publish) {
            continue;
        }
        let ports: Vec<CorePort> = endpoint_ports(svc, pod)
            .into_iter()
            .map(|p| CorePort {
                name: p.name.filter(|n| !n.is_empty()),
                port: p.port.unwrap_or_default(),
                protocol: p.protocol,
                app_protocol: p.app_protocol,
            })
            .collect();
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let addr = EndpointAddress {
            ip: pod_ip(pod).unwrap_or_default().to_owned(),
            hostname: should_set_hostname(pod, svc)
                .then(|| pod.spec_hostname().map(str::to_owned))
                .flatten(),
            node_name: pod.spec_node_name().map(str::to_owned),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.meta().namespace.clone(),
                name: pod.meta().name.clone(),
                uid: pod.meta().uid.clone(),
                ..ObjectReference::default()
            }),
        };
        let entry = groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        if publish || is_pod_ready(pod) {
            entry.1.push(addr);
        } else {
            entry.2.push(addr);
        }
    }
    let subsets: Vec<EndpointSubset> = groups
        .into_values()
        .map(|(ports, ready, not_ready)| EndpointSubset {
            addresses: (!ready.is_empty()).then_some(ready),
            not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
            ports: (!ports.is_empty()).then_some(ports),
        })
        .collect();
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    }
    Some(Endpoints {
        metadata: ObjectMeta {
            name: svc.metadata.name.clone(),
            namespace: svc.metadata.namespace.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            ..ObjectMeta::default()
        },
        subsets: (!subsets.is_empty()).then_some(subsets),
    })
}
