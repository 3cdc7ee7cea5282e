"""Serve benchmark: `aggregator serve` under 200 concurrent clients on /feed.atom.

The script builds a store holding 200 entries (one generated feed of 200 items, served from a
stdlib ThreadingHTTPServer in this process, polled once with `aggregator poll`), starts
`aggregator serve` on a free 127.0.0.1 port, and loads `/feed.atom` twice for `--duration`
seconds with `--connections` keep-alive clients: plain GETs (200 + the whole feed), then
conditional GETs (`If-None-Match` with the ETag of a first GET: 304, no body). It prints
requests/s and p50/p99 latency of each run, and whether the poller kept its schedule while
the load ran (the source has a short interval; every poll is one log line of the server, and
`aggregator sources --json` is read before, between and after the runs).

The load comes from `wrk` when it is installed (`apt-get install -y wrk`), else from an asyncio
client in this script (raw streams, keep-alive, no dependencies). See bench/README_serve.md.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_PLAIN = 500.0  # req/s
TARGET_CONDITIONAL = 2000.0  # req/s
TARGET_P99_MS = 100.0
SCHEDULER_TICK = 15.0  # seconds: aggregator.service.scheduler.TICK

# --- the feed ------------------------------------------------------------------------------------


def _split(text: str) -> list[str]:
    return text.split()


_WORDS = _split("""
school district teacher pupil student parent principal board council college university campus
classroom curriculum exam grade budget grant scholarship tuition library laboratory canteen
timetable semester lesson lecture seminar course degree diploma apprenticeship internship
workshop policy reform review report survey study audit inspection committee union strike
enrolment admission attendance wellbeing counselling uniform textbook tablet laptop platform
deadline calendar holiday assessment coursework homework project research faculty trustee
minister agency regulator charity foundation sponsor partnership pilot vacancy shortage salary
pension contract building playground approved rejected announced postponed expanded reduced
doubled reviewed defended questioned funded cancelled launched redesigned replaced merged opened
closed inspected praised delayed raised restored suspended welcomed published adopted rural
urban public private local national regional annual digital early secondary primary vocational
remote bilingual independent mandatory optional crowded underfunded rising falling revised
""")


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 16))]
    return " ".join(words).capitalize() + "."


def make_feed(entries: int, base_url: str, seed: int = 7) -> bytes:
    """RSS 2.0 with `entries` distinct items: title, absolute link, GUID, date, a summary and a
    content:encoded body of ~1.5 KB HTML (paragraphs, a list, a link, an image)."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    items = []
    for n in range(entries):
        title = " ".join(rng.choice(_WORDS) for _ in range(7)).capitalize() + f" ({n})"
        paragraphs = "".join(
            f"<p>{' '.join(_sentence(rng) for _ in range(3))}</p>" for _ in range(4)
        )
        body = (
            f"{paragraphs}<ul><li>{_sentence(rng)}</li><li>{_sentence(rng)}</li></ul>"
            f'<p><a href="/topics/{n % 17}">More</a> <img src="images/{n}.jpg" alt="photo"></p>'
        )
        published = format_datetime(now - timedelta(minutes=37 * n + 1), usegmt=True)
        items.append(
            f"<item><title>{html.escape(title)}</title><link>{base_url}news/{n}.html</link>"
            f'<guid isPermaLink="false">bench-{n}</guid><pubDate>{published}</pubDate>'
            f"<description>{html.escape(_sentence(rng))}</description>"
            f"<content:encoded><![CDATA[{body}]]></content:encoded></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        f"<channel><title>Bench Feed</title><link>{base_url}</link><description>bench</description>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


class FeedServer:
    """Serves `body` at /feed.xml from a thread (always 200: every poll parses it all)."""

    def __init__(self) -> None:
        served = Counter[int]()
        outer = self
        self.body = b""

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path != "/feed.xml":
                    self.send_error(404)
                    return
                served[200] += 1
                body = outer.body
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.served = served
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}/feed.xml"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FeedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def seconds(duration: str) -> float:
    """`5s`, `2m`, `1h`, `1d` (the config's duration format, without fractions of units)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", duration)
    if match is None:
        raise ValueError(f"invalid duration {duration!r}")
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return float(match.group(1)) * units[match.group(2) or "s"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, feed_url: str, port: int, entries: int, interval: str) -> Path:
    """JSON is YAML: no PyYAML needed here."""
    config = {
        "database": "sqlite:///data/bench.db",
        "poll": {"timeout": "10s", "allow_private_hosts": True, "interval": "30m"},
        "output": {
            "title": "Serve Bench",
            "id": "urn:example:serve-bench",
            "link": f"http://127.0.0.1:{port}/",
            "max_entries": entries,
        },
        "server": {"host": "127.0.0.1", "port": port},
        "dedupe": {"enabled": False},
        "sources": [{"name": "bench", "url": feed_url, "interval": interval}],
    }
    path = folder / "config.yaml"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


# --- load ----------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    name: str
    client: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    bytes_per_response: int = 0
    polls: list[str] = field(default_factory=list)  # poll log lines of the server in the window
    ticks: int = 0  # scheduler ticks (poll_due runs) in the window
    missed: list[str] = field(default_factory=list)  # APScheduler "was missed by" warnings


# Only done(): a response() hook would make wrk copy every 476 KB body into Lua, which caps it
# near 500 req/s on this machine (the server can do 2-4x that). Statuses are checked from wrk's
# "Non-2xx or 3xx responses" line and the bytes per response (the body or an empty 304).
_WRK_LUA = """
function done(summary, latency, requests)
  io.write(string.format("errors %d\\n", summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout + summary.errors.status))
  io.write(string.format("bytes %d\\n", summary.bytes))
  io.write(string.format("pct 100 %d\\n", latency.max))
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("pct %d %d\\n", p, latency:percentile(p)))
  end
