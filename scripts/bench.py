#!/usr/bin/env python3
"""Benchmark: client -> mock-llm directly, through nginx, and through agentgateway-proxy.

Run by `make bench` (scripts/bench.sh, which installs wrk/nginx, builds, and enters a private
network namespace). Prints one markdown table plus the machine, commands and pinning used.
Env: BENCH_SECONDS (default 8) per measured point, BENCH_QUICK=1 for a short smoke run.
Exits non-zero if any target fails the correctness check (one request before and after load).
"""
import http.client
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
QUICK = os.environ.get("BENCH_QUICK") == "1"
SECONDS = int(os.environ.get("BENCH_SECONDS", "2" if QUICK else "8"))
WARMUP = 1 if QUICK else 2
CONNS = (1, 16, 64)
MODES = ("non-stream", "stream")
TARGETS = ("direct", "nginx", "ours")
CLIENT_CPU, PROXY_CPU = "0", "1"  # mock-llm + wrk on CPU 0, the proxy under test on CPU 1
MODEL = "bench-model"
WORDS = "one two three four five six seven eight"
PATH = "/v1/chat/completions"
TICK = os.sysconf("SC_CLK_TCK")


def body(mode):
    stream = {"stream": True} if mode == "stream" else {}
    return json.dumps({"model": "", **stream, "messages": [
        {"role": "user", "content": f"Reply with exactly: {WORDS}"}]})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    """Every process we start, stopped in reverse order on exit."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log):
        out = subprocess.DEVNULL if log is None else open(log, "wb")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=out, stdin=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc

    def stop_all(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until(what, ok, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ok():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s")


def tcp_open(port):
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    return True


def http_ok(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    conn.request("GET", path)
    return conn.getresponse().status == 200


def start_mock(procs, tmp):
    port = free_port()
    argv = ["taskset", "-c", CLIENT_CPU, f"{RELEASE}/mock-llm", "--listen", f"127.0.0.1:{port}",
            "--model", MODEL, "--no-record", "--threads", "1"]
    procs.start(argv, f"{tmp}/mock-llm.log")
    wait_until("mock-llm", lambda: tcp_open(port))
    return port, argv


def start_ours(procs, tmp, upstream):
    cfg = f"{tmp}/config"
    os.makedirs(cfg)
    with open(f"{cfg}/bench.yaml", "w") as f:
        f.write(f"""apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: bench-llm, namespace: agentgateway-system}}
