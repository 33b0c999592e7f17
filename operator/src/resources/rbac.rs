//! The proxy's identity and permissions: it may read exactly its own ConfigMap and Secret, by
//! name, and nothing else (so a compromised proxy cannot read other Gateways' keys).

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::Owner;

/// The ServiceAccount `<gateway>` the proxy pods run as.
pub fn service_account(owner: &Owner) -> ServiceAccount {
    ServiceAccount {
        metadata: owner.meta(owner.name.clone()),
        ..ServiceAccount::default()
    }
}

/// The Role `<gateway>`: get/list/watch of `<gateway>-config` and `<gateway>-credentials` only.
/// list and watch are needed because the proxy watches each object with a `metadata.name` field
/// selector, which the API server authorizes against `resourceNames`.
pub fn role(owner: &Owner) -> Role {
    let read = |resource: &str, name: String| PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec![resource.to_string()]),
        resource_names: Some(vec![name]),
        verbs: ["get", "list", "watch"].map(String::from).to_vec(),
        non_resource_urls: None,
    };
    Role {
        metadata: owner.meta(owner.name.clone()),
        rules: Some(vec![
            read("configmaps", owner.config_map_name()),
            read("secrets", owner.secret_name()),
        ]),
    }
}

/// The RoleBinding `<gateway>` of the Role to the ServiceAccount.
pub fn role_binding(owner: &Owner) -> RoleBinding {
    RoleBinding {
        metadata: owner.meta(owner.name.clone()),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: owner.name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: owner.name.clone(),
            namespace: Some(owner.namespace.clone()),
            api_group: None,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::owner;

    #[test]
    fn the_role_only_reads_the_gateways_own_config_map_and_secret() {
        let rules = role(&owner()).rules.unwrap();
        assert_eq!(rules.len(), 2);
        let summary: Vec<_> = rules
            .iter()
            .map(|r| {
                (
                    r.api_groups.clone().unwrap(),
                    r.resources.clone().unwrap(),
                    r.resource_names.clone().unwrap(),
                    r.verbs.clone(),
                )
            })
            .collect();
        let verbs = vec!["get".to_string(), "list".into(), "watch".into()];
        assert_eq!(
            summary,
            [
                (
                    vec![String::new()],
                    vec!["configmaps".to_string()],
                    vec!["agentgateway-proxy-config".to_string()],
                    verbs.clone()
                ),
                (
                    vec![String::new()],
                    vec!["secrets".to_string()],
                    vec!["agentgateway-proxy-credentials".to_string()],
                    verbs
                ),
            ]
        );
    }

    #[test]
    fn the_binding_grants_the_role_to_the_service_account() {
        let binding = role_binding(&owner());
        assert_eq!(binding.role_ref.kind, "Role");
        assert_eq!(binding.role_ref.name, "agentgateway-proxy");
        let subject = &binding.subjects.unwrap()[0];
        assert_eq!(subject.kind, "ServiceAccount");
        assert_eq!(subject.name, "agentgateway-proxy");
        assert_eq!(subject.namespace.as_deref(), Some("agentgateway-system"));
        assert_eq!(
            service_account(&owner()).metadata.name.as_deref(),
            Some("agentgateway-proxy")
        );
    }
}
