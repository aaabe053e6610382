#!/usr/bin/env python3
"""Writes link/symbol-order.txt: the order in which the linker lays out tailship's functions,
those a scrape runs first, so that a scrape touches as few pages of code as it can.

A scrape once a second runs about 380 functions, 300 kB of code, which the default layout
scatters over some 200 pages of the 5 MB of text; every page touched after a second asleep
costs microseconds on this machine class (docs/PERFORMANCE.md, "Pages"), and the kernel maps
the pages around each one it faults in. Laid out in the order this script finds, a scrape's
functions span about 75 pages.

How: the release build runs under valgrind's callgrind against the loopback fakes of
bench/footprint.py (both cloud sinks, every series published), at 50 and at 10k series. The
counts are dumped once after start-up (and after each sink's first write), then once a
second, then at shutdown. The functions are written in three groups, each hottest first:

  1. those run in at least 80 % of the one-second dumps of a size: a scrape's;
  2. the rest of those run in any one-second dump: flushes, checkpoint writes;
  3. those run only at start-up or shutdown.

The functions never run come after them, where the linker puts them. The file names symbols
(mangled, with their hashes), which change when a dependency or the compiler does: run this
again after updating Cargo.lock or the toolchain. A stale file costs nothing but the order;
`--check` says how many of its symbols the built binary still has.

    python3 bench/link_order.py            # build, profile (about 5 min), write the file
    python3 bench/link_order.py --check    # the file against target/…/release/tailship

.cargo/config.toml hands the file to the linker (rust-lld, `--symbol-ordering-file`) for the
x86_64-unknown-linux-musl target, the one the container image ships. Needs valgrind
(`apt install valgrind`, which brings callgrind_control).
"""

import argparse
import collections
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import footprint  # bench/footprint.py: the fakes, the configuration, the environment

ORDER = footprint.ROOT / "link" / "symbol-order.txt"
PER_SCRAPE = 0.8
HEADER = """\
# The order in which rust-lld lays out tailship's functions (--symbol-ordering-file, from
# .cargo/config.toml, for the x86_64-unknown-linux-musl target): a scrape's functions
# first, then those of flushes and checkpoint writes, then start-up and shutdown.
# Written by `python3 bench/link_order.py` (valgrind's callgrind against the footprint
# fakes); run it again after updating Cargo.lock or the toolchain. Do not edit.
"""


def log(msg):
    print(f"[link_order {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def callgrind_costs(path):
    """{function: instructions run in it} from one callgrind dump (`--dump-instr=no`).

    The format compresses names: `fn=(7) name` defines id 7, later `fn=(7)` refers to it.
    The cost line after a `calls=` line is the call's inclusive cost, not the caller's own."""
    names, cost, current, call = {}, collections.Counter(), None, False
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith(("fn=", "cfn=")):
                key, _, rest = line.rstrip("\n").partition("=")
                m = re.match(r"\((\d+)\)(?: (.*))?$", rest)
                name = rest
                if m:
                    if m.group(2) is not None:
                        names[m.group(1)] = m.group(2)
                    name = names[m.group(1)]
                if key == "fn":
                    # callgrind marks a recursion's depth with 'N
                    current = re.sub(r"'\d+$", "", name)
            elif line.startswith("calls="):
                call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                if call:
                    call = False
                elif current is not None:
                    parts = line.split()
                    if len(parts) >= 2:
                        cost[current] += int(parts[1])
    return cost


def symbols(binary):
    """The binary's function symbols (it is linked with its symbol table: the release
    profile strips debug information only)."""
    out = subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True,
                         check=True).stdout
    return {p[2] for p in (line.split() for line in out.splitlines())
            if len(p) == 3 and p[1] in "tTwW"}


