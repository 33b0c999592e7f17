//! The proxy Deployment and its Service.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    LocalObjectReference, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, Service, ServicePort,
    ServiceSpec, Sysctl,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use agentgateway_crds::proxy_config;

use super::shape::merged;
use super::{ListenerPort, Owner, ProxySettings, ProxyShape};
use crate::redis::{self, PasswordState};

/// The proxy's readiness port (`/healthz/ready`), as the API's `int32`.
pub const READY_PORT: i32 = proxy_config::READY_PORT as i32;
/// The proxy's metrics port (`/metrics`), as the API's `int32`.
pub const METRICS_PORT: i32 = proxy_config::METRICS_PORT as i32;
/// The name of the proxy container.
pub const CONTAINER_NAME: &str = "proxy";

/// The proxy's shutdown, as the pod runs it. On SIGTERM the proxy fails readiness but keeps
/// accepting for the drain delay (`--drain-delay`), while the endpoints controller and kube-proxy
/// stop sending it new connections; then it stops accepting and gives in-flight requests and
/// streams the drain timeout (`--drain-timeout`) to finish. The pod's grace period covers both plus
/// a margin for the exit itself, so the kubelet's SIGKILL never cuts a drain short. The flags are
/// passed explicitly so that the grace period follows them, not the proxy's defaults.
pub const DRAIN_DELAY_SECONDS: i64 = 5;
/// See [`DRAIN_DELAY_SECONDS`].
pub const DRAIN_TIMEOUT_SECONDS: i64 = 30;
/// Time left after the drain for the process to exit (flushing logs, closing connections).
pub const TERMINATION_MARGIN_SECONDS: i64 = 10;
/// The proxy pods' `terminationGracePeriodSeconds` (45).
pub const TERMINATION_GRACE_PERIOD_SECONDS: i64 =
    DRAIN_DELAY_SECONDS + DRAIN_TIMEOUT_SECONDS + TERMINATION_MARGIN_SECONDS;

