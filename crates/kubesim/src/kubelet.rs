//! The fake nodes, scheduler and kubelet (in the spirit of KWOK): node
//! objects spread over three zones, a scheduler that binds pods to nodes
//! (through `pods/binding`, [`crate::binding`]), and a per-pod state machine
//! that moves a pod from `Pending` to `Running` and `Ready`, honours
//! readiness gates, restarts containers in place when their image changes,
//! and finishes graceful deletions.
//!
//! All decisions are pure functions of the pod, the configuration and the
//! simulated time ([`Clock`]); the async driver only executes them.
//!
//! ## Timing
//! Every delay is *simulated* time; [`Clock`] runs `speed` times faster than
//! the wall clock, and the driver sleeps `delay / speed`. A delay is
//! [`Delay::Fixed`] or [`Delay::Uniform`] (drawn deterministically from the
//! pod UID, the phase and the restart count, so a pod's timeline is
//! reproducible). Delays count from instants the driver keeps in memory to the
//! nanosecond — the scheduler's first sight of a pod, the sandbox start, each
//! container's exit ([`PodFacts`]) — as the real scheduler, kubelet and
//! runtime keep their own; the API's `metav1.Time` fields hold whole seconds
//! and are only the fallback. [`KubeletConfig`] holds one figure per phase, and
//! [`KubeletConfig::pools`] gives nodes with given labels their own:
//! * new pod: scheduling (0 s) → volume attach (10 s, pods with persistent
//!   volumes only) → sandbox (0 s; pod IP, `PodReadyToStartContainers`) →
//!   container start (2 s, may be overridden per image);
//! * in-place restart after an image change: container stop (1 s, capped by
//!   the grace period) → image pull (5 s) → container start (2 s);
//! * deletion: container stop, then the pod is removed.
//!
//! ## Readiness
//! `Ready` is computed as `GeneratePodReadyCondition`
//! (`pkg/kubelet/status/generate.go`) does: `False` with the
//! `ContainersReady` reason while a container is not ready, else `False`
//! (`ReadinessGatesNotReady`) while a `spec.readinessGates` condition is
//! missing or not `True`. Gate conditions belong to controllers, which write
//! them through `pods/status`; the kubelet keeps every condition it does not
//! own. A `Ready` written by someone else stands until
//! [`KubeletConfig::status_reconcile`] has passed, unless the kubelet's own
//! view of the pod changes first (then its whole status is written at once),
//! like the status manager's periodic reconcile
//! (`pkg/kubelet/status/status_manager.go`).
//!
//! ## Failure modes chosen by image tag
//! * tag ending in `-unready` (e.g. `nginx:1.27-unready`): the container runs
//!   but never becomes ready;
//! * tag ending in `-crashloop`: the container runs for one second, exits with
//!   code 1, and is restarted with the kubelet's back-off (10 s doubling to
//!   5 min); it never becomes ready. (Its one-second run is timed from the
//!   stored, whole-second `state.running.startedAt`; the back-off from the
//!   exit kept to the nanosecond.)
//!
//! ## Simplifications (upstream: `pkg/kubelet/status/status_manager.go`,
//! `pkg/kubelet/kuberuntime/kuberuntime_manager.go`, `pkg/scheduler`)
//! * Containers become ready as soon as they start (no probes); init
//!   containers, resources and node capacity are ignored.
//! * In-place restarts (`computePodActions`: a container whose spec hash
//!   changed is killed and started again in the same sandbox) are detected by
//!   image only, the one container field an update may change. The killed
//!   container is recorded at once (`lastState.terminated`, exit code 0,
//!   `Completed`, `finishedAt` = the kill) and shown waiting
//!   (`ContainerCreating`) through its stop, pull and start, where the real
//!   kubelet shows it running until it exits. A process killed after its
//!   grace period (exit 137) is not modelled. `pods/resize` (in-place
//!   resource changes) is not served.
//! * Scheduling honours `nodeSelector`, `schedulingGates`, node readiness and `unschedulable`, and
//!   spreads pods of one controller across zones, then nodes (like the default
//!   `PodTopologySpread` soft constraints); affinity and taints are ignored.
//! * A terminating pod is removed (DELETE with grace 0) after
//!   `min(grace period, shutdown delay)`, as the kubelet does once its
//!   containers have stopped.

use std::{
    borrow::Borrow,
    collections::BTreeMap,
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
        ContainerStatus, HostIP, Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus,
        NodeSystemInfo, Pod, PodCondition, PodIP, PodSpec, PodStatus,
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{ObjectMeta, Time},
    },
    jiff::{SignedDuration, Timestamp},
};

use crate::controllers::{ZONE_LABEL, controller_of, history::fnv1_32};

