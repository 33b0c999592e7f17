//! AgentgatewayPolicy status: the compiler's verdict on each target ([`policy_reports`], over the
//! same inputs a Gateway compiles from) as `status.ancestors[]` (one per target, its own
//! `Accepted`) and one overall `Accepted` condition. A policy never compiles anything itself: what
//! the proxies enforce comes from the Gateways' compiles, which attach policies the same way.

use std::sync::Arc;

use agentgateway_compiler::{ObjectRef, PolicyReport, TargetReport, policy_reports};
use agentgateway_crds::conditions::{reasons, types};
use agentgateway_crds::policy::{PolicyAncestorStatus, PolicyTargetRef};
use agentgateway_crds::{AgentgatewayPolicy, CONTROLLER_NAME};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::status::{StatusWrite, write_status};
use super::{instrumented, object_key, on_error};
use crate::conditions::{self, Desired};
use crate::context::Context;
use crate::error::{Error, Result};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "policy";

/// Reconciles one policy's status.
pub async fn reconcile(policy: Arc<AgentgatewayPolicy>, ctx: Arc<Context>) -> Result<Action> {
    let key = object_key(policy.as_ref());
    instrumented(
        &ctx,
        CONTROLLER,
        &key,
        reconcile_policy(&policy, &ctx, &key),
    )
    .await
}

/// The error policy of this controller.
pub fn error_policy(policy: Arc<AgentgatewayPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    on_error(&ctx, CONTROLLER, &object_key(policy.as_ref()), error)
}

async fn reconcile_policy(policy: &AgentgatewayPolicy, ctx: &Context, key: &str) -> Result<Action> {
    if policy.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let inputs = ctx
        .stores
        .gateway_inputs(&ctx.client, ctx.shared_counters())
        .await?;
    let this = ObjectRef::of(policy);
    let Some(report) = policy_reports(&inputs)
        .into_iter()
        .find(|r| r.policy == this)
    else {
        // Not in the cache any more (deleted meanwhile): nothing to report on.
        return Ok(Action::await_change());
    };
    let desired = desired_status(&report, policy.metadata.generation);
    let existing = policy.status.as_ref();
    let existing_conditions = existing
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let existing_ancestors = existing.map(|s| s.ancestors.as_slice()).unwrap_or_default();
    let namespace = policy.namespace().unwrap_or_default();
    let api: Api<AgentgatewayPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
    let write = StatusWrite {
        object: policy,
        up_to_date: up_to_date(existing_conditions, existing_ancestors, &desired),
        wanted: format!("{desired:?}"),
        precondition: false,
    };
    let written = write_status(ctx, &api, write, || {
        let now = Timestamp::now();
        let conditions = conditions::merge(
            existing_conditions,
            std::slice::from_ref(&desired.accepted),
            now,
        );
        let ancestors = merge_ancestors(existing_ancestors, &desired.ancestors, now);
        serde_json::json!({ "conditions": conditions, "ancestors": ancestors })
    })
    .await?;
    if !written {
        return Ok(Action::await_change());
    }
    let accepted = &desired.accepted;
    tracing::info!(
        policy = %key,
        accepted = accepted.status,
        reason = %accepted.reason,
        targets = desired.ancestors.len(),
        "policy status updated"
    );
    if !accepted.status {
        ctx.publish(
            &policy.object_ref(&()),
            EventType::Warning,
            &accepted.reason,
            "Attach",
            accepted.message.clone(),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// What a policy's status should say, before times are assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredPolicyStatus {
    /// The overall `Accepted`.
    pub accepted: Desired,
    /// One entry per target, in `spec.targetRefs` order.
    pub ancestors: Vec<DesiredAncestor>,
}

/// One `status.ancestors[]` entry, before times are assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredAncestor {
    /// The target.
    pub target: PolicyTargetRef,
    /// Its `Accepted`.
    pub accepted: Desired,
}

/// The status `report` calls for, at the policy's `generation`: each target `Accepted=True`
/// (with the compiler's note, e.g. the consumers found) or `False` with its first problem's
/// reason and every problem as `field: message`; the policy `Accepted=True` when every target
/// is, else `False` with the first failing target's reason and message, prefixed by that target.
pub fn desired_status(report: &PolicyReport, generation: Option<i64>) -> DesiredPolicyStatus {
    let ancestors: Vec<DesiredAncestor> = report
        .targets
        .iter()
        .map(|target| DesiredAncestor {
            target: target.target.clone(),
            accepted: target_condition(target, generation),
        })
        .collect();
    let failing: Vec<&DesiredAncestor> = ancestors.iter().filter(|a| !a.accepted.status).collect();
    let accepted = match failing.first() {
        None => Desired::new(
            types::ACCEPTED,
            true,
            reasons::ACCEPTED,
            accepted_message(&report.targets),
            generation,
        ),
        Some(first) => {
            let mut message = format!("{}: {}", describe(&first.target), first.accepted.message);
            if failing.len() > 1 {
                message.push_str(&format!(
                    " (and {} more targets not accepted: see status.ancestors)",
                    failing.len() - 1
                ));
            }
            Desired::new(
                types::ACCEPTED,
                false,
                first.accepted.reason.clone(),
                message,
                generation,
            )
        }
    };
    DesiredPolicyStatus {
        accepted,
        ancestors,
    }
}

/// `HTTPRoute llm`.
fn describe(target: &PolicyTargetRef) -> String {
    format!("{} {}", target.kind, target.name)
}

fn target_condition(target: &TargetReport, generation: Option<i64>) -> Desired {
    let Some(first) = target.diagnostics.first() else {
        let message = match &target.note {
            Some(note) => format!("the policy applies to {}: {note}", describe(&target.target)),
            None => format!("the policy applies to {}", describe(&target.target)),
        };
        return Desired::new(
            types::ACCEPTED,
            true,
            reasons::ACCEPTED,
            message,
            generation,
        );
    };
    let message = target
        .diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.field, d.message))
        .collect::<Vec<_>>()
        .join("; ");
    Desired::new(
        types::ACCEPTED,
        false,
        first.reason.as_str(),
        message,
        generation,
    )
}

