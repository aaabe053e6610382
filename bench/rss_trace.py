#!/usr/bin/env python3
"""What tailship's RSS peaks are: VmRSS sampled every 2 ms, each peak set beside the scrape
and the sends nearest to it; and what its CPU goes to, second by second.

The footprint harness (bench/footprint.py) samples RSS every 250 ms, which is enough for a
median but catches a peak only by chance; this trace samples 125 times as often over a
shorter run and says what each peak coincides with: a scrape (its buffers: body, samples,
points), a CloudWatch flush or a Cloud Monitoring flush, by the times the fakes recorded.

    python3 bench/rss_trace.py                      # 10k series, 75 s (one CloudWatch flush)
    python3 bench/rss_trace.py --series 50 --duration 30 --binary PATH

The CPU: the process's threads' run time (/proc/PID/task/*/sched, as footprint.py reads it), read with
each RSS sample, is cut into one piece per scrape (from a little before one scrape to a
little before the next) and each piece is named by what fell in it: a CloudWatch request, a
Cloud Monitoring request, a checkpoint write (the file's modification time), or nothing but
the scrape (`plain`). The table gives each kind's count, median and share of the CPU: the
footprint harness's CPU per scrape, taken apart.

It uses footprint.py's fakes, configuration and environment, and the builds it made
(`python3 bench/footprint.py --sizes 50 --no-python --duration 30` builds them).
"""

import argparse
import bisect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import footprint  # noqa: E402


def nearest(times, t):
    """The signed distance from t to the nearest of the sorted times, or None."""
    i = bisect.bisect_left(times, t)
    near = [t - times[j] for j in (i - 1, i) if 0 <= j < len(times)]
    return min(near, key=abs) if near else None


def mtime_ns(path):
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return 0


def cpu_by_second(samples, scrapes, sends, writes):
    """The CPU between consecutive scrapes (from a fifth of the gap, at most 0.2 s, before
    each), named by the sends and checkpoint writes in it: {kind: [ms, …]}."""
    times = [t for t, *_ in samples]

    def cpu_at(t):
        i = min(bisect.bisect_left(times, t), len(samples) - 1)
        return samples[i][2]

    inside = [t for t in scrapes if times[0] + 0.3 < t < times[-1] - 1.3]
    kinds = {}
    for a, b in zip(inside, inside[1:]):
        lead = min(0.2, (b - a) / 5)
        lo, hi = a - lead, b - lead
        tags = [name for name, events in (("cloudwatch", sends["cloudwatch"]),
                                          ("gcm", sends["gcm"]), ("checkpoint", writes))
                if any(lo <= x < hi for x in events)]
        kinds.setdefault(" + ".join(tags) or "plain", []).append(cpu_at(hi) - cpu_at(lo))
    return kinds


def episodes(samples, above):
    """Runs of samples above `above` bytes, joined when less than 50 ms apart:
    [start, end, peak bytes]."""
    runs = []
    for t, size, *_ in samples:
        if size <= above:
            continue
        if runs and t - runs[-1][1] < 0.05:
            runs[-1][1] = t
            runs[-1][2] = max(runs[-1][2], size)
        else:
            runs.append([t, t, size])
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--duration", type=float, default=75, help="seconds sampled (75)")
    ap.add_argument("--warmup", type=float, default=20, help="seconds before sampling (20)")
    ap.add_argument("--binary", type=Path, default=footprint.TAILSHIP)
    ap.add_argument("--top", type=int, default=15, help="peaks listed (15)")
    ap.add_argument("--cw-resolution", type=int, default=60,
                    help="CloudWatch storage_resolution, as in footprint.py (60, or 1)")
    ap.add_argument("--max-in-flight", type=int,
                    help="[delivery] max_in_flight (default: the default, 4)")
    args = ap.parse_args()
    for path in (args.binary, footprint.FAKES):
        if not path.exists():
            raise SystemExit(f"{path} is missing: build it first (see the docstring)")

    run_dir = Path(tempfile.mkdtemp(prefix="tailship-rss-"))
    fakes = footprint.Fakes(args.series, run_dir)
    proc = None
    try:
        config = footprint.tailship_config(run_dir, fakes, args)
        proc = subprocess.Popen(
            [args.binary, "run", "--config", config],
            env=footprint.tailship_env(),
            stdout=subprocess.DEVNULL,
            stderr=open(run_dir / "tailship.log", "wb"),
        )
        time.sleep(args.warmup)
        samples = []
        end = time.time() + args.duration
        while (now := time.time()) < end:
            if proc.poll() is not None:
                raise SystemExit(
                    f"tailship exited ({proc.returncode}); see {run_dir / 'tailship.log'}"
                )
            cpu_ms = sum(ms for _, ms in footprint.threads_runtime(proc.pid).values())
            samples.append((now, footprint.proc_status(proc.pid)["VmRSS"], cpu_ms,
                            mtime_ns(run_dir / "state.json")))
            time.sleep(0.002)
        status = fakes.status()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        fakes.stop()

    scrapes = sorted(t / 1e6 for t in status["tailscaled"]["scrape_us"])
    sends = {
        sink: sorted({r[0] / 1e6 for r in status[sink]["requests"]})
        for sink in ("cloudwatch", "gcm")
    }
    rss = sorted(b for _, b, *_ in samples)
    median = rss[len(rss) // 2]
    t0 = samples[0][0]
    print(
        f"{args.series:,} series, {len(samples):,} samples of VmRSS over {args.duration:g} s: "
        f"median {median / 2**20:.2f} MiB, max {rss[-1] / 2**20:.2f} MiB; "
        f"{len(sends['cloudwatch'])} CloudWatch and {len(sends['gcm'])} Cloud Monitoring "
        f"requests arrived"
    )
    print(
        "peaks more than 0.3 MiB over the median, highest first: when (from the first sample), "
        "how long, how high,\nand the peak's start less the time of the nearest scrape served "
        "and request received by each fake"
    )
    print("  at        lasting    peak        over     nearest scrape   CloudWatch   Cloud Monitoring")

    def off(times, t):
        d = nearest(times, t)
        return "—" if d is None else f"{1000 * d:+.0f} ms"

    runs = sorted(episodes(samples, median + 300 * 1024), key=lambda r: -r[2])
    for start, stop, peak in runs[: args.top]:
        print(
            f"  {start - t0:7.3f} s {1000 * (stop - start):7.1f} ms {peak / 2**20:7.2f} MiB "
            f"{(peak - median) / 2**20:+6.2f}   {off(scrapes, start):>14} {off(sends['cloudwatch'], start):>12} "
            f"{off(sends['gcm'], start):>16}"
        )
    print(f"  ({len(runs)} peaks in all; run directory {run_dir})")

    writes = sorted({m / 1e9 for *_, m in samples if m})
    kinds = cpu_by_second(samples, scrapes, sends, writes)
    pieces = sum(len(v) for v in kinds.values())
    total = sum(sum(v) for v in kinds.values())
    if pieces:
        print(f"CPU from one scrape to the next ({pieces} scrapes, {total / pieces:.3f} ms per "
              "scrape), by what else fell in between:")
        print("  kind                           count   median       min       max   share")
        for kind, ms in sorted(kinds.items(), key=lambda kv: -sum(kv[1])):
            print(f"  {kind:<30} {len(ms):5} {statistics.median(ms):8.3f} ms {min(ms):7.3f} "
                  f"{max(ms):9.3f} {sum(ms) / total * 100:6.1f} %")
    (run_dir / "rss.json").write_text(json.dumps({"samples": samples, "status": status}))


if __name__ == "__main__":
    main()
