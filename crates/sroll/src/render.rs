//! `sroll render`: turns an application's rollout config — the reference system's `bedrock.yaml`
//! (image, notification channel and level, kind, disruption policy, strategy, eviction interval,
//! allowed rollout percentages, clusters, replicas) — into the two objects a release applies: a
//! PodDisruptionBudget built from `disruption_policy.max_unavailable`, and a StatefulsetRollout
//! (which does not carry that value: the operator reads the PDB at run time).
//!
//! Pure: config text and options in, YAML out, or every problem found with its field path. Nothing
//! is printed when the config is invalid. The config's JSON Schema is `docs/app-config.schema.json`
//! (generated from [`AppConfig`]; a test fails when it drifts).

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::StatefulSetSpec,
        core::v1::{
            Container, ContainerPort, EnvVar, PersistentVolumeClaim, PersistentVolumeClaimSpec,
            PodSpec, PodTemplateSpec, ResourceRequirements, VolumeMount,
            VolumeResourceRequirements,
        },
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};
use schemars::JsonSchema;
use serde::Deserialize;
use sroll_api::{
    Bapi, DiscoveryProvider, EmbeddedMetadata, EmbeddedStatefulSet, NotificationLevel,
    Notifications, RolloutStrategy, ServiceDiscovery, StatefulsetRollout, StatefulsetRolloutSpec,
};

/// Annotation naming the cluster a rollout was rendered for (shown in notifications).
pub const ANNOTATION_CLUSTER: &str = "sroll.io/cluster";

/// An application's rollout config (`bedrock.yaml`), in the reference system's shape.
#[derive(Deserialize, JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
#[schemars(title = "sroll application rollout config")]
pub struct AppConfig {
    /// Application name: names the StatefulSet, its pods (`<name>-<ordinal>`), the
    /// PodDisruptionBudget and the StatefulsetRollout. A DNS label: lowercase letters, digits, `-`.
    pub name: String,
    /// Namespace to deploy to. Default: the application name.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Workload kind. Only `StatefulSet` is supported.
    pub kind: String,
    /// Container image, with a tag or digest (`registry.example.com/app:1.2.3`).
    pub image: String,
    /// Number of pods.
    pub replicas: i32,
    /// Slack channel for notifications (`#deploys` or a channel id). Default: none.
    #[serde(default)]
    pub channel: Option<String>,
    /// Notification verbosity: `info` (default) or `debug`.
    #[serde(default)]
    pub level: Option<String>,
    /// Disruption policy: renders the PodDisruptionBudget that bounds parallelism.
    pub disruption_policy: DisruptionPolicy,
    /// `Partitioned` (default, leak-proof) or `OnDelete` (the reference system's mode).
    #[serde(default)]
    pub strategy: Option<String>,
    /// Minimum seconds between two pod evictions. Default 0.
    #[serde(default)]
    pub min_pod_eviction_interval_seconds: Option<i64>,
    /// The rollout percentages a release may stop at, ascending, e.g. `[1, 50, 100]`.
    pub rollout_percentages: Vec<i32>,
    /// Clusters the application is deployed to; `--cluster` must name one of them.
    pub clusters: Vec<String>,
    /// Service discovery used to gate the rollout on health. Default: none.
    #[serde(default)]
    pub service_discovery: Option<ServiceDiscoveryConfig>,
    /// Headless Service name of the StatefulSet. Default: the application name.
    #[serde(default)]
    pub service_name: Option<String>,
    /// `Parallel` (default, lets rollouts run in parallel) or `OrderedReady`.
    #[serde(default)]
    pub pod_management_policy: Option<String>,
    /// Container settings beyond the image. Default: none.
    #[serde(default)]
    pub container: Option<ContainerConfig>,
    /// A persistent volume per pod. Default: none.
    #[serde(default)]
    pub storage: Option<StorageConfig>,
}

/// How many pods may be down at once.
#[derive(Deserialize, JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct DisruptionPolicy {
    /// A number of pods (`5`) or a percentage of replicas (`"50%"`).
    pub max_unavailable: IntOrString,
}