/// The three zones the fake nodes are spread over.
pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
/// How long a `-crashloop` container runs before it exits.
pub const CRASH_RUN: SignedDuration = SignedDuration::from_secs(1);
/// Initial crash back-off (`kubelet` `backOffPeriod`).
pub const BACKOFF_INITIAL: SignedDuration = SignedDuration::from_secs(10);
/// Maximum crash back-off (`MaxContainerBackOff`).
pub const BACKOFF_MAX: SignedDuration = SignedDuration::from_secs(300);

/// The simulated clock: starts at the wall-clock time it was created and runs
/// `speed` times faster.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Timestamp,
    started: Instant,
    speed: f64,
}

impl Clock {
    /// A clock running `speed` times faster than real time (`speed > 0`;
    /// anything else is treated as 1).
    pub fn new(speed: f64) -> Self {
        Self {
            origin: wall_now(),
            started: Instant::now(),
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
        }
    }

    /// The speed factor.
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// The simulated now.
    pub fn now(&self) -> Timestamp {
        let real = self.started.elapsed().as_secs_f64() * self.speed;
        let d = SignedDuration::try_from_secs_f64(real).unwrap_or(SignedDuration::MAX);
        self.origin.checked_add(d).unwrap_or(Timestamp::MAX)
    }

    /// The real time to wait for `sim` simulated time to pass.
    pub fn real(&self, sim: SignedDuration) -> Duration {
        let secs = sim.as_secs_f64().max(0.0) / self.speed;
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}

/// The wall-clock time as a [`Timestamp`].
pub fn wall_now() -> Timestamp {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(since_epoch.as_secs()).unwrap_or(0);
    let nanos = i32::try_from(since_epoch.subsec_nanos()).unwrap_or(0);
    Timestamp::new(secs, nanos).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A delay, in simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
    /// Always this long.
    Fixed(SignedDuration),
    /// Uniformly between `min` and `max` (inclusive), drawn per pod.
    Uniform {
        /// Shortest delay.
        min: SignedDuration,
        /// Longest delay.
        max: SignedDuration,
    },
}

impl Delay {
    /// The delay for a draw `seed` (deterministic).
    pub fn pick(&self, seed: u32) -> SignedDuration {
        match *self {
            Self::Fixed(d) => d,
            Self::Uniform { min, max } => {
                let span = (max - min).as_millis().max(0);
                let off = if span == 0 {
                    0
                } else {
                    i128::from(seed) % (span + 1)
                };
                min + SignedDuration::from_millis(i64::try_from(off).unwrap_or(0))
            }
        }
    }
}

/// Configuration of the fake kubelets: the simulated duration of each phase
/// of a pod's life (see the module docs, "Timing").
///
/// A new pod's cycle is `scheduling_delay` (creation to binding) +
/// `volume_attach_delay` (only pods with `persistentVolumeClaim` or
/// `ephemeral` volumes) + `sandbox_delay` (pod IP) + the container's start
/// delay ([`KubeletConfig::start_delay_for`]). An in-place restart after an
/// image change is the stop (`shutdown_delay`, capped by the pod's
/// `terminationGracePeriodSeconds`) + `image_pull_delay` + the start delay.
/// [`KubeletConfig::pools`] gives nodes with given labels their own figures.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeletConfig {
    /// Container start: from the sandbox being ready (or the new image being
    /// pulled) to the container running and ready. Default 2 s, which also
    /// covers the sandbox while `sandbox_delay` is 0.
    pub start_delay: Delay,
    /// Per-image overrides of `start_delay`: the first entry whose key equals
    /// the image or is a prefix of it wins.
    pub image_delays: Vec<(String, Delay)>,
    /// Container stop: how long containers take to exit after SIGTERM
    /// (capped by the grace period), for pod deletion and in-place
    /// restarts. Default 1 s.
    pub shutdown_delay: SignedDuration,
    /// kube-scheduler: pod creation to binding. Default 0 (the real scheduler
    /// binds within milliseconds; raise it to model, e.g., a pool whose nodes
    /// must be provisioned first).
    pub scheduling_delay: Delay,
    /// Pod sandbox (pause container, CNI): from the volumes being ready to the
    /// pod having its IP. Default 0, counted inside `start_delay`.
    pub sandbox_delay: Delay,
    /// Attaching and mounting the pod's persistent volumes (CSI attach +
    /// mount), for pods with `persistentVolumeClaim` or `ephemeral` volumes
    /// only. Default 10 s.
    pub volume_attach_delay: Delay,
    /// Pulling the new image of a container restarted in place. Default 5 s.
    /// (New pods' images are taken as already present, within `start_delay`.)
    pub image_pull_delay: Delay,
    /// How long a `Ready` condition written by someone else (a controller
    /// taking the pod out of endpoints) stands before the kubelet writes its
    /// own again when nothing else changed: the status manager's reconcile
    /// period (`syncPeriod` in `pkg/kubelet/status/status_manager.go`).
    /// Default 10 s.
    pub status_reconcile: SignedDuration,
    /// Node pools: the first pool whose `node_labels` all match a node's
    /// labels gives the kubelet of that node (and the scheduling of pods onto
    /// it) its timing. Nodes of no pool use this configuration.
    pub pools: Vec<NodePool>,
}

