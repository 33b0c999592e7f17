# syntax=docker/dockerfile:1
# The proxy (data plane) image, non-root.
#   docker build -f docker/proxy.Dockerfile -t <registry>/agentgateway-proxy:<tag> .
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
    cargo build --release --locked -p agentgateway-proxy \
    && install -D -m 0755 target/release/agentgateway-proxy /out/agentgateway-proxy

# glibc + libgcc (Rust binaries link them), CA certificates, user nonroot (65532), no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
# The workspace version (Cargo.toml [workspace.package] version); CI passes the release's.
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="agentgateway-proxy" \
      org.opencontainers.image.description="agentgateway-rs proxy: OpenAI-compatible LLM gateway with P2C balancing, failover, streaming and token usage" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/agentgateway-rs/agentgateway-rs" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/agentgateway-proxy /usr/local/bin/agentgateway-proxy
USER 65532:65532
# Gateway listeners (the operator's proxies listen on the Gateway's ports, 80 by default; as
# non-root through the pod sysctl net.ipv4.ip_unprivileged_port_start), metrics, readiness.
EXPOSE 80 15020 15021
ENTRYPOINT ["/usr/local/bin/agentgateway-proxy"]
