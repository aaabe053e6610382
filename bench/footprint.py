#!/usr/bin/env python3
"""Whole-process footprint of tailship (issue 9), with a Python agent doing the same
scrape-and-delta job beside it.

For each size (50, 10k and 100k series by default) it starts the loopback fakes
(crates/testkit/examples/fakes.rs: a tailscaled-shaped metrics endpoint whose counters
advance at every scrape, the CloudWatch and the Cloud Monitoring fakes), runs the release
binary `tailship run` against them with both cloud sinks configured, scraping every second,
and measures from the outside:

- start-up: from just before the spawn to the first scrape the fake endpoint records;
- steady-state RSS: /proc/PID/status VmRSS every 250 ms over the window after the warm-up,
  median and max (and VmHWM, the peak of the whole life);
- CPU per scrape: utime + stime from /proc/PID/stat at the window's start and end (clock
  ticks of 1/SC_CLK_TCK s), divided by the scrapes the fake endpoint served in the window;
  and, as a cross-check with nanosecond resolution, the threads' se.sum_exec_runtime from
  /proc/PID/task/*/sched;
- requests per flush, per sink: the fakes' requests in the window, grouped into flushes by
  their newest point's time (CloudWatch: the time bucket; Cloud Monitoring: the scrape),
  against ceil(points/1000) and ceil(points/200);
- connections: TCP connections each fake accepted during the window (kept-alive: none);
- threads, the RSS breakdown (/proc/PID/smaps_rollup, and the largest mappings) and the
  CPU per thread;
- pages touched per scrape, after the window: the process's accessed bits are cleared
  (/proc/PID/clear_refs) half a second after a scrape, and the pages referenced a second
  later (/proc/PID/smaps, `Referenced`) are those one scrape touched, by mapping (the
  binary's code and data, anonymous memory, the stack). A count of pages does not depend on
  the machine's load;
- the machine's price of a page touched after a second asleep (bench/cold_pages.py): on this
  machine class it is microseconds, not nanoseconds, so a scrape's CPU is mostly the number
  of pages it touches times that price.

Then bench/python_agent.py (prometheus_client's parser, urllib, the same deltas, shipping
nothing) against fresh fakes of the same size, measured the same way, and the ratios. And
the floor (crates/testkit/examples/floor.rs, built by rustc for tailship's target): a bare
scraper that only asks for the body on a kept-alive connection once a second and reads it,
std only; what it costs, no scraper of that endpoint at that interval can save.

    python3 bench/footprint.py                          # 50, 10k, 100k: about 6 min per size
    python3 bench/footprint.py --sizes 50,10000 --json target/footprint.json
    python3 bench/footprint.py --sizes 50 --duration 60 --no-python --no-build

It builds `cargo build --release` (target/release/tailship) and the fakes example in release
first (--no-build skips that), and creates bench/.venv with the pinned prometheus_client when
it is missing. Standard library only. The machine's other load shows in every figure: each
table gives the load average and the CPU steal time of its window.
"""

import argparse
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import cold_pages  # bench/cold_pages.py

PROMETHEUS_CLIENT = "0.26.0"

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_DIR = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
PAGE = os.sysconf("SC_PAGE_SIZE")
RELEASE = TARGET_DIR / "release"
# The binary measured is the one the container image ships (Dockerfile): static, musl.
# `--target host` measures a plain `cargo build --release` instead.
MUSL = "x86_64-unknown-linux-musl"
TAILSHIP = TARGET_DIR / MUSL / "release" / "tailship"
FAKES = RELEASE / "examples" / "fakes"
VENV_PYTHON = HERE / ".venv" / "bin" / "python"
AGENT = HERE / "python_agent.py"
FLOOR_SOURCE = ROOT / "crates" / "testkit" / "examples" / "floor.rs"
FLOOR = TARGET_DIR / "footprint" / "floor"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024

CW_MAX_DATUMS = 1000
GCM_MAX_SERIES = 200
# Cloud Monitoring's points of a series are at least 10 s apart: requests closer than half
# that belong to one flush.
GCM_FLUSH_GAP_S = 5
# Points per period a sink must deliver, as a share of the published series: a series'
# Cloud Monitoring points are at least 10 s apart and land on scrapes, so a scrape a
# millisecond early puts it off to the next one (11 s): 91 % at worst for a steady agent.
DELIVERY_SHARE = 0.9

# Issue 9's budgets, by series: CPU ms per scrape, steady RSS MiB (both cloud sinks on).
CPU_BUDGET_MS = {50: 0.2, 10_000: 4.0}
RSS_BUDGET_MIB = {50: 8, 10_000: 16, 100_000: 128}
STARTUP_BUDGET_MS = 50