/// Nodes that carry all of `node_labels` and the timing of their kubelets
/// (its own `pools` are ignored).
#[derive(Debug, Clone, PartialEq)]
pub struct NodePool {
    /// A name for messages and docs.
    pub name: String,
    /// The labels a node must carry (e.g. `topology.kubernetes.io/zone`, or
    /// a label set with `kubectl label node`).
    pub node_labels: BTreeMap<String, String>,
    /// The pool's timing.
    pub kubelet: KubeletConfig,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        Self {
            start_delay: Delay::Fixed(SignedDuration::from_secs(2)),
            image_delays: Vec::new(),
            shutdown_delay: SignedDuration::from_secs(1),
            scheduling_delay: Delay::Fixed(SignedDuration::ZERO),
            sandbox_delay: Delay::Fixed(SignedDuration::ZERO),
            volume_attach_delay: Delay::Fixed(SignedDuration::from_secs(10)),
            image_pull_delay: Delay::Fixed(SignedDuration::from_secs(5)),
            status_reconcile: SignedDuration::from_secs(10),
            pools: Vec::new(),
        }
    }
}

impl KubeletConfig {
    /// The start delay of `image` for a pod (`uid`) at `restarts` restarts.
    pub fn start_delay_for(&self, image: &str, uid: &str, restarts: i32) -> SignedDuration {
        let delay = self
            .image_delays
            .iter()
            .find(|(k, _)| image == k || image.starts_with(k.as_str()))
            .map_or(self.start_delay, |(_, d)| *d);
        delay.pick(fnv1_32(format!("{uid}/{restarts}").as_bytes()))
    }

    /// The configuration of the kubelet of a node with these labels: the
    /// first matching pool's, else this one.
    pub fn for_node(&self, labels: Option<&BTreeMap<String, String>>) -> &KubeletConfig {
        self.pools
            .iter()
            .find(|p| {
                p.node_labels
                    .iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
            })
            .map_or(self, |p| &p.kubelet)
    }

    /// A draw of `delay` for one phase (`what`) of pod `uid`.
    fn draw(delay: Delay, uid: &str, what: &str) -> SignedDuration {
        delay.pick(fnv1_32(format!("{uid}/{what}").as_bytes()))
    }

    /// How long after the pod reached the kubelet its sandbox is ready (pod
    /// IP): volume attach (pods with persistent volumes) then the sandbox, in
    /// the kubelet's order (`WaitForAttachAndMount` before `SyncPod`).
    pub fn sandbox_ready_after(&self, pod: &Pod) -> SignedDuration {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let volumes = if has_persistent_volumes(pod) {
            Self::draw(self.volume_attach_delay, uid, "volumes")
        } else {
            SignedDuration::ZERO
        };
        volumes + Self::draw(self.sandbox_delay, uid, "sandbox")
    }

    /// The earliest time the scheduler binds `pod` onto a node of this
    /// configuration: `scheduling_delay` after `queued`, when the scheduler
    /// first saw the pod, to the nanosecond (`QueuedPodInfo.Timestamp` in
    /// upstream's `pkg/scheduler/framework/types.go`). `None` falls back to
    /// `metadata.creationTimestamp`, which the API stores in whole seconds
    /// (up to a second early).
    pub fn bind_at(&self, pod: &Pod, queued: Option<Timestamp>) -> Option<Timestamp> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let since = match queued {
            Some(t) => t,
            None => pod.metadata.creation_timestamp.as_ref()?.0,
        };
        since
            .checked_add(Self::draw(self.scheduling_delay, uid, "scheduling"))
            .ok()
    }

    /// The time from killing a container (for an image change) to its
    /// replacement running: stop (capped by the grace period), image pull,
    /// start.
    pub fn in_place_restart_after(&self, pod: &Pod, image: &str, restarts: i32) -> SignedDuration {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let stop = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .map_or(self.shutdown_delay, |g| {
                self.shutdown_delay.min(SignedDuration::from_secs(g.max(0)))
            });
        stop + Self::draw(self.image_pull_delay, uid, &format!("pull/{restarts}"))
            + self.start_delay_for(image, uid, restarts)
    }
}

/// Whether the pod mounts persistent volumes (which the kubelet waits for
/// before creating the sandbox).
pub fn has_persistent_volumes(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| {
            vs.iter()
                .any(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some())
        })
}

/// The failure mode an image asks for (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Starts and becomes ready.
    Healthy,
    /// Runs, never ready.
    Unready,
    /// Crashes and restarts with back-off, never ready.
    CrashLoop,
}

