//! What a Gateway's `AgentgatewayParameters` (merged over its class's) and its
//! `spec.infrastructure` labels and annotations make of its proxy objects.

use std::collections::BTreeMap;

use agentgateway_crds::AgentgatewayParametersSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// How one Gateway's proxy runs, beyond the operator's flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyShape {
    /// The Gateway's parameters over its class's; empty without any.
    pub parameters: AgentgatewayParametersSpec,
    /// `spec.infrastructure.labels`: on every object of the proxy, and its pods.
    pub labels: BTreeMap<String, String>,
    /// `spec.infrastructure.annotations`: on every object of the proxy, and its pods.
    pub annotations: BTreeMap<String, String>,
}

impl ProxyShape {
    /// Adds the infrastructure labels and annotations to `meta`. The operator's own labels and
    /// annotations win over a user's of the same key (validation refuses those keys anyway), so
    /// the selectors and the caches' label filter keep working.
    pub fn decorate(&self, meta: &mut ObjectMeta) {
        meta.labels = merged(&self.labels, meta.labels.take());
        meta.annotations = merged(&self.annotations, meta.annotations.take());
    }
}

/// `ours` over `theirs`; `None` when both are empty, so an object without either is unchanged.
pub fn merged(
    theirs: &BTreeMap<String, String>,
    ours: Option<BTreeMap<String, String>>,
) -> Option<BTreeMap<String, String>> {
    let mut all = theirs.clone();
    all.extend(ours.unwrap_or_default());
    (!all.is_empty()).then_some(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infrastructure_labels_join_the_operators_which_win() {
        let shape = ProxyShape {
            labels: BTreeMap::from([
                ("team".to_string(), "ml".to_string()),
                ("app.kubernetes.io/name".to_string(), "mine".to_string()),
            ]),
            annotations: BTreeMap::from([("owner".to_string(), "ml@example.com".to_string())]),
            ..ProxyShape::default()
        };
        let mut meta = crate::resources::tests::owner().meta("gw".into());
        shape.decorate(&mut meta);
        let labels = meta.labels.unwrap();
        assert_eq!(labels["team"], "ml");
        assert_eq!(labels["app.kubernetes.io/name"], "agentgateway-proxy");
        assert_eq!(meta.annotations.unwrap()["owner"], "ml@example.com");
        let mut plain = ObjectMeta::default();
        ProxyShape::default().decorate(&mut plain);
        assert_eq!(
            plain,
            ObjectMeta::default(),
            "nothing added, nothing changed"
        );
    }
}