end
"""


def run_wrk(
    url: str, headers: dict[str, str], duration: float, connections: int, threads: int, work: Path
) -> tuple[LoadResult, str]:
    script = work / "report.lua"
    script.write_text(_WRK_LUA, encoding="utf-8")
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(duration)}s", "--latency"]
    command += ["--timeout", "10s", "-s", str(script)]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout

    def find(pattern: str) -> str:
        match = re.search(pattern, out, re.M)
        if match is None:
            raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{out}")
        return match.group(1)

    requests = int(find(r"(\d+) requests in "))
    rps = float(find(r"Requests/sec:\s*([\d.]+)"))
    errors = int(find(r"^errors (\d+)$"))
    total = int(find(r"^bytes (\d+)$"))
    pct = {int(p): int(us) / 1000 for p, us in re.findall(r"^pct (\d+) (\d+)$", out, re.M)}
    other = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    statuses = {"2xx/3xx": requests - (int(other.group(1)) if other else 0)}
    if other:
        statuses["other"] = int(other.group(1))
    result = LoadResult(
        name="",
        client=f"wrk -t{threads} -c{connections}",
        requests=requests,
        seconds=duration,
        rps=rps,
        p50_ms=pct[50],
        p90_ms=pct[90],
        p99_ms=pct[99],
        max_ms=pct[100],
        statuses=statuses,
        errors=errors,
        bytes_per_response=total // max(requests, 1),
    )
    return result, out


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    bytes: int = 0


async def _connection(
    host: str,
    port: int,
    request: bytes,
    deadline: float,
    tally: _Tally,
    period: float | None,
    offset: float,
) -> None:
    """One keep-alive client. With `period` (open loop), requests are due at fixed times and
    latency counts from the due time, so a stalled server is not hidden (coordinated omission)."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    due = time.perf_counter() + offset
    while True:
        if period is not None and (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        start = due if period is not None else time.perf_counter()
        if time.perf_counter() >= deadline:
            break
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(host, port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lower = head.lower()
            match = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
            length = int(match.group(1)) if match else 0
            if length:
                await reader.readexactly(length)
            tally.latencies.append(time.perf_counter() - start)
            tally.statuses[int(head[9:12])] += 1
            tally.bytes += len(head) + length
            if b"\r\nconnection: close" in lower:
                writer.close()
                reader = writer = None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            tally.errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
        if period is not None:
            due += period
    if writer is not None:
        writer.close()


async def _python_load(
    url: str, headers: dict[str, str], duration: float, connections: int, rate: float | None
) -> tuple[_Tally, float]:
    match = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    assert match is not None
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    tally = _Tally()
    period = connections / rate if rate else None
    begin = time.perf_counter()
    deadline = begin + duration
    await asyncio.gather(
        *(
            _connection(
                host, port, request, deadline, tally, period, (period or 0) * n / connections
            )
            for n in range(connections)
        )
    )
    return tally, time.perf_counter() - begin


def run_python(
    url: str, headers: dict[str, str], duration: float, connections: int, rate: float | None
) -> LoadResult:
    tally, elapsed = asyncio.run(_python_load(url, headers, duration, connections, rate))
    latencies = sorted(tally.latencies)

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    client = f"python asyncio -c{connections}" + (f" at {rate:g} req/s (open loop)" if rate else "")
    return LoadResult(
        name="",
        client=client,
        requests=len(latencies),
        seconds=elapsed,
        rps=len(latencies) / duration,  # requests are only started inside the window
        p50_ms=pct(50),
        p90_ms=pct(90),
        p99_ms=pct(99),
        max_ms=pct(100),
        statuses={str(k): v for k, v in sorted(tally.statuses.items())},
        errors=tally.errors,
        bytes_per_response=tally.bytes // max(len(latencies), 1),
    )


# --- the server ----------------------------------------------------------------------------------


def cli(python: str, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "aggregator.cli", "-c", str(config), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@contextmanager
def serving(
    python: str, config: Path, port: int, log: Path, profile: Path | None
) -> Iterator[subprocess.Popen[bytes]]:
    command = [python]
    if profile is not None:
        command += ["-m", "cProfile", "-o", str(profile)]
    command += ["-m", "aggregator.cli", "-c", str(config), "serve"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"aggregator serve exited with {process.returncode}; see {log}")
            try:
                if get(f"http://127.0.0.1:{port}/feed.atom")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"aggregator serve did not answer within 60 s; see {log}")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def log_window(log: Path, start: int, end: int) -> list[str]:
    with log.open("rb") as handle:
        handle.seek(start)
        return handle.read(end - start).decode("utf-8", "replace").splitlines()


def sources_json(python: str, config: Path) -> dict[str, Any]:
    result = cli(python, config, "sources", "--json")
    if result.returncode != 0:
        return {"error": result.stderr.strip()}
    rows = json.loads(result.stdout)
    return next((r for r in rows if r["name"] == "bench"), {})


def server_stack(python: str) -> dict[str, str | None]:
    code = (
        "import importlib.metadata as m, json\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return None\n"
        "print(json.dumps({n: v(n) for n in ('uvicorn', 'starlette', 'uvloop', 'httptools', 'h11')}))\n"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    stack: dict[str, str | None] = json.loads(out)
    return stack


# --- report --------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_result(result: LoadResult, target: float) -> None:
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(result.statuses.items()))
    print(
        f"  {result.name:<12} {result.rps:>8.0f} req/s   p50 {result.p50_ms:7.1f} ms   "
        f"p90 {result.p90_ms:7.1f} ms   p99 {result.p99_ms:7.1f} ms   max {result.max_ms:7.1f} ms"
    )
    print(
        f"  {'':<12} {result.requests} requests in {result.seconds:.1f} s ({result.client}); "
        f"statuses {{{statuses}}}; {result.bytes_per_response} bytes/response; "
        f"errors {result.errors}; "
        f"target >= {target:g} req/s: {verdict(result.rps >= target)}, "
        f"p99 < {TARGET_P99_MS:g} ms: {verdict(result.p99_ms < TARGET_P99_MS)}"
    )
    for line in result.polls:
        print(f"  {'':<12} poll: {line.split(': ', 1)[-1]}")


def print_profile(profile: Path, limit: int = 25) -> None:
    import pstats

    print(f"\nprofile of the server's main thread ({profile}), top {limit} by own time:")
    stats = pstats.Stats(str(profile))
    stats.sort_stats("tottime").print_stats(limit)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--entries", type=int, default=200, help="entries in the store and the feed"
    )
    parser.add_argument(
        "--connections", type=int, default=200, help="concurrent keep-alive clients"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run")
    parser.add_argument(
        "--client",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator (auto: wrk when installed)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="wrk threads (the server is one process: it uses one core at most)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="python client only: open loop at this total rate (req/s) instead of "
        "as fast as possible; latency then counts from each request's due time",
    )
    parser.add_argument(
        "--interval", default="5s", help="the source's poll interval during the load"
    )
    parser.add_argument("--runs", default="plain,conditional", help="which runs, in order")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the aggregator")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run the server under cProfile, write the stats here and print the top",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    if client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install -y wrk), use --client python")
    if client == "wrk" and args.rate:
        parser.error("--rate needs --client python (wrk has no fixed-rate mode; wrk2 does)")

    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    (work / "data").mkdir()
    port = free_port()
    stack = server_stack(args.python)
    print(f"work folder {work}")
    print(
        f"server: uvicorn {stack['uvicorn']} (loop: {'uvloop' if stack['uvloop'] else 'asyncio'}, "
        f"http: {'httptools' if stack['httptools'] else 'h11'}), starlette {stack['starlette']}; "
        f"{os.cpu_count()} CPUs; load avg {os.getloadavg()[0]:.2f} before the runs"
    )
    results: list[LoadResult] = []
    report: dict[str, Any] = {"stack": stack, "client": client, "runs": results}
    failed = False
    try:
        with FeedServer() as feed:
            feed.body = make_feed(args.entries, f"http://127.0.0.1:{feed.port}/")
            config = write_config(work, feed.url, port, args.entries, args.interval)
            first = cli(args.python, config, "poll")
            print(f"aggregator poll: {first.stdout.strip() or first.stderr.strip()}")
            if first.returncode != 0:
                print(first.stderr, file=sys.stderr)
                return 2
            log = work / "serve.log"
            with serving(args.python, config, port, log, args.profile):
                url = f"http://127.0.0.1:{port}/feed.atom"
                status, headers, atom = get(url)
                etag = headers.get("etag") or headers.get("ETag") or ""
                entries = atom.count(b"<entry>")
                print(
                    f"feed.atom: {status}, {entries} entries, {len(atom) / 1024:.0f} KB, ETag {etag}"
                )
                if entries != args.entries:
                    print(f"warning: the feed has {entries} entries, not {args.entries}")
                check = get(url, {"If-None-Match": etag})[0]
                print(f"conditional GET with that ETag: {check}")
                report.update(feed_bytes=len(atom), entries=entries, etag=etag)
                snapshots = [("before", sources_json(args.python, config))]
                for name in [r.strip() for r in args.runs.split(",") if r.strip()]:
                    extra = {"If-None-Match": etag} if name == "conditional" else {}
                    start = log.stat().st_size
                    began = datetime.now(UTC)
                    if client == "wrk":
                        result, _ = run_wrk(
                            url, extra, args.duration, args.connections, args.threads, work
                        )
                    else:
                        result = run_python(url, extra, args.duration, args.connections, args.rate)
                    result.name = name
                    lines = log_window(log, start, log.stat().st_size)
                    result.polls = [line for line in lines if "source=bench status=" in line]
                    result.ticks = sum('Running job "Service.poll_due' in line for line in lines)
                    result.missed = [line for line in lines if "was missed by" in line]
                    results.append(result)
                    snapshot = sources_json(args.python, config)
                    snapshot["window"] = [began.isoformat(), datetime.now(UTC).isoformat()]
                    snapshots.append((name, snapshot))
                report["sources"] = dict(snapshots)
            errors = [
                line
                for line in log.read_text("utf-8", "replace").splitlines()
                if "Traceback" in line or " ERROR " in line
            ]
            report["server_errors"] = errors
        print(f"\n{args.connections} connections, {args.duration:g} s per run, client: {client}")
        for result in results:
            target = TARGET_CONDITIONAL if result.name == "conditional" else TARGET_PLAIN
            print_result(result, target)
            failed |= result.rps < target or result.p99_ms >= TARGET_P99_MS
        if not args.rate:
            print(
                f"  (closed loop: every client waits for its answer, so mean latency = "
                f"{args.connections} / throughput (Little's law); a p99 under "
                f"{TARGET_P99_MS:g} ms needs well over "
                f"{args.connections / (TARGET_P99_MS / 1000):.0f} req/s. Use --client python "
                f"--rate R for the latency at a fixed rate.)"
            )
        print(
            "\npoller (source interval "
            f"{args.interval}; the scheduler checks what is due every {SCHEDULER_TICK:g} s):"
        )
        for name, snapshot in report["sources"].items():
            window = snapshot.get("window")
            inside = ""
            if window and snapshot.get("last_poll"):
                inside = (
                    " (inside this run)"
                    if snapshot["last_poll"] >= window[0]
                    else " (BEFORE this run)"
                )
            print(
                f"  after {name:<12} last_poll {snapshot.get('last_poll')}{inside}  "
                f"status {snapshot.get('status')}  next_poll {snapshot.get('next_poll')}  "
                f"articles {snapshot.get('articles')}"
            )
        for result in results:
            expected = int(result.seconds // max(SCHEDULER_TICK, seconds(args.interval)))
            failed |= expected >= 1 and not result.polls
            print(
                f"  during {result.name:<12} {len(result.polls)} poll(s) (about {expected} expected), "
                f"{result.ticks} scheduler tick(s), {len(result.missed)} missed run(s)"
            )
            for line in result.missed[:5]:
                print(f"    {line}")
        print(f"  feed server answered {sum(feed.served.values())} polls in all")
        if report["server_errors"]:
            print("\nserver log errors:\n  " + "\n  ".join(report["server_errors"][:20]))
        if args.profile is not None and args.profile.exists():
            print_profile(args.profile)
        if args.json is not None:
            report["runs"] = [asdict(r) for r in results]
            args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
