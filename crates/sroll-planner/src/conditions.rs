//! `status.conditions` maintenance per the Kubernetes API conventions: one entry per type,
//! `lastTransitionTime` changes only when `status` changes (as `meta.SetStatusCondition` in
//! k8s.io/apimachinery/pkg/api/meta/conditions.go).

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

/// Condition status values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    True,
    False,
    Unknown,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::True => "True",
            Status::False => "False",
            Status::Unknown => "Unknown",
        }
    }

    pub(crate) fn from_bool(b: bool) -> Self {
        if b { Status::True } else { Status::False }
    }
}

/// Sets (or adds) the condition `type_`, keeping its `lastTransitionTime` unless `status` changed.
pub(crate) fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: Status,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let message = message.into();
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != status.as_str() {
            existing.last_transition_time = Time(now);
            existing.status = status.as_str().into();
        }
        existing.reason = reason.into();
        existing.message = message;
        existing.observed_generation = generation;
    } else {
        conditions.push(Condition {
            type_: type_.into(),
            status: status.as_str().into(),
            reason: reason.into(),
            message,
            observed_generation: generation,
            last_transition_time: Time(now),
        });
    }
}

/// Whether condition `type_` is currently `status`.
#[cfg(test)]
pub(crate) fn is(conditions: &[Condition], type_: &str, status: Status) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == status.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn transition_time_changes_only_when_status_changes() {
        let mut c = Vec::new();
        set(&mut c, "Paused", Status::True, "A", "m", Some(1), at(10));
        set(&mut c, "Paused", Status::True, "B", "m2", Some(2), at(20));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, Time(at(10)));
        assert_eq!(c[0].reason, "B");
        set(&mut c, "Paused", Status::False, "C", "m3", Some(2), at(30));
        assert_eq!(c[0].last_transition_time, Time(at(30)));
        assert!(is(&c, "Paused", Status::False));
    }
}
