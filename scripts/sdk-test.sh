#!/usr/bin/env bash
# A real client against the real binaries: the official `openai` Python SDK calls the proxy (standalone
# mode, the tutorial's manifests) in front of the test LLM server, for a normal and a streaming
# completion, and checks the model, the content and the usage it reads; then the same SDK against a
# provider of every other kind (anthropic, gemini, azureopenai, bedrock, vertexai with a Gemini and a
# Claude model: normal, streaming, tools), which the proxy serves through each provider's own API.
# Last, the anthropic and openai SDKs on every one of those routes speak Anthropic's Messages API
# and OpenAI's Responses API to the proxy, which passes them to providers that speak them and
# translates them to chat completions for the others (test_client_apis.py).
# First, the providers' own SDKs (anthropic, boto3, google-genai with google-auth) check that the
# test LLM server speaks their APIs as they do: shapes, event streams, SigV4, the JWT grant.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=$(bash scripts/sdk-venv.sh)
VENV=$(dirname "$(dirname "$PYTHON")")
cargo build --quiet -p agentgateway-proxy -p agentgateway-mock-llm
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
LLM_PORT=$(free_port); PROXY_PORT=$(free_port); READY_PORT=$(free_port); METRICS_PORT=$(free_port)
WORK=$(mktemp -d)
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"; }
PIDS=()
trap cleanup EXIT
sed "s/port: 8090/port: $LLM_PORT/" examples/tutorial/01-local-llm.yaml > "$WORK/01-local-llm.yaml"
sed "s/port: 8090/port: $LLM_PORT/" examples/tutorial/02-llm-pool.yaml > "$WORK/02-llm-pool.yaml"
# One backend and route per translated or re-addressed kind, each at the test LLM server, which
# speaks every provider's native API and checks the credentials the gateway sends: Bedrock's SigV4
# signature (with these test credentials) and Vertex AI's JWT grant (with the test service account,
# whose token_uri points at the server).
AWS_KEY_ID=AKIDSDKTEST
AWS_SECRET='sdk/test+secret'
python3 - "$WORK/sa.json" "$LLM_PORT" <<'PY'
import json, sys
key = json.load(open("mock-llm/testdata/vertex-service-account.json"))
key["token_uri"] = f"http://127.0.0.1:{sys.argv[2]}/token"
json.dump(key, open(sys.argv[1], "w"))
PY
kind_backend() { # name, provider YAML (flow mapping entries)
  cat <<YAML
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: $1, namespace: agentgateway-system}
spec:
  ai:
    provider: {host: 127.0.0.1, port: $LLM_PORT, $2}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: $1, namespace: agentgateway-system}
spec:
  rules:
  - matches: [{path: {type: PathPrefix, value: /$1}}]
    backendRefs: [{name: $1, group: agentgateway.dev, kind: AgentgatewayBackend}]
YAML
}
{
  cat <<YAML
apiVersion: v1
kind: Secret
metadata: {name: aws, namespace: agentgateway-system}
stringData: {accessKeyId: $AWS_KEY_ID, secretAccessKey: '$AWS_SECRET'}
---
apiVersion: v1
kind: Secret
metadata: {name: vertex-sa, namespace: agentgateway-system}
stringData:
  service-account.json: '$(cat "$WORK/sa.json")'
YAML
  kind_backend claude "anthropic: {model: claude-sdk-test}, policies: {auth: {key: sk-ant-sdk-test}}"
  kind_backend gemini "gemini: {model: gemini-sdk-test}, policies: {auth: {key: gemini-sdk-key}}"
  kind_backend azure "azureopenai: {deploymentName: gpt-sdk-test, apiVersion: 2024-10-21, model: gpt-sdk-test}, policies: {auth: {key: azure-sdk-key}}"
  kind_backend bedrock "bedrock: {region: us-east-1, model: 'anthropic.claude-sdk-test-v1:0'}, policies: {auth: {aws: {secretRef: {name: aws}}}}"
  kind_backend vertex-gemini "vertexai: {projectId: agw-test-project, region: us-central1, model: gemini-sdk-test}, policies: {auth: {gcp: {secretRef: {name: vertex-sa}}}}"
  kind_backend vertex-claude "vertexai: {projectId: agw-test-project, region: us-east5, model: claude-sdk-test@20250101}, policies: {auth: {gcp: {secretRef: {name: vertex-sa}}}}"
} > "$WORK/03-provider-kinds.yaml"
PROVIDER_KINDS=""
for kind in "claude=claude-sdk-test=tools,refuses-n" "gemini=gemini-sdk-test=tools,embeddings" "azure=any=-" \
  "bedrock=anthropic.claude-sdk-test-v1:0=tools,refuses-n" "vertex-gemini=gemini-sdk-test=tools" \
  "vertex-claude=claude-sdk-test@20250101=tools,refuses-n"; do
  name=${kind%%=*}
  PROVIDER_KINDS+=" $name=http://127.0.0.1:\$PROXY_PORT/$name/v1=${kind#*=}"
done
./target/debug/mock-llm --listen "127.0.0.1:$LLM_PORT" --model gemma-4-12b-it-Q5_K_M.gguf \
  --aws-access-key-id "$AWS_KEY_ID" --aws-secret-access-key "$AWS_SECRET" \
  --vertex-service-account "$WORK/sa.json" 2>"$WORK/llm.log" &
PIDS+=($!)
./target/debug/agentgateway-proxy --config "$WORK" --listen "127.0.0.1:$PROXY_PORT" \
  --ready-addr "127.0.0.1:$READY_PORT" --metrics-addr "127.0.0.1:$METRICS_PORT" >"$WORK/proxy.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  curl -sf "127.0.0.1:$READY_PORT/healthz/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
if ! LLM_URL="http://127.0.0.1:$LLM_PORT" AWS_KEY_ID="$AWS_KEY_ID" AWS_SECRET="$AWS_SECRET" \
  SERVICE_ACCOUNT_FILE="$WORK/sa.json" "$VENV/bin/python" tests/sdk/test_native_sdks.py \
  || ! OPENAI_BASE_URL="http://127.0.0.1:$PROXY_PORT/v1" METRICS_URL="http://127.0.0.1:$METRICS_PORT/metrics" \
  "$VENV/bin/python" tests/sdk/test_openai_sdk.py \
  || ! PROVIDER_KINDS="${PROVIDER_KINDS//\$PROXY_PORT/$PROXY_PORT}" \
  "$VENV/bin/python" tests/sdk/test_provider_kinds.py \
  || ! OPENAI_BASE_URL="http://127.0.0.1:$PROXY_PORT/v1" PROVIDER_KINDS="${PROVIDER_KINDS//\$PROXY_PORT/$PROXY_PORT}" \
  "$VENV/bin/python" tests/sdk/test_client_apis.py; then
  echo "--- proxy log"; cat "$WORK/proxy.log"; echo "--- llm log"; cat "$WORK/llm.log"
  exit 1
fi
