//! Status conditions: built from what a controller wants to say, merged with what is stored so
//! `lastTransitionTime` moves only when a condition's status flips, and compared without that time
//! so an unchanged status is never written again.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// `True` or `False`, as conditions spell them.
pub fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// A condition as a controller wants it; [`merge`] gives it its `lastTransitionTime`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// `Accepted`, `Programmed`, ...
    pub type_: &'static str,
    /// The condition's status.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// For a human.
    pub message: String,
    /// `metadata.generation` of the object the condition is about.
    pub observed_generation: Option<i64>,
}

impl Desired {
    /// A condition of `type_` with its status, reason and message.
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
        observed_generation: Option<i64>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
            observed_generation,
        }
    }
}

/// The conditions to write: `desired` in order, each keeping the `lastTransitionTime` of the stored
/// condition of its type when the status is the same, and taking `now` when it flipped or is new.
pub fn merge(existing: &[Condition], desired: &[Desired], now: Timestamp) -> Vec<Condition> {
    desired
        .iter()
        .map(|want| {
            let status = status_str(want.status);
            let last_transition_time = existing
                .iter()
                .find(|c| c.type_ == want.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: want.type_.to_string(),
                status: status.to_string(),
                reason: want.reason.clone(),
                message: want.message.clone(),
                observed_generation: want.observed_generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Whether every desired condition is already stored as it is wanted (time aside). Conditions of
/// other types are someone else's and do not count.
pub fn up_to_date(existing: &[Condition], desired: &[Desired]) -> bool {
    desired.iter().all(|want| {
        existing.iter().any(|c| {
            c.type_ == want.type_
                && c.status == status_str(want.status)
                && c.reason == want.reason
                && c.message == want.message
                && c.observed_generation == want.observed_generation
        })
    })
}

/// Whether two condition lists say the same, `lastTransitionTime` aside (order matters not).
pub fn same_ignoring_time(a: &[Condition], b: &[Condition]) -> bool {
    let key = |c: &Condition| {
        (
            c.type_.clone(),
            c.status.clone(),
            c.reason.clone(),
            c.message.clone(),
            c.observed_generation,
        )
    };
    let mut a: Vec<_> = a.iter().map(key).collect();
    let mut b: Vec<_> = b.iter().map(key).collect();
    a.sort();
    b.sort();
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn accepted(status: bool, reason: &str) -> Desired {
        Desired::new("Accepted", status, reason, "message", Some(1))
    }

    #[test]
    fn last_transition_time_is_kept_while_the_status_is_unchanged() {
        let stored = merge(&[], &[accepted(true, "Accepted")], at(100));
        let again = merge(&stored, &[accepted(true, "Accepted")], at(200));
        assert_eq!(again[0].last_transition_time, Time(at(100)));
    }

    #[test]
    fn last_transition_time_moves_when_the_status_flips() {
        let stored = merge(&[], &[accepted(true, "Accepted")], at(100));
        let flipped = merge(&stored, &[accepted(false, "SecretNotFound")], at(200));
        assert_eq!(flipped[0].last_transition_time, Time(at(200)));
        assert_eq!(flipped[0].status, "False");
    }

    #[test]
    fn a_new_reason_with_the_same_status_keeps_the_time_but_is_a_change() {
        let stored = merge(&[], &[accepted(false, "SecretNotFound")], at(100));
        let wanted = [accepted(false, "SecretKeyNotFound")];
        assert!(!up_to_date(&stored, &wanted));
        assert_eq!(
            merge(&stored, &wanted, at(200))[0].last_transition_time,
            Time(at(100))
        );
    }

    #[test]
    fn change_detection_ignores_last_transition_time() {
        let stored = merge(&[], &[accepted(true, "Accepted")], at(100));
        assert!(up_to_date(&stored, &[accepted(true, "Accepted")]));
        let later = merge(&[], &[accepted(true, "Accepted")], at(500));
        assert!(same_ignoring_time(&stored, &later));
    }

    #[test]
    fn a_new_generation_is_a_change() {
        let stored = merge(&[], &[accepted(true, "Accepted")], at(100));
        let next = Desired::new("Accepted", true, "Accepted", "message", Some(2));
        assert!(!up_to_date(&stored, &[next]));
    }

    #[test]
    fn a_missing_condition_is_a_change_and_foreign_ones_do_not_count() {
        let foreign = merge(&[], &[Desired::new("Other", true, "X", "", None)], at(1));
        assert!(!up_to_date(&foreign, &[accepted(true, "Accepted")]));
        let mut both = foreign.clone();
        both.extend(merge(&[], &[accepted(true, "Accepted")], at(1)));
        assert!(up_to_date(&both, &[accepted(true, "Accepted")]));
    }
}
