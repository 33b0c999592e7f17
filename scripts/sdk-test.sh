#!/usr/bin/env bash
# A real client against the real binaries: the official `openai` Python SDK calls the proxy (standalone
# mode, the tutorial's manifests) in front of the test LLM server, for a normal and a streaming
# completion, and checks the model, the content and the usage it reads; then the same SDK against an
# `anthropic` provider (normal, streaming, tools), which the proxy serves through the Messages API.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/sdk-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import openai' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'openai>=1.40'
fi
cargo build --quiet -p agentgateway-proxy -p agentgateway-mock-llm
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
LLM_PORT=$(free_port); PROXY_PORT=$(free_port); READY_PORT=$(free_port); METRICS_PORT=$(free_port)
WORK=$(mktemp -d)
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"; }
PIDS=()
trap cleanup EXIT
sed "s/port: 8090/port: $LLM_PORT/" examples/tutorial/01-local-llm.yaml > "$WORK/01-local-llm.yaml"
sed "s/port: 8090/port: $LLM_PORT/" examples/tutorial/02-llm-pool.yaml > "$WORK/02-llm-pool.yaml"
# An anthropic provider on /claude: the test LLM server also speaks Anthropic's Messages API.
cat > "$WORK/03-claude.yaml" <<YAML
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: claude, namespace: agentgateway-system}
spec:
  ai:
    provider:
      host: 127.0.0.1
      port: $LLM_PORT
      anthropic: {model: claude-sdk-test}
      policies: {auth: {key: sk-ant-sdk-test}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: claude, namespace: agentgateway-system}
spec:
  rules:
  - matches: [{path: {type: PathPrefix, value: /claude}}]
    backendRefs: [{name: claude, group: agentgateway.dev, kind: AgentgatewayBackend}]
YAML
./target/debug/mock-llm --listen "127.0.0.1:$LLM_PORT" --model gemma-4-12b-it-Q5_K_M.gguf 2>"$WORK/llm.log" &
PIDS+=($!)
./target/debug/agentgateway-proxy --config "$WORK" --listen "127.0.0.1:$PROXY_PORT" \
  --ready-addr "127.0.0.1:$READY_PORT" --metrics-addr "127.0.0.1:$METRICS_PORT" >"$WORK/proxy.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  curl -sf "127.0.0.1:$READY_PORT/healthz/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
if ! OPENAI_BASE_URL="http://127.0.0.1:$PROXY_PORT/v1" METRICS_URL="http://127.0.0.1:$METRICS_PORT/metrics" \
  "$VENV/bin/python" tests/sdk/test_openai_sdk.py \
  || ! OPENAI_BASE_URL="http://127.0.0.1:$PROXY_PORT/claude/v1" \
  "$VENV/bin/python" tests/sdk/test_anthropic_provider.py; then
  echo "--- proxy log"; cat "$WORK/proxy.log"; echo "--- llm log"; cat "$WORK/llm.log"
  exit 1
fi
