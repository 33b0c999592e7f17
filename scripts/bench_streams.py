"""The open-streams client of the benchmark (issue 14): N slow streams open at once through a proxy.

One asyncio Protocol object per socket and no task per stream, so 10,000 sockets cost the client
little CPU next to the proxy under test. Connections are opened in batches of a quarter of the
accept backlog (tokio's default is 1024) with a pause between them for the proxy to accept them;
the kernel's ListenDrops counter, read before and after, shows whether any batch still met a full
backlog. While the streams run, a sampler records the proxy's RSS every ~100 ms with how many
streams are open at that moment. Used by scripts/bench.py; standard library only.
"""
import asyncio
import collections
import errno
import json
import time

BATCH = 250  # connections opened together; a quarter of the accept backlog
BATCH_PAUSE = 0.1  # after a batch has connected, before the next; accepting 250 takes far less
SAMPLE_EVERY = 0.1
LAST_CHUNK = b"\r\n0\r\n\r\n"  # the end of the previous chunk's data, then the zero-length chunk
BODY_LIMIT = 1024 * 1024  # far above a stream of a few dozen words; more is a broken response


def request_bytes(port, path, text):
    body = json.dumps({"model": "", "stream": True, "messages": [
        {"role": "user", "content": f"Reply with exactly: {text}"}]}).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class Stream(asyncio.Protocol):
    """One connection with one streaming request; keeps the raw response for the check at its end."""

    __slots__ = ("client", "transport", "parts", "size", "tail", "finished", "failure")

    def __init__(self, client):
        self.client, self.transport, self.parts, self.size, self.tail = client, None, [], 0, b""
        self.finished, self.failure = asyncio.get_running_loop().create_future(), None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.client.request)
        self.client.open += 1

    def data_received(self, data):
        self.parts.append(data)
        self.size += len(data)
        self.tail = (self.tail + data[-len(LAST_CHUNK):])[-len(LAST_CHUNK):]
        if self.tail == LAST_CHUNK:
            self.end(None)
        elif self.size > BODY_LIMIT:
            self.end(("response too large", f"over {BODY_LIMIT} bytes"))

    def connection_lost(self, exc):
        if exc is not None:
            self.end((f"connection lost: {error_name(exc)}", str(exc)))
        else:
            self.end(None)  # closed by the server: complete if the chunked body was, see `check`

    def end(self, failure):
        """The stream is over: `failure` is (kind, detail), or None to check what arrived."""
        if self.finished.done():
            return
        if self.transport is not None:
            self.client.open -= 1
            self.transport.close()
        self.failure = failure or self.client.check(b"".join(self.parts))
        self.parts = []
        self.finished.set_result(None)


def error_name(exc):
    code = getattr(exc, "errno", None)
    return errno.errorcode.get(code, type(exc).__name__) if code else type(exc).__name__


def dechunk(data):
    """The body of a chunked message, or raises ValueError; `data` starts after the head."""
    body, pos = [], 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            raise ValueError("no final chunk")
        size = int(data[pos:eol].split(b";")[0], 16)
        start = eol + 2
        if size == 0:
            return b"".join(body)
        if data[start + size:start + size + 2] != b"\r\n":
            raise ValueError(f"chunk of {size} bytes not followed by CRLF")
        body.append(data[start:start + size])
        pos = start + size + 2