def log(msg):
    print(f"[footprint {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Building and setting up


def set_target(target):
    global TAILSHIP, FLOOR
    TAILSHIP = (RELEASE if target == "host" else TARGET_DIR / target / "release") / "tailship"
    FLOOR = TARGET_DIR / "footprint" / ("host" if target == "host" else target) / "floor"


def build_floor(target):
    """The floor, with the release profile's choices (size, abort) for tailship's target."""
    FLOOR.parent.mkdir(parents=True, exist_ok=True)
    triple = [] if target == "host" else ["--target", target]
    cmd = ["rustc", "--edition", "2024", "-C", "opt-level=s", "-C", "panic=abort",
           "-C", "codegen-units=1", *triple, "-o", str(FLOOR), str(FLOOR_SOURCE)]
    log("$ " + " ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, check=True)


def build(target, tailship=True):
    triple = [] if target == "host" else ["--target", target]
    cmds = [
        *([["cargo", "build", "--release", "--bin", "tailship", *triple]] if tailship else []),
        [
            "cargo", "build", "--release", "-p", "tailship-testkit",
            "--features", "cloudwatch,gcm", "--example", "fakes",
        ],
    ]
    for cmd in cmds:
        log("$ " + " ".join(cmd))
        subprocess.run(cmd, cwd=ROOT, check=True)


def ensure_venv():
    ok = VENV_PYTHON.exists() and subprocess.run(
        [VENV_PYTHON, "-c", "import prometheus_client"], capture_output=True
    ).returncode == 0
    if ok:
        return
    log(f"creating bench/.venv with prometheus_client=={PROMETHEUS_CLIENT}")
    subprocess.run([sys.executable, "-m", "venv", HERE / ".venv"], check=True)
    subprocess.run(
        [VENV_PYTHON, "-m", "pip", "install", "--quiet", f"prometheus_client=={PROMETHEUS_CLIENT}"],
        check=True,
    )


def binary_sizes():
    size = TAILSHIP.stat().st_size
    stripped = None
    if shutil.which("strip"):
        tmp = RELEASE / "tailship.footprint-stripped"
        subprocess.run(["strip", "-o", tmp, TAILSHIP], check=True)
        stripped = tmp.stat().st_size
        tmp.unlink()
    return {"bytes": size, "stripped_bytes": stripped}


def machine():
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def out(cmd):
        try:
            return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""

    dirty = out(["git", "status", "--porcelain", "--untracked-files=no"]) != ""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "rustc": out(["rustc", "--version"]),
        "commit": out(["git", "rev-parse", "--short", "HEAD"]) + ("+dirty" if dirty else ""),
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------------------------------
# /proc


def stat_ticks(pid):
    """utime + stime of the whole process (threads that ended included), in clock ticks."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def threads_runtime(pid):
    """{tid: (name, se.sum_exec_runtime in ms)} of the live threads."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            for line in (task / "sched").read_text().splitlines():
                if line.startswith("se.sum_exec_runtime"):
                    out[task.name] = (name, float(line.split(":")[1]))
                    break
        except OSError:
            continue
    return out


def proc_status(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        value = value.strip()
        if value.endswith(" kB"):
            out[key] = int(value[:-3]) * 1024
        elif value.isdigit():
            out[key] = int(value)
    return out


def smaps_rollup(pid):
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def largest_mappings(pid, n=6):
    """RSS by mapping name ([heap], [stack], a file, or anonymous), largest first."""
    rss = {}
    name = None
    try:
        for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
            head = line.split()
            if head and "-" in head[0] and not head[0].endswith(":"):
                name = head[5] if len(head) > 5 else "[anonymous]"
                if name.startswith("/"):
                    name = Path(name).name
            elif head and head[0] == "Rss:":
                rss[name] = rss.get(name, 0) + int(head[1]) * 1024
    except OSError:
        return []
    return sorted(rss.items(), key=lambda kv: -kv[1])[:n]


def referenced_pages(pid):
    """Pages whose accessed bit is set, by mapping: the program's binary, anonymous memory
    ([heap] and unnamed mappings), [stack], and the rest (libraries, [vdso])."""
    out = {}
    name = None
    exe = os.path.realpath(f"/proc/{pid}/exe")
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and not head[0].endswith(":"):
            path = head[5] if len(head) > 5 else ""
            if path in ("", "[heap]"):
                name = "anonymous"
            elif path == "[stack]":
                name = "stack"
            elif path == exe:
                name = "binary"
            else:
                name = "other"
        elif head and head[0] == "Referenced:":
            out[name] = out.get(name, 0) + int(head[1]) * 1024 // PAGE
    return out


def pages_per_scrape(pid, fakes, rounds):
    """Pages one scrape touches: `rounds` times, half a second after a scrape, clear the
    process's accessed bits, wait a second (one scrape) and count the pages referenced.
    Rounds that held other than one scrape are dropped; those with a flush are kept and
    show as the larger counts."""
    clear = Path(f"/proc/{pid}/clear_refs")
    counts = []
    try:
        for _ in range(rounds):
            before = fakes.status()["tailscaled"]["scrapes"]
            wait_for("a scrape", 5, lambda: fakes.status()["tailscaled"]["scrapes"] > before,
                     step=0.02)
            time.sleep(0.5)
            n0 = fakes.status()["tailscaled"]["scrapes"]
            clear.write_text("1")
            time.sleep(1.0)
            pages = referenced_pages(pid)
            if fakes.status()["tailscaled"]["scrapes"] - n0 == 1:
                counts.append(pages)
    except (OSError, Failed) as e:
        # The window's figures stand without these: say why they are missing.
        log(f"pages per scrape: stopped after {len(counts)} rounds: {e} (writing "
            f"{clear} needs the process alive and its owner's rights)")
    return counts


def cpu_times():
    """Machine-wide (busy, steal, total) jiffies from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    total = sum(fields[:8])
    return total - idle - iowait, steal, total


# ---------------------------------------------------------------------------------------
# The fakes


class Fakes:
    def __init__(self, series, run_dir):
        self.log = open(run_dir / "fakes.log", "wb")
        self.proc = subprocess.Popen(
            [FAKES, "--series", str(series)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the fakes did not start; see {run_dir / 'fakes.log'}")
        self.info = json.loads(line)

    def status(self):
        with urllib.request.urlopen(self.info["status"], timeout=30) as answer:
            return json.loads(answer.read())

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------------------------
# One agent, measured


def tailship_config(run_dir, fakes, args):
    path = run_dir / "tailship.toml"
    path.write_text(
        f"""# bench/footprint.py: both cloud sinks against the loopback fakes, every series published.
[source]
kind = "http"
url = "{fakes.info['metrics']}"
interval = "1s"
timeout = "10s"

[state]
path = "{run_dir / 'state.json'}"

[http]
listen = "127.0.0.1:0"

[log]
level = "info"

[shutdown]
flush_timeout = "2s"
{delivery(args)}
[sinks.cloudwatch]
namespace = "TailshipFootprint"
region = "us-east-1"
endpoint = "{fakes.info['cloudwatch']}"
storage_resolution = {args.cw_resolution}
breakdowns = ["*"]

[sinks.gcm]
project_id = "footprint"
endpoint = "{fakes.info['gcm']}"
breakdowns = ["*"]
resource = {{ type = "generic_node", labels = {{ location = "footprint", namespace = "bench", node_id = "n1" }} }}
"""
    )
    return path


def delivery(args):
    """`[delivery] max_in_flight` when asked for (--max-in-flight), else the default."""
    n = getattr(args, "max_in_flight", None)
    return f"\n[delivery]\nmax_in_flight = {n}\n" if n else ""


def tailship_env():
    """Static credentials for the CloudWatch fake, and nothing of the machine's AWS_*,
    GOOGLE_* or TAILSHIP_* (the Cloud Monitoring endpoint is http://: anonymous)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "GOOGLE_", "GCE_", "TAILSHIP_", "KUBERNETES_"))
    }
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "AKIDTAILSHIPFOOTPRINT",
            "AWS_SECRET_ACCESS_KEY": "footprint",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": "/nonexistent/tailship-footprint",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/tailship-footprint",
            "NO_COLOR": "1",
        }
    )
    return env


def self_metrics(log_path):
    """tailship's own counters from its /metrics (the address is in its log), as
    {"name{labels}": value}; empty if they cannot be read."""
    try:
        text = Path(log_path).read_text(errors="replace")
        at = text.index("listen=") + len("listen=")
        addr = text[at:].split()[0]
        with urllib.request.urlopen(f"http://{addr}/metrics", timeout=10) as answer:
            body = answer.read().decode()
    except (OSError, ValueError):
        return {}
    out = {}
    for line in body.splitlines():
        if line.startswith("tailship_") and " " in line:
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


class Failed(Exception):
    """A size that could not be measured (the agent died, or never got there)."""


def wait_for(what, limit, cond, step=0.005, proc=None):
    deadline = time.monotonic() + limit
    while True:
        if proc is not None and proc.poll() is not None:
            raise Failed(f"the agent exited ({proc.returncode}) while waiting for {what}")
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise Failed(f"gave up waiting for {what} after {limit} s")
        time.sleep(step)


def accepted_requests(status, sink):
    return [r for r in status[sink]["requests"] if r[2] and r[1] > 0]


def flushes(requests, limit, published, w0_us, w1_us, gap_s=None):
    """Requests grouped into flushes, only flushes wholly in the window [w0, w1]: by their
    newest point's time (CloudWatch: one flush per time bucket), or, with `gap_s`, by time
    (requests less than `gap_s` apart are one flush: Cloud Monitoring, whose points of a
    series are 10 s apart but which has no buckets). A flush should carry every published
    series in ceil(published / limit) requests."""
    groups = []
    if gap_s is None:
        by_newest = {}
        for at, points, accepted, newest in requests:
            key = newest if newest is not None else ("at", at)
            by_newest.setdefault(key, []).append((at, points, accepted))
        groups = sorted(by_newest.values(), key=lambda reqs: min(r[0] for r in reqs))
    else:
        for at, points, accepted, _ in sorted(requests, key=lambda r: r[0]):
            if groups and at - groups[-1][-1][0] < gap_s * 1e6:
                groups[-1].append((at, points, accepted))
            else:
                groups.append([(at, points, accepted)])
    out = []
    for reqs in groups:
        if min(r[0] for r in reqs) < w0_us or max(r[0] for r in reqs) > w1_us:
            continue
        # The requests are those seen by the window's end: a flush still going on then
        # (its last request within the gap of the end) may be cut short, so it is left out.
        if w1_us - max(r[0] for r in reqs) < (gap_s or GCM_FLUSH_GAP_S) * 1e6:
            continue
        points = sum(r[1] for r in reqs)
        out.append(
            {
                "at_us": min(r[0] for r in reqs),
                "requests": len(reqs),
                "points": points,
                "fewest_for_points": math.ceil(points / limit),
                "expected": math.ceil(published / limit),
                "all_published": points >= published,
                "all_accepted": all(r[2] for r in reqs),
                "spread_ms": (max(r[0] for r in reqs) - min(r[0] for r in reqs)) / 1000,
            }
        )
    return out


def perf_top(data, n=25):
    """A `perf record`, flat: the share of the samples per object, then the hottest symbols
    (share, object, symbol)."""
    def report(sort):
        return subprocess.run(
            ["perf", "report", "-i", data, "--stdio", "--no-children", "--percent-limit", "0.5",
             "--sort", sort],
            capture_output=True, text=True,
        ).stdout.splitlines()

    rows = []
    for line in report("dso"):
        parts = line.split()
        if len(parts) == 2 and parts[0].endswith("%"):
            rows.append((parts[0], parts[1], "(all of it)"))
    for line in report("dso,symbol"):
        parts = line.split()
        while parts and parts[-1] == "-":
            parts.pop()
        if len(parts) >= 4 and parts[0].endswith("%") and parts[2] in ("[.]", "[k]"):
            rows.append((parts[0], parts[1], " ".join(parts[3:])[:110]))
    return rows[:n]


def measure(kind, series, args, run_dir):
    """Runs one agent against fresh fakes and measures it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fakes = Fakes(series, run_dir)
    agent_log = open(run_dir / f"{kind}.log", "wb")
    if kind == "tailship":
        config = tailship_config(run_dir, fakes, args)
        cmd, env = [TAILSHIP, "run", "--config", config], tailship_env()
        warmup, duration = args.warmup, args.duration
    elif kind == "floor":
        cmd, env = [FLOOR, fakes.info["metrics"]], dict(os.environ)
        warmup, duration = args.floor_warmup, args.floor_duration
    else:
        cmd = [VENV_PYTHON, AGENT, "--url", fakes.info["metrics"], "--interval", "1"]
        env = dict(os.environ)
        warmup, duration = args.python_warmup, args.python_duration
    fakes_pid = fakes.proc.pid
    result = {"kind": kind, "series": series, "published": fakes.info["published"],
              "body_bytes": fakes.info["body_bytes"], "run_dir": str(run_dir)}
    proc = None
    try:
        t0_us = time.time_ns() // 1000
        proc = subprocess.Popen(cmd, stdout=agent_log, stderr=agent_log, env=env, cwd=run_dir)
        pid = proc.pid
        first = wait_for(
            "the first scrape",
            60,
            lambda: fakes.status()["tailscaled"]["scrape_us"][:1],
            proc=proc,
        )[0]
        result["startup_ms"] = (first - t0_us) / 1000
        log(f"{kind} {series}: first scrape {result['startup_ms']:.1f} ms after the spawn; "
            f"warm-up {warmup} s")
        time.sleep(warmup)
        if kind == "tailship":
            # The window starts after each sink's first flush, and for CloudWatch's time
            # buckets half a bucket after one, so that it holds whole flushes only.
            limit = 2 * args.cw_resolution + 60
            for sink in ("cloudwatch", "gcm"):
                wait_for(f"a first {sink} write", limit,
                         lambda: accepted_requests(fakes.status(), sink), step=0.5, proc=proc)
            if args.cw_resolution >= 10:
                last = accepted_requests(fakes.status(), "cloudwatch")[-1][0] / 1e6
                pause = last + args.cw_resolution / 2 - time.time()
                if pause > 0:
                    log(f"{kind} {series}: {pause:.0f} s to mid-bucket")
                    time.sleep(pause)
        if proc.poll() is not None:
            raise Failed(f"{kind} exited early; see {run_dir / (kind + '.log')}")

        log(f"{kind} {series}: window of {duration} s")
        s0 = fakes.status()
        own0 = self_metrics(run_dir / f"{kind}.log") if kind == "tailship" else {}
        c0, f0, m0 = stat_ticks(pid), stat_ticks(fakes_pid), cpu_times()
        r0 = threads_runtime(pid)
        w0_us = time.time_ns() // 1000
        load0 = os.getloadavg()
        rss, threads = [], []
        profiler = None
        if args.perf and kind == "tailship":
            graph = ["--call-graph", "dwarf,16384"] if args.call_graph else []
            profiler = subprocess.Popen(
                ["perf", "record", "-e", "cpu-clock", "-F", "4999", *graph, "-p", str(pid),
                 "-o", run_dir / "perf.data", "--", "sleep", str(duration)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        end = time.monotonic() + duration
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise Failed(f"{kind} exited ({proc.returncode}) in the window; see "
                             f"{run_dir / (kind + '.log')}")
            st = proc_status(pid)
            rss.append(st["VmRSS"])
            threads.append(st["Threads"])
            time.sleep(0.25)
        w1_us = time.time_ns() // 1000
        c1, f1, m1 = stat_ticks(pid), stat_ticks(fakes_pid), cpu_times()
        r1 = threads_runtime(pid)
        s1 = fakes.status()
        own1 = self_metrics(run_dir / f"{kind}.log") if kind == "tailship" else {}
        load1 = os.getloadavg()
        final_status = proc_status(pid)
        rollup = smaps_rollup(pid)
        mappings = largest_mappings(pid)
        if profiler is not None:
            profiler.wait()
            result["perf_top"] = perf_top(run_dir / "perf.data")
        if args.page_rounds > 0:
            # After the window: clearing the accessed bits costs the process TLB misses.
            log(f"{kind} {series}: pages touched per scrape, {args.page_rounds} rounds")
            result["pages_per_scrape"] = pages_per_scrape(pid, fakes, args.page_rounds)
        comm = {}
        for tid, (name, _) in r1.items():
            comm[name] = comm.get(name, 0) + 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        agent_log.close()
        fakes.stop()

    scrapes = s1["tailscaled"]["scrapes"] - s0["tailscaled"]["scrapes"]
    cpu_ms = (c1 - c0) * 1000 / CLK_TCK
    same_threads = set(r0) == set(r1)
    precise_ms = sum(r1[t][1] - r0.get(t, (None, 0.0))[1] for t in r1)
    per_thread = {}
    for tid, (name, ms) in r1.items():
        per_thread[name] = per_thread.get(name, 0.0) + ms - r0.get(tid, (None, 0.0))[1]
    busy, steal, total = (m1[i] - m0[i] for i in range(3))
    window_s = (w1_us - w0_us) / 1e6
    result.update(
        {
            "window_s": window_s,
            "scrapes": scrapes,
            "scrapes_per_s": scrapes / window_s,
            "rss_median": statistics.median(rss),
            "rss_max": max(rss),
            "rss_min": min(rss),
            "rss_samples": len(rss),
            "vm_hwm": final_status.get("VmHWM"),
            "rss_anon": final_status.get("RssAnon"),
            "rss_file": final_status.get("RssFile"),
            "threads_max": max(threads),
            "threads_min": min(threads),
            "thread_names": comm,
            "cpu_ms_window": cpu_ms,
            "cpu_ms_per_scrape": cpu_ms / scrapes if scrapes else None,
            "cpu_ms_per_scrape_sched": precise_ms / scrapes if scrapes else None,
            "sched_same_threads": same_threads,
            "cpu_ms_per_thread": per_thread,
            "smaps_rollup": rollup,
            "largest_mappings": mappings,
            "source_connections": s1["tailscaled"]["connections"] - s0["tailscaled"]["connections"],
            "fakes_cpu_percent": (f1 - f0) / CLK_TCK / window_s * 100,
            "load_avg": [load0[0], load1[0]],
            "machine_busy_percent": busy / total * 100 if total else None,
            "steal_percent": steal / total * 100 if total else None,
            "exit_code": proc.returncode if proc is not None else None,
        }
    )
    if own1:
        result["self_metrics_in_window"] = {
            k: v - own0.get(k, 0.0)
            for k, v in own1.items()
            if k.endswith("_total") or "_total{" in k
        }
    state = run_dir / "state.json"
    if state.exists():
        result["checkpoint_bytes"] = state.stat().st_size
    if kind == "tailship":
        published = fakes.info["published"]
        for sink, limit, gap in (("cloudwatch", CW_MAX_DATUMS, None),
                                 ("gcm", GCM_MAX_SERIES, GCM_FLUSH_GAP_S)):
            fl = flushes(s1[sink]["requests"], limit, published, w0_us, w1_us, gap)
            in_window = [r for r in s1[sink]["requests"] if w0_us <= r[0] <= w1_us]
            points = sum(r[1] for r in in_window)
            result[sink] = {
                "flushes": fl,
                "requests_in_window": len(in_window),
                "points_in_window": points,
                "fewest_requests_for_points": math.ceil(points / limit),
                "refused_in_window": sum(1 for r in in_window if not r[2]),
                "connections_in_window": s1[sink]["connections"] - s0[sink]["connections"],
                "connections_total": s1[sink]["connections"],
                "period_s": args.cw_resolution if sink == "cloudwatch" else 10,
            }
    return result


# ---------------------------------------------------------------------------------------
# Report


def mib(n):
    return f"{n / MIB:.1f} MiB"


def ms(x, digits=3):
    return "—" if x is None else f"{x:.{digits}f} ms"


def verdict(ok):
    return "PASS" if ok else "FAIL"


def ratio(py, ts):
    if py is None or ts is None or ts == 0:
        return ""
    return f"{py / ts:.1f}×"


def shown(xs, most=6):
    xs = sorted(set(xs))
    if len(xs) > most:
        return f"{xs[0]}…{xs[-1]}"
    return "/".join(f"{x:,}" for x in xs)


def sink_rows(t, sink, limit):
    s = t[sink]
    fl = s["flushes"]
    published = t["published"]
    expected = math.ceil(published / limit)
    period = s["period_s"]
    # The delivery rate between the first and the last whole flush: the points in the window
    # alone depend on where its ends fall (a 90 s window holds 8 or 9 flushes 10-11 s apart).
    if len(fl) >= 2:
        span_s = (fl[-1]["at_us"] - fl[0]["at_us"]) / 1e6
        per_period = sum(f["points"] for f in fl[1:]) / span_s * period
    else:
        per_period = s["points_in_window"] / (t["window_s"] / period)
    if fl:
        ok = all(f["requests"] == expected and f["all_published"] and f["all_accepted"]
                 for f in fl)
        first = (
            f"{sink} requests/flush",
            f"{shown(f['requests'] for f in fl)} ({len(fl)} flushes of "
            f"{shown(f['points'] for f in fl)} points)",
            f"ceil({published:,}/{limit}) = {expected}, every series",
            verdict(ok),
            "does not ship",
            "",
        )
    else:
        first = (f"{sink} requests/flush", "no whole flush in the window (never a pause)",
                 f"ceil({published:,}/{limit}) = {expected}, every series", "FAIL",
                 "does not ship", "")
    return [
        first,
        (
            f"{sink} requests in the window",
            f"{s['requests_in_window']:,} for {s['points_in_window']:,} points "
            f"({s['refused_in_window']} refused)",
            f"fewest: ceil(points/{limit}) = {s['fewest_requests_for_points']:,}",
            "",
            "",
            "",
        ),
        (
            f"{sink} points per {period:g} s",
            f"{per_period:,.0f} ({per_period / published * 100:.0f} % of the published series)",
            f"≥ {DELIVERY_SHARE * 100:.0f} %",
            verdict(per_period >= DELIVERY_SHARE * published),
            "",
            "",
        ),
        (
            f"{sink} connections opened",
            f"{s['connections_in_window']} in the window ({s['connections_total']} in all)",
            "0 (kept alive)",
            verdict(s["connections_in_window"] == 0),
            "",
            "",
        ),
    ]


def table(series, t, p):
    rows = []
    cpu_budget = CPU_BUDGET_MS.get(series)
    rss_budget = RSS_BUDGET_MIB.get(series)

    def add(name, tv, budget, ok, pv, r):
        rows.append((name, tv, budget, "" if ok is None else verdict(ok), pv, r))

    g = lambda key: p.get(key) if p else None  # noqa: E731
    add("start-up to first scrape", ms(t["startup_ms"], 1), f"≤ {STARTUP_BUDGET_MS} ms",
        t["startup_ms"] <= STARTUP_BUDGET_MS, ms(g("startup_ms"), 1),
        ratio(g("startup_ms"), t["startup_ms"]))
    add("RSS steady, median", mib(t["rss_median"]),
        f"≤ {rss_budget} MiB" if rss_budget else "", 
        t["rss_median"] <= rss_budget * MIB if rss_budget else None,
        mib(p["rss_median"]) if p else "", ratio(g("rss_median"), t["rss_median"]))
    add("RSS steady, max", mib(t["rss_max"]), f"≤ {rss_budget} MiB" if rss_budget else "",
        t["rss_max"] <= rss_budget * MIB if rss_budget else None,
        mib(p["rss_max"]) if p else "", ratio(g("rss_max"), t["rss_max"]))
    add("VmHWM (peak of the life)", mib(t["vm_hwm"]), "", None,
        mib(p["vm_hwm"]) if p else "", ratio(g("vm_hwm"), t["vm_hwm"]))
    add("CPU per scrape (/proc/PID/stat)", ms(t["cpu_ms_per_scrape"]),
        f"≤ {cpu_budget} ms" if cpu_budget else "",
        t["cpu_ms_per_scrape"] <= cpu_budget if cpu_budget else None,
        ms(g("cpu_ms_per_scrape")), ratio(g("cpu_ms_per_scrape"), t["cpu_ms_per_scrape"]))
    sched_note = "" if t["sched_same_threads"] else " (threads changed)"
    add("CPU per scrape (sched, ns)", ms(t["cpu_ms_per_scrape_sched"]) + sched_note, "", None,
        ms(g("cpu_ms_per_scrape_sched")),
        ratio(g("cpu_ms_per_scrape_sched"), t["cpu_ms_per_scrape_sched"]))
    add("scrapes served in the window",
        f"{t['scrapes']} in {t['window_s']:.0f} s", "1 per s", None,
        f"{p['scrapes']} in {p['window_s']:.0f} s" if p else "", "")
    add("threads", f"{t['threads_min']}–{t['threads_max']}", "", None,
        f"{p['threads_min']}–{p['threads_max']}" if p else "", "")
    add("source connections opened", str(t["source_connections"]), "", None,
        str(p["source_connections"]) if p else "", "")
    for r in sink_rows(t, "cloudwatch", CW_MAX_DATUMS) + sink_rows(t, "gcm", GCM_MAX_SERIES):
        rows.append(r)
    header = ("", "tailship", "budget", "", "python", "py/ts")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(6)]
    lines = []
    for r in [header] + rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def details(t, p):
    out = []
    roll = t["smaps_rollup"]
    out.append(
        "tailship RSS at the end: anonymous {} (heap and stacks), file-backed {} (the binary's "
        "and the libraries' pages); smaps_rollup Rss {}, Private_Dirty {}".format(
            mib(t["rss_anon"] or 0), mib(t["rss_file"] or 0),
            mib(roll.get("Rss", 0)), mib(roll.get("Private_Dirty", 0)),
        )
    )
    if t.get("checkpoint_bytes") is not None:
        own = t.get("self_metrics_in_window", {})
        writes = own.get("tailship_checkpoint_writes_total")
        scrapes = own.get("tailship_scrapes_total")
        per = f", {writes / scrapes:.2f} per scrape" if writes and scrapes else ""
        count = f"; {writes:.0f} writes in the window{per}" if writes is not None else ""
        out.append(f"tailship checkpoint: {t['checkpoint_bytes']:,} bytes, written before "
                   f"each send, after a round of answers, else every [state] interval{count}")
    out.append("tailship largest mappings: " + ", ".join(
        f"{name} {mib(n)}" for name, n in t["largest_mappings"]))
    for who, r in (("tailship", t), ("python", p)):
        if r and r.get("pages_per_scrape"):
            out.append(pages_line(who, r["pages_per_scrape"]))
    out.append("tailship threads: " + ", ".join(
        f"{name}×{n}" if n > 1 else name for name, n in sorted(t["thread_names"].items())))
    total = sum(t["cpu_ms_per_thread"].values()) or 1
    out.append("tailship CPU by thread in the window (sched): " + ", ".join(
        f"{name} {ms_:.0f} ms ({ms_ / total * 100:.0f} %)"
        for name, ms_ in sorted(t["cpu_ms_per_thread"].items(), key=lambda kv: -kv[1])))
    out.append(
        f"window: load average {t['load_avg'][0]:.2f} → {t['load_avg'][1]:.2f}, machine busy "
        f"{t['machine_busy_percent']:.0f} %, steal {t['steal_percent']:.1f} %; the fakes used "
        f"{t['fakes_cpu_percent']:.1f} % of a core; body {t['body_bytes']:,} bytes"
    )
    if p:
        out.append(
            f"python: load average {p['load_avg'][0]:.2f} → {p['load_avg'][1]:.2f}, steal "
            f"{p['steal_percent']:.1f} %; {p['scrapes_per_s']:.2f} scrapes/s (1 asked); "
            "it parses and computes the same deltas but ships nothing, writes no checkpoint "
            "and opens a new connection per scrape"
        )
    return "\n".join("  " + line for line in out)


def floor_line(t, f):
    """The floor beside tailship: what a bare scraper of the same endpoint costs."""
    pages = ""
    if f.get("pages_per_scrape"):
        totals = sorted(sum(r.values()) for r in f["pages_per_scrape"])
        pages = f", {statistics.median(totals):,.0f} pages touched per scrape"
    return (
        f"  floor (a bare scraper: kept-alive GET and read, std only; "
        f"{f['scrapes']} scrapes in {f['window_s']:.0f} s): CPU per scrape "
        f"{ms(f['cpu_ms_per_scrape'])} (sched {ms(f['cpu_ms_per_scrape_sched'])}){pages}, "
        f"RSS {mib(f['rss_median'])}; tailship ÷ floor: CPU "
        f"{ratio(t['cpu_ms_per_scrape_sched'], f['cpu_ms_per_scrape_sched'])}; load average "
        f"{f['load_avg'][0]:.2f} → {f['load_avg'][1]:.2f}, steal {f['steal_percent']:.1f} %"
    )


def pages_line(who, rounds):
    totals = sorted(sum(r.values()) for r in rounds)
    median = statistics.median(totals)
    middle = min(rounds, key=lambda r: abs(sum(r.values()) - median))
    return (f"{who} pages touched per scrape ({len(rounds)} scrapes after the window): median "
            f"{median:,.0f}, max {totals[-1]:,}; the median one: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(middle.items(), key=lambda kv: -kv[1])
                        if v))


def write_json(path, report):
    if path:
        # default=str: paths among the arguments (--binary)
        Path(path).write_text(json.dumps(report, indent=2, default=str) + "\n")


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="50,10000,100000",
                    help="series in the body, comma-separated (default 50,10000,100000)")
    ap.add_argument("--warmup", type=float, default=15,
                    help="seconds before the window, at least (it also waits for each "
                         "sink's first flush, then half a CloudWatch bucket) (default 15)")
    ap.add_argument("--duration", type=float, default=180,
                    help="seconds of the measuring window (default 180: three 60 s "
                         "CloudWatch flushes, eighteen Cloud Monitoring ones)")
    ap.add_argument("--python-warmup", type=float, default=10, help="(default 10)")
    ap.add_argument("--python-duration", type=float, default=60, help="(default 60)")
    ap.add_argument("--cw-resolution", type=int, default=60, choices=(1, 60),
                    help="[sinks.cloudwatch] storage_resolution (default 60, the default)")
    ap.add_argument("--max-in-flight", type=int,
                    help="[delivery] max_in_flight for tailship (default: the default, 4)")
    ap.add_argument("--no-python", action="store_true", help="no Python agent")
    ap.add_argument("--no-floor", action="store_true", help="no floor (the bare scraper)")
    ap.add_argument("--floor-warmup", type=float, default=5, help="(default 5)")
    ap.add_argument("--floor-duration", type=float, default=40, help="(default 40)")
    ap.add_argument("--perf", action="store_true",
                    help="also profile tailship over the window with `perf record -e cpu-clock` "
                         "and print its hottest symbols (the profiler's own cost then shows in "
                         "the CPU figures: use it to see where the time goes, not for budgets)")
    ap.add_argument("--call-graph", action="store_true",
                    help="with --perf: record call graphs (DWARF) too, for `perf report "
                         "--children -i <run dir>/perf.data`; needs a build with line tables, "
                         "see --binary")
    ap.add_argument("--binary", type=Path,
                    help="measure this tailship binary (e.g. one built with "
                         "CARGO_PROFILE_RELEASE_DEBUG=line-tables-only into another target "
                         "directory, for --call-graph); the fakes are still built unless "
                         "--no-build")
    ap.add_argument("--page-rounds", type=int, default=12,
                    help="scrapes whose touched pages are counted after the window (1.5 s "
                         "each; 0: none) (default 12)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument(
        "--target",
        default=MUSL,
        help="tailship's target triple, or 'host' (default: the image's static musl build; "
        "needs `rustup target add x86_64-unknown-linux-musl` and musl-tools)",
    )
    ap.add_argument("--json", metavar="PATH", help="write every figure to PATH")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    set_target(args.target)
    if not args.no_build:
        build(args.target, tailship=args.binary is None)
    if not args.no_floor and (not args.no_build or not FLOOR.exists()):
        build_floor(args.target)
    if args.binary is not None:
        global TAILSHIP
        TAILSHIP = args.binary.resolve()
    for binary in (TAILSHIP, FAKES):
        if not binary.exists():
            raise SystemExit(f"{binary} is missing: run without --no-build")
    if not args.no_python:
        ensure_venv()

    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = ROOT / "target" / "footprint" / stamp
    report = {
        "machine": machine() | {"cold_page": cold_pages.probe()},
        "binary": binary_sizes(),
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "sizes": {},
    }
    for series in sizes:
        try:
            t = measure("tailship", series, args, base / f"{series}" / "tailship")
            p = f = None
            if not args.no_python:
                p = measure("python", series, args, base / f"{series}" / "python")
            if not args.no_floor:
                f = measure("floor", series, args, base / f"{series}" / "floor")
        except Failed as e:
            print(f"\n== {series:,} series: not measured: {e}")
            report["sizes"][str(series)] = {"error": str(e)}
            write_json(args.json, report)
            continue
        report["sizes"][str(series)] = {"tailship": t, "python": p, "floor": f}
        write_json(args.json, report)
        print(f"\n== {series:,} series ({t['body_bytes']:,}-byte body, {t['published']:,} "
              f"published series per sink), scraped every 1 s — {report['machine']['date']}")
        print(table(series, t, p))
        print(details(t, p))
        if f:
            print(floor_line(t, f))
        if t.get("perf_top"):
            print("  tailship hottest symbols over the window (perf, cpu-clock):")
            for share, dso, symbol in t["perf_top"]:
                print(f"    {share:>7}  {dso:<22} {symbol}")
        sys.stdout.flush()
    b = report["binary"]
    stripped = f", {b['stripped_bytes']:,} stripped" if b["stripped_bytes"] else ""
    print(f"\nrelease binary: {b['bytes']:,} bytes{stripped}; "
          f"commit {report['machine']['commit']}, {report['machine']['rustc']}, "
          f"{report['machine']['cpus']} CPUs ({report['machine']['cpu_model']})")
    cold = report["machine"]["cold_page"]
    print(f"machine: a page touched after 1 s asleep costs {cold['cold_us_per_page']:.2f} µs, "
          f"at once again {cold['warm_us_per_page']:.2f} µs (Python's loop included; "
          f"{cold['pages']} pages, median of 3; bench/cold_pages.py)")
    print(f"logs and configs: {base}")
    if args.json:
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