/// `the policy applies to its 2 targets: HTTPRoute llm (2 consumers (a, b)), Gateway gw`.
fn accepted_message(targets: &[TargetReport]) -> String {
    let each: Vec<String> = targets
        .iter()
        .map(|t| match &t.note {
            Some(note) => format!("{} ({note})", describe(&t.target)),
            None => describe(&t.target),
        })
        .collect();
    match each.len() {
        1 => format!("the policy applies to its target: {}", each.join(", ")),
        n => format!("the policy applies to its {n} targets: {}", each.join(", ")),
    }
}

/// Whether the stored status already says `desired` (times aside): the one `Accepted` condition,
/// and exactly the desired ancestors, in order, each with its condition.
pub fn up_to_date(
    conditions: &[Condition],
    ancestors: &[PolicyAncestorStatus],
    desired: &DesiredPolicyStatus,
) -> bool {
    let ours: Vec<&PolicyAncestorStatus> = ancestors
        .iter()
        .filter(|a| a.controller_name == CONTROLLER_NAME)
        .collect();
    conditions::up_to_date(conditions, std::slice::from_ref(&desired.accepted))
        && ours.len() == ancestors.len()
        && ours.len() == desired.ancestors.len()
        && ours.iter().zip(&desired.ancestors).all(|(stored, want)| {
            stored.ancestor_ref == want.target
                && stored.conditions.len() == 1
                && conditions::up_to_date(&stored.conditions, std::slice::from_ref(&want.accepted))
        })
}