/// Service-discovery registration.
#[derive(Deserialize, JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServiceDiscoveryConfig {
    /// Consul datacenter.
    #[serde(default)]
    pub dc: Option<String>,
    /// Service names the pods register as.
    pub services: Vec<String>,
    /// `Consul` (default) or `Kubernetes` (EndpointSlices of the named Services).
    #[serde(default)]
    pub provider: Option<String>,
}

/// Container settings.
#[derive(Deserialize, JsonSchema, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct ContainerConfig {
    /// Container arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Named container ports.
    #[serde(default)]
    pub ports: Vec<PortConfig>,
    /// Resource requests (`cpu`, `memory`).
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    /// Resource limits (`cpu`, `memory`).
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

/// One container port.
#[derive(Deserialize, JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// Port name (an IANA_SVC_NAME: at most 15 characters).
    pub name: String,
    /// Port number, 1–65535.
    pub port: i32,
}

/// A persistent volume per pod (a volumeClaimTemplate).
#[derive(Deserialize, JsonSchema, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Size, e.g. `10Gi`.
    pub size: String,
    /// Where the volume is mounted in the container.
    pub mount_path: String,
    /// StorageClass. Default: the cluster's default class.
    #[serde(default)]
    pub storage_class: Option<String>,
}

/// Per-release choices, from the command line.
#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// The target cluster (must be one of the config's `clusters`).
    pub cluster: String,
    /// The rollout percentage (must be one of `rollout_percentages`); default: the highest.
    pub percent: Option<i32>,
    /// The rollout identity; default: a new random one.
    pub identity: Option<String>,
    /// Release-system callback URL (with `stage_id`).
    pub callback_url: Option<String>,
    /// Release-system stage id (with `callback_url`).
    pub stage_id: Option<String>,
    /// Build branch and commit, carried as annotations.
    pub branch: Option<String>,
    /// Build commit.
    pub commit: Option<String>,
}

/// A problem in the config or the options, with the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the field (`disruption_policy.max_unavailable`) or the flag (`--percent`).
    pub path: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Renders `config_text` (YAML) for one release: the PodDisruptionBudget then the
/// StatefulsetRollout, as one multi-document YAML stream ready for `kubectl apply -f -`.
///
/// On a bad config, every problem is returned: those of the config's shape (missing, unknown and
/// mistyped fields, [`parse`]) together with those of its values and of the options ([`build`]),
/// except what only follows from a field already reported (a stand-in's value, or a flag checked
/// against a list that is itself broken).
pub fn render(config_text: &str, opts: &RenderOptions) -> Result<String, Vec<ConfigError>> {
    let Lenient {
        config,
        mut problems,
        repaired,
    } = parse_lenient(config_text)?;
    let (pdb, rollout) = match (build(&config, opts), problems.is_empty()) {
        (Ok(objects), true) => objects,
        (Ok(_), false) => return Err(problems),
        (Err(more), _) => {
            problems.extend(
                more.into_iter()
                    .filter(|e| !repaired.iter().any(|r| concerns(e, r))),
            );
            return Err(problems);
        }
    };
    let yaml = serde_yaml_ng::to_string(&pdb)
        .and_then(|a| serde_yaml_ng::to_string(&rollout).map(|b| format!("---\n{a}---\n{b}")));
    yaml.map_err(|e| {
        vec![ConfigError {
            path: "<output>".into(),
            message: format!("failed to serialize the rendered objects: {e}"),
        }]
    })
}

