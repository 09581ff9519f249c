#!/usr/bin/env python3
"""Portcullis load harness: the gateway against the upstream, a bare hyper proxy, nginx and HAProxy.

One command (from the repository root):

    python3 bench/load.py

builds the release binaries, generates nginx and HAProxy configurations that reproduce the
response posture of examples/sdk-api.toml, starts every target on 127.0.0.1, checks that the
postures agree, then runs interleaved rounds (every target once per round, in the same order)
of `wrk --latency` and prints medians of same-round ratios. See bench/README.md.

Targets:
  direct   wrk -> bench-upstream
  bare     wrk -> bare-proxy (hyper-util server + the gateway's own upstream pool and runtime)
  floor    wrk -> floor-proxy: the bare proxy plus only the posture's fixed header work (correlation
           ID, the API key's hash and constant-time check, identity, forwarding and posture
           headers), precomputed and fused: a lower bound for any gateway with this posture
  floor-noauth  the same without the API key's check and identity headers (the key passes
           through unchecked, as through nginx and HAProxy): the lower bound for gw-noauth
  nginx    wrk -> nginx (generated config)
  haproxy  wrk -> HAProxy (generated config)
  gateway  wrk -> portcullis serve --config examples/sdk-api.toml (JSON access log to /dev/null)
  gw-nolog the same with RUST_LOG=warn (access log and request span disabled)
  gw-noauth the gateway with the access log, on the policy without its [auth] tables: the API
           key passes through unchecked, as it does through nginx and HAProxy

Python 3.11+ standard library only. All traffic stays on 127.0.0.1; every loop is bounded.
Exit status: 0 when the harness ran, 1 on any failure, 3 with --strict when a target is missed.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
BENCH_PATH = "/v1/users/42"  # falls through every route to the default one
# The gateway variants, each compared with the other targets of its round.
GATEWAYS = ("gateway", "gw-nolog", "gw-noauth", "floor", "floor-noauth")
CLK_TCK = os.sysconf("SC_CLK_TCK")


class HarnessError(Exception):
    pass


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


NICE = 0  # set from --nice in main()


def _child_setup(cpus: set[int] | None):
    def setup() -> None:
        # Die with the harness, even if it is killed hard.
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if cpus:
            os.sched_setaffinity(0, cpus)
        if NICE:
            os.setpriority(os.PRIO_PROCESS, 0, NICE)

    return setup


@dataclass
class Server:
    name: str
    label: str
    port: int
    proc: subprocess.Popen | None = None
    # Sum CPU over the children of proc (nginx's workers) as well as proc itself.
    with_children: bool = False

    def pids(self) -> list[int]:
        assert self.proc is not None
        pids = [self.proc.pid]
        if self.with_children:
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    stat = _read_stat(int(entry))
                    if stat and int(stat[1]) == self.proc.pid:
                        pids.append(int(entry))
        return pids

    def cpu_ticks(self) -> int:
        return sum(self.cpu_split_ticks())

    def cpu_split_ticks(self) -> tuple[int, int]:
        """(utime, stime) in clock ticks, over the target's processes."""
        user = system = 0
        for pid in self.pids():
            stat = _read_stat(pid)
            if stat:
                user += int(stat[11])
                system += int(stat[12])
        return user, system


def machine_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq, steal


def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [0] is field 3 (state)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def start(server: Server, argv: list[str], *, cpus, env=None, stdout=None, stderr=None) -> None:
    log(f"  starting {server.name}: {' '.join(argv)}")
    server.proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=stderr if stderr is not None else subprocess.DEVNULL,
        env=env,
        preexec_fn=_child_setup(cpus),
        cwd=ROOT,
    )


def stop(server: Server) -> None:
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_ready(server: Server, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.05) + 1):
        if server.proc is not None and server.proc.poll() is not None:
            raise HarnessError(f"{server.name} exited with status {server.proc.returncode}")
        try:
            with socket.create_connection((LOOPBACK, server.port), timeout=0.5):
                pass
            status, _, body = http_get(server.port, BENCH_PATH)
            if status == 200 and len(body) == 1024:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise HarnessError(f"{server.name} did not answer 200 with a 1 KiB body on port {server.port}")


# Sent with every request to every target: the gateway's API key when the policy requires one
# (nginx and HAProxy receive it too and do not check it; checking it is part of the gateway's
# measured work). Set once in main().
REQUEST_HEADERS: dict[str, str] = {}


