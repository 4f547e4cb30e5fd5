//! Builds the planner's [`Observed`] snapshot from the watch caches — never from live GETs, so a
//! reconcile costs no API round-trip until it acts.
//!
//! Pods come from the pod index (`cache::SharedPodIndex`): the set's pods with an ordinal the
//! desired or the live set may have that the set's selector matches (upstream `isMemberOf` plus
//! selector matching in `pkg/controller/statefulset`), as a list shared with the previous
//! observation of the set as long as none of its pods changed — observing an unchanged set costs
//! O(1), not O(replicas).
//!
//! Caches lag the operator's own writes by a watch round-trip. [`Expectations`] bridges that gap
//! the way upstream controllers do (`pkg/controller/controller_utils.go`,
//! `ControllerExpectations`): a StatefulSet this process applied, or a pod it evicted or deleted,
//! is seen as written until the cache shows the write, so a reconcile triggered in between never
//! evicts the same pod twice or plans from a partition it already moved.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::{apps::v1::StatefulSet, core::v1::Pod},
    jiff::Timestamp,
};
use kube::{ResourceExt, runtime::reflector::ObjectRef};
use sroll_api::{StatefulsetRollout, predicates::resource_version, sync::lock};
use sroll_planner::{
    InPlaceObserved, LiveStatefulSet, Observed, ObservedPdb, ObservedPod, index::set_of, inplace,
};

use crate::cache::{self, Caches};

/// How long a StatefulSet this process applied is believed to exist while the cache does not show
/// it at all (the watch round trip after a create).
const UNSEEN_APPLY_GRACE: Duration = Duration::from_secs(5);

/// Writes of this process that the caches may not show yet.
#[derive(Debug, Default)]
pub struct Expectations {
    /// StatefulSets as returned by our last apply, by `namespace/name`, with when we applied them.
    statefulsets: Mutex<HashMap<String, (Arc<StatefulSet>, Instant)>>,
    /// Pods we evicted or deleted, by `namespace/name`, with the uid of the incarnation.
    deleted_pods: Mutex<HashMap<String, String>>,
    /// Pods as returned by our last in-place write (a pods/status update or a pod update), by
    /// `namespace/name`: until the cache shows that resourceVersion, the pod is observed as
    /// written (a pod just taken out of traffic must count against the budget at once).
    written_pods: Mutex<HashMap<String, Arc<Pod>>>,
}

impl Expectations {
    /// Records a StatefulSet the API server returned from our write.
    pub fn applied(&self, sts: StatefulSet) {
        let key = format!("{}/{}", sts.namespace().unwrap_or_default(), sts.name_any());
        lock(&self.statefulsets).insert(key, (Arc::new(sts), Instant::now()));
    }

