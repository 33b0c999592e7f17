#!/usr/bin/env bash
# Regenerate e2e/crds/gateway-api.yaml from the gateway-api crate's types (see src/main.rs).
# Builds in its own target dir outside the clone (GATEWAY_API_CRDS_TARGET, default /tmp/gateway-api-crds-target).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CARGO_TARGET_DIR=${GATEWAY_API_CRDS_TARGET:-/tmp/gateway-api-crds-target}
cargo run -q --locked --manifest-path "$here/Cargo.toml" > "$here/../../crds/gateway-api.yaml.tmp"
mv "$here/../../crds/gateway-api.yaml.tmp" "$here/../../crds/gateway-api.yaml"
echo "wrote e2e/crds/gateway-api.yaml"
