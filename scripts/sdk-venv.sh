#!/usr/bin/env bash
# The Python environment of the SDK tests (scripts/sdk-test.sh, the e2e model-routing scenario):
# the official openai and anthropic SDKs, and the providers' own SDKs that check the test LLM server
# speaks their APIs (boto3, google-genai). Created once in target/sdk-venv; prints its python.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/sdk-venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import openai, anthropic, boto3, google.genai' 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'openai>=1.40' 'anthropic>=0.40' \
    'boto3>=1.35' 'google-genai>=1.0' >&2
fi
echo "$PWD/$VENV/bin/python"