def profile(binary, series, seconds, run_dir):
    """Runs the binary under callgrind against fresh fakes; returns the dumps' costs:
    (start-up, [one per second], shutdown)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fakes = footprint.Fakes(series, run_dir)

    class Settings:
        cw_resolution = 60
        max_in_flight = None

    config = footprint.tailship_config(run_dir, fakes, Settings())
    out = run_dir / "callgrind.out"
    cmd = ["valgrind", "--tool=callgrind", "--demangle=no", "--dump-instr=no",
           f"--callgrind-out-file={out}", binary, "run", "--config", config]
    with open(run_dir / "tailship.log", "wb") as agent_log:
        proc = subprocess.Popen(cmd, stdout=agent_log, stderr=agent_log,
                                env=footprint.tailship_env(), cwd=run_dir)
    try:
        for sink in ("cloudwatch", "gcm"):
            footprint.wait_for(f"a first {sink} write", 600,
                               lambda: footprint.accepted_requests(fakes.status(), sink),
                               step=0.5, proc=proc)
        log(f"{series} series: both sinks written; one dump a second for {seconds} s")

        def dump(name):
            subprocess.run(["callgrind_control", "--dump=" + name, str(proc.pid)],
                           check=True, capture_output=True)

        dump("startup")
        for i in range(seconds):
            time.sleep(1)
            dump(f"second-{i}")
        proc.send_signal(signal.SIGTERM)
        if proc.wait(timeout=300) != 0:
            raise SystemExit(f"tailship exited with {proc.returncode}; see {run_dir}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        fakes.stop()
    dumps = sorted(run_dir.glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
    if len(dumps) != seconds + 1:
        raise SystemExit(f"expected {seconds + 1} dumps in {run_dir}, found {len(dumps)}")
    return (callgrind_costs(dumps[0]), [callgrind_costs(d) for d in dumps[1:]],
            callgrind_costs(out))


def order(profiles, known):
    """The symbols in the three groups of the module's doc, hottest first in each."""
    ir = collections.Counter()
    per_scrape, steady, once = set(), set(), set()
    for startup, seconds, shutdown in profiles:
        runs = collections.Counter()
        for costs in seconds:
            runs.update(costs.keys())
            ir.update(costs)
        per_scrape |= {f for f, n in runs.items() if n >= PER_SCRAPE * len(seconds)}
        steady |= set(runs)
        for costs in (startup, shutdown):
            once |= set(costs)
            ir.update(costs)
    steady -= per_scrape
    once -= per_scrape | steady
    groups = [sorted((f for f in g if f in known), key=lambda f: (-ir[f], f))
              for g in (per_scrape, steady, once)]
    return groups


def check(binary):
    known = symbols(binary)
    listed = [s for s in ORDER.read_text().splitlines() if s and not s.startswith("#")]
    present = sum(s in known for s in listed)
    print(f"{ORDER.relative_to(footprint.ROOT)}: {present:,} of its {len(listed):,} symbols "
          f"are in {binary}")
    if present < 0.9 * len(listed):
        print("stale: run `python3 bench/link_order.py` to write it again")
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="only say how many of the file's symbols the binary has")
    ap.add_argument("--binary", type=Path, default=footprint.TAILSHIP,
                    help="the build to profile or check (default: the musl release build)")
    ap.add_argument("--seconds", type=int, default=65,
                    help="one-second dumps per size (default 65: a CloudWatch flush, six "
                         "Cloud Monitoring ones, checkpoint writes)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    args = ap.parse_args()
    if args.check:
        return check(args.binary)
    if not args.no_build:
        footprint.build(footprint.MUSL)
    base = footprint.ROOT / "target" / "link-order" / time.strftime("%Y%m%d-%H%M%S")
    profiles = [profile(args.binary, series, args.seconds, base / str(series))
                for series in (50, 10_000)]
    known = symbols(args.binary)
    groups = order(profiles, known)
    ORDER.parent.mkdir(exist_ok=True)
    ORDER.write_text(HEADER + "".join(s + "\n" for g in groups for s in g))
    log(f"wrote {ORDER.relative_to(footprint.ROOT)}: {len(groups[0]):,} functions of a "
        f"scrape, {len(groups[1]):,} of flushes and writes, {len(groups[2]):,} of start-up "
        f"and shutdown; callgrind's output in {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
