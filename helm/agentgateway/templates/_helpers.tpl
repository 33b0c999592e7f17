{{/*
The release's base name: the release name when it already says "agentgateway", else
"<release>-agentgateway". Cut to 48 characters so that the longest derived name,
"<fullname>-webhook-cert" (61), still fits the 63-character limit of Service and label values.
*/}}
{{- define "agentgateway.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 48 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "agentgateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of the operator pods' selector (immutable once installed: keep them few). */}}
{{- define "agentgateway.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/*
Labels of every object. Call with (dict "ctx" $ "component" "operator"); the component says which
part of the installation the object belongs to.
*/}}
{{- define "agentgateway.labels" -}}
helm.sh/chart: {{ include "agentgateway.chart" .ctx }}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Names derived from the fullname, one place each. */}}
{{- define "agentgateway.operatorName" -}}
{{- include "agentgateway.fullname" . }}-operator
{{- end -}}

{{- define "agentgateway.webhookName" -}}
{{- include "agentgateway.fullname" . }}-webhook
{{- end -}}

{{/*
The Secret the webhook serves its certificate from, when not the operator's own:
webhook.certDir.secretName, or "<fullname>-webhook-tls" when cert-manager writes it. Empty: the
operator generates and rotates the certificate itself (Secret <fullname>-webhook-cert).
*/}}
{{- define "agentgateway.webhookTLSSecret" -}}
{{- if .Values.webhook.certDir.secretName -}}
{{- .Values.webhook.certDir.secretName -}}
{{- else if .Values.webhook.certManager.enabled -}}
{{- include "agentgateway.fullname" . }}-webhook-tls
{{- end -}}
{{- end -}}