    /// Records pods we evicted or deleted, each with the uid of the incarnation the plan was made
    /// from (the one the eviction's uid precondition named).
    ///
    /// The uid must not be read back from the cache after the write: by then the pod may already
    /// be gone and recreated (a fast kubelet, a long batch), and an expectation on the new
    /// incarnation would never be met — the pod would read as terminating forever and the rollout
    /// would wait on it until its deadline.
    pub fn pods_deleted<'p>(
        &self,
        namespace: &str,
        pods: impl IntoIterator<Item = (&'p str, &'p str)>,
    ) {
        let mut deleted = lock(&self.deleted_pods);
        for (name, uid) in pods {
            if !uid.is_empty() {
                deleted.insert(format!("{namespace}/{name}"), uid.to_owned());
            }
        }
    }

    /// Records a pod the API server returned from our in-place write.
    pub fn pod_written(&self, pod: Pod) {
        let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        lock(&self.written_pods).insert(key, Arc::new(pod));
    }

    /// The pods of set `set_name` in `namespace` we last wrote that are newer than the cached
    /// ones (same incarnation, higher resourceVersion); forgets the expectations the cache caught
    /// up with. O(expectations of the namespace), not O(pods).
    fn written_pods(&self, caches: &Caches, namespace: &str, set_name: &str) -> Vec<Arc<Pod>> {
        let prefix = format!("{namespace}/");
        let mut written = lock(&self.written_pods);
        let mut newer = Vec::new();
        written.retain(|key, w| {
            let Some(name) = key.strip_prefix(&prefix) else {
                return true;
            };
            if set_of(name).is_none_or(|(set, _)| set != set_name) {
                return true;
            }
            match cache::pod_meta(caches, namespace, name) {
                Some(cached)
                    if w.uid().unwrap_or_default() == cached.uid
                        && resource_version(&w.metadata) > cached.resource_version =>
                {
                    newer.push(w.clone());
                    true
                }
                Some(_) => false,
                // Not cached (yet, or any more): left as it is, as a reconcile that does not see
                // the pod never reads it.
                None => true,
            }
        });
        newer
    }

    /// The newer of the cached StatefulSet and the one we last wrote (a resourceVersion
    /// comparison: kubesim's and etcd's are increasing integers; anything else trusts the cache).
    ///
    /// A set we applied within [`UNSEEN_APPLY_GRACE`] that the cache does not show at all yet is
    /// the one we just created: without this, every reconcile triggered before the watch delivers
    /// it (its pods' events come in a burst) would plan "create" again. Past the grace period an
    /// absent set is believed gone (deleted behind our back), as the cache says.
    fn statefulset(&self, key: &str, cached: Option<Arc<StatefulSet>>) -> Option<Arc<StatefulSet>> {
        let mut written = lock(&self.statefulsets);
        match (written.get(key), cached) {
            (Some((w, _)), Some(c))
                if resource_version(&w.metadata) > resource_version(&c.metadata)
                    && w.uid() == c.uid() =>
            {
                Some(w.clone())
            }
            (Some((w, at)), None) if at.elapsed() < UNSEEN_APPLY_GRACE => Some(w.clone()),
            (_, cached) => {
                written.remove(key);
                cached
            }
        }
    }

    /// Names (within `namespace`) of cached pods we already evicted or deleted while the cache
    /// still shows them alive; forgets expectations the cache has caught up with.
    fn pending_deletions(&self, caches: &Caches, namespace: &str) -> HashSet<String> {
        let mut deleted = lock(&self.deleted_pods);
        let prefix = format!("{namespace}/");
        let mut pending = HashSet::new();
        deleted.retain(|key, uid| {
            let Some(name) = key.strip_prefix(&prefix) else {
                return true;
            };
            match cache::pod_meta(caches, namespace, name) {
                Some(pod) if pod.uid == *uid && !pod.terminating => {
                    pending.insert(name.to_owned());
                    true
                }
                // Terminating, gone, or a new incarnation: the cache has caught up.
                _ => false,
            }
        });
        pending
    }
}

/// The snapshot of `rollout`'s world at `now`, from `caches` and this process's pending writes.
pub fn observe(
    caches: &Caches,
    expectations: &Expectations,
    rollout: &StatefulsetRollout,
    now: Timestamp,
) -> Observed {
    let namespace = rollout.namespace().unwrap_or_default();
    let set_name = rollout.statefulset_name();
    let uid = rollout.uid().unwrap_or_default();
    let mut observed = Observed::new(rollout.clone(), now);

    let live = expectations.statefulset(
        &format!("{namespace}/{set_name}"),
        caches
            .statefulsets
            .get(&ObjectRef::new(&set_name).within(&namespace)),
    );
    observed.pdbs = cache::pdbs_for(caches, rollout)
        .iter()
        .map(|p| ObservedPdb::from_pdb(p))
        .collect();

    let Some(live) = live else {
        return observed;
    };
    let view = LiveStatefulSet::from_statefulset(&live, &uid);
    // Every ordinal either the live or the desired set may have: pods of a scale-down still exist.
    let status_replicas = live.status.as_ref().map_or(0, |s| s.replicas);
    let count = view
        .replicas
        .max(rollout.spec.replicas())
        .max(status_replicas);
    observed.pods = caches.pod_index.pods(
        &namespace,
        &set_name,
        view.ordinals_start,
        count,
        &view.selector,
    );
    // This process's writes the cache does not show yet: transient, so the shared list is copied
    // (by `Pods::put`, which keeps its aggregates) only while there are some.
    let mut extra_revisions = Vec::new();
    for written in expectations.written_pods(caches, &namespace, &set_name) {
        if let Some(pod) = ObservedPod::from_pod(&written, &set_name)
            && observed.pods.get(pod.ordinal).is_some()
        {
            extra_revisions.extend(pod.revision.as_deref().map(str::to_owned));
            observed.pods.put(pod);
        }
    }
    for name in expectations.pending_deletions(caches, &namespace) {
        if let Some((set, ordinal)) = set_of(&name)
            && set == set_name
            && let Some(pod) = observed.pods.get(ordinal)
            && !pod.terminating
        {
            let mut pod = pod.clone();
            pod.terminating = true;
            observed.pods.put(pod);
        }
    }
    if rollout.spec.in_place_allowed()
        && let Some(update) = view.update_revision.as_deref()
    {
        let mut revisions: BTreeSet<String> = observed
            .pods
            .counts()
            .by_revision
            .keys()
            .flatten()
            .map(|r| r.to_string())
            .collect();
        revisions.extend(extra_revisions);
        observed.in_place = in_place_changes(caches, &namespace, update, revisions);
    }
    observed.statefulset = Some(view);
    observed
}