/// The failure mode of an image (by tag suffix).
pub fn failure_mode(image: &str) -> FailureMode {
    let tag = image
        .rsplit_once('/')
        .map_or(image, |(_, last)| last)
        .split_once(':')
        .map_or("", |(_, t)| t);
    let tag = tag.split('@').next().unwrap_or(tag);
    if tag.ends_with("-unready") {
        FailureMode::Unready
    } else if tag.ends_with("-crashloop") {
        FailureMode::CrashLoop
    } else {
        FailureMode::Healthy
    }
}

/// Name of the `i`-th fake node.
pub fn node_name(i: usize) -> String {
    format!("kubesim-node-{i}")
}

/// `n` Ready nodes named `kubesim-node-<i>`, round-robin over [`ZONES`].
pub fn fake_nodes(n: usize, now: Timestamp) -> Vec<Node> {
    (0..n)
        .map(|i| {
            let name = node_name(i);
            let zone = ZONES[i % ZONES.len()];
            let labels: BTreeMap<String, String> = [
                ("kubernetes.io/hostname", name.as_str()),
                ("kubernetes.io/os", "linux"),
                ("kubernetes.io/arch", "amd64"),
                (ZONE_LABEL, zone),
                ("topology.kubernetes.io/region", "kubesim"),
                ("node.kubernetes.io/instance-type", "kubesim"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            let capacity: BTreeMap<String, Quantity> = [
                ("cpu", "64"),
                ("memory", "256Gi"),
                ("pods", "10000"),
                ("ephemeral-storage", "1Ti"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
            .collect();
            Node {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(labels),
                    ..ObjectMeta::default()
                },
                spec: Some(NodeSpec {
                    pod_cidr: Some(format!("10.244.{i}.0/24")),
                    ..NodeSpec::default()
                }),
                status: Some(NodeStatus {
                    addresses: Some(vec![
                        NodeAddress {
                            type_: "InternalIP".into(),
                            address: host_ip(i),
                        },
                        NodeAddress {
                            type_: "Hostname".into(),
                            address: name,
                        },
                    ]),
                    allocatable: Some(capacity.clone()),
                    capacity: Some(capacity),
                    conditions: Some(vec![node_ready_condition(true, now)]),
                    node_info: Some(NodeSystemInfo {
                        architecture: "amd64".into(),
                        boot_id: String::new(),
                        container_runtime_version: "containerd://2.1.0".into(),
                        kernel_version: "6.8.0".into(),
                        kube_proxy_version: String::new(),
                        kubelet_version: "v1.35.0".into(),
                        machine_id: String::new(),
                        operating_system: "linux".into(),
                        os_image: "kubesim".into(),
                        system_uuid: String::new(),
                        swap: None,
                    }),
                    phase: None,
                    ..NodeStatus::default()
                }),
            }
        })
        .collect()
}

/// The node's `Ready` condition: `True/KubeletReady` or, for a failed node,
/// `Unknown/NodeStatusUnknown` as the node lifecycle controller sets it.
pub fn node_ready_condition(ready: bool, now: Timestamp) -> NodeCondition {
    let (status, reason, message) = if ready {
        ("True", "KubeletReady", "kubelet is posting ready status")
    } else {
        (
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        )
    };
    NodeCondition {
        type_: "Ready".into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The InternalIP of node `i`.
pub fn host_ip(i: usize) -> String {
    format!("172.18.{}.{}", i / 250, i % 250 + 2)
}

/// The `n`-th pod IP on node `i` (from the node's `10.244.<i>.0/24` CIDR,
/// continuing into further /16s for large counts).
pub fn pod_ip(i: usize, n: usize) -> String {
    let host = n % 253 + 2;
    let block = n / 253;
    format!(
        "10.{}.{}.{}",
        244 + block / 256 % 12,
        (i + block) % 256,
        host
    )
}

fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// Chooses a node for `pod` among `nodes`, given the pods already bound
/// (`spec.nodeName` set). `None` when no node fits.
pub fn schedule<'a>(
    pod: &Pod,
    nodes: &[Node],
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Option<String> {
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    let mut owned_per_node: BTreeMap<&str, usize> = BTreeMap::new();
    let owner = controller_of(&pod.metadata).map(|r| r.uid.as_str());
    for p in pods {
        let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        *per_node.entry(n).or_default() += 1;
        if owner.is_some() && controller_of(&p.metadata).map(|r| r.uid.as_str()) == owner {
            *owned_per_node.entry(n).or_default() += 1;
        }
    }
    schedule_counted(
        pod,
        nodes,
        |n| owned_per_node.get(n).copied().unwrap_or(0),
        |n| per_node.get(n).copied().unwrap_or(0),
    )
}

/// [`schedule`] from counts: `owned(node)`, the pods of `pod`'s controller bound to the node
/// (0 for a pod without controller), and `bound(node)`, every pod bound to it — as a
/// simulation keeps them indexed instead of walking the pods per decision.
///
/// The decision: among the ready, schedulable nodes matching the pod's `nodeSelector`, the
/// one with the fewest pods of the controller in its zone, then on itself, then in all, then
/// by name (a deterministic stand-in for `PodTopologySpread` + `NodeResourcesBalancedAllocation`).
pub fn schedule_counted<N: Borrow<Node>>(
    pod: &Pod,
    nodes: &[N],
    owned: impl Fn(&str) -> usize,
    bound: impl Fn(&str) -> usize,
) -> Option<String> {
    let selector = pod.spec.as_ref().and_then(|s| s.node_selector.as_ref());
    let has_owner = controller_of(&pod.metadata).is_some();
    let owned = |n: &str| if has_owner { owned(n) } else { 0 };
    fn zone_of(n: &Node) -> &str {
        n.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ZONE_LABEL))
            .map_or("", String::as_str)
    }
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for n in nodes.iter().map(Borrow::borrow) {
        if let Some(name) = n.metadata.name.as_deref() {
            *per_zone.entry(zone_of(n)).or_default() += owned(name);
        }
    }
    nodes
        .iter()
        .map(Borrow::borrow)
        .filter(|n| node_is_ready(n))
        .filter(|n| {
            !n.spec
                .as_ref()
                .and_then(|s| s.unschedulable)
                .unwrap_or(false)
        })
        .filter(|n| {
            let labels = n.metadata.labels.as_ref();
            selector
                .into_iter()
                .flatten()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .filter_map(|n| {
            let name = n.metadata.name.as_deref()?;
            let key = (
                per_zone.get(zone_of(n)).copied().unwrap_or(0),
                owned(name),
                bound(name),
                name,
            );
            Some(key)
        })
        .min()
        .map(|k| k.3.to_owned())
}

/// What the kubelet does next for a pod.
#[derive(Debug, Clone, PartialEq)]
pub enum KubeletAction {
    /// Nothing to write now.
    Nothing,
    /// PUT this status to `pods/status`.
    UpdateStatus(Box<PodStatus>),
    /// The containers stopped: DELETE the pod with grace period 0.
    Remove,
}

/// One step of the kubelet for a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeletStep {
    /// The write to perform.
    pub action: KubeletAction,
    /// Look at the pod again after this much simulated time (if nothing else
    /// changes it before).
    pub wake_after: Option<SignedDuration>,
    /// The `Ready` status the kubelet computed (`None` when it did not look
    /// at the containers: terminal or terminating pods). The driver compares
    /// it with the stored condition to notice someone else's `Ready` write
    /// ([`PodFacts::ready_override_since`]).
    pub ready: Option<bool>,
    /// The containers this step stopped, at `now`: the driver remembers them
    /// and passes them back in [`PodFacts::exits`].
    pub exits: Vec<ContainerExit>,
}

/// A container the kubelet stopped (for an image change, or a crash), as the
/// container runtime remembers it: to the nanosecond.
///
/// The pod's `lastState.terminated.finishedAt` is a `metav1.Time`, stored in
/// whole seconds; the real kubelet times restarts from the runtime's own
/// record (CRI `ContainerStatus.finished_at`, nanoseconds, read by
/// `toKubeContainerStatus` in `pkg/kubelet/kuberuntime/kuberuntime_container.go`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerExit {
    /// The container's name.
    pub container: String,
    /// Its `restartCount` once the exit was recorded: an exit whose count is
    /// not the container's current one is an older exit, and is ignored.
    pub restart_count: i32,
    /// When it stopped (simulated time).
    pub at: Timestamp,
}

/// Facts about the pod the driver tracks outside the pod object.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PodFacts<'a> {
    /// The simulated time at which the kubelet first saw the pod's
    /// `deletionTimestamp` (graceful termination start).
    pub termination_started: Option<Timestamp>,
    /// The simulated time the kubelet started the pod's sandbox, to the nanosecond. Container
    /// start delays count from it: `status.startTime` is a `metav1.Time`, serialized in whole
    /// seconds, and timing from the stored value would start containers up to a second early
    /// whenever another event synced the pod first. `None`: fall back to `status.startTime`.
    pub sandbox_started: Option<Timestamp>,
    /// The latest exit of each of the pod's containers, to the nanosecond
    /// ([`KubeletStep::exits`], kept by the driver). A container with none
    /// falls back to its whole-second `lastState.terminated.finishedAt`.
    pub exits: &'a [ContainerExit],
    /// The IP to give the pod if it has none yet.
    pub pod_ip: &'a str,
    /// The node's InternalIP.
    pub host_ip: &'a str,
    /// Fault injection: keep the pod's Ready condition False.
    pub forced_unready: bool,
    /// Since when the stored `Ready` condition differs from the one the
    /// kubelet last computed, i.e. someone else wrote it (an in-place updater
    /// taking the pod out of endpoints). The kubelet leaves that write alone
    /// for [`KubeletConfig::status_reconcile`] unless its own view of the pod
    /// changes, as the status manager only rewrites an unchanged status at
    /// its reconcile period.
    pub ready_override_since: Option<Timestamp>,
}

fn hex_id(seed: &str, len: usize) -> String {
    let mut out = String::new();
    let mut i = 0u32;
    while out.len() < len {
        out.push_str(&format!(
            "{:08x}",
            fnv1_32(format!("{seed}#{i}").as_bytes())
        ));
        i += 1;
    }
    out.truncate(len);
    out
}

fn image_id(image: &str) -> String {
    let repo = image.split([':', '@']).next().unwrap_or(image);
    let repo = if repo.contains('/') {
        repo.to_owned()
    } else {
        format!("docker.io/library/{repo}")
    };
    format!("{repo}@sha256:{}", hex_id(image, 64))
}

fn set_condition(
    conds: &mut Vec<PodCondition>,
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: Timestamp,
) {
    let status = if ok { "True" } else { "False" };
    if let Some(c) = conds.iter_mut().find(|c| c.type_ == type_) {
        if c.status != status {
            c.status = status.into();
            c.last_transition_time = Some(Time(now));
        }
        c.reason = reason.map(str::to_owned);
        c.message = message;
    } else {
        conds.push(PodCondition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.map(str::to_owned),
            message,
            last_transition_time: Some(Time(now)),
            ..PodCondition::default()
        });
    }
}

fn since(t: Option<&Time>, d: SignedDuration) -> Option<Timestamp> {
    t.and_then(|t| t.0.checked_add(d).ok())
}

/// Decides the kubelet's next step for a pod bound to this node.
pub fn step(pod: &Pod, cfg: &KubeletConfig, facts: PodFacts<'_>, now: Timestamp) -> KubeletStep {
    let nothing = |wake| KubeletStep {
        action: KubeletAction::Nothing,
        wake_after: wake,
        ready: None,
        exits: Vec::new(),
    };
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    if matches!(phase, "Succeeded" | "Failed") {
        return nothing(None);
    }
    if let Some(started) = facts.termination_started {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .map_or(cfg.shutdown_delay, SignedDuration::from_secs);
        let done = started
            .checked_add(grace.min(cfg.shutdown_delay).max(SignedDuration::ZERO))
            .unwrap_or(started);
        return if now >= done {
            KubeletStep {
                action: KubeletAction::Remove,
                wake_after: None,
                ready: None,
                exits: Vec::new(),
            }
        } else {
            nothing(Some(done.duration_since(now)))
        };
    }
    let Some(spec) = pod.spec.as_ref() else {
        return nothing(None);
    };
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let no_status = PodStatus::default();
    let old: &PodStatus = pod.status.as_ref().unwrap_or(&no_status);
    let mut st = old.clone();
    let mut wake: Option<SignedDuration> = None;
    let mut exits = Vec::new();
    let mut soon = |at: Timestamp| {
        let d = at.duration_since(now).max(SignedDuration::ZERO);
        wake = Some(wake.map_or(d, |w: SignedDuration| w.min(d)));
    };

    // The pod reached the kubelet: start time at once (hostIP with it);
    // volumes, then the sandbox and its IP.
    if st.start_time.is_none() {
        st.start_time = Some(Time(facts.sandbox_started.unwrap_or(now)));
    }
    if st.host_ip.as_deref().unwrap_or("").is_empty() {
        st.host_ip = Some(facts.host_ip.to_owned());
        st.host_ips = Some(vec![HostIP {
            ip: facts.host_ip.to_owned(),
        }]);
    }
    let pod_start = facts
        .sandbox_started
        .or_else(|| st.start_time.as_ref().map(|t| t.0))
        .unwrap_or(now);
    let sandbox_at = pod_start
        .checked_add(cfg.sandbox_ready_after(pod))
        .unwrap_or(pod_start);
    let sandbox_ready = now >= sandbox_at || !st.pod_ip.as_deref().unwrap_or("").is_empty();
    if !sandbox_ready {
        soon(sandbox_at);
    } else if st.pod_ip.as_deref().unwrap_or("").is_empty() {
        st.pod_ip = Some(facts.pod_ip.to_owned());
        st.pod_ips = Some(vec![PodIP {
            ip: facts.pod_ip.to_owned(),
        }]);
    }

    let old_statuses: BTreeMap<&str, &ContainerStatus> = old
        .container_statuses
        .iter()
        .flatten()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let mut statuses = Vec::new();
    for c in &spec.containers {
        let image = c.image.clone().unwrap_or_default();
        let mode = failure_mode(&image);
        let mut cs = old_statuses
            .get(c.name.as_str())
            .map(|c| (*c).clone())
            .unwrap_or_else(|| ContainerStatus {
                name: c.name.clone(),
                image: image.clone(),
                image_id: String::new(),
                ready: false,
                restart_count: 0,
                started: Some(false),
                state: Some(waiting("ContainerCreating")),
                ..ContainerStatus::default()
            });
        let state = cs.state.clone().unwrap_or_default();
        if let Some(running) = &state.running {
            if cs.image != image {
                // computePodActions: the container's spec (hash) changed, so
                // the kubelet kills it and starts it again with the new image,
                // leaving the sandbox (uid, IP, volumes) and the other
                // containers alone.
                cs.last_state = Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 0,
                        reason: Some("Completed".into()),
                        started_at: running.started_at.clone(),
                        finished_at: Some(Time(now)),
                        container_id: cs.container_id.clone(),
                        ..ContainerStateTerminated::default()
                    }),
                    ..ContainerState::default()
                });
                cs.state = Some(waiting("ContainerCreating"));
                cs.restart_count += 1;
                exits.push(ContainerExit {
                    container: c.name.clone(),
                    restart_count: cs.restart_count,
                    at: now,
                });
                cs.ready = false;
                cs.started = Some(false);
                cs.image = image.clone();
                cs.image_id = String::new();
                cs.container_id = None;
                if let Some(at) = since(
                    Some(&Time(now)),
                    cfg.in_place_restart_after(pod, &image, cs.restart_count),
                ) {
                    soon(at);
                }
            } else if mode == FailureMode::CrashLoop {
                let crash_at = since(running.started_at.as_ref(), CRASH_RUN).unwrap_or(now);
                if now >= crash_at {
                    cs.last_state = Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: 1,
                            reason: Some("Error".into()),
                            started_at: running.started_at.clone(),
                            finished_at: Some(Time(now)),
                            container_id: cs.container_id.clone(),
                            ..ContainerStateTerminated::default()
                        }),
                        ..ContainerState::default()
                    });
                    cs.restart_count += 1;
                    exits.push(ContainerExit {
                        container: c.name.clone(),
                        restart_count: cs.restart_count,
                        at: now,
                    });
                    cs.ready = false;
                    cs.started = Some(false);
                    cs.state = Some(ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some("CrashLoopBackOff".into()),
                            message: Some(format!(
                                "back-off {}s restarting failed container={} pod={}",
                                backoff(cs.restart_count).as_secs(),
                                c.name,
                                pod.metadata.name.as_deref().unwrap_or_default()
                            )),
                        }),
                        ..ContainerState::default()
                    });
                    soon(now.checked_add(backoff(cs.restart_count)).unwrap_or(now));
                } else {
                    soon(crash_at);
                }
            }
        } else if let Some(w) = &state.waiting {
            // The runtime's own record of the exit, else the stored
            // whole-second `finishedAt`.
            let finished = facts
                .exits
                .iter()
                .find(|e| e.container == c.name && e.restart_count == cs.restart_count)
                .map(|e| Time(e.at))
                .or_else(|| {
                    cs.last_state
                        .as_ref()
                        .and_then(|l| l.terminated.as_ref())
                        .and_then(|t| t.finished_at.clone())
                });
            let start_at = if w.reason.as_deref() == Some("CrashLoopBackOff") {
                since(finished.as_ref(), backoff(cs.restart_count))
            } else if let Some(killed) = &finished {
                // Killed for an image change: stop, pull, start.
                since(
                    Some(killed),
                    cfg.in_place_restart_after(pod, &image, cs.restart_count),
                )
            } else {
                sandbox_at
                    .checked_add(cfg.start_delay_for(&image, uid, cs.restart_count))
                    .ok()
            }
            .unwrap_or(now);
            if now >= start_at {
                cs.state = Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(Time(now)),
                    }),
                    ..ContainerState::default()
                });
                cs.container_id = Some(format!(
                    "containerd://{}",
                    hex_id(&format!("{uid}/{}/{}", c.name, cs.restart_count), 64)
                ));
                cs.image = image.clone();
                cs.image_id = image_id(&image);
                cs.started = Some(true);
                cs.ready = mode == FailureMode::Healthy;
                if mode == FailureMode::CrashLoop {
                    soon(now.checked_add(CRASH_RUN).unwrap_or(now));
                }
            } else {
                soon(start_at);
            }
        }
        statuses.push(cs);
    }

    let ever_started = statuses
        .iter()
        .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()) || c.restart_count > 0);
    let new_phase = if phase == "Running" || ever_started {
        "Running"
    } else {
        "Pending"
    };
    st.phase = Some(new_phase.into());
    let unready: Vec<String> = statuses
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.clone())
        .collect();
    let containers_ready = unready.is_empty();
    let mut conds = st.conditions.clone().unwrap_or_default();
    let not_ready_msg = (!containers_ready)
        .then(|| format!("containers with unready status: [{}]", unready.join(" ")));
    let reason = (!containers_ready).then_some("ContainersNotReady");
    set_condition(
        &mut conds,
        "PodReadyToStartContainers",
        sandbox_ready,
        None,
        None,
        now,
    );
    set_condition(&mut conds, "Initialized", true, None, None, now);
    set_condition(
        &mut conds,
        "ContainersReady",
        containers_ready,
        reason,
        not_ready_msg.clone(),
        now,
    );
    let (ready, ready_reason, ready_msg) = if !containers_ready {
        (false, reason, not_ready_msg)
    } else if let Some(gates) = readiness_gates_message(spec, &conds) {
        (false, Some("ReadinessGatesNotReady"), Some(gates))
    } else if facts.forced_unready {
        (
            false,
            Some("ReadinessGatesNotReady"),
            Some("marked unready by kubesim fault injection".to_owned()),
        )
    } else {
        (true, None, None)
    };
    set_condition(&mut conds, "Ready", ready, ready_reason, ready_msg, now);
    set_condition(&mut conds, "PodScheduled", true, None, None, now);
    conds.sort_by_key(|c| condition_rank(&c.type_));
    st.conditions = Some(conds);
    st.container_statuses = Some(statuses);

    // Someone else's Ready stands until the reconcile period when it is the
    // only thing the kubelet would change.
    if let Some(since) = facts.ready_override_since {
        let deadline = since.checked_add(cfg.status_reconcile).unwrap_or(since);
        if now < deadline {
            let mut kept = st.clone();
            let stored_ready = ready_of(old).cloned();
            if let (Some(conds), Some(stored)) = (kept.conditions.as_mut(), stored_ready) {
                for c in conds.iter_mut().filter(|c| c.type_ == "Ready") {
                    *c = stored.clone();
                }
            }
            let mut old_sorted = old.clone();
            if let Some(c) = old_sorted.conditions.as_mut() {
                c.sort_by_key(|c| condition_rank(&c.type_));
            }
            if kept == old_sorted {
                st = old.clone();
                soon(deadline);
            }
        }
    }

    KubeletStep {
        action: if st == *old {
            KubeletAction::Nothing
        } else {
            KubeletAction::UpdateStatus(Box::new(st))
        },
        wake_after: wake,
        ready: Some(ready),
        exits,
    }
}