{{/* The image references; the tag defaults to the chart's appVersion. */}}
{{- define "agentgateway.operatorImage" -}}
{{- printf "%s:%s" .Values.operator.image.repository (.Values.operator.image.tag | toString | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "agentgateway.proxyImage" -}}
{{- printf "%s:%s" .Values.proxy.image.repository (.Values.proxy.image.tag | toString | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The chart's own Redis (redis.deploy): its Deployment, Service and generated Secret. */}}
{{- define "agentgateway.redisName" -}}
{{- include "agentgateway.fullname" . }}-redis
{{- end -}}

{{/* The Redis the operator points the proxies at: the chart's own with redis.deploy, else
redis.url. Empty: no Redis. */}}
{{- define "agentgateway.redisUrl" -}}
{{- if .Values.redis.deploy -}}
{{- printf "redis://%s.%s.svc:6379" (include "agentgateway.redisName" .) .Release.Namespace -}}
{{- else -}}
{{- .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{/* The Secret (release namespace) holding the Redis password: redis.existingSecret, else with
redis.deploy the generated <fullname>-redis. Empty: no password. */}}
{{- define "agentgateway.redisPasswordSecret" -}}
{{- if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecret -}}
{{- else if .Values.redis.deploy -}}
{{- include "agentgateway.redisName" . -}}
{{- end -}}
{{- end -}}

{{/* Labels of the Redis pods' selector. */}}
{{- define "agentgateway.redisSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end -}}

{{/*
policy/v1 PodDisruptionBudget (Kubernetes 1.21+; policy/v1beta1 is gone from 1.25) when the
cluster serves it, else policy/v1beta1 (1.20). Against a cluster, APIVersions is its discovery.
Offline (`helm template`, GitOps renderers) the kind-level entry is only present when passed with
--api-versions, so the target Kubernetes version (--kube-version; helm's default is current) also
decides: --kube-version 1.20.0 gives policy/v1beta1.
*/}}
{{- define "agentgateway.pdbApiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{/* What both webhooks share. */}}
{{- define "agentgateway.webhookCommon" -}}
admissionReviewVersions: ["v1"]
sideEffects: None
# Closed: an AgentgatewayBackend, AgentgatewayPolicy or AgentgatewayParameters is never stored
# without being defaulted and validated.
failurePolicy: Fail
timeoutSeconds: 5
matchPolicy: Equivalent
rules:
  - apiGroups: ["agentgateway.dev"]
    apiVersions: ["v1alpha1"]
    resources: ["agentgatewaybackends", "agentgatewaypolicies", "agentgatewayparameters"]
    operations: ["CREATE", "UPDATE"]
    scope: Namespaced
{{- end -}}

{{/* cert-manager's CA injector fills in caBundle from the chart's Certificate <fullname>-webhook. */}}
{{- define "agentgateway.webhookAnnotations" -}}
{{- if and .Values.webhook.certManager.enabled (include "agentgateway.webhookTLSSecret" .) -}}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "agentgateway.webhookName" .) | quote }}
{{- end -}}
{{- end -}}

{{/*
A quantity as a string: YAML numbers arrive as float64, and `1e+06` is not a quantity.
*/}}
{{- define "agentgateway.quantity" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- int64 . | toString -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end }}

{{/*
Resource requirements with every quantity as a string: server-side apply (Helm 4's default) types
quantities as strings and refuses a YAML number such as `cpu: 1`.
*/}}
{{- define "agentgateway.resources" -}}
{{- range $kind, $quantities := . }}
{{ $kind }}:
{{- range $name, $quantity := $quantities }}
  {{ $name }}: {{ include "agentgateway.quantity" $quantity | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
What the operator reads and writes in a namespace it works in: Gateways, routes, backends, the
Secrets and ConfigMaps they refer to and each Gateway's proxy objects. A ClusterRole rule set with
operator.watchNamespaces empty, a Role in each listed namespace otherwise.
*/}}
{{- define "agentgateway.namespacedRules" -}}
# Gateway API inputs: the Gateways it implements, the HTTPRoutes attached to them, and the
# ReferenceGrants that permit cross-namespace references.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gateways", "httproutes", "referencegrants"]
  verbs: ["get", "list", "watch"]
# Conditions it reports: Gateway Accepted/Programmed and listener attachedRoutes; HTTPRoute
# per-parent Accepted/ResolvedRefs/Conflicted/Programmed.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gateways/status", "httproutes/status"]
  verbs: ["patch", "update"]
# The proxy objects it creates are owned by their Gateway with blockOwnerDeletion, which the
# API server only allows to who may update the owner's finalizers.
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["gateways/finalizers"]
  verbs: ["update"]
# The backends the routes point at.
- apiGroups: ["agentgateway.dev"]
  resources: ["agentgatewaybackends"]
  verbs: ["get", "list", "watch"]
# Their Accepted condition.
- apiGroups: ["agentgateway.dev"]
  resources: ["agentgatewaybackends/status"]
  verbs: ["patch", "update"]
# The policies attached to Gateways, routes and backends (auth, rate limits, budgets).
- apiGroups: ["agentgateway.dev"]
  resources: ["agentgatewaypolicies"]
  verbs: ["get", "list", "watch"]
# Their Accepted condition, overall and per target (status.ancestors).
- apiGroups: ["agentgateway.dev"]
  resources: ["agentgatewaypolicies/status"]
  verbs: ["patch", "update"]
# The parameters Gateways and GatewayClasses refer to (replicas, autoscaling, resources, Service,
# pods, disruption budget of their proxies).
- apiGroups: ["agentgateway.dev"]
  resources: ["agentgatewayparameters"]
  verbs: ["get", "list", "watch"]
# Per Gateway, in its namespace (server-side apply = patch): the proxy's ServiceAccount, its
# ConfigMap <gateway>-config, Secret <gateway>-credentials and Service. Reading Secrets also
# resolves the providers' key references, and holding get/list/watch on ConfigMaps and Secrets
# is what lets it grant exactly that to the proxy's Role (RBAC escalation check).
# delete: when a Gateway leaves the agentgateway class, the objects it controls are removed
# (only those whose controller ownerReference is that Gateway).
- apiGroups: [""]
  resources: ["configmaps", "secrets", "services", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# The proxy pods: their readiness, and (through the API server's pod proxy, port 15021 only
# by use) which config generation each serves, so that `Programmed` means "served", not
# "written". Creating Deployments already lets the operator run any pod here; reading a pod's
# /healthz/config adds nothing to that.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods/proxy"]
  verbs: ["get"]
# The proxy Deployment of every Gateway.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# The proxy's HorizontalPodAutoscaler (with AgentgatewayParameters autoscaling; autoscaling/v2
# or v2beta2) and PodDisruptionBudget (policy/v1 or v1beta1), deleted when the parameters drop
# them or the Gateway leaves the class.
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "create", "patch", "update", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "create", "patch", "update", "delete"]
# The proxy's Role + RoleBinding (read of its own ConfigMap and Secret only).
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "patch", "update", "delete"]
# Events about the objects it reconciles, in those objects' namespaces (events.k8s.io/v1, and
# the core group for clients that record them there).
- apiGroups: ["events.k8s.io", ""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
