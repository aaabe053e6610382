#!/usr/bin/env python3
"""What this machine charges for touching a page of memory the process has not touched for a
while, against the same pages touched again at once.

    python3 bench/cold_pages.py                  # 4 KiB pages, asleep 1 s, 0.1 s, 0.01 s
    python3 bench/cold_pages.py --huge           # the same on 2 MiB pages (THP, madvise)

A mapping of `--pages` 4 KiB pages is touched one byte a page after sleeping, then again at
once; the difference is the price of a page "gone cold" (the Python loop, about 0.1 µs a page,
is in both). On a shared host, after a second the caches, the TLB and the caches of the
paging structures hold others' data, so a scrape once a second pays for a walk of the
guest's and the host's page tables on each page it touches: docs/PERFORMANCE.md, *Pages*.
Standard library only; bench/footprint.py runs `probe()` before its runs.
"""

import argparse
import mmap
import statistics
import time
from pathlib import Path

PAGE = mmap.PAGESIZE
HUGE = 2 << 20


def probe(pages=2048, asleep=1.0, rounds=3, huge=False):
    """Median µs per page touched after `asleep` seconds, and at once again."""
    size = pages * PAGE
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS  # what a heap is (not shared memory)
    buf = mmap.mmap(-1, size + (HUGE if huge else 0), flags=flags)
    start = 0
    if huge:
        buf.madvise(mmap.MADV_HUGEPAGE)
        # Only whole, aligned 2 MiB ranges can be huge pages: start at one. The mapping's
        # address is not visible from Python, so find it in /proc/self/maps by its length.
        start = (-mapping_start(size + HUGE)) % HUGE
    offsets = range(start, start + size, PAGE)

    def touch():
        t = time.perf_counter_ns()
        for i in offsets:
            buf[i] = 1
        return time.perf_counter_ns() - t

    touch()
    cold, warm = [], []
    for _ in range(rounds):
        time.sleep(asleep)
        cold.append(touch())
        warm.append(touch())
    huge_kb = anon_huge_kb() if huge else 0
    buf.close()
    return {
        "pages": pages,
        "asleep_s": asleep,
        "cold_us_per_page": statistics.median(cold) / pages / 1000,
        "warm_us_per_page": statistics.median(warm) / pages / 1000,
        "anon_huge_kb": huge_kb,
    }


def mapping_start(length):
    for line in Path("/proc/self/maps").read_text().splitlines():
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if hi - lo == length:
            return lo
    return 0


def anon_huge_kb():
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=2048, help="4 KiB pages (default 2048: 8 MiB)")
    ap.add_argument("--rounds", type=int, default=5, help="(default 5)")
    ap.add_argument("--huge", action="store_true", help="ask for 2 MiB pages (MADV_HUGEPAGE)")
    args = ap.parse_args()
    for asleep in (1.0, 0.1, 0.01):
        r = probe(args.pages, asleep, args.rounds, args.huge)
        huge = f"; {r['anon_huge_kb']} kB on huge pages" if args.huge else ""
        print(f"asleep {asleep:>4} s: {r['cold_us_per_page']:.2f} µs a page, at once again "
              f"{r['warm_us_per_page']:.2f} µs ({r['pages']} pages, median of {args.rounds}{huge})")


if __name__ == "__main__":
    main()
