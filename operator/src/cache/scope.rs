//! Which namespaces the operator watches and writes in: the whole cluster, or a list an
//! administrator chose (`--watch-namespaces`, the chart's `watchNamespaces`), so that its
//! permissions can be namespaced Roles in those namespaces only.

use k8s_openapi::NamespaceResourceScope;
use kube::{Api, Client, Resource};

/// The namespaces of namespaced kinds the operator reads and writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace.
    #[default]
    Cluster,
    /// Only these (sorted, without duplicates, never empty).
    Namespaces(Vec<String>),
}

impl Scope {
    /// The scope of `namespaces`; none means the whole cluster.
    pub fn of(namespaces: impl IntoIterator<Item = String>) -> Self {
        let mut namespaces: Vec<String> = namespaces
            .into_iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        if namespaces.is_empty() {
            Self::Cluster
        } else {
            Self::Namespaces(namespaces)
        }
    }

    /// One API per watched namespace (or one for the cluster), each with its namespace.
    pub fn apis<K>(&self, client: &Client) -> Vec<(Option<String>, Api<K>)>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        match self {
            Self::Cluster => vec![(None, Api::all(client.clone()))],
            Self::Namespaces(namespaces) => namespaces
                .iter()
                .map(|n| (Some(n.clone()), Api::namespaced(client.clone(), n)))
                .collect(),
        }
    }

    /// Whether objects in `namespace` are the operator's to read and write.
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Self::Cluster => true,
            Self::Namespaces(namespaces) => namespaces.iter().any(|n| n == namespace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_namespace_is_the_cluster_and_a_list_is_normalized() {
        assert_eq!(Scope::of(Vec::new()), Scope::Cluster);
        assert_eq!(Scope::of(vec![" ".into()]), Scope::Cluster);
        let scope = Scope::of(vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(scope, Scope::Namespaces(vec!["a".into(), "b".into()]));
        assert!(scope.contains("a") && !scope.contains("c"));
        assert!(Scope::Cluster.contains("anything"));
    }
}
