#!/usr/bin/env bash
# Runs the product locally with no cluster: the deterministic test LLM server (standing in for the
# tutorial's llama.cpp server) on 127.0.0.1:8090 and the gateway on 127.0.0.1:8080 serving the
# tutorial's manifests from examples/tutorial (edit them while it runs: changes apply live).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p agentgateway-proxy -p agentgateway-mock-llm
./target/release/mock-llm --listen 127.0.0.1:8090 --model gemma-4-12b-it-Q5_K_M.gguf &
LLM=$!
trap 'kill $LLM 2>/dev/null || true' EXIT
cat <<'MSG'

agentgateway is starting on 127.0.0.1:8080 (Ctrl-C stops it). In another terminal:

  curl -s localhost:8080/v1/chat/completions -H 'content-type: application/json' -d '{
    "model": "", "messages": [{"role": "user", "content": "Reply with exactly: agentgateway works"}]
  }'

MSG
./target/release/agentgateway-proxy --config examples/tutorial --listen 127.0.0.1:8080 \
  --ready-addr 127.0.0.1:15021 --metrics-addr 127.0.0.1:15020 --log-format text
