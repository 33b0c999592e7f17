# syntax=docker/dockerfile:1
# The operator image: controllers + admission webhook, static-ish (glibc only), non-root.
#   docker build -f docker/operator.Dockerfile -t <registry>/agentgateway-operator:<tag> .
# Build context = the repository root (see .dockerignore). The e2e suite does not use this file:
# it packages the same binary with e2e/testenv/load-image.sh (no container engine there).

ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The whole workspace: cargo needs every member's manifest, and --locked needs Cargo.lock.
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is copied out of the
# cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p agentgateway-operator \
    && install -D -m 0755 target/release/agentgateway-operator /out/agentgateway-operator

# glibc + libgcc (Rust binaries link them), CA certificates, user nonroot (65532), no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
# The workspace version (Cargo.toml [workspace.package] version); CI passes the release's.
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="agentgateway-operator" \
      org.opencontainers.image.description="agentgateway-rs operator: AgentgatewayBackend status, a configured proxy per Gateway, admission webhook" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/agentgateway-rs/agentgateway-rs" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/agentgateway-operator /usr/local/bin/agentgateway-operator
USER 65532:65532
# metrics (/metrics), health (/healthz, /readyz), admission webhook (HTTPS).
EXPOSE 8080 8081 9443
ENTRYPOINT ["/usr/local/bin/agentgateway-operator"]