spec:
  ai:
    provider: {{host: 127.0.0.1, port: {upstream}, openai: {{model: {MODEL}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: bench-llm, namespace: agentgateway-system}}
spec:
  parentRefs: [{{name: agentgateway-proxy, namespace: agentgateway-system}}]
  rules:
  - backendRefs:
    - {{name: bench-llm, namespace: agentgateway-system, group: agentgateway.dev, kind: AgentgatewayBackend}}
""")
    port, ready, metrics = free_port(), free_port(), free_port()
    argv = ["taskset", "-c", PROXY_CPU, f"{RELEASE}/agentgateway-proxy", "--config", cfg,
            "--listen", f"127.0.0.1:{port}", "--ready-addr", f"127.0.0.1:{ready}",
            "--metrics-addr", f"127.0.0.1:{metrics}", "--log-format", "json", "--threads", "1"]
    proc = procs.start(argv, f"{tmp}/proxy.stderr")  # stdout (the access log) -> /dev/null
    wait_until("agentgateway-proxy", lambda: http_ok(ready, "/healthz/ready"))
    return port, [proc.pid], argv


def start_nginx(procs, tmp, upstream):
    port = free_port()
    temps = "\n".join(f"  {k}_temp_path {tmp}/nginx-{k};" for k in
                      ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    conf = f"""worker_processes 1;
daemon off;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log /dev/null;
{temps}
  keepalive_requests 1000000;
  upstream llm {{ server 127.0.0.1:{upstream}; keepalive 128; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://llm;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""
    with open(f"{tmp}/nginx.conf", "w") as f:
        f.write(conf)
    argv = ["taskset", "-c", PROXY_CPU, "nginx", "-p", tmp, "-c", f"{tmp}/nginx.conf",
            "-e", f"{tmp}/nginx-error.log"]
    proc = procs.start(argv, f"{tmp}/nginx.stderr")
    wait_until("nginx", lambda: tcp_open(port))
    wait_until("nginx worker", lambda: len(children(proc.pid)) >= 1)
    return port, [proc.pid] + children(proc.pid), argv


def children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def cpu_seconds(pids):
    """utime + stime of whole processes (all threads), in seconds."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
    return total / TICK


def status_kib(pids, key):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            total += int(re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M).group(1))
    return total


def cpu_busy():
    """Per-CPU busy jiffies (user+system+irq+softirq; `nice` excluded: background jobs) and total."""
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                busy[m.group(1)] = (v[0] + v[2] + v[5] + v[6], sum(v[:8]))
    return busy


def check(port, mode):
    """One request; returns an error string, or None when the answer is a correct 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", PATH, body=body(mode), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        text = resp.read().decode()
    except OSError as e:
        return f"{mode}: {e}"
    finally:
        conn.close()
    if resp.status != 200:
        return f"{mode}: status {resp.status}: {text[:200]}"
    if mode == "stream":
        events = [ln[6:] for ln in text.splitlines() if ln.startswith("data: ")]
        if not events or events[-1] != "[DONE]":
            return f"stream: no final data: [DONE] in {text[-200:]!r}"
        got = "".join(c.get("delta", {}).get("content") or "" for e in events[:-1]
                      for c in json.loads(e).get("choices", []))
    else:
        got = json.loads(text)["choices"][0]["message"]["content"]
    if " ".join(got.split()) != WORDS:
        return f"{mode}: content {got!r}, want {WORDS!r}"
    return None


def write_lua(tmp, mode):
    path = f"{tmp}/{mode}.lua"
    with open(path, "w") as f:
        f.write(f"""wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[{body(mode)}]]
function done(s, lat, req)
  local e = s.errors
  io.write(string.format("BENCH %d %d %d %d %d\\n", s.requests, s.duration,
    lat:percentile(50), lat:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
""")
    return path


def wrk(port, lua, conns, seconds):
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency",
            "-s", lua, f"http://127.0.0.1:{port}{PATH}"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    reqs, dur_us, p50, p99, errors = map(int, re.search(r"^BENCH (.*)$", out, re.M).group(1).split())
    return {"reqs": reqs, "rps": reqs / (dur_us / 1e6), "p50": p50, "p99": p99, "errors": errors}


def measure(port, pids, lua, conns):
    wrk(port, lua, conns, WARMUP)
    cpu0, busy0, t0 = cpu_seconds(pids) if pids else 0, cpu_busy(), time.monotonic()
    r = wrk(port, lua, conns, SECONDS)
    cpu1, busy1 = cpu_seconds(pids) if pids else 0, cpu_busy()
    r["cpu_us"] = (cpu1 - cpu0) * 1e6 / r["reqs"] if pids and r["reqs"] else None
    r["core"] = {c: (busy1[c][0] - busy0[c][0]) / max(1, busy1[c][1] - busy0[c][1]) for c in busy1}
    r["wall"] = time.monotonic() - t0
    return r


def fmt_row(mode, conns, res):
    d, n, o = (res.get(t) for t in TARGETS)

    rps = lambda r: f"{r['rps']:,.0f}" if r else "—"  # noqa: E731
    lat = lambda r: f"{r['p50']} / {r['p99']}" if r else "—"  # noqa: E731
    added = lambda r: f"{r['p50'] - d['p50']:+d}" if r and d else "—"  # noqa: E731
    cpu = lambda r: f"{r['cpu_us']:.1f}" if r and r["cpu_us"] is not None else "—"  # noqa: E731

    ratio = f"{o['rps'] / n['rps']:.2f}×" if o and n else "—"
    errs = "/".join(str(r["errors"]) if r else "—" for r in (d, n, o))
    return (f"| {mode} | {conns} | {rps(d)} | {rps(n)} | {rps(o)} | {ratio} | {lat(d)} | {lat(n)} "
            f"| {lat(o)} | {added(n)} | {added(o)} | {cpu(n)} | {cpu(o)} | {errs} |")


def print_report(results, info):
    print("| mode | conns | direct req/s | nginx req/s | ours req/s | ours/nginx "
          "| direct p50 / p99 µs | nginx p50 / p99 µs | ours p50 / p99 µs | nginx added p50 µs "
          "| ours added p50 µs | nginx CPU µs/req | ours CPU µs/req | errors d/n/o |")
    print("|" + "---|" * 14)
    for mode in MODES:
        for conns in CONNS:
            print(fmt_row(mode, conns, results.get((mode, conns), {})))
    print()
    mib = lambda kib: f"{kib / 1024:.1f} MiB"
    print(f"ours RSS: idle {mib(info['idle'])}, peak {mib(info['peak'])} (VmHWM after all runs); "
          f"nginx master+worker RSS: idle {mib(info['nginx_idle'])}, "
          f"after runs {mib(info['nginx_end'])}.")
    print(targets_line(results, info))


def targets_line(results, info):
    def get(mode, conns, target, key):
        return (results.get((mode, conns), {}).get(target) or {}).get(key)

    mark = lambda ok: "✓" if ok else "✗"  # noqa: E731

    parts = []
    for mode in MODES:
        o, n = get(mode, 64, "ours", "rps"), get(mode, 64, "nginx", "rps")
        parts.append(f"{mode} 64-conn ours/nginx ≥ 0.7× ({o / n:.2f}× {mark(o / n >= 0.7)})"
                     if o and n else f"{mode} 64-conn ratio n/a")
    for mode in MODES:
        o, n = get(mode, 1, "ours", "p50"), get(mode, 1, "nginx", "p50")
        parts.append(f"{mode} 1-conn added p50 within 40 µs of nginx's ({o - n:+d} µs {mark(o - n <= 40)})"
                     if o is not None and n is not None else f"{mode} 1-conn p50 n/a")
    cpus = [get("non-stream", c, "ours", "cpu_us") for c in CONNS]
    cpus = [c for c in cpus if c is not None]
    if cpus:
        parts.append(f"≤ 50 µs CPU per non-streaming request (max {max(cpus):.1f} {mark(max(cpus) <= 50)})")
    parts.append(f"idle RSS ≤ 15 MiB ({info['idle'] / 1024:.1f} {mark(info['idle'] <= 15 * 1024)})")
    parts.append(f"peak RSS ≤ 30 MiB ({info['peak'] / 1024:.1f} {mark(info['peak'] <= 30 * 1024)})")
    return "target (from the issue, not asserted): " + "; ".join(parts) + "."


def print_context(argvs, results):
    cpu = re.search(r"^model name\s*:\s*(.*)$", open("/proc/cpuinfo").read(), re.M)
    nginx_v = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    netns = os.environ.get("BENCH_NETNS")
    print(f"\nmachine: nproc {os.cpu_count()}, kernel {platform.release()}, CPU {cpu.group(1) if cpu else '?'}; "
          f"{nginx_v}; {wrk_v.split(' Copyright')[0]}")
    print("network: " + (f"private network namespace (`{netns}`), loopback only" if netns
                         else "host loopback (no private network namespace could be made)"))
    print(f"pinning: mock-llm (--threads 1) and wrk (-t1) share CPU {CLIENT_CPU}; the proxy under test "
          f"(ours --threads 1, nginx worker_processes 1) alone on CPU {PROXY_CPU}; direct = wrk -> mock-llm "
          f"on CPU {CLIENT_CPU} only.")
    print("logging: ours writes its JSON access log (stdout -> /dev/null); nginx `access_log /dev/null` "
          "(default combined format). Streams: ours adds stream_options.include_usage upstream "
          "(mock-llm then sends one more chunk) and drops that chunk for the client.")
    print(f"points: {SECONDS} s measured after {WARMUP} s warm-up, each target in turn per point; "
          "latency/throughput from wrk, CPU = utime+stime delta of the proxy's processes / requests.")
    busy = []
    for mode in MODES:
        for t in ("nginx", "ours"):
            r = results.get((mode, 64), {}).get(t)
            if r:
                busy.append(f"{mode}/{t} CPU0 {r['core'][CLIENT_CPU]:.0%} CPU1 {r['core'][PROXY_CPU]:.0%}")
    print("pinning check (busy share of each core at 64 conns): " + "; ".join(busy))
    print("command: " + " ".join(sys.argv) + f" (via `make bench` / scripts/bench.sh; BENCH_SECONDS={SECONDS}"
          + (", BENCH_QUICK=1" if QUICK else "") + ")")
    for name, argv in argvs.items():
        print(f"  {name}: {' '.join(argv)}")
    print(f"  load: taskset -c {CLIENT_CPU} wrk -t1 -c{{1,16,64}} -d{SECONDS}s --latency -s <mode>.lua "
          f"http://127.0.0.1:PORT{PATH}")


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.sched_setaffinity(0, {int(CLIENT_CPU)})  # keep this script off the proxy's core
    procs, failed = Procs(), []
    with tempfile.TemporaryDirectory(prefix="agw-bench-") as tmp:
        try:
            mock_port, mock_argv = start_mock(procs, tmp)
            ours_port, ours_pids, ours_argv = start_ours(procs, tmp, mock_port)
            idle = status_kib(ours_pids, "VmRSS")
            nginx_port, nginx_pids, nginx_argv = start_nginx(procs, tmp, mock_port)
            nginx_idle = status_kib(nginx_pids, "VmRSS")
            targets = {"direct": (mock_port, []), "nginx": (nginx_port, nginx_pids),
                       "ours": (ours_port, ours_pids)}
            ok = {}
            for name, (port, _) in targets.items():
                errors = [e for e in (check(port, m) for m in MODES) if e]
                ok[name] = not errors
                for e in errors:
                    failed.append(f"{name}: {e}")
                    print(f"CORRECTNESS FAILED before load: {name}: {e}", file=sys.stderr)
            results = {}
            for mode in MODES:
                lua = write_lua(tmp, mode)
                for conns in CONNS:
                    for name, (port, pids) in targets.items():
                        if ok[name]:
                            r = measure(port, pids, lua, conns)
                            results.setdefault((mode, conns), {})[name] = r
                            print(f"  {mode:10} c={conns:<3} {name:6} {r['rps']:9.0f} req/s "
                                  f"p50 {r['p50']} µs p99 {r['p99']} µs errors {r['errors']}",
                                  file=sys.stderr)
            for name, (port, _) in targets.items():
                for e in (check(port, m) for m in MODES) if ok[name] else ():
                    if e:
                        failed.append(f"{name} (after load): {e}")
            info = {"idle": idle, "peak": status_kib(ours_pids, "VmHWM"), "nginx_idle": nginx_idle,
                    "nginx_end": status_kib(nginx_pids, "VmRSS")}
            print()
            print_report(results, info)
            print_context({"mock-llm": mock_argv, "ours": ours_argv, "nginx": nginx_argv}, results)
        finally:
            procs.stop_all()
    for f in failed:
        print(f"CORRECTNESS FAILED: {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