/// Parses the config, reporting every problem of its shape (missing, unknown and mistyped fields)
/// with its path.
pub fn parse(config_text: &str) -> Result<AppConfig, Vec<ConfigError>> {
    let Lenient {
        config, problems, ..
    } = parse_lenient(config_text)?;
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

/// A config parsed past its problems: `config` holds a stand-in at each `repaired` path.
struct Lenient {
    config: AppConfig,
    problems: Vec<ConfigError>,
    /// Paths (as [`ConfigError::path`] writes them; `""` is the whole config) whose value is a
    /// stand-in.
    repaired: Vec<String>,
}

/// Values tried in turn in place of a missing or mistyped field until one has the field's type.
/// A stand-in struct (`{}`) has its own required fields filled in the same way.
fn stand_ins() -> [serde_yaml_ng::Value; 5] {
    use serde_yaml_ng::Value;
    [
        Value::String(String::new()),
        Value::Number(0.into()),
        Value::Sequence(Vec::new()),
        Value::Mapping(serde_yaml_ng::Mapping::new()),
        Value::Bool(false),
    ]
}

/// One step of a path into the YAML value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

fn path_text(steps: &[Step]) -> String {
    let mut out = String::new();
    for step in steps {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn node_mut<'a>(
    mut v: &'a mut serde_yaml_ng::Value,
    steps: &[Step],
) -> Option<&'a mut serde_yaml_ng::Value> {
    for step in steps {
        v = match step {
            Step::Key(k) => v
                .as_mapping_mut()?
                .get_mut(serde_yaml_ng::Value::String(k.clone()))?,
            Step::Index(i) => v.as_sequence_mut()?.get_mut(*i)?,
        };
    }
    Some(v)
}

/// Whether `problem` concerns the field at `repaired` (the field itself, a field inside it, or a
/// flag checked against it), so that it only restates a problem already reported.
fn concerns(problem: &ConfigError, repaired: &str) -> bool {
    let path = match problem.path.as_str() {
        "--cluster" => "clusters",
        "--percent" => "rollout_percentages",
        other => other,
    };
    repaired.is_empty()
        || path == repaired
        || path
            .strip_prefix(repaired)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// serde stops at the first problem. To list them all, the YAML is read into a value and
/// deserialized again after each problem, with the offending node repaired: an unknown field is
/// removed, a missing or mistyped one gets a stand-in ([`stand_ins`]). Problems inside a stand-in
/// are its own and not reported. A YAML syntax error ends parsing at once (with its line).
fn parse_lenient(config_text: &str) -> Result<Lenient, Vec<ConfigError>> {
    // Every round repairs one node; a config has far fewer fields than this.
    const MAX_ROUNDS: usize = 512;
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(config_text).map_err(|e| {
        vec![ConfigError {
            path: "<config>".into(),
            message: format!("is not valid YAML: {e}"),
        }]
    })?;
    let mut problems = Vec::new();
    let mut repaired: Vec<String> = Vec::new();
    // Per repaired path, the index of the next stand-in to try.
    let mut next_stand_in: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..MAX_ROUNDS {
        let e = match serde_path_to_error::deserialize::<_, AppConfig>(value.clone()) {
            Ok(config) => {
                return Ok(Lenient {
                    config,
                    problems,
                    repaired,
                });
            }
            Err(e) => e,
        };
        let mut steps = Vec::new();
        for segment in e.path().iter() {
            match segment {
                serde_path_to_error::Segment::Map { key } => steps.push(Step::Key(key.clone())),
                serde_path_to_error::Segment::Seq { index } => steps.push(Step::Index(*index)),
                // A non-string key or an enum variant: nothing to repair by path.
                _ => {
                    problems.push(problem(config_text, &steps, e.inner().to_string()));
                    return Err(problems);
                }
            }
        }
        let inner = e.into_inner().to_string();
        let missing = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        let unknown = inner.starts_with("unknown field `");
        if let Some(field) = &missing {
            steps.push(Step::Key(field.clone()));
        }
        let at = path_text(&steps);
        if !repaired.iter().any(|r| {
            concerns(
                &ConfigError {
                    path: at.clone(),
                    message: String::new(),
                },
                r,
            )
        }) {
            let message = if missing.is_some() {
                format!("is required ({inner})")
            } else {
                inner
            };
            // A missing field is shown where its mapping starts.
            let node = if missing.is_some() {
                &steps[..steps.len() - 1]
            } else {
                &steps[..]
            };
            let mut p = problem(config_text, node, message);
            p.path = at.clone();
            if p.path.is_empty() {
                p.path = "<config>".to_owned();
            }
            problems.push(p);
        }
        let Some((last, parent)) = steps.split_last() else {
            // The whole config has the wrong shape (not a mapping).
            let tried = next_stand_in.entry(String::new()).or_default();
            let Some(stand_in) = stand_ins().into_iter().nth(*tried) else {
                return Err(problems);
            };
            *tried += 1;
            value = stand_in;
            if !repaired.contains(&at) {
                repaired.push(at);
            }
            continue;
        };
        if unknown {
            let removed = match (node_mut(&mut value, parent), last) {
                (Some(serde_yaml_ng::Value::Mapping(m)), Step::Key(k)) => {
                    m.remove(serde_yaml_ng::Value::String(k.clone())).is_some()
                }
                _ => false,
            };
            if !removed {
                return Err(problems);
            }
            continue;
        }
        let tried = next_stand_in.entry(at.clone()).or_default();
        let Some(stand_in) = stand_ins().into_iter().nth(*tried) else {
            return Err(problems);
        };
        *tried += 1;
        let placed = match (node_mut(&mut value, parent), last) {
            (Some(serde_yaml_ng::Value::Mapping(m)), Step::Key(k)) => {
                m.insert(serde_yaml_ng::Value::String(k.clone()), stand_in);
                true
            }
            (Some(serde_yaml_ng::Value::Sequence(items)), Step::Index(i)) if *i < items.len() => {
                items[*i] = stand_in;
                true
            }
            _ => false,
        };
        if !placed {
            return Err(problems);
        }
        if !repaired.contains(&at) {
            repaired.push(at);
        }
    }
    Err(problems)
}

/// A shape problem at the node `steps` of `text`: its message without the path serde may have
/// prefixed, and with the node's line and column (none for the whole config).
fn problem(text: &str, steps: &[Step], message: String) -> ConfigError {
    let path = path_text(steps);
    let mut message = message
        .strip_prefix(&format!("{path}: "))
        .map_or(message.clone(), str::to_owned);
    if !steps.is_empty()
        && let Some(at) = location(text, steps)
    {
        message.push_str(&format!(" (line {}, column {})", at.line(), at.column()));
    }
    ConfigError {
        path: if path.is_empty() {
            "<config>".to_owned()
        } else {
            path
        },
        message,
    }
}

/// Where the node at `steps` starts in `text` (or the innermost node of the path that exists).
/// The YAML deserializer is walked down the path and stopped at the node with an error, which
/// carries the node's position.
fn location(text: &str, steps: &[Step]) -> Option<serde_yaml_ng::Location> {
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

    struct Walk<'a>(&'a [Step]);

    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any YAML node")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            if let Some((Step::Key(want), rest)) = self.0.split_first() {
                while let Some(key) = map.next_key::<serde_yaml_ng::Value>()? {
                    if key.as_str() == Some(want.as_str()) {
                        return map.next_value_seed(Walk(rest));
                    }
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Err(de::Error::custom("here"))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            if let Some((Step::Index(want), rest)) = self.0.split_first() {
                for _ in 0..*want {
                    if seq.next_element::<IgnoredAny>()?.is_none() {
                        return Err(de::Error::custom("here"));
                    }
                }
                if seq.next_element_seed(Walk(rest))?.is_some() {
                    return Ok(());
                }
            }
            Err(de::Error::custom("here"))
        }
        // Any scalar: the path ends here.
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            Err(E::custom("here"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
            Err(E::custom("here"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
            Err(E::custom("here"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
            Err(E::custom("here"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            Err(E::custom("here"))
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Err(E::custom("here"))
        }
    }

    Walk(steps)
        .deserialize(serde_yaml_ng::Deserializer::from_str(text))
        .err()
        .and_then(|e| e.location())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Validates the config and options and builds the two objects.
pub fn build(
    c: &AppConfig,
    opts: &RenderOptions,
) -> Result<(PodDisruptionBudget, StatefulsetRollout), Vec<ConfigError>> {
    let mut errs = Vec::new();
    let mut err = |path: &str, message: String| {
        errs.push(ConfigError {
            path: path.to_owned(),
            message,
        })
    };

    if !is_dns_label(&c.name) {
        err(
            "name",
            format!(
                "{:?} is not a DNS label: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
                c.name
            ),
        );
    }
    let namespace = c.namespace.clone().unwrap_or_else(|| c.name.clone());
    if c.namespace.is_some() && !is_dns_label(&namespace) {
        err(
            "namespace",
            format!("{namespace:?} is not a DNS label (lowercase letters, digits and '-')"),
        );
    }
    if c.kind != "StatefulSet" {
        err(
            "kind",
            format!("{:?} is not supported: allowed: StatefulSet", c.kind),
        );
    }
    let image = c.image.trim();
    if image.is_empty() {
        err(
            "image",
            "must name an image, e.g. registry.example.com/app:1.2.3".into(),
        );
    } else if !(image.contains('@') || image.rsplit('/').next().is_some_and(|s| s.contains(':'))) {
        err(
            "image",
            format!("{image:?} has no tag or digest: pin the version, e.g. {image}:1.2.3"),
        );
    }
    if c.replicas < 0 {
        err(
            "replicas",
            format!("{} is negative: must be 0 or more", c.replicas),
        );
    }
    let level = match c.level.as_deref() {
        None | Some("info") => NotificationLevel::Info,
        Some("debug") => NotificationLevel::Debug,
        Some(other) => {
            err(
                "level",
                format!("{other:?} is not a level: allowed: info, debug"),
            );
            NotificationLevel::Info
        }
    };
    match &c.disruption_policy.max_unavailable {
        IntOrString::Int(n) if *n < 1 => err(
            "disruption_policy.max_unavailable",
            format!(
                "{n} allows no disruption: must be at least 1 (or a percentage such as \"50%\")"
            ),
        ),
        IntOrString::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i32>().ok()) {
            Some(p) if (1..=100).contains(&p) => {}
            _ => err(
                "disruption_policy.max_unavailable",
                format!("{s:?} is not a percentage from 1% to 100% (or a whole number of pods)"),
            ),
        },
        IntOrString::Int(_) => {}
    }
    let strategy = match c.strategy.as_deref() {
        None | Some("Partitioned") => RolloutStrategy::Partitioned,
        Some("OnDelete") => RolloutStrategy::OnDelete,
        Some(other) => {
            err(
                "strategy",
                format!("{other:?} is not a strategy: allowed: Partitioned, OnDelete"),
            );
            RolloutStrategy::Partitioned
        }
    };
    if let Some(s) = c.min_pod_eviction_interval_seconds
        && !(0..=86400).contains(&s)
    {
        err(
            "min_pod_eviction_interval_seconds",
            format!("{s} is out of range: allowed: 0 to 86400 seconds"),
        );
    }
    if c.rollout_percentages.is_empty() {
        err(
            "rollout_percentages",
            "is empty: list the percentages a release may stop at, e.g. [1, 50, 100]".into(),
        );
    }
    for (i, p) in c.rollout_percentages.iter().enumerate() {
        if !(1..=100).contains(p) {
            err(
                &format!("rollout_percentages[{i}]"),
                format!("{p} is out of range: allowed: 1 to 100"),
            );
        }
    }
    if c.rollout_percentages.windows(2).any(|w| w[0] >= w[1]) {
        err(
            "rollout_percentages",
            format!(
                "{:?} must be strictly ascending, e.g. [1, 50, 100]",
                c.rollout_percentages
            ),
        );
    }
    if c.clusters.is_empty() {
        err(
            "clusters",
            "is empty: list the clusters the application is deployed to".into(),
        );
    }
    if !c.clusters.contains(&opts.cluster) {
        err(
            "--cluster",
            format!(
                "{:?} is not one of the config's clusters: allowed: {}",
                opts.cluster,
                c.clusters.join(", ")
            ),
        );
    }
    let percent = match opts.percent {
        Some(p) if c.rollout_percentages.contains(&p) => p,
        Some(p) => {
            err(
                "--percent",
                format!(
                    "{p} is not an allowed rollout step: allowed: {}",
                    c.rollout_percentages
                        .iter()
                        .map(i32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            100
        }
        None => c.rollout_percentages.last().copied().unwrap_or(100),
    };
    let bapi = match (&opts.callback_url, &opts.stage_id) {
        (Some(url), Some(stage_id)) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                err(
                    "--callback-url",
                    format!("{url:?} must be an http:// or https:// URL"),
                );
            }
            Some(Bapi {
                url: url.clone(),
                stage_id: stage_id.clone(),
            })
        }
        (None, None) => None,
        (Some(_), None) => {
            err(
                "--stage-id",
                "is required with --callback-url (the callback names the release stage)".into(),
            );
            None
        }
        (None, Some(_)) => {
            err(
                "--callback-url",
                "is required with --stage-id (where to send the callback)".into(),
            );
            None
        }
    };
    let service_discovery = c.service_discovery.as_ref().map(|sd| {
        if sd.services.is_empty() {
            err(
                "service_discovery.services",
                "is empty: name the services the pods register as".into(),
            );
        }
        let provider = match sd.provider.as_deref() {
            None | Some("Consul") => None,
            Some("Kubernetes") => Some(DiscoveryProvider::Kubernetes),
            Some(other) => {
                err(
                    "service_discovery.provider",
                    format!("{other:?} is not a provider: allowed: Consul, Kubernetes"),
                );
                None
            }
        };
        ServiceDiscovery {
            dc: sd.dc.clone(),
            services: sd.services.clone(),
            provider,
            ..Default::default()
        }
    });
    let pod_management_policy = match c.pod_management_policy.as_deref() {
        None | Some("Parallel") => "Parallel",
        Some("OrderedReady") => "OrderedReady",
        Some(other) => {
            err(
                "pod_management_policy",
                format!("{other:?} is not a policy: allowed: Parallel, OrderedReady"),
            );
            "Parallel"
        }
    };
    let container_cfg = c.container.clone().unwrap_or_default();
    for (i, p) in container_cfg.ports.iter().enumerate() {
        if !(1..=65535).contains(&p.port) {
            err(
                &format!("container.ports[{i}].port"),
                format!("{} is out of range: allowed: 1 to 65535", p.port),
            );
        }
        if p.name.is_empty() || p.name.len() > 15 {
            err(
                &format!("container.ports[{i}].name"),
                format!("{:?} must be 1 to 15 characters", p.name),
            );
        }
    }
    for (field, map) in [
        ("container.requests", &container_cfg.requests),
        ("container.limits", &container_cfg.limits),
    ] {
        for (k, v) in map {
            if !is_quantity(v) {
                err(
                    &format!("{field}.{k}"),
                    format!("{v:?} is not a quantity such as 500m, 2, 1Gi or 512Mi"),
                );
            }
        }
    }
    if let Some(st) = &c.storage {
        if !is_quantity(&st.size) {
            err(
                "storage.size",
                format!("{:?} is not a quantity such as 10Gi", st.size),
            );
        }
        if !st.mount_path.starts_with('/') {
            err(
                "storage.mount_path",
                format!("{:?} must be an absolute path", st.mount_path),
            );
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }

    let labels = BTreeMap::from([("app".to_owned(), c.name.clone())]);
    let pdb = PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(c.name.clone()),
            namespace: Some(namespace.clone()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(c.disruption_policy.max_unavailable.clone()),
            selector: Some(LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    };

    let resources =
        (!container_cfg.requests.is_empty() || !container_cfg.limits.is_empty()).then(|| {
            ResourceRequirements {
                requests: quantities(&container_cfg.requests),
                limits: quantities(&container_cfg.limits),
                ..Default::default()
            }
        });
    let container = Container {
        name: c.name.clone(),
        image: Some(image.to_owned()),
        args: (!container_cfg.args.is_empty()).then(|| container_cfg.args.clone()),
        env: (!container_cfg.env.is_empty()).then(|| {
            container_cfg
                .env
                .iter()
                .map(|(k, v)| EnvVar {
                    name: k.clone(),
                    value: Some(v.clone()),
                    ..Default::default()
                })
                .collect()
        }),
        ports: (!container_cfg.ports.is_empty()).then(|| {
            container_cfg
                .ports
                .iter()
                .map(|p| ContainerPort {
                    name: Some(p.name.clone()),
                    container_port: p.port,
                    ..Default::default()
                })
                .collect()
        }),
        resources,
        volume_mounts: c.storage.as_ref().map(|st| {
            vec![VolumeMount {
                name: "data".into(),
                mount_path: st.mount_path.clone(),
                ..Default::default()
            }]
        }),
        ..Default::default()
    };
    let volume_claim_templates = c.storage.as_ref().map(|st| {
        vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                storage_class_name: st.storage_class.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_owned(),
                        Quantity(st.size.clone()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: None,
        }]
    });

    let mut annotations = BTreeMap::from([(ANNOTATION_CLUSTER.to_owned(), opts.cluster.clone())]);
    if let Some(b) = &opts.branch {
        annotations.insert(sroll_api::ANNOTATION_BUILD_BRANCH.into(), b.clone());
    }
    if let Some(cm) = &opts.commit {
        annotations.insert(sroll_api::ANNOTATION_BUILD_COMMIT.into(), cm.clone());
    }
    let spec = StatefulsetRolloutSpec {
        sts: EmbeddedStatefulSet {
            api_version: Some("apps/v1".into()),
            kind: Some("StatefulSet".into()),
            metadata: EmbeddedMetadata {
                name: Some(c.name.clone()),
                labels: labels.clone(),
                ..Default::default()
            },
            spec: StatefulSetSpec {
                replicas: Some(c.replicas),
                service_name: Some(c.service_name.clone().unwrap_or_else(|| c.name.clone())),
                pod_management_policy: Some(pod_management_policy.into()),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..Default::default()
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![container],
                        ..Default::default()
                    }),
                },
                volume_claim_templates,
                ..Default::default()
            },
        },
        percent,
        pause_requested: None,
        min_pod_eviction_interval_seconds: c.min_pod_eviction_interval_seconds,
        rollout_identity: Some(opts.identity.clone().unwrap_or_else(new_identity)),
        channel: c.channel.clone(),
        bapi,
        service_discovery,
        strategy: Some(strategy),
        max_unavailable: None,
        progress_deadline_seconds: None,
        notifications: (level != NotificationLevel::Info).then(|| Notifications {
            level: Some(level),
            webhooks: Vec::new(),
        }),
        adopt_existing: None,
        recreate_on_immutable_change: None,
        analysis: None,
        steps: Vec::new(),
        pod_update_policy: None,
        in_place_update_strategy: None,
        revision_pinning: None,
    };
    let mut rollout = StatefulsetRollout::new(&c.name, spec);
    rollout.metadata.namespace = Some(namespace);
    rollout.metadata.annotations = Some(annotations);
    Ok((pdb, rollout))
}

fn quantities(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, Quantity>> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    })
}

/// A Kubernetes resource quantity: a decimal number with an optional SI or binary suffix
/// (k8s.io/apimachinery/pkg/api/resource/quantity.go `ParseQuantity`, without exponent forms).
fn is_quantity(s: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", "",
    ];
    SUFFIXES.iter().any(|suffix| {
        s.strip_suffix(suffix).is_some_and(|num| {
            let (int, frac) = num.split_once('.').unwrap_or((num, ""));
            !num.is_empty()
                && !int.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

/// A fresh rollout identity: a random UUID (v4).
fn new_identity() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The JSON Schema of [`AppConfig`], as published in `docs/app-config.schema.json`.
pub fn config_schema_json() -> String {
    let schema = schemars::schema_for!(AppConfig);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../examples/bedrock.yaml");

    fn opts(percent: Option<i32>) -> RenderOptions {
        RenderOptions {
            cluster: "us-east-1a".into(),
            percent,
            ..RenderOptions::default()
        }
    }

    /// `render`'s problems as `path: message` lines, for a config edited from the example.
    fn problems(edits: &[(&str, &str)], opts: &RenderOptions) -> Vec<String> {
        let mut config = EXAMPLE.to_owned();
        for (from, to) in edits {
            assert!(config.contains(from), "the example lacks {from:?}");
            config = config.replacen(from, to, 1);
        }
        render(&config, opts)
            .expect_err("the config is invalid")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn the_example_renders() {
        assert!(render(EXAMPLE, &opts(Some(50))).is_ok());
    }

    /// The case `docs/app-config.md` shows: a missing field no longer hides the others.
    #[test]
    fn a_missing_field_a_bad_value_and_a_bad_flag_are_all_reported() {
        let got = problems(
            &[
                (
                    "image: registry.example.com/flannel-cache:2026.11.20-9b2d4e7\n",
                    "",
                ),
                ("max_unavailable: 50%", "max_unavailable: 150%"),
            ],
            &opts(Some(30)),
        );
        assert_eq!(
            got,
            vec![
                "image: is required (missing field `image`)",
                "disruption_policy.max_unavailable: \"150%\" is not a percentage from 1% to 100% (or a whole number of pods)",
                "--percent: 30 is not an allowed rollout step: allowed: 1, 50, 100",
            ]
        );
    }

    #[test]
    fn every_shape_problem_is_reported_once_with_its_path() {
        let got = problems(
            &[
                ("replicas: 8", "replica: 8"),
                ("kind: StatefulSet", "kind: [StatefulSet]"),
                ("      port: 8080", "      port: eighty"),
                ("  max_unavailable: 50%\n", "  max_unavail: 50%\n"),
            ],
            &opts(None),
        );
        assert_eq!(got.len(), 6, "{got:#?}");
        let has = |prefix: &str| got.iter().any(|p| p.starts_with(prefix));
        assert!(
            has("kind: invalid type: sequence, expected a string"),
            "{got:#?}"
        );
        assert!(has("replica: unknown field `replica`"), "{got:#?}");
        assert!(has("replicas: is required"), "{got:#?}");
        assert!(
            has("disruption_policy.max_unavail: unknown field"),
            "{got:#?}"
        );
        assert!(
            has("disruption_policy.max_unavailable: is required"),
            "{got:#?}"
        );
        assert!(
            has("container.ports[0].port: invalid type: string \"eighty\""),
            "{got:#?}"
        );
    }

    /// A field reported as mistyped is not reported again for the stand-in put in its place, nor
    /// is a flag checked against it.
    #[test]
    fn problems_that_only_follow_from_a_reported_one_are_left_out() {
        let got = problems(
            &[
                (
                    "rollout_percentages: [1, 50, 100]",
                    "rollout_percentages: all",
                ),
                (
                    "disruption_policy:\n  max_unavailable: 50%",
                    "disruption_policy: 5",
                ),
            ],
            &opts(Some(30)),
        );
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(
            got[0].starts_with("disruption_policy: invalid type"),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("rollout_percentages: invalid type"),
            "{got:#?}"
        );
    }

    #[test]
    fn a_shape_problem_names_its_line() {
        let got = problems(
            &[
                ("      port: 8080", "      port: eighty"),
                ("replicas: 8", "replica: 8"),
            ],
            &opts(None),
        );
        let line_of = |needle: &str| {
            EXAMPLE
                .lines()
                .position(|l| l.contains(needle))
                .map(|i| i + 1)
                .expect("the example has the line")
        };
        let port = format!("(line {}, column 13)", line_of("port: 8080"));
        assert!(
            got.iter()
                .any(|p| p.starts_with("container.ports[0].port: invalid type")
                    && p.ends_with(&port)),
            "{got:#?}"
        );
        let replica = format!("(line {}, column 10)", line_of("replicas: 8"));
        assert!(
            got.iter()
                .any(|p| p.starts_with("replica: unknown field") && p.ends_with(&replica)),
            "{got:#?}"
        );
    }

    #[test]
    fn a_config_that_is_not_a_mapping_is_one_problem() {
        let errs = render("- a\n- b\n", &opts(None)).expect_err("a list is not a config");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert_eq!(errs[0].path, "<config>");
        let errs = render("name: [", &opts(None)).expect_err("not YAML");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].message.starts_with("is not valid YAML"),
            "{errs:#?}"
        );
    }
}
