#!/usr/bin/env python3
"""tailship's Prometheus text parser side by side with Python's prometheus_client.

Both parse the same files: every ../shared/fixtures/tailscale/*.prom and
../shared/bench/alltypes.237mfs.prom.txt (relative to the project root). tailship's side is
crates/collector/examples/parse_throughput.rs, built in release: `tailship_collector::parse`,
the entry point the tracker runs on every body. Python's side is
`prometheus_client.parser.text_string_to_metric_families` on the decoded text, every sample of
every family consumed. Both time rounds of repeated parses (Rust: Instant; Python:
time.perf_counter_ns, garbage collector on, as a program runs) and report the best and the
median time of one parse.

    python3 bench/parser_vs_python.py            # the table
    python3 bench/parser_vs_python.py --json     # the same as JSON

The first run creates bench/.venv (python3 -m venv) and installs the pinned prometheus_client
there; the script then re-runs itself with the venv's Python. Apart from that package it uses
the standard library only. MB = 10^6 bytes.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROMETHEUS_CLIENT = "0.26.0"

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared"
VENV = HERE / ".venv"
VENV_PYTHON = VENV / "bin" / "python"

NOTES = """\
Both count one sample per sample line. They part on lines one of them refuses: prometheus_client
stops at the first line it cannot read (a ValueError: the rest of the body is lost; the row then
says so), where tailship reports that line and carries on; tailship refuses lines
prometheus_client takes, as the Go parser does: a series repeated on the next line, a last line
without a newline (a truncated body). And they do different work: prometheus_client builds a
Metric per family and a Sample tuple, a label dict and a float per sample; tailship yields
borrowed slices and a float, and reads labels on demand (hence the "+labels" column, where every
label is read)."""


def inputs():
    fixtures = sorted((SHARED / "fixtures" / "tailscale").glob("*.prom"))
    return fixtures + [SHARED / "bench" / "alltypes.237mfs.prom.txt"]


def in_venv():
    return Path(sys.prefix).resolve() == VENV.resolve()


def ensure_venv(argv):
    """Creates bench/.venv with the pinned prometheus_client and re-runs in it."""
    if in_venv():
        return
    if not VENV_PYTHON.exists():
        log(f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        # Keep the venv out of git without touching the repository's .gitignore.
        (VENV / ".gitignore").write_text("*\n")
    have = subprocess.run(
        [str(VENV_PYTHON), "-c",
         "import importlib.metadata as m; print(m.version('prometheus_client'))"],
        capture_output=True, text=True,
    )
    if have.returncode != 0 or have.stdout.strip() != PROMETHEUS_CLIENT:
        log(f"installing prometheus_client=={PROMETHEUS_CLIENT} into {VENV}")
        subprocess.run(
            [str(VENV_PYTHON), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", f"prometheus_client=={PROMETHEUS_CLIENT}"],
            check=True,
        )
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *argv])


def log(text):
    print(f"parser_vs_python: {text}", file=sys.stderr, flush=True)


def build_example():
    """Builds the example in release; returns the path of its executable."""
    log("cargo build --release -p tailship-collector --example parse_throughput")
    out = subprocess.run(
        ["cargo", "build", "--release", "-p", "tailship-collector",
         "--example", "parse_throughput", "--message-format=json-render-diagnostics"],
        cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True,
    ).stdout
    for line in out.splitlines():
        message = json.loads(line)
        if (message.get("reason") == "compiler-artifact"
                and message.get("target", {}).get("name") == "parse_throughput"
                and message.get("executable")):
            return message["executable"]
    sys.exit("parser_vs_python: cargo built no parse_throughput executable")


def run_tailship(executable, files, rounds):
    out = subprocess.run(
        [executable, "--rounds", str(rounds), *map(str, files)],
        check=True, stdout=subprocess.PIPE, text=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines()]


def consume(data):
    """Parses `data` with prometheus_client and reads every sample; returns their count."""
    from prometheus_client.parser import text_string_to_metric_families

    samples = 0
    for family in text_string_to_metric_families(data.decode("utf-8")):
        for sample in family.samples:
            samples += 1
    return samples


def time_python(data, rounds, round_ns):
    """Rounds of at least round_ns each, as the Rust side times; per-parse best and median."""
    per_round = 1
    while True:  # warm up, and find how many parses fill a round
        start = time.perf_counter_ns()
        for _ in range(per_round):
            consume(data)
        if time.perf_counter_ns() - start >= round_ns:
            break
        per_round *= 2
    per_parse = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(per_round):
            consume(data)
        per_parse.append((time.perf_counter_ns() - start) / per_round)
    return {
        "iterations": per_round * rounds,
        "best_ns": min(per_parse),
        "median_ns": statistics.median(per_parse),
    }


def mb_s(size, ns):
    return size / ns * 1e3  # bytes per ns × 1e9 / 1e6


def compare(files, rounds, round_ms):
    import prometheus_client

    executable = build_example()
    tailship = run_tailship(executable, files, rounds)
    rows = []
    for path, rust in zip(files, tailship):
        data = path.read_bytes()
        assert rust["bytes"] == len(data), path
        size = len(data)
        try:
            py_samples = consume(data)
        except ValueError as e:
            rows.append({"input": path.name, "bytes": size, "python_error": str(e),
                         "samples": {"tailship": rust["samples"], "python": None},
                         "samples_match": False, "tailship": rust})
            continue
        py = time_python(data, rounds, round_ms * 1_000_000)
        rows.append({
            "input": path.name,
            "bytes": size,
            "samples": {"tailship": rust["samples"], "python": py_samples},
            "samples_match": rust["samples"] == py_samples,
            "tailship_line_errors": rust["errors"],
            "tailship": {k: rust[k] for k in ("iterations", "best_ns", "median_ns")},
            "tailship_with_labels": rust["with_labels"],
            "python": py,
            "mb_s": {
                "tailship_best": mb_s(size, rust["best_ns"]),
                "tailship_median": mb_s(size, rust["median_ns"]),
                "tailship_with_labels_best": mb_s(size, rust["with_labels"]["best_ns"]),
                "python_best": mb_s(size, py["best_ns"]),
                "python_median": mb_s(size, py["median_ns"]),
            },
            "ratio_best": py["best_ns"] / rust["best_ns"],
            "ratio_median": py["median_ns"] / rust["median_ns"],
            "ratio_with_labels_best": py["best_ns"] / rust["with_labels"]["best_ns"],
        })
    return {
        "prometheus_client": prometheus_client.__version__
        if hasattr(prometheus_client, "__version__") else PROMETHEUS_CLIENT,
        "python": platform.python_version(),
        "rounds": rounds,
        "round_ms": round_ms,
        "inputs": rows,
    }


def table(result):
    head = ["input", "bytes", "samples", "tailship MB/s", "+labels MB/s", "python MB/s",
            "ratio", "check"]
    lines = []
    for r in result["inputs"]:
        s = r["samples"]
        if "python_error" in r:
            lines.append([r["input"], f"{r['bytes']:,}", f"{s['tailship']:,}",
                          f"{mb_s(r['bytes'], r['tailship']['best_ns']):.0f}", "", "-", "-",
                          f"python failed: {r['python_error'][:60]}"])
            continue
        m = r["mb_s"]
        lines.append([
            r["input"],
            f"{r['bytes']:,}",
            f"{s['tailship']:,}",
            f"{m['tailship_best']:.0f} ({m['tailship_median']:.0f})",
            f"{m['tailship_with_labels_best']:.0f}",
            f"{m['python_best']:.2f} ({m['python_median']:.2f})",
            f"{r['ratio_best']:.0f}x ({r['ratio_median']:.0f}x)",
            "ok" if r["samples_match"]
            else f"samples differ: python {s['python']:,}",
        ])
    widths = [max(len(row[i]) for row in [head] + lines) for i in range(len(head))]
    out = []
    for row in [head] + lines:
        cells = [c.ljust(w) if i in (0, 7) else c.rjust(w)
                 for i, (c, w) in enumerate(zip(row, widths))]
        out.append("  ".join(cells).rstrip())
    out.insert(1, "  ".join("-" * w for w in widths))
    out.append("")
    out.append(
        f"MB/s: fastest round (median round); ratio = tailship / python speed. "
        f"+labels: tailship also reading every label. prometheus_client "
        f"{result['prometheus_client']}, Python {result['python']}, "
        f"{result['rounds']} rounds of >= {result['round_ms']} ms (Python)."
    )
    differ = sum(not r["samples_match"] for r in result["inputs"])
    out.append(f"Samples differ on {differ} input(s)." if differ
               else "The sample counts agree on every input.")
    out.append(NOTES)
    return "\n".join(out)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--rounds", type=int, default=100,
                        help="timed rounds per input and parser (default 100)")
    parser.add_argument("--round-ms", type=int, default=5,
                        help="least time of one Python round in ms (default 5)")
    args = parser.parse_args(argv)
    ensure_venv(argv)
    files = inputs()
    missing = [str(f) for f in files if not f.is_file()]
    if missing or len(files) < 2:
        sys.exit(f"parser_vs_python: inputs missing under {SHARED}: {missing or 'fixtures'}")
    result = compare(files, args.rounds, args.round_ms)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main(sys.argv[1:])
