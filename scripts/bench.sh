#!/usr/bin/env bash
# `make bench`: direct vs nginx vs agentgateway on loopback (see scripts/bench.py), and what a
# local and a Redis-backed rate limit cost per request, and 10,000 slow streams open at once (RSS per
# stream). Installs wrk, nginx and redis-server from Debian if missing, builds the release binaries,
# then runs the benchmark inside a private network namespace when one can be made (host loopback
# otherwise).
# Env: BENCH_SECONDS (default 8) per point, BENCH_QUICK=1 for a short smoke run, BENCH_STREAMS
# (default 10000, 0 skips); more in scripts/bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v redis-server >/dev/null || missing+=(redis-server)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "bench: installing ${missing[*]} from Debian" >&2
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}"
fi
export PATH="$PATH:/usr/sbin"

cargo build --release -p agentgateway-proxy -p agentgateway-mock-llm

if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  netns=(unshare -n)
elif unshare -rn true 2>/dev/null; then
  netns=(unshare -rn)
else
  echo "bench: cannot make a network namespace; using the host loopback" >&2
  exec python3 scripts/bench.py "$@"
fi
BENCH_NETNS="${netns[*]}" exec "${netns[@]}" -- \
  sh -c 'ip link set lo up && exec python3 scripts/bench.py "$@"' bench "$@"