/// For each of `revisions` (those the set's pods carry, from the pod index's aggregates) other
/// than `update`, whether moving to `update` can be done in place, from the two
/// ControllerRevisions' templates in the cache (a revision whose ControllerRevision is not cached
/// is left out: the planner waits for it).
fn in_place_changes(
    caches: &Caches,
    namespace: &str,
    update: &str,
    revisions: BTreeSet<String>,
) -> InPlaceObserved {
    let mut out = InPlaceObserved::default();
    let Some(new) = cache::revision_template(caches, namespace, update) else {
        return out;
    };
    for revision in revisions.into_iter().filter(|r| r != update) {
        if let Some(old) = cache::revision_template(caches, namespace, &revision) {
            out.changes.insert(revision, inplace::qualifies(&old, &new));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{
        api::{
            core::v1::{Pod, PodCondition, PodStatus},
            policy::v1::PodDisruptionBudget,
        },
        apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time},
    };
    use kube::runtime::watcher;

    use super::*;

    use crate::cache::tests::{PodFeed, cached, writer_with};

    /// Caches holding the test rollout and its set, and `pods`; no PDB, no EndpointSlices.
    fn caches_with(pods: &PodFeed) -> Caches {
        Caches {
            rollouts: writer_with(vec![rollout()]).0,
            statefulsets: writer_with(vec![statefulset()]).0,
            pod_index: pods.index.clone(),
            pdbs: writer_with(Vec::<PodDisruptionBudget>::new()).0,
            endpoint_slices: writer_with(Vec::new()).0,
            controller_revisions: writer_with(Vec::new()).0,
        }
    }

    fn rollout() -> StatefulsetRollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sroll.io/v1alpha1", "kind": "StatefulsetRollout",
            "metadata": {"name": "web", "namespace": "ns", "uid": "r-1"},
            "spec": {"sts": {"spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
            }}}
        }))
        .expect("valid rollout")
    }

    fn statefulset() -> StatefulSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "s-1", "resourceVersion": "5"},
            "spec": {"replicas": 1, "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}}}
        }))
        .expect("valid set")
    }

    fn pod(deleting: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some("ns".into()),
                uid: Some("p-1".into()),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                deletion_timestamp: deleting.then(|| Time(Timestamp::now())),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn a_pod_we_evicted_is_terminating_until_the_cache_catches_up() {
        let mut feed = PodFeed::new(vec![cached(pod(false))]);
        let caches = caches_with(&feed);
        let exp = Expectations::default();
        let before = observe(&caches, &exp, &rollout(), Timestamp::now());
        assert!(!before.pods[0].terminating);

        exp.pods_deleted("ns", [("web-0", "p-1")]);
        let pending = observe(&caches, &exp, &rollout(), Timestamp::now());
        assert!(pending.pods[0].terminating, "our eviction is not forgotten");

        feed.event(&watcher::Event::Apply(cached(pod(true))));
        let caught_up = observe(&caches, &exp, &rollout(), Timestamp::now());
        assert!(caught_up.pods[0].terminating);
        assert!(
            lock(&exp.deleted_pods).is_empty(),
            "the expectation is dropped"
        );
    }

    /// A pod `name` of the test set's selector, Ready, at resourceVersion `rv`.
    fn pod_named(name: &str, uid: &str, rv: u64) -> Pod {
        let mut p = pod(false);
        p.metadata.name = Some(name.into());
        p.metadata.uid = Some(uid.into());
        p.metadata.resource_version = Some(rv.to_string());
        p
    }

    #[test]
    fn observing_an_unchanged_set_shares_the_last_list_of_pods() {
        let mut feed = PodFeed::new(vec![
            cached(pod_named("web-0", "p-1", 1)),
            cached(pod_named("other-0", "o-1", 2)),
        ]);
        let caches = caches_with(&feed);
        let exp = Expectations::default();
        let first = observe(&caches, &exp, &rollout(), Timestamp::now());
        assert_eq!(first.pods.len(), 1);
        let again = observe(&caches, &exp, &rollout(), Timestamp::now());
        assert!(again.pods.same_list(&first.pods), "no copy, no rebuild");
        assert!(again.same_inputs(&first));

        // A duplicated event, and an event of another set's pod: still the same list.
        feed.event(&watcher::Event::Apply(cached(pod_named("web-0", "p-1", 1))));
        feed.event(&watcher::Event::Apply(cached(pod_named(
            "other-0", "o-1", 3,
        ))));
        let unrelated = observe(&caches, &exp, &rollout(), Timestamp::now());
        assert!(unrelated.pods.same_list(&first.pods));

        // The set's pod changes: a new list, with the change.
        let mut not_ready = pod_named("web-0", "p-1", 4);
        not_ready.status = None;
        feed.event(&watcher::Event::Apply(cached(not_ready)));
        let changed = observe(&caches, &exp, &rollout(), Timestamp::now());
        assert!(!changed.pods.same_list(&first.pods));
        assert!(!changed.pods[0].ready);
        assert!(!changed.same_inputs(&first));
    }

    #[test]
    fn a_pod_we_wrote_in_place_is_observed_as_written_until_the_cache_catches_up() {
        let mut feed = PodFeed::new(vec![cached(pod_named("web-0", "p-1", 1))]);
        let caches = caches_with(&feed);
        let exp = Expectations::default();
        let before = observe(&caches, &exp, &rollout(), Timestamp::now());
        let mut written = pod_named("web-0", "p-1", 7);
        written.metadata.labels = Some(
            [
                ("app".to_owned(), "web".to_owned()),
                (sroll_api::labels::REVISION.to_owned(), "web-2".to_owned()),
            ]
            .into(),
        );
        exp.pod_written(written.clone());
        let pending = observe(&caches, &exp, &rollout(), Timestamp::now());
        assert_eq!(pending.pods[0].revision.as_deref(), Some("web-2"));
        assert_eq!(
            before.pods[0].revision, None,
            "the index's list is not edited"
        );

        feed.event(&watcher::Event::Apply(cached(written)));
        let caught_up = observe(&caches, &exp, &rollout(), Timestamp::now());
        assert_eq!(caught_up.pods[0].revision.as_deref(), Some("web-2"));
        assert!(
            lock(&exp.written_pods).is_empty(),
            "the expectation is dropped"
        );
    }

    #[test]
    fn an_eviction_expectation_names_the_evicted_incarnation_not_a_recreated_one() {
        // The pod was evicted, deleted and recreated before the batch finished: the cache already
        // shows the new incarnation (uid p-2) when the expectation is recorded for p-1.
        let mut recreated = pod(false);
        recreated.metadata.uid = Some("p-2".into());
        let feed = PodFeed::new(vec![cached(recreated)]);
        let caches = caches_with(&feed);
        let exp = Expectations::default();
        exp.pods_deleted("ns", [("web-0", "p-1")]);
        let o = observe(&caches, &exp, &rollout(), Timestamp::now());
        assert!(
            !o.pods[0].terminating,
            "the new incarnation is not waited on as if it were being deleted"
        );
        assert_eq!(&*o.pods[0].uid, "p-2");
        assert!(lock(&exp.deleted_pods).is_empty(), "the expectation is met");
    }

    #[test]
    fn the_statefulset_we_applied_wins_over_an_older_cached_one() {
        let caches = caches_with(&PodFeed::new(Vec::new()));
        let exp = Expectations::default();
        let mut newer = statefulset();
        newer.metadata.resource_version = Some("9".into());
        newer.spec.as_mut().expect("spec").replicas = Some(3);
        exp.applied(newer);
        let o = observe(&caches, &exp, &rollout(), Timestamp::now());
        assert_eq!(o.statefulset.expect("live").replicas, 3);
    }

    #[test]
    fn a_statefulset_we_just_created_is_seen_before_the_cache_shows_it() {
        let mut caches = caches_with(&PodFeed::new(Vec::new()));
        caches.statefulsets = writer_with(Vec::<StatefulSet>::new()).0;
        let exp = Expectations::default();
        assert!(
            observe(&caches, &exp, &rollout(), Timestamp::now())
                .statefulset
                .is_none()
        );
        exp.applied(statefulset());
        let o = observe(&caches, &exp, &rollout(), Timestamp::now());
        assert_eq!(
            o.statefulset.map(|s| s.name),
            Some("web".to_owned()),
            "the set we created is not planned for creation again"
        );
    }

    #[test]
    fn a_created_statefulset_the_cache_never_shows_is_believed_gone_after_the_grace_period() {
        let exp = Expectations::default();
        exp.applied(statefulset());
        if let Some((_, at)) = lock(&exp.statefulsets).get_mut("ns/web") {
            *at = Instant::now()
                .checked_sub(UNSEEN_APPLY_GRACE + Duration::from_secs(1))
                .expect("the clock is past the grace period");
        }
        assert!(exp.statefulset("ns/web", None).is_none());
        assert!(
            lock(&exp.statefulsets).is_empty(),
            "the expectation is dropped"
        );
    }
}