/// The stored `Ready` condition of a status.
fn ready_of(st: &PodStatus) -> Option<&PodCondition> {
    st.conditions
        .as_ref()
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
}

/// Why the readiness gates hold the pod back, as `GeneratePodReadyCondition`
/// (`pkg/kubelet/status/generate.go`) words it; `None` when every gate's
/// condition is `True`. The gates' conditions are owned by controllers
/// (written through `pods/status`); the kubelet only reads them.
pub fn readiness_gates_message(spec: &PodSpec, conds: &[PodCondition]) -> Option<String> {
    let messages: Vec<String> = spec
        .readiness_gates
        .iter()
        .flatten()
        .filter_map(|g| {
            let t = &g.condition_type;
            match conds.iter().find(|c| &c.type_ == t) {
                None => Some(format!(
                    "corresponding condition of pod readiness gate \"{t}\" does not exist."
                )),
                Some(c) if c.status != "True" => Some(format!(
                    "the status of pod readiness gate \"{t}\" is not \"True\", but {}",
                    c.status
                )),
                Some(_) => None,
            }
        })
        .collect();
    (!messages.is_empty()).then(|| messages.join(", "))
}

/// The stored `Ready` status of a pod (`Some(true)` for `True`), for the
/// driver's [`PodFacts::ready_override_since`] bookkeeping.
pub fn stored_ready(pod: &Pod) -> Option<bool> {
    pod.status
        .as_ref()
        .and_then(ready_of)
        .map(|c| c.status == "True")
}

fn condition_rank(t: &str) -> u8 {
    match t {
        "PodReadyToStartContainers" => 0,
        "Initialized" => 1,
        "Ready" => 2,
        "ContainersReady" => 3,
        "PodScheduled" => 4,
        _ => 5,
    }
}

fn waiting(reason: &str) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: None,
        }),
        ..ContainerState::default()
    }
}

/// The crash back-off after `restarts` restarts: 10 s doubling, capped at 5 min.
pub fn backoff(restarts: i32) -> SignedDuration {
    let exp = u32::try_from(restarts.saturating_sub(1).clamp(0, 16)).unwrap_or(0);
    let secs = BACKOFF_INITIAL.as_secs().saturating_mul(1i64 << exp);
    SignedDuration::from_secs(secs).min(BACKOFF_MAX)
}