/// The ancestors to write: `desired` in order, each condition keeping the `lastTransitionTime` of
/// the stored entry for the same target while its status stays the same. Entries for targets no
/// longer in the spec are dropped (this controller is the policy's only status writer).
pub fn merge_ancestors(
    existing: &[PolicyAncestorStatus],
    desired: &[DesiredAncestor],
    now: Timestamp,
) -> Vec<PolicyAncestorStatus> {
    desired
        .iter()
        .map(|want| {
            let stored = existing
                .iter()
                .find(|a| a.ancestor_ref == want.target && a.controller_name == CONTROLLER_NAME)
                .map(|a| a.conditions.as_slice())
                .unwrap_or_default();
            PolicyAncestorStatus {
                ancestor_ref: want.target.clone(),
                controller_name: CONTROLLER_NAME.to_string(),
                conditions: conditions::merge(stored, std::slice::from_ref(&want.accepted), now),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgateway_compiler::{Diagnostic, Reason};

    fn target(kind: &str, name: &str) -> PolicyTargetRef {
        let group = if kind == "AgentgatewayBackend" {
            "agentgateway.dev"
        } else {
            "gateway.networking.k8s.io"
        };
        PolicyTargetRef {
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    fn policy_ref() -> ObjectRef {
        ObjectRef {
            kind: "AgentgatewayPolicy".into(),
            namespace: "team-a".into(),
            name: "limits".into(),
        }
    }

    fn report(targets: Vec<TargetReport>) -> PolicyReport {
        PolicyReport {
            policy: policy_ref(),
            generation: Some(3),
            targets,
        }
    }

    fn ok(kind: &str, name: &str, note: Option<&str>) -> TargetReport {
        TargetReport {
            target: target(kind, name),
            diagnostics: Vec::new(),
            note: note.map(str::to_string),
        }
    }

    fn failing(kind: &str, name: &str, problems: &[(&str, Reason, &str)]) -> TargetReport {
        TargetReport {
            target: target(kind, name),
            diagnostics: problems
                .iter()
                .map(|(field, reason, message)| Diagnostic {
                    object: policy_ref(),
                    field: field.to_string(),
                    reason: *reason,
                    message: message.to_string(),
                })
                .collect(),
            note: None,
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn every_target_accepted_makes_the_policy_accepted_with_the_notes() {
        let desired = desired_status(
            &report(vec![
                ok("HTTPRoute", "llm", Some("2 consumers (team-a, team-b)")),
                ok("Gateway", "gw", None),
            ]),
            Some(3),
        );
        assert!(desired.accepted.status);
        assert_eq!(desired.accepted.reason, "Accepted");
        assert_eq!(desired.accepted.observed_generation, Some(3));
        assert_eq!(
            desired.accepted.message,
            "the policy applies to its 2 targets: HTTPRoute llm (2 consumers (team-a, team-b)), Gateway gw"
        );
        assert_eq!(desired.ancestors.len(), 2);
        assert_eq!(
            desired.ancestors[0].accepted.message,
            "the policy applies to HTTPRoute llm: 2 consumers (team-a, team-b)"
        );
    }

    #[test]
    fn the_first_failing_target_gives_the_reason_and_prefixes_the_message() {
        let desired = desired_status(
            &report(vec![
                ok("Gateway", "gw", None),
                failing(
                    "HTTPRoute",
                    "llm",
                    &[
                        (
                            "spec.rateLimit.global",
                            Reason::RedisNotConfigured,
                            "needs Redis; not applied",
                        ),
                        ("spec.budget", Reason::RedisNotConfigured, "needs Redis too"),
                    ],
                ),
                failing(
                    "AgentgatewayBackend",
                    "openai",
                    &[("spec.targetRefs[2]", Reason::TargetNotFound, "not found")],
                ),
            ]),
            Some(3),
        );
        assert!(!desired.accepted.status);
        assert_eq!(desired.accepted.reason, "RedisNotConfigured");
        assert_eq!(
            desired.accepted.message,
            "HTTPRoute llm: spec.rateLimit.global: needs Redis; not applied; spec.budget: needs Redis too (and 1 more targets not accepted: see status.ancestors)"
        );
        let reasons: Vec<(&str, bool)> = desired
            .ancestors
            .iter()
            .map(|a| (a.accepted.reason.as_str(), a.accepted.status))
            .collect();
        assert_eq!(
            reasons,
            [
                ("Accepted", true),
                ("RedisNotConfigured", false),
                ("TargetNotFound", false)
            ]
        );
    }

    #[test]
    fn ancestors_keep_their_transition_time_until_their_status_flips() {
        let accepted = desired_status(&report(vec![ok("HTTPRoute", "llm", None)]), Some(1));
        let stored = merge_ancestors(&[], &accepted.ancestors, at(100));
        assert_eq!(stored[0].controller_name, "agentgateway.dev/agentgateway");
        assert_eq!(stored[0].ancestor_ref, target("HTTPRoute", "llm"));
        let conditions = conditions::merge(&[], std::slice::from_ref(&accepted.accepted), at(100));
        assert!(up_to_date(&conditions, &stored, &accepted));

        let again = merge_ancestors(&stored, &accepted.ancestors, at(200));
        assert_eq!(
            again[0].conditions[0].last_transition_time,
            stored[0].conditions[0].last_transition_time
        );
        let conflicted = desired_status(
            &report(vec![failing(
                "HTTPRoute",
                "llm",
                &[("spec.auth", Reason::Conflicted, "older policy wins")],
            )]),
            Some(1),
        );
        assert!(!up_to_date(&conditions, &stored, &conflicted));
        let flipped = merge_ancestors(&stored, &conflicted.ancestors, at(300));
        assert_eq!(
            flipped[0].conditions[0].last_transition_time.0,
            at(300),
            "a flip moves the time"
        );
        assert_eq!(flipped[0].conditions[0].status, "False");
    }

    #[test]
    fn a_removed_target_or_a_new_generation_is_a_change() {
        let two = desired_status(
            &report(vec![ok("HTTPRoute", "a", None), ok("HTTPRoute", "b", None)]),
            Some(1),
        );
        let stored = merge_ancestors(&[], &two.ancestors, at(1));
        let conditions = conditions::merge(&[], std::slice::from_ref(&two.accepted), at(1));
        let one = desired_status(&report(vec![ok("HTTPRoute", "a", None)]), Some(1));
        assert!(!up_to_date(&conditions, &stored, &one));
        assert_eq!(merge_ancestors(&stored, &one.ancestors, at(2)).len(), 1);
        let next = desired_status(
            &report(vec![ok("HTTPRoute", "a", None), ok("HTTPRoute", "b", None)]),
            Some(2),
        );
        assert!(!up_to_date(&conditions, &stored, &next));
    }
}
