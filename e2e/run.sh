#!/usr/bin/env bash
# e2e/run.sh [TEST-FILTER...] - the end-to-end suite, as CI runs it (root; ~10 min extra the first time
# on a machine, for the cluster build):
#   install.sh (cached: seconds) -> up.sh -> cargo build --release (proxy, mock-llm, operator)
#   -> load the proxy image -> cargo test -p e2e --release -- --ignored --test-threads=1 --nocapture
#   (the scenarios are #[ignore]d so that `cargo test --workspace` skips them)
#   -> diagnostics on failure -> clean-up (test namespaces, platform objects; down.sh if this run
#   started the cluster) -> timings and figures.
# Settings (environment):
#   AGW_TESTENV_HOME   cluster cache + state, OUTSIDE the clone (default /var/cache/agw-testenv)
#   E2E_ARTIFACTS      logs, diagnostics, figures (default <repo>/target/e2e; wiped at the start)
#   E2E_PROFILE        release (default) or debug: the profile of the binaries and the tests
#   E2E_KEEP_CLUSTER=1 leave the cluster and the test objects up afterwards (debugging)
#   E2E_SKIP_BUILD=1   use the binaries already built (local iteration)
# Extra arguments are passed to the test binary (e.g. `bash e2e/run.sh s1_tutorial`).
set -euo pipefail
E2E=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$E2E")
TESTENV=$E2E/testenv
export AGW_TESTENV_HOME=${AGW_TESTENV_HOME:-/var/cache/agw-testenv}
export E2E_ARTIFACTS=${E2E_ARTIFACTS:-$ROOT/target/e2e}
PROFILE=${E2E_PROFILE:-release}
KEEP=${E2E_KEEP_CLUSTER:-0}
export KUBECONFIG=$AGW_TESTENV_HOME/state/admin.kubeconfig
export PATH=$AGW_TESTENV_HOME/bin:$PATH
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
cd "$ROOT"

