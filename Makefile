# The project's commands. `make test` is what CI runs (.ci/run); `make demo` runs the product.
CARGO ?= cargo

.PHONY: all build fmt lint test test-fast unit sdk-test e2e generate check-generated helm-check bench demo clean

all: build

build:
	$(CARGO) build --workspace --release

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

## The whole test suite (what CI runs): formatting, lints, every crate's tests, generated files,
## the openai SDK against the binaries, and the e2e scenarios on a real single-node Kubernetes
## (needs root; the first run builds the cluster, ~10 min, cached in /var/cache/agw-testenv).
test: test-fast e2e

## Everything but the cluster.
test-fast: lint unit check-generated helm-check sdk-test

## The e2e scenarios on the real cluster (e2e/run.sh). Debug binaries: no second compile.
e2e:
	E2E_PROFILE=$${E2E_PROFILE:-debug} bash e2e/run.sh

sdk-test:
	./scripts/sdk-test.sh

## Regenerate the committed CRD YAML from the Rust types, the chart's copy of it, and the chart's
## Grafana dashboard from the metrics the code registers (dashboard/).
CRD_YAML := crds/agentgateway.dev.yaml
CHART_CRD_YAML := helm/agentgateway/crds/agentgateway.dev.yaml
DASHBOARD_JSON := helm/agentgateway/dashboards/agentgateway.json

generate:
	$(CARGO) run -q -p agentgateway-crds --bin crdgen > $(CRD_YAML)
	cp $(CRD_YAML) $(CHART_CRD_YAML)
	$(CARGO) run -q -p agentgateway-dashboard --bin dashboard-gen > $(DASHBOARD_JSON)

check-generated:
	$(CARGO) run -q -p agentgateway-crds --bin crdgen | diff -u $(CRD_YAML) - \
		|| (echo "CRD YAML is stale: run 'make generate'" && exit 1)
	diff -u $(CRD_YAML) $(CHART_CRD_YAML) \
		|| (echo "the chart's CRD copy is stale: run 'make generate'" && exit 1)
	$(CARGO) run -q -p agentgateway-dashboard --bin dashboard-gen | diff -u $(DASHBOARD_JSON) - \
		|| (echo "the Grafana dashboard is stale: run 'make generate'" && exit 1)

## The Helm chart: lint, deterministic rendering, PDB API versions, schema rejections, RBAC and
## security settings (helm template only; no cluster needed).
helm-check:
	./scripts/helm-check.sh

## Benchmark: direct vs nginx vs agentgateway on loopback; prints the README's table.
bench:
	./scripts/bench.sh

## Local demo: the test LLM server on 127.0.0.1:8090 and the proxy on 127.0.0.1:8080 serving
## examples/tutorial. Then: curl localhost:8080/v1/chat/completions ...
demo:
	./scripts/demo.sh

clean:
	$(CARGO) clean
