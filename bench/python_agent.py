#!/usr/bin/env python3
"""tailship's scrape-and-delta job done the usual Python way: the comparison agent of
bench/footprint.py.

Every --interval seconds it fetches --url with urllib (a new connection per scrape, as
urllib does), parses the body with prometheus_client.parser.text_string_to_metric_families,
and for every `tailscaled_*` counter sample computes the delta since the previous scrape with
tailship's rules: the first scrape is a baseline, a value below the last one is a reset (the
delta is the value), a series that appears later started at 0 (the delta is the value),
NaN, negative and fractional values are anomalies and are skipped. Deltas are summed into the
published series tailship would publish with `breakdowns = ["*"]`: one aggregate per family
and one series per label set. Gauges keep their latest value.

It does NOT ship anything to a cloud, write a checkpoint, evict vanished series or serve
/metrics: it is the floor of what a Python agent doing this job costs, not an equivalent of
tailship. Ticks missed while a scrape runs long are skipped, as tailship's are.

    bench/.venv/bin/python bench/python_agent.py --url http://127.0.0.1:PORT/metrics

SIGTERM or SIGINT ends it at once (a scrape under way is dropped); it then prints one JSON line of
totals on standard output. Standard library plus prometheus_client only.
"""

import argparse
import json
import math
import signal
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


class Tracker:
    """Raw counter values and the running totals of the published series."""

    def __init__(self):
        self.last = {}  # (sample name, sorted labels) -> last value
        self.totals = {}  # (family, sorted labels) -> shipped since start; () = aggregate
        self.gauges = {}  # (family, sorted labels) -> latest value
        self.scrapes = 0
        self.anomalies = 0
        self.resets = 0
        self.points = 0

    def observe(self, text):
        baseline = self.scrapes == 0
        deltas = {}
        for family in text_string_to_metric_families(text):
            if not family.name.startswith("tailscaled_"):
                continue
            if family.type == "counter":
                for sample in family.samples:
                    if not sample.name.endswith("_total"):
                        continue  # _created, which tailscaled does not write
                    value = sample.value
                    if math.isnan(value) or value < 0 or value != int(value):
                        self.anomalies += 1
                        continue
                    labels = tuple(sorted(sample.labels.items()))
                    key = (sample.name, labels)
                    last = self.last.get(key)
                    self.last[key] = value
                    if baseline:
                        continue
                    if last is None:
                        delta = value  # appeared since the last scrape: started at 0
                    elif value < last:
                        delta = value  # reset
                        self.resets += 1
                    else:
                        delta = value - last
                    for published in ((sample.name, ()), (sample.name, labels)):
                        deltas[published] = deltas.get(published, 0) + int(delta)
            elif family.type == "gauge":
                for sample in family.samples:
                    labels = tuple(sorted(sample.labels.items()))
                    self.gauges[(family.name, labels)] = sample.value
        for series, delta in deltas.items():
            self.totals[series] = self.totals.get(series, 0) + delta
        self.points += len(deltas)
        self.scrapes += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds for one scrape")
    args = ap.parse_args()

    class Stop(Exception):
        pass

    def on_signal(_signum, _frame):
        raise Stop

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    tracker = Tracker()
    errors = 0
    next_at = time.monotonic()
    try:
        while True:
            try:
                with urllib.request.urlopen(args.url, timeout=args.timeout) as answer:
                    text = answer.read().decode("utf-8")
                tracker.observe(text)
            except (OSError, ValueError) as e:
                errors += 1
                print(f"python_agent: scrape failed: {e}", file=sys.stderr)
            next_at += args.interval
            now = time.monotonic()
            if next_at < now:
                next_at = now  # missed ticks are skipped
            else:
                time.sleep(next_at - now)  # one wake-up per scrape
    except Stop:
        pass
    summary = {
        "scrapes": tracker.scrapes,
        "errors": errors,
        "raw_series": len(tracker.last),
        "published_counter_series": len(tracker.totals),
        "gauges": len(tracker.gauges),
        "points": tracker.points,
        "resets": tracker.resets,
        "anomalies": tracker.anomalies,
    }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