/// The proxy Deployment `<gateway>`. With Redis configured the proxy gets `--redis-url` and
/// `--redis-timeout`, and with a Redis password `AGENTGATEWAY_REDIS_PASSWORD` from its own
/// credentials Secret (the pod spec holds a reference, never the password) plus an annotation
/// naming the password's version, so that a rotated password restarts the proxies.
///
/// `shape` carries the Gateway's parameters: resources, pod labels, annotations and placement,
/// and replicas. With `autoscaling` the Deployment has no `replicas` at all, so the operator's
/// server-side apply does not own the field and the HorizontalPodAutoscaler sets it alone (see
/// `controllers::gateway::hand_over_replicas` for the switch from a fixed count).
pub fn deployment(
    owner: &Owner,
    settings: &ProxySettings,
    ports: &[ListenerPort],
    password: &PasswordState,
    shape: &ProxyShape,
) -> Deployment {
    let parameters = &shape.parameters;
    let pod = parameters.pod.clone().unwrap_or_default();
    let mut container_ports: Vec<ContainerPort> = ports
        .iter()
        .map(|p| container_port(&p.name, p.port))
        .collect();
    container_ports.push(container_port("ready", READY_PORT));
    container_ports.push(container_port("metrics", METRICS_PORT));
    let mut args = vec![
        "--kube-config-map".to_string(),
        format!("{}/{}", owner.namespace, owner.config_map_name()),
        "--kube-secret".to_string(),
        format!("{}/{}", owner.namespace, owner.secret_name()),
        // Gateway listener ports are bound on this address's IP.
        "--listen".to_string(),
        "0.0.0.0:8080".to_string(),
        "--ready-addr".to_string(),
        format!("0.0.0.0:{READY_PORT}"),
        "--metrics-addr".to_string(),
        format!("0.0.0.0:{METRICS_PORT}"),
        "--drain-delay".to_string(),
        format!("{DRAIN_DELAY_SECONDS}s"),
        "--drain-timeout".to_string(),
        format!("{DRAIN_TIMEOUT_SECONDS}s"),
    ];
    let mut env = vec![EnvVar {
        name: "RUST_LOG".into(),
        value: Some(settings.log_level.clone()),
        value_from: None,
    }];
    let mut annotations = BTreeMap::new();
    if let Some(redis) = &settings.redis {
        args.extend([
            "--redis-url".to_string(),
            redis.url.clone(),
            "--redis-timeout".to_string(),
            redis.timeout.clone(),
        ]);
        let version = match password {
            PasswordState::None => None,
            PasswordState::Read(password) => Some(password.version.clone()),
            PasswordState::Missing => Some(String::new()),
        };
        if let Some(version) = version {
            env.push(password_env(owner));
            annotations.insert(redis::PASSWORD_VERSION_ANNOTATION.to_string(), version);
        }
    }
    let container = Container {
        name: CONTAINER_NAME.into(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some(settings.image_pull_policy.clone()),
        args: Some(args),
        env: Some(env),
        ports: Some(container_ports),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz/ready".into()),
                port: IntOrString::Int(READY_PORT),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(2),
            ..Probe::default()
        }),
        // Liveness is the admin server answering, not having a config: a proxy waiting for its
        // first config must not be restarted.
        liveness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz/live".into()),
                port: IntOrString::Int(READY_PORT),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(10),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        resources: Some(
            parameters
                .resources
                .clone()
                .unwrap_or_else(|| ResourceRequirements {
                    requests: Some(quantities(&settings.cpu_request, &settings.memory_request)),
                    limits: Some(quantities(&settings.cpu_limit, &settings.memory_limit)),
                    claims: None,
                }),
        ),
        security_context: Some(container_security()),
        ..Container::default()
    };
    let replicas = match (&parameters.autoscaling, parameters.replicas) {
        (Some(_), _) => None,
        (None, Some(replicas)) => Some(replicas),
        (None, None) => Some(settings.replicas),
    };
    // Spread constraints without a selector count the Gateway's own proxy pods.
    let spread = pod.topology_spread_constraints.map(|constraints| {
        constraints
            .into_iter()
            .map(|mut constraint| {
                constraint
                    .label_selector
                    .get_or_insert_with(|| LabelSelector {
                        match_labels: Some(owner.selector_labels()),
                        match_expressions: None,
                    });
                constraint
            })
            .collect()
    });
    let mut template_meta = ObjectMeta {
        labels: merged(&pod.labels.unwrap_or_default(), Some(owner.labels())),
        annotations: merged(&pod.annotations.unwrap_or_default(), Some(annotations)),
        ..ObjectMeta::default()
    };
    shape.decorate(&mut template_meta);
    Deployment {
        metadata: owner.meta(owner.name.clone()),
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(owner.selector_labels()),
                match_expressions: None,
            },
            template: PodTemplateSpec {
                metadata: Some(template_meta),
                spec: Some(PodSpec {
                    service_account_name: Some(owner.name.clone()),
                    containers: vec![container],
                    security_context: Some(pod_security(ports)),
                    image_pull_secrets: image_pull_secrets(settings),
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_PERIOD_SECONDS),
                    node_selector: pod.node_selector,
                    tolerations: pod.tolerations,
                    topology_spread_constraints: spread,
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// `AGENTGATEWAY_REDIS_PASSWORD` from the Gateway's own credentials Secret. Optional: while the
/// operator cannot read the password (its Secret or key missing), the proxy still starts and serves
/// what needs no Redis; its Redis checks fail and each policy's `failureMode` decides.
fn password_env(owner: &Owner) -> EnvVar {
    EnvVar {
        name: redis::PASSWORD_ENV.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: owner.secret_name(),
                key: redis::PASSWORD_KEY.into(),
                optional: Some(true),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// `None` rather than an empty list, so a Deployment without pull secrets is unchanged.
fn image_pull_secrets(settings: &ProxySettings) -> Option<Vec<LocalObjectReference>> {
    if settings.image_pull_secrets.is_empty() {
        return None;
    }
    let refs = settings
        .image_pull_secrets
        .iter()
        .map(|name| LocalObjectReference { name: name.clone() })
        .collect();
    Some(refs)
}

/// The user and group the proxy runs as (distroless' `nonroot`).
pub const PROXY_UID: i64 = 65532;
/// The sysctl that lets a non-root process bind ports below 1024 in the pod's network namespace.
pub const UNPRIVILEGED_PORT_SYSCTL: &str = "net.ipv4.ip_unprivileged_port_start";

/// Non-root with the runtime's seccomp profile. Listener ports below 1024 (the tutorial's 80) are
/// opened to non-root users by a pod sysctl rather than root or `NET_BIND_SERVICE`; the sysctl is
/// only set when such a port exists, because Kubernetes before 1.22 treats it as unsafe and the
/// kubelet must allow it (`--allowed-unsafe-sysctls`).
fn pod_security(ports: &[ListenerPort]) -> PodSecurityContext {
    let lowest = ports.iter().map(|p| p.port).min();
    let sysctls = lowest.filter(|port| *port < 1024).map(|port| {
        vec![Sysctl {
            name: UNPRIVILEGED_PORT_SYSCTL.into(),
            value: port.to_string(),
        }]
    });
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(PROXY_UID),
        run_as_group: Some(PROXY_UID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        sysctls,
        ..PodSecurityContext::default()
    }
}

/// Nothing to escalate to, nothing to write: the proxy only reads its config from the API.
fn container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

/// The Service `<gateway>` with one port per listener (ClusterIP unless the Gateway's parameters
/// say otherwise, with their annotations); `None` without listener ports.
pub fn service(owner: &Owner, ports: &[ListenerPort], shape: &ProxyShape) -> Option<Service> {
    if ports.is_empty() {
        return None;
    }
    let ports = ports
        .iter()
        .map(|p| ServicePort {
            name: Some(p.name.clone()),
            port: p.port,
            target_port: Some(IntOrString::Int(p.port)),
            // Server-side apply on Kubernetes 1.20 keys service ports by port and protocol.
            protocol: Some("TCP".into()),
            app_protocol: Some(p.app_protocol.into()),
            ..ServicePort::default()
        })
        .collect();
    let parameters = shape.parameters.service.clone().unwrap_or_default();
    let mut metadata = owner.meta(owner.name.clone());
    metadata.annotations = merged(&parameters.annotations.unwrap_or_default(), None);
    Some(Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(parameters.type_.unwrap_or_default().as_str().into()),
            selector: Some(owner.selector_labels()),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    })
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        // Server-side apply on Kubernetes 1.20 keys container ports by port and protocol, and
        // fails when the protocol is left to its default.
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn quantities(cpu: &str, memory: &str) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cpu.to_string())),
        ("memory".to_string(), Quantity(memory.to_string())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::owner;

    fn http_80() -> Vec<ListenerPort> {
        vec![ListenerPort {
            name: "http".into(),
            port: 80,
            app_protocol: "http",
        }]
    }

    fn container(deployment: &Deployment) -> Container {
        let pod = deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap();
        assert_eq!(pod.containers.len(), 1);
        pod.containers[0].clone()
    }

    #[test]
    fn the_deployment_is_named_after_the_gateway_and_runs_the_proxy_image() {
        let settings = ProxySettings {
            image: "agentgateway-proxy:e2e".into(),
            image_pull_policy: "Never".into(),
            replicas: 2,
            ..ProxySettings::default()
        };
        let deployment = deployment(
            &owner(),
            &settings,
            &http_80(),
            &PasswordState::None,
            &ProxyShape::default(),
        );
        assert_eq!(
            deployment.metadata.name.as_deref(),
            Some("agentgateway-proxy")
        );
        assert_eq!(
            deployment.metadata.namespace.as_deref(),
            Some("agentgateway-system")
        );
        assert_eq!(
            deployment.metadata.owner_references.as_ref().unwrap()[0].uid,
            "uid-1"
        );
        assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(2));
        let container = container(&deployment);
        assert_eq!(container.name, "proxy");
        assert_eq!(container.image.as_deref(), Some("agentgateway-proxy:e2e"));
        assert_eq!(container.image_pull_policy.as_deref(), Some("Never"));
        let env = container.env.unwrap();
        assert_eq!(env[0].name, "RUST_LOG");
        assert_eq!(env[0].value.as_deref(), Some("info"));
    }

    #[test]
    fn the_proxy_reads_its_own_config_map_and_secret() {
        let args = container(&deployment(
            &owner(),
            &ProxySettings::default(),
            &http_80(),
            &PasswordState::None,
            &ProxyShape::default(),
        ))
        .args
        .unwrap();
        assert_eq!(
            args,
            [
                "--kube-config-map",
                "agentgateway-system/agentgateway-proxy-config",
                "--kube-secret",
                "agentgateway-system/agentgateway-proxy-credentials",
                "--listen",
                "0.0.0.0:8080",
                "--ready-addr",
                "0.0.0.0:15021",
                "--metrics-addr",
                "0.0.0.0:15020",
                "--drain-delay",
                "5s",
                "--drain-timeout",
                "30s",
            ]
        );
    }

    fn with_redis(password: bool) -> ProxySettings {
        ProxySettings {
            redis: Some(crate::redis::RedisSettings {
                url: "redis://agentgateway-redis.agentgateway-system:6379".into(),
                timeout: "5ms".into(),
                password: password.then(|| crate::redis::PasswordSecret {
                    namespace: "agentgateway-system".into(),
                    name: "agentgateway-redis".into(),
                    key: "password".into(),
                }),
            }),
            ..ProxySettings::default()
        }
    }

    #[test]
    fn without_redis_the_proxy_gets_no_redis_flag_env_or_annotation() {
        let d = deployment(
            &owner(),
            &ProxySettings::default(),
            &http_80(),
            &PasswordState::None,
            &ProxyShape::default(),
        );
        let c = container(&d);
        assert!(!c.args.unwrap().iter().any(|a| a.starts_with("--redis")));
        assert_eq!(c.env.unwrap().len(), 1);
        let template = d.spec.unwrap().template.metadata.unwrap();
        assert_eq!(template.annotations, None);
    }

    #[test]
    fn with_redis_the_proxy_gets_the_url_and_timeout_flags() {
        let d = deployment(
            &owner(),
            &with_redis(false),
            &http_80(),
            &PasswordState::None,
            &ProxyShape::default(),
        );
        let args = container(&d).args.unwrap();
        let tail: Vec<&str> = args[args.len() - 4..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "--redis-url",
                "redis://agentgateway-redis.agentgateway-system:6379",
                "--redis-timeout",
                "5ms"
            ]
        );
        // No password configured: no env from the Secret.
        assert_eq!(container(&d).env.unwrap().len(), 1);
    }

    #[test]
    fn the_redis_password_comes_from_the_gateways_own_secret_and_its_version_restarts_pods() {
        let password = crate::redis::RedisPassword::new("hunter2", "314");
        let read = PasswordState::Read(password);
        let d = deployment(
            &owner(),
            &with_redis(true),
            &http_80(),
            &read,
            &ProxyShape::default(),
        );
        let env = container(&d).env.unwrap();
        let var = env
            .iter()
            .find(|e| e.name == "AGENTGATEWAY_REDIS_PASSWORD")
            .unwrap();
        assert_eq!(var.value, None);
        let secret = var
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(secret.name, "agentgateway-proxy-credentials");
        assert_eq!(secret.key, "redis-password");
        assert_eq!(secret.optional, Some(true));
        let annotations = |d: &Deployment| {
            d.spec
                .clone()
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()
        };
        assert_eq!(
            annotations(&d)["agentgateway.dev/redis-password-version"],
            "314"
        );
        // The password itself is nowhere in the Deployment.
        assert!(!serde_json::to_string(&d).unwrap().contains("hunter2"));
        // Not readable yet: the reference stays, the version is empty (and changes once read).
        let d = deployment(
            &owner(),
            &with_redis(true),
            &http_80(),
            &PasswordState::Missing,
            &ProxyShape::default(),
        );
        assert_eq!(
            annotations(&d)["agentgateway.dev/redis-password-version"],
            ""
        );
    }

    #[test]
    fn the_grace_period_covers_the_drain_delay_and_timeout_with_a_margin() {
        let d = deployment(
            &owner(),
            &ProxySettings::default(),
            &http_80(),
            &PasswordState::None,
            &ProxyShape::default(),
        );
        assert_eq!(pod(&d).termination_grace_period_seconds, Some(45));
        let args = container(&d).args.unwrap();
        let flag = |name: &str| {
            let at = args.iter().position(|a| a == name).unwrap();
            let value = args[at + 1].strip_suffix('s').unwrap();
            value.parse::<i64>().unwrap()
        };
        assert!(
            flag("--drain-delay") + flag("--drain-timeout") < TERMINATION_GRACE_PERIOD_SECONDS,
            "the kubelet must not SIGKILL a proxy that is still draining"
        );
    }

    #[test]
    fn container_ports_are_the_listener_ports_plus_admin_ports_all_tcp() {
        let ports = container(&deployment(
            &owner(),
            &ProxySettings::default(),
            &http_80(),
            &PasswordState::None,
            &ProxyShape::default(),
        ))
        .ports
        .unwrap();
        let summary: Vec<_> = ports
            .iter()
            .map(|p| {
                (
                    p.name.as_deref().unwrap(),
                    p.container_port,
                    p.protocol.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("http", 80, Some("TCP")),
                ("ready", 15021, Some("TCP")),
                ("metrics", 15020, Some("TCP"))
            ]
        );
    }

    #[test]
    fn readiness_is_probed_on_the_proxy_ready_endpoint() {
        let probe = container(&deployment(
            &owner(),
            &ProxySettings::default(),
            &http_80(),
            &PasswordState::None,
            &ProxyShape::default(),
        ))
        .readiness_probe
        .unwrap();
        let get = probe.http_get.unwrap();
        assert_eq!(get.path.as_deref(), Some("/healthz/ready"));
        assert_eq!(get.port, IntOrString::Int(15021));
    }

    #[test]
    fn pods_run_as_the_gateway_service_account_with_the_selected_labels() {
        let deployment = deployment(
            &owner(),
            &ProxySettings::default(),
            &http_80(),
            &PasswordState::None,
            &ProxyShape::default(),
        );
        let spec = deployment.spec.unwrap();
        let selector = spec.selector.match_labels.unwrap();
        let pod_labels = spec.template.metadata.unwrap().labels.unwrap();
        for (key, value) in &selector {
            assert_eq!(pod_labels.get(key), Some(value));
        }
        assert_eq!(pod_labels["app.kubernetes.io/name"], "agentgateway-proxy");
        assert_eq!(
            spec.template.spec.unwrap().service_account_name.as_deref(),
            Some("agentgateway-proxy")
        );
    }

    #[test]
    fn pull_secrets_reach_the_pod_only_when_set() {
        let d = deployment(
            &owner(),
            &ProxySettings::default(),
            &http_80(),
            &PasswordState::None,
            &ProxyShape::default(),
        );
        assert_eq!(pod(&d).image_pull_secrets, None);
        let settings = ProxySettings {
            image_pull_secrets: vec!["regcred".into(), "mirror".into()],
            ..ProxySettings::default()
        };
        let d = deployment(
            &owner(),
            &settings,
            &http_80(),
            &PasswordState::None,
            &ProxyShape::default(),
        );
        let names: Vec<String> = pod(&d)
            .image_pull_secrets
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, vec!["regcred", "mirror"]);
    }

    #[test]
    fn resources_come_from_the_settings() {
        let resources = container(&deployment(
            &owner(),
            &ProxySettings::default(),
            &http_80(),
            &PasswordState::None,
            &ProxyShape::default(),
        ))
        .resources
        .unwrap();
        let requests = resources.requests.unwrap();
        let limits = resources.limits.unwrap();
        assert_eq!(requests["cpu"], Quantity("50m".into()));
        assert_eq!(requests["memory"], Quantity("32Mi".into()));
        assert_eq!(limits["cpu"], Quantity("1".into()));
        assert_eq!(limits["memory"], Quantity("256Mi".into()));
    }

    #[test]
    fn the_service_exposes_each_listener_port_over_tcp() {
        let service = service(&owner(), &http_80(), &ProxyShape::default()).unwrap();
        let spec = service.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        let port = &spec.ports.unwrap()[0];
        assert_eq!(port.port, 80);
        assert_eq!(port.target_port, Some(IntOrString::Int(80)));
        assert_eq!(port.protocol.as_deref(), Some("TCP"));
        assert_eq!(port.name.as_deref(), Some("http"));
        assert_eq!(spec.selector, Some(owner().selector_labels()));
    }

    #[test]
    fn no_listener_means_no_service() {
        assert!(service(&owner(), &[], &ProxyShape::default()).is_none());
    }

    fn pod(deployment: &Deployment) -> PodSpec {
        deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .clone()
            .unwrap()
    }

    #[test]
    fn the_proxy_runs_non_root_read_only_without_capabilities() {
        let d = deployment(
            &owner(),
            &ProxySettings::default(),
            &http_80(),
            &PasswordState::None,
            &ProxyShape::default(),
        );
        let pod_security = pod(&d).security_context.unwrap();
        assert_eq!(pod_security.run_as_non_root, Some(true));
        assert_eq!(pod_security.run_as_user, Some(65532));
        assert_eq!(
            pod_security.seccomp_profile.unwrap().type_,
            "RuntimeDefault"
        );
        let security = container(&d).security_context.unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.unwrap().drop,
            Some(vec!["ALL".to_string()])
        );
        let live = container(&d).liveness_probe.unwrap().http_get.unwrap();
        assert_eq!(live.path.as_deref(), Some("/healthz/live"));
    }

    #[test]
    fn port_80_is_opened_by_the_unprivileged_port_sysctl_and_only_when_needed() {
        let ports = vec![
            ListenerPort {
                name: "http".into(),
                port: 80,
                app_protocol: "http",
            },
            ListenerPort {
                name: "alt".into(),
                port: 8443,
                app_protocol: "http",
            },
        ];
        let d = deployment(
            &owner(),
            &ProxySettings::default(),
            &ports,
            &PasswordState::None,
            &ProxyShape::default(),
        );
        let sysctls = pod(&d).security_context.unwrap().sysctls.unwrap();
        assert_eq!(sysctls.len(), 1);
        assert_eq!(sysctls[0].name, "net.ipv4.ip_unprivileged_port_start");
        assert_eq!(sysctls[0].value, "80");

        let high = vec![ListenerPort {
            name: "http".into(),
            port: 8080,
            app_protocol: "http",
        }];
        let d = deployment(
            &owner(),
            &ProxySettings::default(),
            &high,
            &PasswordState::None,
            &ProxyShape::default(),
        );
        assert_eq!(pod(&d).security_context.unwrap().sysctls, None);
    }

    fn shaped(yaml: &str) -> ProxyShape {
        ProxyShape {
            parameters: serde_yaml::from_str(yaml).unwrap(),
            ..ProxyShape::default()
        }
    }

    fn shaped_deployment(yaml: &str) -> Deployment {
        deployment(
            &owner(),
            &ProxySettings::default(),
            &http_80(),
            &PasswordState::None,
            &shaped(yaml),
        )
    }

    #[test]
    fn without_parameters_the_deployment_and_service_are_as_before() {
        let plain = deployment(
            &owner(),
            &ProxySettings::default(),
            &http_80(),
            &PasswordState::None,
            &ProxyShape::default(),
        );
        assert_eq!(plain, shaped_deployment("{}"));
        let spec = plain.spec.clone().unwrap();
        assert_eq!(spec.replicas, Some(1));
        let pod = pod(&plain);
        assert_eq!(
            (
                pod.node_selector,
                pod.tolerations,
                pod.topology_spread_constraints
            ),
            (None, None, None)
        );
        assert_eq!(
            spec.template.metadata.unwrap().labels,
            Some(owner().labels())
        );
        let service = service(&owner(), &http_80(), &ProxyShape::default()).unwrap();
        assert_eq!(service.metadata.annotations, None);
    }

    #[test]
    fn fixed_replicas_are_written_and_autoscaling_leaves_replicas_out() {
        let fixed = shaped_deployment("replicas: 4");
        assert_eq!(fixed.spec.unwrap().replicas, Some(4));
        let scaled = shaped_deployment("autoscaling: {maxReplicas: 5}");
        assert_eq!(scaled.spec.as_ref().unwrap().replicas, None);
        let json = serde_json::to_value(&scaled).unwrap();
        assert!(json["spec"].get("replicas").is_none(), "{}", json["spec"]);
    }

    #[test]
    fn resources_come_from_the_parameters_as_a_whole() {
        let d = shaped_deployment(
            "resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: \"2\", memory: 256Mi}}",
        );
        let resources = container(&d).resources.unwrap();
        assert_eq!(resources.requests.unwrap()["cpu"], Quantity("100m".into()));
        assert_eq!(resources.limits.unwrap()["cpu"], Quantity("2".into()));
        let only_limits = shaped_deployment("resources: {limits: {memory: 1Gi}}");
        let resources = container(&only_limits).resources.unwrap();
        assert_eq!(
            resources.requests, None,
            "not merged with the flags' requests"
        );
    }

    #[test]
    fn pod_labels_annotations_and_placement_come_from_the_parameters() {
        let d = shaped_deployment(
            "
pod:
  labels: {team: ml}
  annotations: {prometheus.io/scrape: \"true\"}
  nodeSelector: {kubernetes.io/os: linux}
  tolerations: [{key: dedicated, operator: Equal, value: gateway, effect: NoSchedule}]
  topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}
  - {maxSkew: 2, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {matchLabels: {team: ml}}}
",
        );
        let template = d.spec.clone().unwrap().template.metadata.unwrap();
        let labels = template.labels.unwrap();
        assert_eq!(labels["team"], "ml");
        for (key, value) in owner().labels() {
            assert_eq!(labels[&key], value, "the selector labels stay");
        }
        assert_eq!(
            template.annotations.unwrap()["prometheus.io/scrape"],
            "true"
        );
        let pod = pod(&d);
        assert_eq!(pod.node_selector.unwrap()["kubernetes.io/os"], "linux");
        assert_eq!(
            pod.tolerations.unwrap()[0].value.as_deref(),
            Some("gateway")
        );
        let spread = pod.topology_spread_constraints.unwrap();
        assert_eq!(
            spread[0].label_selector.as_ref().unwrap().match_labels,
            Some(owner().selector_labels()),
            "no selector: the Gateway's proxy pods"
        );
        assert_eq!(
            spread[1]
                .label_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["team"],
            "ml",
            "a given selector is kept"
        );
    }

    #[test]
    fn the_service_type_and_annotations_come_from_the_parameters() {
        let shape = shaped(
            "service: {type: LoadBalancer, annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb}}",
        );
        let balanced = service(&owner(), &http_80(), &shape).unwrap();
        assert_eq!(
            balanced.spec.unwrap().type_.as_deref(),
            Some("LoadBalancer")
        );
        assert_eq!(
            balanced.metadata.annotations.unwrap()["service.beta.kubernetes.io/aws-load-balancer-type"],
            "nlb"
        );
        let node_port =
            service(&owner(), &http_80(), &shaped("service: {type: NodePort}")).unwrap();
        assert_eq!(node_port.spec.unwrap().type_.as_deref(), Some("NodePort"));
    }
}