def http_get(port: int, path: str, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    try:
        conn.request("GET", path, headers={**REQUEST_HEADERS, **(headers or {})})
        res = conn.getresponse()
        body = res.read()
        return res.status, [(k.lower(), v) for k, v in res.getheaders()], body
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# The posture of the policy, for nginx and HAProxy
# --------------------------------------------------------------------------------------------

DEFAULT_REMOVED = ["server", "x-powered-by", "x-aspnet-version", "x-aspnetmvc-version"]
ID_CHARSET = "A-Za-z0-9._:+=/@-"


@dataclass
class Route:
    name: str
    exact: list[str]  # paths matched exactly (with and without a trailing slash)
    prefixes: list[str]  # "/v1/account/" for "/v1/account/*"
    cache_control: str
    # Has a CORS policy: every response varies on Origin. The measured requests carry no
    # Origin, so the generated configurations add `Vary: origin` and nothing else of CORS.
    cors: bool = False


@dataclass
class Posture:
    environment: str
    headers: list[tuple[str, str]]  # global response headers, in policy order
    removed: list[str]
    routes: list[Route]  # the default route last
    id_header: str
    id_accept: list[str]
    id_max_length: int


def load_posture(path: Path) -> Posture:
    """The subset of the policy format examples/sdk-api.toml uses; anything else is refused
    rather than silently approximated (the parity check would catch it too). Authentication
    (`[auth]`, routes' `auth`) is the gateway's alone and is not reproduced: the requests carry
    a valid key (see `with_bench_key`), which nginx and HAProxy pass through unchecked."""
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    env = doc.get("environment", "development")
    hdrs = doc.get("headers", {})
    if hdrs.get("defaults", True) is not False:
        raise HarnessError(f"{path}: only `[headers] defaults = false` policies are supported")
    headers = []
    for name, spec in hdrs.get("set", {}).items():
        if isinstance(spec, str):
            spec = {"value": spec}
        envs = spec.get("environments")
        if envs is None or env in envs:
            headers.append((name.lower(), spec["value"]))
    # Removed from upstream responses: `remove` (or its default) and what is deliberately not set.
    removed = [h.lower() for h in hdrs.get("remove", DEFAULT_REMOVED)]
    removed += [h.lower() for h in hdrs.get("not-set", {}) if h.lower() not in removed]

    routes = []
    for i, raw in enumerate(doc.get("route", [])):
        if "headers" in raw:
            raise HarnessError(f"{path}: route headers are not supported by the generator")
        exact, prefixes = [], []
        for pattern in raw["paths"]:
            if "{" in pattern or "*" in pattern.removesuffix("/*"):
                raise HarnessError(f"{path}: pattern {pattern!r} is not supported by the generator")
            if pattern.endswith("/*"):
                base = pattern.removesuffix("/*")
                exact.append(base)
                prefixes.append(base + "/")
            else:
                base = pattern.rstrip("/") or "/"
                exact += [base] if base == "/" else [base, base + "/"]
        routes.append(
            Route(raw.get("name", f"route{i}"), exact, prefixes, raw["cache-control"], "cors" in raw)
        )
    # Patterns must not overlap: nginx picks the longest prefix, the policy the first route.
    for r in routes:
        for other in routes:
            if r is other:
                continue
            for p in r.prefixes:
                if any(e.startswith(p) for e in other.exact) or any(
                    q.startswith(p) for q in other.prefixes
                ):
                    raise HarnessError(f"{path}: overlapping route patterns are not supported")
    default = doc.get("default-route", {})
    routes.append(
        Route("default", [], [], default.get("cache-control", "no-store"), "cors" in default)
    )

    cid = doc.get("correlation-id", {})
    return Posture(
        environment=env,
        headers=headers,
        removed=removed,
        routes=routes,
        id_header=cid.get("header", "x-correlation-id").lower(),
        id_accept=[h.lower() for h in cid.get("accept", ["x-correlation-id", "x-request-id"])],
        id_max_length=int(cid.get("max-length", 128)),
    )


def without_auth(policy: Path, workdir: Path) -> Path:
    """A copy of the policy without its `[auth]` tables and the routes' `auth` keys: the gateway
    doing the work nginx and HAProxy are configured for, which pass the API key through
    unchecked. Inline tables are one line in TOML, so removing lines is enough; the result is
    checked to have no `auth` left."""
    kept, skipping = [], False
    for line in policy.read_text().splitlines():
        table = re.match(r"\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]", line)
        if table:
            skipping = table.group(1) == "auth" or table.group(1).startswith("auth.")
        if skipping or re.match(r"\s*auth\s*=", line):
            continue
        kept.append(line)
    text = "\n".join(kept) + "\n"
    doc = tomllib.loads(text)
    if "auth" in doc or any("auth" in r for r in doc.get("route", [])) or "auth" in doc.get("default-route", {}):
        raise HarnessError(f"{policy}: could not remove its [auth] settings line by line")
    copy = workdir / "policy-noauth.toml"
    copy.write_text(text)
    return copy


def with_bench_key(policy: Path, workdir: Path, portcullis: Path) -> Path:
    """When the policy requires API keys (examples/sdk-api.toml does), a copy of it whose SQLite
    key store lives in `workdir`, with one key made in it for every request to carry; else the
    policy itself. The key is sent to every target, so all of them parse the same requests."""
    with open(policy, "rb") as f:
        doc = tomllib.load(f)
    keys = doc.get("auth", {}).get("api-keys")
    if keys is None:
        return policy
    store = keys.get("store", "sqlite:portcullis-keys.db")
    if not isinstance(store, str) or not store.startswith("sqlite:"):
        raise HarnessError(f"{policy}: only a literal sqlite: key store is supported by the harness")
    text = policy.read_text()
    copy = workdir / "policy.toml"
    copy.write_text(text.replace(f'"{store}"', f'"sqlite:{workdir / "keys.db"}"'))
    out = subprocess.run(
        [str(portcullis), "keys", "--config", str(copy), "create", "--tenant", "bench", "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    REQUEST_HEADERS["Authorization"] = "Bearer " + json.loads(out.stdout)["key"]
    log("the policy requires API keys: every request carries one (made in the work directory)")
    return copy


def floor_conf(p: Posture, keyed: bool) -> str:
    """The floor proxy's configuration (src/bin/floor-proxy.rs): the posture's fixed header work
    and, when the requests carry an API key, the identity headers the gateway sets for the bench
    key (tenant `bench`, no subject, no scopes; the gateway's default header names)."""
    lines = ["# Generated by bench/load.py from the policy's posture."]
    lines += [f"header {name} {value}" for name, value in p.headers]
    lines += [f"remove {name}" for name in p.removed]
    lines.append(f"id {p.id_header} {p.id_max_length}")
    lines += [f"accept {name}" for name in p.id_accept]
    if keyed:
        lines += [
            "identity x-portcullis-tenant bench",
            "identity-key-id x-portcullis-key-id",
            "identity x-portcullis-role registered",
            "identity x-portcullis-scopes",
        ]
    for route in p.routes[:-1]:
        vary = "vary" if route.cors else "-"
        lines += [f"exact {e} {vary} {route.cache_control}" for e in route.exact]
        lines += [f"prefix {pre} {vary} {route.cache_control}" for pre in route.prefixes]
    default = p.routes[-1]
    lines.append(f"default {'vary' if default.cors else '-'} {default.cache_control}")
    return "\n".join(lines) + "\n"


def nginx_conf(p: Posture, *, port: int, upstream: int, workdir: Path, workers: int) -> str:
    id_re = f"[{ID_CHARSET}]{{1,{p.id_max_length}}}"
    # The first accepted header that is present decides: its value if well-formed, else a new
    # ID ($request_id: 32 hex digits; nginx has no UUID generator).
    joined = "|".join(f"$http_{h.replace('-', '_')}" for h in p.id_accept)
    map_lines = []
    for i in range(len(p.id_accept)):
        lead = r"\|" * i
        map_lines.append(f'        "~^{lead}(?<cid{i}>{id_re})(\\||$)" $cid{i};')
    hide = sorted({h for h, _ in p.headers} | set(p.removed) | {"cache-control", p.id_header})
    hide = [h for h in hide if h not in ("server", "date")]  # hidden by nginx already

    def location(match: str, route: Route) -> str:
        lines = [f"        location {match} {{"]
        for name, value in p.headers:
            lines.append(f'            add_header {name} "{value}" always;')
        lines.append(f'            add_header cache-control "{route.cache_control}" always;')
        if route.cors:
            lines.append('            add_header vary "origin" always;')
        lines.append(f"            add_header {p.id_header} $correlation_id always;")
        lines.append("            proxy_pass http://upstream;")
        lines.append("        }")
        return "\n".join(lines)

    locations = []
    for route in p.routes[:-1]:
        for e in route.exact:
            locations.append(location(f"= {e}", route))
        for pre in route.prefixes:
            locations.append(location(f"^~ {pre}", route))
    locations.append(location("/", p.routes[-1]))

    temp = "\n".join(
        f"    {kind}_temp_path {workdir}/nginx-{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    forward_clear = "\n".join(
        f'        proxy_set_header {h} "";' for h in p.id_accept if h != p.id_header
    )
    hide_lines = "\n".join(f"        proxy_hide_header {h};" for h in hide)
    return f"""# Generated by bench/load.py from the policy's posture; loopback only.
worker_processes {workers};
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
{temp}
    server_tokens off;          # "Server: nginx" stays: core nginx cannot drop it
    access_log off;
    log_format json escape=json '{{"time":"$time_iso8601","method":"$request_method",'
        '"path":"$uri","status":$status,"correlation_id":"$correlation_id",'
        '"duration_s":$request_time}}';
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    map "{joined}" $correlation_id {{
{chr(10).join(map_lines)}
        default $request_id;
    }}
    upstream upstream {{
        server {LOOPBACK}:{upstream};
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 90s;
    }}
    server {{
        listen {LOOPBACK}:{port};
        access_log /dev/null json;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host "{LOOPBACK}:{upstream}";
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-Proto http;
        proxy_set_header X-Forwarded-Host $http_host;
        proxy_set_header Forwarded "for=$remote_addr;proto=http;host=\\"$http_host\\"";
        proxy_set_header {p.id_header} $correlation_id;
{forward_clear}
{hide_lines}
{chr(10).join(locations)}
    }}
}}
"""


def haproxy_conf(p: Posture, *, port: int, upstream: int, workers: int) -> str:
    id_re = f"^[{ID_CHARSET}]{{1,{p.id_max_length}}}$"
    lines = [
        "# Generated by bench/load.py from the policy's posture; loopback only.",
        "global",
        f"    nbthread {workers}",
        "    log stdout format raw local0 info",
        "defaults",
        "    mode http",
        "    log global",
        "    option http-keep-alive",
        "    http-reuse always",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 75s",
        "frontend gateway",
        f"    bind {LOOPBACK}:{port}",
        # The access log line: JSON-shaped, one write per request, like the gateway's.
        "    log-format '{\"time\":\"%t\",\"method\":\"%HM\",\"path\":\"%HPO\",\"status\":%ST,"
        "\"correlation_id\":\"%[var(txn.cid)]\",\"duration_ms\":%Ta}'",
    ]
    # Correlation ID: the first accepted header present decides; else a v4 UUID.
    seen = []
    for i, h in enumerate(p.id_accept):
        lines.append(f"    acl has_id{i} req.fhdr({h}) -m found")
        lines.append(f"    acl ok_id{i} req.fhdr({h}) -m reg {id_re}")
        conds = " ".join([f"!has_id{j}" for j in seen] + [f"has_id{i}", f"ok_id{i}"])
        lines.append(f"    http-request set-var(txn.cid) req.fhdr({h}) if {conds}")
        seen.append(i)
    lines.append("    http-request set-var(txn.cid) uuid(4) unless { var(txn.cid) -m found }")
    for h in p.id_accept:
        if h != p.id_header:
            lines.append(f"    http-request del-header {h}")
    lines.append(f"    http-request set-header {p.id_header} %[var(txn.cid)]")
    # Forwarding headers, replaced (no trusted proxies), and the upstream's own Host.
    lines += [
        "    http-request set-header X-Forwarded-For %[src]",
        "    http-request set-header X-Real-IP %[src]",
        "    http-request set-header X-Forwarded-Proto http",
        "    http-request set-header X-Forwarded-Host %[req.hdr(host)]",
        "    http-request set-header Forwarded 'for=%[src];proto=http;host=\"%[req.hdr(host)]\"'",
        f"    http-request set-header Host {LOOPBACK}:{upstream}",
    ]
    # Route match on the raw path, first route wins.
    for i, route in enumerate(p.routes[:-1]):
        conds = []
        if route.exact:
            conds.append("{ path " + " ".join(route.exact) + " }")
        if route.prefixes:
            conds.append("{ path_beg " + " ".join(route.prefixes) + " }")
        for cond in conds:
            lines.append(
                f"    http-request set-var(txn.route) str({i}) if !{{ var(txn.route) -m found }} {cond}"
            )
    # Response posture.
    for h in p.removed:
        lines.append(f"    http-response del-header {h}")
    for name, value in p.headers:
        lines.append(f"    http-response set-header {name} \"{value}\"")
    for i, route in enumerate(p.routes[:-1]):
        lines.append(
            f"    http-response set-header cache-control \"{route.cache_control}\" if {{ var(txn.route) -m str {i} }}"
        )
    lines.append(
        f"    http-response set-header cache-control \"{p.routes[-1].cache_control}\" unless {{ var(txn.route) -m found }}"
    )
    for i, route in enumerate(p.routes[:-1]):
        if route.cors:
            lines.append(f"    http-response add-header vary origin if {{ var(txn.route) -m str {i} }}")
    if p.routes[-1].cors:
        lines.append("    http-response add-header vary origin unless { var(txn.route) -m found }")
    lines.append(f"    http-response set-header {p.id_header} %[var(txn.cid)]")
    lines += [
        "    default_backend upstream",
        "backend upstream",
        f"    server upstream {LOOPBACK}:{upstream}",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Posture parity
# --------------------------------------------------------------------------------------------

PARITY_PATHS = [
    "/v1/users/42",
    "/v1/account",
    "/v1/account/profile",
    "/v1/admin/x",
    "/v1/billing/",
    "/v1/status",
    "/v1/status/",
    "/v1/status/stream",
    "/v1/accounts",
    "/",
]
# Spellings a normalising matcher puts in another group than a raw-path matcher: reported, not fatal.
NORMALISATION_PATHS = ["/v1//account/./profile", "/v1/%61ccount/x", "/v1/status/../account/x"]
IGNORED = {
    "date",
    "content-length",
    "content-type",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "x-upstream-correlation-id",
}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
HEX32_RE = re.compile(r"^[0-9a-f]{32}$")


def posture_of(headers, id_header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in headers:
        if k not in IGNORED and k != id_header:
            out.setdefault(k, []).append(v)
    return {k: sorted(v) for k, v in sorted(out.items())}


def check_parity(gateway: Server, others: list[Server], posture: Posture) -> dict:
    """Compares each proxy's response headers with the gateway's. Fails on any difference
    except the documented ones (nginx's Server header; raw-path route matching)."""
    report: dict = {"mismatches": [], "normalisation": [], "correlation": {}}
    fatal = []
    for path in PARITY_PATHS + NORMALISATION_PATHS:
        _, gw_headers, _ = http_get(gateway.port, path)
        want = posture_of(gw_headers, posture.id_header)
        for s in others:
            _, headers, _ = http_get(s.port, path)
            got = posture_of(headers, posture.id_header)
            if got == want:
                continue
            diff = {
                k: {"gateway": want.get(k), s.name: got.get(k)}
                for k in sorted(set(want) | set(got))
                if want.get(k) != got.get(k)
            }
            if s.name == "nginx" and got.get("server") == ["nginx"] and "server" not in want:
                del diff["server"]  # documented: core nginx always sends "Server: nginx"
            if not diff:
                continue
            entry = {"target": s.name, "path": path, "diff": diff}
            (report["normalisation"] if path in NORMALISATION_PATHS else fatal).append(entry)
    report["mismatches"] = fatal

    cases = {
        "none": {},
        "caller X-Request-ID": {"X-Request-ID": "abc-123"},
        "caller X-Correlation-ID": {"X-Correlation-ID": "req_01HX:abc"},
        "malformed X-Correlation-ID": {"X-Correlation-ID": "bad value!", "X-Request-ID": "ok-1"},
    }
    for s in [gateway] + others:
        results = {}
        for case, hdrs in cases.items():
            _, headers, _ = http_get(s.port, BENCH_PATH, hdrs)
            h = dict(headers)
            echoed = h.get(posture.id_header)
            upstream_saw = h.get("x-upstream-correlation-id")
            if echoed is None or echoed != upstream_saw:
                fatal.append({"target": s.name, "case": case, "echoed": echoed, "upstream": upstream_saw})
            expected = {"caller X-Request-ID": "abc-123", "caller X-Correlation-ID": "req_01HX:abc"}.get(case)
            if expected is not None and echoed != expected:
                fatal.append({"target": s.name, "case": case, "echoed": echoed, "expected": expected})
            if expected is None and echoed in ("ok-1", "bad value!"):
                fatal.append({"target": s.name, "case": case, "echoed": echoed, "expected": "generated"})
            kind = "uuid-v4" if echoed and UUID_RE.match(echoed) else "hex32" if echoed and HEX32_RE.match(echoed) else echoed
            results[case] = kind
        report["correlation"][s.name] = results
    if fatal:
        raise HarnessError("posture parity check failed:\n" + json.dumps(fatal, indent=2))
    return report


# --------------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------------


@dataclass
class Sample:
    requests: int
    seconds: float
    rps: float
    p50_us: float
    p99_us: float
    errors: int
    cpu_us_per_req: float | None = None
    # Its user-space and kernel parts (utime and stime).
    user_us_per_req: float | None = None
    sys_us_per_req: float | None = None
    cpu_busy: float | None = None  # CPU seconds / wall seconds of the target
    upstream_cpu_us_per_req: float | None = None
    wrk_cpu_s: float | None = None
    # CPU used on the machine by anything but the target, the upstream and wrk, in cores.
    other_load: float | None = None
    steal: float | None = None  # in cores


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def _us(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def wrk(port: int, *, connections: int, seconds: int, cpus) -> Sample:
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "2s",
        "--latency",
        *[arg for name, value in REQUEST_HEADERS.items() for arg in ("-H", f"{name}: {value}")],
        f"http://{LOOPBACK}:{port}{BENCH_PATH}",
    ]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        preexec_fn=_child_setup(cpus),
    )
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu_s = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    text = out.stdout
    if out.returncode != 0:
        raise HarnessError(f"wrk failed ({out.returncode}): {out.stderr}{text}")
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", text)
    pct = dict(
        (k, _us(v, u)) for k, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    )
    if not m or "50" not in pct or "99" not in pct:
        raise HarnessError(f"cannot read wrk output:\n{text}")
    requests = int(m.group(1))
    secs = _us(m.group(2), m.group(3)) / 1e6
    errors = 0
    if e := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        errors += int(e.group(1))
    if e := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        errors += sum(int(x) for x in e.groups())
    if requests == 0:
        raise HarnessError(f"wrk completed no request on port {port}")
    sample = Sample(requests, secs, requests / secs, pct["50"], pct["99"], errors)
    sample.wrk_cpu_s = wrk_cpu_s
    return sample


def measure(target: Server, upstream: Server, *, connections: int, seconds: int, cpus) -> Sample:
    proc_target = target is not upstream
    t0 = target.cpu_split_ticks()
    u0 = upstream.cpu_ticks()
    m0 = machine_ticks()
    w0 = time.monotonic()
    sample = wrk(target.port, connections=connections, seconds=seconds, cpus=cpus)
    wall = time.monotonic() - w0
    m1 = machine_ticks()
    t1 = target.cpu_split_ticks()
    u1 = upstream.cpu_ticks()
    cpu_s = (sum(t1) - sum(t0)) / CLK_TCK
    ours = cpu_s + (0 if not proc_target else (u1 - u0) / CLK_TCK) + (sample.wrk_cpu_s or 0)
    sample.other_load = max(0.0, ((m1[0] - m0[0]) / CLK_TCK - ours) / wall)
    sample.steal = (m1[1] - m0[1]) / CLK_TCK / wall
    sample.cpu_us_per_req = cpu_s * 1e6 / sample.requests
    sample.user_us_per_req = (t1[0] - t0[0]) / CLK_TCK * 1e6 / sample.requests
    sample.sys_us_per_req = (t1[1] - t0[1]) / CLK_TCK * 1e6 / sample.requests
    sample.cpu_busy = cpu_s / wall
    if proc_target:
        sample.upstream_cpu_us_per_req = (u1 - u0) / CLK_TCK * 1e6 / sample.requests
    if sample.errors > sample.requests * 0.001:
        raise HarnessError(f"{target.name}: {sample.errors} errors in {sample.requests} requests")
    return sample


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def fmt(v, spec=".2f", suffix=""):
    return "n/a" if v is None or v != v else f"{v:{spec}}{suffix}"


def summarise(rounds: list[dict], names: list[str], mode: str) -> dict:
    """Medians of same-round figures for one mode ('load' or 'latency')."""
    out: dict = {}
    for n in names:
        per = [r[n][mode] for r in rounds]
        direct = [r["direct"][mode] for r in rounds]
        out[n] = {
            "rps": med([s.rps for s in per]),
            "vs_direct": med([s.rps / d.rps for s, d in zip(per, direct)]),
            "p50_us": med([s.p50_us for s in per]),
            "p99_us": med([s.p99_us for s in per]),
            "p50_added_us": med([s.p50_us - d.p50_us for s, d in zip(per, direct)]),
            "p99_added_us": med([s.p99_us - d.p99_us for s, d in zip(per, direct)]),
            "cpu_us_per_req": med([s.cpu_us_per_req for s in per]),
            "user_us_per_req": med([s.user_us_per_req for s in per]),
            "sys_us_per_req": med([s.sys_us_per_req for s in per]),
            "cpu_busy": med([s.cpu_busy for s in per]),
            "upstream_cpu_us_per_req": med([s.upstream_cpu_us_per_req for s in per]),
            "wrk_cpu_us_per_req": med([s.wrk_cpu_s * 1e6 / s.requests for s in per]),
            "other_load": med([s.other_load for s in per]),
            "steal": med([s.steal for s in per]),
        }
    return out


def gateway_ratios(rounds: list[dict], gw: str, mode: str) -> dict:
    def ratio(other):
        return med([r[gw][mode].rps / r[other][mode].rps for r in rounds])

    def faster(r):
        return "nginx" if r["nginx"][mode].rps >= r["haproxy"][mode].rps else "haproxy"

    return {
        "d/a": ratio("direct"),
        "d/b": ratio("bare"),
        "d/nginx": ratio("nginx"),
        "d/haproxy": ratio("haproxy"),
        "d/faster": med([r[gw][mode].rps / r[faster(r)][mode].rps for r in rounds]),
        "p99_minus_faster_us": med([r[gw][mode].p99_us - r[faster(r)][mode].p99_us for r in rounds]),
        "p50_added_over_bare_us": med([r[gw][mode].p50_us - r["bare"][mode].p50_us for r in rounds]),
        "p99_added_over_bare_us": med([r[gw][mode].p99_us - r["bare"][mode].p99_us for r in rounds]),
        "cpu_ratio_vs_best_c": med(
            [
                r[gw]["load"].cpu_us_per_req
                / min(r["nginx"]["load"].cpu_us_per_req, r["haproxy"]["load"].cpu_us_per_req)
                for r in rounds
            ]
        ),
        "cpu_ratio_vs_bare": med(
            [r[gw]["load"].cpu_us_per_req / r["bare"]["load"].cpu_us_per_req for r in rounds]
        ),
    }


def print_table(title: str, summary: dict, labels: dict, cpu: bool) -> None:
    print(f"\n{title}")
    head = f"  {'target':<24}{'req/s':>10}{'x direct':>10}{'p50 us':>10}{'p99 us':>10}{'p50 +a':>10}{'p99 +a':>10}"
    if cpu:
        head += f"{'CPU us/req':>12}{'user':>7}{'sys':>7}{'CPU busy':>10}"
    print(head)
    for n, s in summary.items():
        line = (
            f"  {labels[n]:<24}{fmt(s['rps'], '.0f'):>10}{fmt(s['vs_direct'], '.3f'):>10}"
            f"{fmt(s['p50_us'], '.0f'):>10}{fmt(s['p99_us'], '.0f'):>10}"
            f"{fmt(s['p50_added_us'], '.0f'):>10}{fmt(s['p99_added_us'], '.0f'):>10}"
        )
        if cpu:
            line += (
                f"{fmt(s['cpu_us_per_req'], '.2f'):>12}{fmt(s['user_us_per_req'], '.1f'):>7}"
                f"{fmt(s['sys_us_per_req'], '.1f'):>7}{fmt(s['cpu_busy'] * 100, '.0f', '%'):>10}"
            )
        print(line)


def targets_verdict(gw: str, load: dict, lat: dict, summary: dict) -> list[tuple[str, bool, str]]:
    g = summary[gw]
    best_c_cpu = min(summary["nginx"]["cpu_us_per_req"], summary["haproxy"]["cpu_us_per_req"])
    return [
        (
            "req/s >= 1.0x the faster of nginx/HAProxy",
            load["d/faster"] >= 1.0,
            f"{load['d/faster']:.3f}x",
        ),
        (
            "p99 no worse than the faster of nginx/HAProxy (c32)",
            load["p99_minus_faster_us"] <= 0,
            f"{load['p99_minus_faster_us']:+.0f} us",
        ),
        ("req/s >= 0.9x bare hyper proxy", load["d/b"] >= 0.9, f"{load['d/b']:.3f}x"),
        (
            "CPU/request <= nginx's and HAProxy's",
            g["cpu_us_per_req"] <= best_c_cpu,
            f"{g['cpu_us_per_req']:.2f} us vs {best_c_cpu:.2f} us ({load['cpu_ratio_vs_best_c']:.2f}x)",
        ),
        (
            "p50 added over bare proxy <= 5 us (c1, unloaded)",
            lat["p50_added_over_bare_us"] <= 5,
            f"{lat['p50_added_over_bare_us']:+.1f} us (c32: {load['p50_added_over_bare_us']:+.0f} us)",
        ),
    ]


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5, min 1)")
    ap.add_argument("--seconds", type=int, default=5, help="wrk -c32 measurement per target and round")
    ap.add_argument("--latency-seconds", type=int, default=3, help="wrk -c1 measurement per target and round (0: skip)")
    ap.add_argument("--warmup-seconds", type=int, default=1, help="unmeasured wrk run before each measurement")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections for the throughput run")
    ap.add_argument("--no-pin", action="store_true", help="do not pin: every process may use every core")
    ap.add_argument("--workers", type=int, default=0, help="threads/processes per proxy (default: the proxy CPUs)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries in target/release as they are")
    ap.add_argument("--pgo", action="store_true",
                    help="run the gateway, the bare and the floor proxy from target/pgo/release (scripts/build-pgo), "
                         "the upstream and the key tool from target/release")
    ap.add_argument("--policy", default="examples/sdk-api.toml")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    ap.add_argument("--strict", action="store_true", help="exit 3 when a target of the issue is missed")
    ap.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
                    help="scheduling priority of every benchmark process (default -10 as root, else 0)")
    ap.add_argument("--max-minutes", type=float, default=20, help="abort when the run takes longer")
    args = ap.parse_args()
    if not 1 <= args.rounds <= 50 or not 1 <= args.seconds <= 60 or not 0 <= args.latency_seconds <= 60:
        ap.error("rounds must be 1..50, seconds 1..60, latency-seconds 0..60")
    deadline = time.monotonic() + args.max_minutes * 60
    global NICE
    NICE = args.nice

    def stopped(signum, _frame):
        raise HarnessError(f"stopped by signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, stopped)
    signal.signal(signal.SIGINT, stopped)

    for tool in ("wrk", "nginx", "haproxy"):
        if shutil.which(tool) is None:
            raise HarnessError(f"{tool} not found: apt-get update && apt-get install -y nginx haproxy wrk")

    ncpu = os.cpu_count() or 1
    if args.no_pin or ncpu < 2:
        client_cpus = server_cpus = None
        workers = args.workers or ncpu
    else:
        client_cpus = {0}
        server_cpus = set(range(1, ncpu))
        workers = args.workers or len(server_cpus)

    if not args.no_build:
        log("building: cargo build --release -p portcullis-cli -p portcullis-bench --bins")
        subprocess.run(
            ["cargo", "build", "--release", "-p", "portcullis-cli", "-p", "portcullis-bench", "--bins"],
            cwd=ROOT,
            check=True,
            timeout=1800,
        )
    release = ROOT / "target" / "release"
    for b in ("portcullis", "bench-upstream", "bare-proxy", "floor-proxy"):
        if not (release / b).exists():
            raise HarnessError(f"{release / b} is missing (run without --no-build)")
    # The proxies whose own code is compared (gateway, bare, floor); all from the same kind of build.
    proxies = ROOT / "target" / "pgo" / "release" if args.pgo else release
    for b in ("portcullis", "bare-proxy", "floor-proxy"):
        if not (proxies / b).exists():
            raise HarnessError(f"{proxies / b} is missing (run scripts/build-pgo)")

    policy = ROOT / args.policy
    posture = load_posture(policy)
    workdir = Path(tempfile.mkdtemp(prefix="portcullis-bench-"))
    os.chmod(workdir, 0o755)  # nginx workers may run as another user
    log(f"work directory: {workdir}")
    noauth_policy = without_auth(policy, workdir)
    policy = with_bench_key(policy, workdir, release / "portcullis")

    up = Server("direct", "direct (a)", free_port())
    bare = Server("bare", "bare hyper proxy (b)", free_port())
    ngx = Server("nginx", "nginx (c)", free_port(), with_children=True)
    hap = Server("haproxy", "HAProxy (c)", free_port())
    gw = Server("gateway", "gateway (d)", free_port())
    gwq = Server("gw-nolog", "gateway, RUST_LOG=warn", free_port())
    gwn = Server("gw-noauth", "gateway, no [auth]", free_port())
    floor = Server("floor", "floor (b + posture work)", free_port())
    floorn = Server("floor-noauth", "floor, no [auth]", free_port())
    targets = [up, bare, floor, floorn, ngx, hap, gw, gwq, gwn]
    labels = {s.name: s.label for s in targets}

    env = {k: v for k, v in os.environ.items() if k not in ("RUST_LOG", "TOKIO_WORKER_THREADS")}
    env_workers = dict(env, TOKIO_WORKER_THREADS=str(workers))
    (workdir / "nginx.conf").write_text(
        nginx_conf(posture, port=ngx.port, upstream=up.port, workdir=workdir, workers=workers)
    )
    key = REQUEST_HEADERS.get("Authorization", "").removeprefix("Bearer ")
    (workdir / "floor.conf").write_text(floor_conf(posture, keyed=bool(key)))
    (workdir / "floor-noauth.conf").write_text(floor_conf(posture, keyed=False))
    (workdir / "haproxy.cfg").write_text(haproxy_conf(posture, port=hap.port, upstream=up.port, workers=workers))

    results: dict = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {
            "rounds": args.rounds,
            "seconds": args.seconds,
            "latency_seconds": args.latency_seconds,
            "warmup_seconds": args.warmup_seconds,
            "connections": args.connections,
            "client_cpus": sorted(client_cpus) if client_cpus else None,
            "server_cpus": sorted(server_cpus) if server_cpus else None,
            "workers": workers,
            "nice": args.nice,
            "path": BENCH_PATH,
            "policy": args.policy,
            "pgo": args.pgo,
        },
    }
    status = 0
    logs: list = []
    try:
        log("starting targets")
        def errlog(name):
            f = open(workdir / f"{name}.stderr", "wb")
            logs.append(f)
            return f

        start(up, [str(release / "bench-upstream"), "--listen", f"{LOOPBACK}:{up.port}"],
              cpus=client_cpus, env=env, stderr=errlog("upstream"))
        wait_ready(up)
        start(bare, [str(proxies / "bare-proxy"), "--listen", f"{LOOPBACK}:{bare.port}",
                     "--upstream", f"{LOOPBACK}:{up.port}"],
              cpus=server_cpus, env=env_workers, stderr=errlog("bare"))
        start(floor, [str(proxies / "floor-proxy"), "--listen", f"{LOOPBACK}:{floor.port}",
                      "--upstream", f"{LOOPBACK}:{up.port}", "--config", str(workdir / "floor.conf")],
              cpus=server_cpus, env=dict(env_workers, FLOOR_API_KEY=key) if key else env_workers,
              stderr=errlog("floor"))
        start(floorn, [str(proxies / "floor-proxy"), "--listen", f"{LOOPBACK}:{floorn.port}",
                       "--upstream", f"{LOOPBACK}:{up.port}", "--config", str(workdir / "floor-noauth.conf")],
              cpus=server_cpus, env=env_workers, stderr=errlog("floor-noauth"))
        subprocess.run(["nginx", "-t", "-q", "-p", str(workdir), "-e", str(workdir / "nginx-error.log"),
                        "-c", str(workdir / "nginx.conf")], check=True, timeout=30)
        start(ngx, ["nginx", "-p", str(workdir), "-e", str(workdir / "nginx-error.log"),
                    "-c", str(workdir / "nginx.conf")], cpus=server_cpus, env=env, stderr=errlog("nginx"))
        subprocess.run(["haproxy", "-c", "-q", "-f", str(workdir / "haproxy.cfg")], check=True, timeout=30)
        start(hap, ["haproxy", "-db", "-f", str(workdir / "haproxy.cfg")],
              cpus=server_cpus, env=env, stderr=errlog("haproxy"))
        def gw_argv(port, policy=policy):
            return [
                str(proxies / "portcullis"), "serve", "--config", str(policy),
                "--upstream", f"http://{LOOPBACK}:{up.port}", "--listen", f"{LOOPBACK}:{port}",
            ]

        start(gw, gw_argv(gw.port), cpus=server_cpus, env=env_workers, stderr=errlog("gateway"))
        start(gwq, gw_argv(gwq.port), cpus=server_cpus, env=dict(env_workers, RUST_LOG="warn"),
              stderr=errlog("gw-nolog"))
        start(gwn, gw_argv(gwn.port, noauth_policy), cpus=server_cpus, env=env_workers,
              stderr=errlog("gw-noauth"))
        for s in targets[1:]:
            wait_ready(s)

        log("checking that the floor proxy, nginx and HAProxy send the gateway's posture")
        parity = check_parity(gw, [floor, floorn, ngx, hap], posture)
        results["parity"] = parity

        log(f"warming up each target ({2 * args.warmup_seconds} s)")
        for s in targets:
            wrk(s.port, connections=args.connections, seconds=2 * args.warmup_seconds, cpus=client_cpus)

        rounds = []
        order = " ".join(s.name for s in targets)
        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}: {order}")
            this = {}
            for s in targets:
                if time.monotonic() > deadline:
                    raise HarnessError(f"over --max-minutes {args.max_minutes}")
                if args.warmup_seconds:
                    wrk(s.port, connections=args.connections, seconds=args.warmup_seconds, cpus=client_cpus)
                load = measure(s, up, connections=args.connections, seconds=args.seconds, cpus=client_cpus)
                lat = (
                    measure(s, up, connections=1, seconds=args.latency_seconds, cpus=client_cpus)
                    if args.latency_seconds
                    else load
                )
                this[s.name] = {"load": load, "latency": lat}
                log(
                    f"  {s.name:<9} {load.rps:9.0f} req/s  p50 {load.p50_us:7.0f} us  p99 {load.p99_us:7.0f} us"
                    f"  CPU {load.cpu_us_per_req:6.2f} us/req ({load.cpu_busy * 100:3.0f}% busy)"
                    f"  other load {load.other_load:4.2f} cores"
                    f" | c1: p50 {lat.p50_us:5.0f} us  p99 {lat.p99_us:5.0f} us"
                )
            rounds.append(this)
            for s in targets:
                if s.proc and s.proc.poll() is not None:
                    raise HarnessError(f"{s.name} exited during the run")

        names = [s.name for s in targets]
        load_sum = summarise(rounds, names, "load")
        lat_sum = summarise(rounds, names, "latency")
        gw_ratios = {g: {"load": gateway_ratios(rounds, g, "load"), "latency": gateway_ratios(rounds, g, "latency")}
                     for g in GATEWAYS}

        print(f"\nPortcullis load harness: {args.rounds} interleaved rounds, GET {BENCH_PATH}, 1 KiB JSON upstream body")
        print(f"  machine: {results['machine']['cpu']} x{ncpu}; "
              + ("no pinning" if client_cpus is None else f"wrk + upstream on CPU {sorted(client_cpus)}, proxies on CPU {sorted(server_cpus)}")
              + f", {workers} worker(s) per proxy"
              + ("; gateway, bare and floor proxies: profile-guided builds (target/pgo)" if args.pgo else ""))
        m = results["machine"]
        print(f"  tree: {m['git_commit']}" + (f" + uncommitted changes in {len(m['git_dirty_paths'])} file(s)" if m["git_dirty_paths"] else "")
              + f"; {m['nginx']}; {m['haproxy'].split(' - ')[0]}; {m['wrk'].split(' [')[0]}")
        print_table(f"Throughput: wrk -t1 -c{args.connections} -d{args.seconds}s (medians over rounds; '+a' = added over direct)",
                    load_sum, labels, cpu=True)
        loads = [r[n]["load"].other_load for r in rounds for n in names]
        print(f"  other processes on the machine during the c32 runs: median {med(loads):.2f} cores,"
              f" max {max(loads):.2f} cores; steal median {med([r[n]['load'].steal for r in rounds for n in names]):.2f} cores")
        if args.latency_seconds:
            print_table(f"Unloaded latency: wrk -t1 -c1 -d{args.latency_seconds}s", lat_sum, labels, cpu=False)
        print("\nGateway, medians of same-round ratios (c32 run; latency columns also from the c1 run):")
        print(f"  {'':<24}{'d/a':>8}{'d/b':>8}{'d/nginx':>9}{'d/haproxy':>10}{'p50 +b c32':>12}{'p50 +b c1':>11}{'p99 +b c1':>11}{'CPU d/b':>9}{'CPU d/c':>9}")
        for g in GATEWAYS:
            lo, la = gw_ratios[g]["load"], gw_ratios[g]["latency"]
            print(f"  {labels[g]:<24}{lo['d/a']:8.3f}{lo['d/b']:8.3f}{lo['d/nginx']:9.3f}{lo['d/haproxy']:10.3f}"
                  f"{lo['p50_added_over_bare_us']:+11.0f} {la['p50_added_over_bare_us']:+10.1f} {la['p99_added_over_bare_us']:+10.1f}"
                  f"{lo['cpu_ratio_vs_bare']:9.2f}{lo['cpu_ratio_vs_best_c']:9.2f}")
        missed = False
        for g in GATEWAYS:
            print(f"\nIssue targets, {labels[g]}:")
            for what, ok, value in targets_verdict(g, gw_ratios[g]["load"], gw_ratios[g]["latency"], load_sum):
                print(f"  [{'met ' if ok else 'MISS'}] {what}: {value}")
                missed |= not ok and g == "gateway"
        if parity["normalisation"]:
            print("\nRoute matching differences on non-canonical spellings (documented, not fatal):")
            for e in parity["normalisation"]:
                print(f"  {e['target']:<8} {e['path']:<26} {json.dumps(e['diff'])}")
        print("\nCorrelation IDs generated: "
              + ", ".join(f"{n}: {c['none']}" for n, c in parity["correlation"].items()))

        results["rounds"] = [{n: {m: vars(x) for m, x in t.items()} for n, t in r.items()} for r in rounds]
        results["summary"] = {"load": load_sum, "latency": lat_sum, "gateway": gw_ratios}
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(exist_ok=True)
        out = out_dir / f"load-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(results, indent=2, default=str))
        print(f"\nraw results: {out.relative_to(ROOT)}")
        if missed and args.strict:
            status = 3
    finally:
        for s in reversed(targets):
            stop(s)
        for f in logs:
            f.close()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(argv):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "unknown"

    def git(*argv):
        try:
            p = subprocess.run(["git", *argv], capture_output=True, text=True, timeout=10, cwd=ROOT)
            return p.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "unknown"

    return {
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty_paths": git("status", "--porcelain", "--untracked-files=no").splitlines(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "nginx": version(["nginx", "-v"]),
        "haproxy": version(["haproxy", "-v"]),
        "wrk": version(["wrk", "-v"]),
    }


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as e:
        log(f"error: {e}")
        sys.exit(1)
    except subprocess.CalledProcessError as e:
        log(f"error: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(1)