T_START=$(date +%s.%N)
TIMINGS=()
now() { date +%s.%N; }
since() { python3 -c "import sys;print(f'{float(sys.argv[2])-float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
log() { echo "[e2e $(date +%T)] $*" >&2; }
# phase NAME CMD... : run, time, record
phase() {
  local name=$1 t rc=0; shift
  log "==> $name"
  t=$(now)
  "$@" || rc=$?
  TIMINGS+=("$(printf '%-34s %7ss%s' "$name" "$(since "$t")" "$([ $rc = 0 ] || echo "  (exit $rc)")")")
  return $rc
}

[ "$(id -u)" = 0 ] || { echo "run.sh needs root (the cluster runs in a network namespace)" >&2; exit 1; }
CARGO_PROFILE_ARGS=(); [ "$PROFILE" = release ] && CARGO_PROFILE_ARGS=(--release)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export E2E_BIN_DIR=$TARGET_DIR/$PROFILE

cluster_running() { ( source "$TESTENV/lib.sh" && daemon_pid kube-apiserver && daemon_pid kubelet ) >/dev/null 2>&1; }

# processes a previous (crashed) test binary left behind: recorded as "PID STARTTIME NAME"
kill_leftovers() {
  local f pid st name cur
  for f in "$E2E_ARTIFACTS"/pids/*; do
    [ -f "$f" ] || continue
    read -r pid st name < "$f" || true
    cur=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f20 || true)
    if [ -n "$pid" ] && [ -n "$st" ] && [ "$cur" = "$st" ]; then
      log "killing leftover $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.3; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
  done
}

# delete_ns NS...: delete and wait; objects stuck on a finalizer of a controller that is not running are released
delete_ns() {
  local ns existing=()
  for ns in "$@"; do kubectl get namespace "$ns" >/dev/null 2>&1 && existing+=("$ns"); done
  [ ${#existing[@]} -gt 0 ] || return 0
  kubectl delete namespace "${existing[@]}" --wait=false >/dev/null
  # test pods need no graceful stop (the proxy takes its whole 30 s grace period on SIGTERM)
  for ns in "${existing[@]}"; do
    kubectl delete pods --all -n "$ns" --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
  done
  for ns in "${existing[@]}"; do
    if ! kubectl wait --for=delete "namespace/$ns" --timeout=60s >/dev/null 2>&1; then
      log "namespace $ns still terminating: removing finalizers of its objects"
      for kind in gateways.gateway.networking.k8s.io httproutes.gateway.networking.k8s.io agentgatewaybackends.agentgateway.dev; do
        for o in $(kubectl get "$kind" -n "$ns" -o name 2>/dev/null); do
          kubectl patch "$o" -n "$ns" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
        done
      done
      kubectl wait --for=delete "namespace/$ns" --timeout=120s >/dev/null || log "WARNING: namespace $ns did not go away"
    fi
  done
}

# everything a run creates in the cluster (CRDs stay: they are versioned with the code and re-applied)
clean_cluster() {
  cluster_running || return 0
  local nss
  # the chart scenario's release (its webhooks would refuse every backend once the operator is gone)
  helm uninstall agentgateway -n agentgateway-system --wait --timeout 2m >/dev/null 2>&1 || true
  nss=$(kubectl get namespaces -l e2e.agentgateway.dev/test -o name 2>/dev/null | sed 's|namespace/||' || true)
  # shellcheck disable=SC2086
  delete_ns $nss agentgateway-system
  kubectl delete gatewayclass agentgateway --ignore-not-found --wait=false >/dev/null 2>&1 || true
  kubectl delete validatingwebhookconfigurations,mutatingwebhookconfigurations -l e2e.agentgateway.dev/test --ignore-not-found >/dev/null 2>&1 || true
}

diagnostics() {
  local out=$E2E_ARTIFACTS/diagnostics.txt
  log "collecting diagnostics into $out"
  {
    echo "===== kubectl get nodes"; kubectl get nodes -o wide
    echo "===== objects"; kubectl get all,agentgatewaybackends,httproutes,gateways,configmaps,secrets,serviceaccounts,roles,rolebindings,leases -A -o wide
    echo "===== gatewayclasses"; kubectl get gatewayclasses -o yaml
    echo "===== gateways, routes, backends (with status)"; kubectl get gateways,httproutes,agentgatewaybackends -A -o yaml
    echo "===== proxy ConfigMaps"; kubectl get configmaps -A --field-selector metadata.name!=kube-root-ca.crt -o yaml | head -600
    echo "===== events"; kubectl get events -A --sort-by=.lastTimestamp
    for ns in $(kubectl get namespaces -o name | sed 's|namespace/||' | grep -E '^(agentgateway-system|e2e-)' || true); do
      for p in $(kubectl get pods -n "$ns" -o name 2>/dev/null); do
        echo "===== describe $ns/$p"; kubectl describe -n "$ns" "$p"
        echo "===== logs $ns/$p"; kubectl logs -n "$ns" "$p" --all-containers --tail=300
        echo "===== previous logs $ns/$p"; kubectl logs -n "$ns" "$p" --all-containers --previous --tail=100 2>&1 || true
      done
    done
    for f in "$E2E_ARTIFACTS"/*.log; do
      [ -f "$f" ] || continue
      case $f in */test-output.log) continue;; esac
      echo "===== $(basename "$f") (last 150 lines)"; tail -n 150 "$f"
    done
    echo "===== testenv status"; bash "$TESTENV/status.sh"
    echo "===== kube-apiserver log (last 40 lines)"; tail -n 40 "$AGW_TESTENV_HOME/state/logs/kube-apiserver.log"
    echo "===== kubelet log (errors, last 40)"; grep -E '^E' "$AGW_TESTENV_HOME/state/logs/kubelet.log" | tail -n 40
  } > "$out" 2>&1 || true
  # the operator logs and the events are what one reads first
  for f in "$E2E_ARTIFACTS"/*operator*.log; do
    [ -f "$f" ] || continue
    echo "----- $(basename "$f") (last 60 lines)"; tail -n 60 "$f"
  done
  echo "----- events (last 40)"; kubectl get events -A --sort-by=.lastTimestamp 2>&1 | tail -n 40
  for f in "$E2E_ARTIFACTS"/failure-state-*.txt; do
    [ -f "$f" ] && echo "----- cluster state when a test failed (before its clean-up): $f"
  done
  echo "----- full diagnostics: $out"
}

STARTED_CLUSTER=0
TEST_RC=1
finish() {
  local rc=$?
  set +e
  kill_leftovers
  if [ "$KEEP" = 1 ]; then
    log "E2E_KEEP_CLUSTER=1: leaving the cluster and the test objects as they are"
  else
    phase "clean-up (test objects)" clean_cluster
    if [ "$STARTED_CLUSTER" = 1 ]; then phase "down.sh" "$TESTENV/down.sh"; fi
  fi
  echo
  echo "================ e2e timings"
  printf '%s\n' "${TIMINGS[@]}"
  printf '%-34s %7ss\n' "total" "$(since "$T_START")"
  if [ -s "$E2E_ARTIFACTS/figures.txt" ]; then
    echo "================ e2e figures"
    cat "$E2E_ARTIFACTS/figures.txt"
  fi
  echo "================ e2e result: $([ "$TEST_RC" = 0 ] && [ "$rc" = 0 ] && echo PASSED || echo FAILED) (artifacts: $E2E_ARTIFACTS)"
  [ "$rc" = 0 ] && rc=$TEST_RC
  exit "$rc"
}
trap finish EXIT

kill_leftovers
rm -rf "$E2E_ARTIFACTS"
mkdir -p "$E2E_ARTIFACTS/pids"

phase "install.sh" "$TESTENV/install.sh"
if cluster_running; then
  log "cluster already running: reusing it (and leaving it up afterwards)"
else
  STARTED_CLUSTER=1
  phase "up.sh" "$TESTENV/up.sh"
fi
phase "clean leftovers of earlier runs" clean_cluster
if [ "${E2E_SKIP_BUILD:-0}" = 1 ]; then
  log "E2E_SKIP_BUILD=1: using the binaries already in $E2E_BIN_DIR"
else
  phase "cargo build ($PROFILE)" cargo build "${CARGO_PROFILE_ARGS[@]}" -p agentgateway-proxy -p agentgateway-mock-llm -p agentgateway-operator
fi
# The official openai and anthropic SDKs drive the model-routing scenario.
phase "sdk venv" bash -c 'E2E_PYTHON=$(bash scripts/sdk-venv.sh) && echo "$E2E_PYTHON" > "$E2E_ARTIFACTS/python"'
export E2E_PYTHON=$(cat "$E2E_ARTIFACTS/python" 2>/dev/null || true)
phase "cargo test --no-run (e2e)" cargo test "${CARGO_PROFILE_ARGS[@]}" -p e2e --no-run
phase "load-image.sh (proxy)" "$TESTENV/load-image.sh" agentgateway-proxy:e2e "$E2E_BIN_DIR/agentgateway-proxy"
phase "load-image.sh (operator)" "$TESTENV/load-image.sh" agentgateway-operator:e2e "$E2E_BIN_DIR/agentgateway-operator"
# Redis for the shared rate limits of the governance scenario: Debian's redis-server as an image.
phase "load-image.sh (redis)" "$TESTENV/load-image.sh" redis-server:e2e "$(command -v redis-server)"

set +e
phase "e2e tests" bash -c 'set -o pipefail; cargo test "$@" 2>&1 | tee "$E2E_ARTIFACTS/test-output.log"' _ \
  "${CARGO_PROFILE_ARGS[@]}" -p e2e -- --ignored --test-threads=1 --nocapture "$@"
TEST_RC=$?
set -e
if [ "$TEST_RC" != 0 ]; then phase "diagnostics" diagnostics || true; fi