class Client:
    def __init__(self, request, words):
        self.request, self.words, self.open = request, words, 0

    def check(self, raw):
        """None for a complete, correct stream; else (kind, detail) with a short excerpt."""
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            return ("no response head" if not raw else "cut in the head", repr(raw[:200]))
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or parts[1] != "200":  # the body says why (ours: an OpenAI error)
            return (f"status {parts[1] if len(parts) > 1 else '?'}", f"{lines[0]}: {rest[:500]!r}")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        if headers.get("transfer-encoding", "").lower() != "chunked":
            return ("not chunked", repr(head[:300]))
        try:
            text = dechunk(rest).decode()
        except (ValueError, UnicodeDecodeError) as e:
            return ("cut or bad chunked body", f"{e}: {rest[-200:]!r}")
        events = [ln[6:] for ln in text.splitlines() if ln.startswith("data: ")]
        if not events or events[-1] != "[DONE]":
            return ("no data: [DONE]", repr(text[-200:]))
        try:
            got = "".join(c["delta"].get("content") or "" for e in events[:-1]
                          for c in json.loads(e)["choices"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            return ("bad event", f"{e!r}: {text[:200]!r}")
        if " ".join(got.split()) != self.words:
            return ("wrong content", f"{got!r}")
        return None


async def sample(client, rss, done, samples):
    """(seconds since start, RSS KiB, streams open) every SAMPLE_EVERY until `done` is set."""
    t0 = time.monotonic()
    while not done.is_set():
        samples.append((time.monotonic() - t0, rss(), client.open))
        try:
            await asyncio.wait_for(done.wait(), SAMPLE_EVERY)
        except asyncio.TimeoutError:
            pass


async def run_async(port, n, request, words, timeout, rss):
    loop = asyncio.get_running_loop()
    client, done, samples = Client(request, words), asyncio.Event(), []
    sampler = asyncio.create_task(sample(client, rss, done, samples))
    overflows, t0 = listen_drops(), time.monotonic()
    streams = []
    for first in range(0, n, BATCH):
        batch = [Stream(client) for _ in range(min(BATCH, n - first))]
        made = await asyncio.gather(*(loop.create_connection(lambda s=s: s, "127.0.0.1", port)
                                      for s in batch), return_exceptions=True)
        for stream, res in zip(batch, made):
            if isinstance(res, BaseException):
                stream.end((f"connect: {error_name(res)}", str(res)))
        streams += batch
        await asyncio.sleep(BATCH_PAUSE)
    opened = time.monotonic() - t0
    pending = [s.finished for s in streams if not s.finished.done()]
    if pending:
        await asyncio.wait(pending, timeout=max(1.0, timeout - opened))
    for s in streams:
        s.end(("timeout", f"not finished {timeout:.0f} s after the start"))
    elapsed = time.monotonic() - t0
    done.set()
    await sampler
    failures, examples = collections.Counter(), {}
    for s in streams:
        if s.failure:
            failures[s.failure[0]] += 1
            examples.setdefault(s.failure[0], s.failure[1])
    return {"n": n, "served": n - sum(failures.values()), "failures": failures, "examples": examples,
            "opened_s": opened, "elapsed_s": elapsed, "samples": samples,
            "listen_drops": listen_drops() - overflows}


def run(port, n, request, words, timeout, rss):
    """Opens `n` streams to `port`, reads them all, samples `rss()` (KiB) meanwhile; returns the
    served count, failures by kind (with one example each), timings and the samples."""
    return asyncio.run(run_async(port, n, request, words, timeout, rss))


def summarize(result, idle):
    """The peak RSS while the most streams were open, that count, KiB per stream over `idle`, and
    for how long they were open together. (The highest RSS of all can come later, as streams end:
    freed memory stays with the process; VmHWM reports that one.)"""
    samples = result["samples"] or [(0.0, idle, 0)]
    most = max(s[2] for s in samples)
    together = [(t, rss) for t, rss, n in samples if n == most]
    peak = max(rss for _, rss in together)
    return {"peak": peak, "open_at_peak": most, "most_open_s": together[-1][0] - together[0][0],
            "per_stream": (peak - idle) / most if most else None}


def listen_drops():
    """The network namespace's TcpExt ListenDrops: connection attempts a listening socket dropped,
    mostly for a full accept queue (ListenOverflows); the client's kernel retries each a second
    later."""
    with open("/proc/net/netstat") as f:
        lines = [ln.split() for ln in f if ln.startswith("TcpExt:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:]))).get("ListenDrops", 0)
