#!/usr/bin/env python3
"""Every metric the Terraform alarms, alert policies and dashboards read is one tailship
publishes with the configuration it is deployed with.

For each example under terraform/examples/, paired with the Kubernetes overlay it deploys:

1. `kubectl kustomize` renders the overlay; its ConfigMap's tailship.toml is given, byte for
   byte, to `tailship catalog --config FILE --format json`, whose `sinks` array says what
   reaches the cloud: CloudWatch namespace, metric names and dimension sets (static and node
   dimensions included); Cloud Monitoring metric types, kinds and label sets. The rendered
   ServiceAccount is the one the example's IAM trusts.
2. python-hcl2 parses the example and its module: the module's literal inputs, and that the
   alarm / alert / dashboard resources take their metrics from the module's locals (and any
   literal metric name anywhere in the HCL is checked too).
3. `terraform console` evaluates those locals (metrics.tf and variables.tf need no provider)
   with the example's inputs, and every metric, namespace, dimension set, metric type,
   label, aligner, PromQL selector and resource type in them is checked against 1.

Then a renamed metric is planted in a copy of each module and must be caught.

Run by ./scripts/test after `cargo build`; TAILSHIP_BIN overrides the binary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import hcl2
import yaml

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Example:
    terraform: str  # the example's directory
    module: str  # the module it calls ("aws" or "gcp")
    overlay: str  # the kustomization it deploys


EXAMPLES = [
    Example("terraform/examples/eks", "aws", "deploy/k8s/overlays/eks"),
    Example("terraform/examples/gke", "gcp", "deploy/k8s/overlays/gke"),
]

# Values tailscaled gives the `path` label (DESIGN §1): what a dimension filter may name.
PATHS = {"derp", "direct_ipv4", "direct_ipv6", "peer_relay_ipv4", "peer_relay_ipv6"}

# Labels of the monitored resources tailship writes against (sink-gcm resource.rs).
RESOURCE_LABELS = {
    "k8s_container": {"project_id", "location", "cluster_name", "namespace_name", "pod_name", "container_name"},
    "gce_instance": {"project_id", "instance_id", "zone"},
    "aws_ec2_instance": {"project_id", "instance_id", "region", "aws_account"},
    "generic_node": {"project_id", "location", "namespace", "node_id"},
}

COUNTER_STATS = {"Sum", "SampleCount"}
GAUGE_STATS = {"Average", "Minimum", "Maximum", "SampleCount"}
COUNTER_ALIGNERS = {"ALIGN_DELTA", "ALIGN_RATE"}
GAUGE_ALIGNERS = {"ALIGN_MEAN", "ALIGN_MAX", "ALIGN_MIN", "ALIGN_SUM", "ALIGN_COUNT", "ALIGN_NEXT_OLDER", "ALIGN_PERCENTILE_99"}


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.checked = 0

    def check(self, ok: bool, what: str) -> None:
        self.checked += 1
        if not ok:
            self.items.append(what)


# ---------------------------------------------------------------- tailship's own word


def tailship_bin() -> Path:
    if os.environ.get("TAILSHIP_BIN"):
        return Path(os.environ["TAILSHIP_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "tailship"


def catalog(config_text: str) -> dict:
    """`tailship catalog --config FILE --format json` for this configuration."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tailship.toml"
        path.write_text(config_text)
        out = subprocess.run(
            [str(tailship_bin()), "catalog", "--config", str(path), "--format", "json"],
            capture_output=True, text=True,
        )
    if out.returncode != 0:
        sys.exit(f"tailship catalog --config failed ({tailship_bin()}):\n{out.stderr}")
    return json.loads(out.stdout)


def sink(cat: dict, name: str) -> dict:
    sinks = {s["sink"]: s for s in cat.get("sinks", [])}
    if name not in sinks:
        sys.exit(f"`tailship catalog --config` lists no {name!r} sink (sinks: {sorted(sinks)})")
    return sinks[name]


def kinds(cat: dict) -> dict[str, str]:
    """Catalog name -> "counter" or "gauge"."""
    return {m["name"]: m["kind"] for m in cat["metrics"]}


# ---------------------------------------------------------------- the rendered overlay


def render(overlay: str) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / overlay)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"kubectl kustomize {overlay}:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def rendered_config(objects: list[dict]) -> str:
    maps = [o for o in objects if o["kind"] == "ConfigMap" and "tailship.toml" in o.get("data", {})]
    if len(maps) != 1:
        sys.exit(f"expected one ConfigMap with tailship.toml, found {len(maps)}")
    return maps[0]["data"]["tailship.toml"]


# ---------------------------------------------------------------- HCL


def literal(v):
    """A python-hcl2 value as data if it is a literal, else None (an expression)."""
    if isinstance(v, str):
        if "${" in v:
            return None
        if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            return json.loads(v)
        return v
    return v


def load_dir(d: Path) -> dict[str, dict]:
    return {p.name: hcl2.load(p.open()) for p in sorted(d.glob("*.tf"))}


def blocks(files: dict[str, dict], kind: str):
    """(type, name, body) of every `resource`/`data`/`module` block (name only for modules)."""
    for f in files.values():
        for entry in f.get(kind, []):
            for k1, v1 in entry.items():
                if kind == "module":
                    yield None, literal(k1), v1
                else:
                    for k2, v2 in v1.items():
                        yield literal(k1), literal(k2), v2


def strings(node):
    """Every string in a parsed tree (literals and expression texts), comments left out."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for x in node:
            yield from strings(x)
    elif isinstance(node, dict):
        for k, v in node.items():
            if k == "__comments__":
                continue
            yield k
            yield from strings(v)


def module_inputs(example: Path, module: Path) -> dict:
    files = load_dir(example)
    for _, _, body in blocks(files, "module"):
        src = literal(body.get("source"))
        if src and (example / src).resolve() == module.resolve():
            return {k: literal(v) for k, v in body.items()
                    if not k.startswith("__") and k != "source" and literal(v) is not None}
    sys.exit(f"{example}: no module block with source {module}")


def variables(module: Path) -> dict[str, object]:
    out = {}
    files = load_dir(module)
    for f in files.values():
        for entry in f.get("variable", []):
            for k, body in entry.items():
                out[literal(k)] = literal(body.get("default"))
    return out


def local_names(path: Path) -> list[str]:
    names = []
    for entry in hcl2.load(path.open()).get("locals", []):
        names += [k for k in entry if not k.startswith("__")]
    return names


def evaluate_locals(module: Path, inputs: dict) -> dict:
    """The locals of the module's metrics.tf, evaluated by `terraform console` with `inputs`."""
    names = local_names(module / "metrics.tf")
    declared = variables(module)
    with tempfile.TemporaryDirectory() as tmp:
        for f in ("variables.tf", "metrics.tf"):
            shutil.copy(module / f, tmp)
        args = ["terraform", "console", "-no-color"]
        for k, v in inputs.items():
            if k in declared and isinstance(v, (str, int, float, bool)):
                args += ["-var", f"{k}={json.dumps(v) if isinstance(v, bool) else v}"]
        for k, default in declared.items():
            if default is None and k not in inputs:
                args += ["-var", f"{k}=placeholder"]  # required, not metric-related
        expr = "jsonencode({" + ", ".join(f"{n} = local.{n}" for n in names) + "})\n"
        env = dict(os.environ, TF_CLI_CONFIG_FILE="/dev/null", TF_IN_AUTOMATION="1")
        out = subprocess.run(args, input=expr, capture_output=True, text=True, cwd=tmp, env=env)
    if out.returncode != 0 or not out.stdout.strip():
        sys.exit(f"terraform console on {module}/metrics.tf failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(json.loads(out.stdout.strip()))


# ---------------------------------------------------------------- CloudWatch


def check_aws(p: Problems, where: str, module: Path, inputs: dict, cw: dict, kind: dict[str, str]) -> None:
    published = {m["name"]: {tuple(sorted(d)) for d in m["dimensions"]} for m in cw["metrics"]}
    ns = cw["namespace"]
    ev = evaluate_locals(module, inputs)

    def metric(ctx: str, namespace: str, name: str, dims: dict, stat: str | None) -> None:
        p.check(namespace == ns, f"{ctx}: namespace {namespace!r}, tailship publishes to {ns!r}")
        p.check(name in published, f"{ctx}: {name!r} is not published to CloudWatch")
        if name not in published:
            return
        key = tuple(sorted(dims))
        p.check(key in published[name],
                f"{ctx}: {name} with dimensions {list(key)}: tailship publishes it with {sorted(map(list, published[name]))}")
        if dims.get("path", "*") != "*":
            p.check(dims["path"] in PATHS, f"{ctx}: path={dims['path']!r} is not a tailscaled path")
        if stat:
            ok = COUNTER_STATS if kind.get(name) == "counter" else GAUGE_STATS
            p.check(stat in ok, f"{ctx}: {name} is a {kind.get(name)}, read with {sorted(ok)}, not {stat}")

    alarms = ev["alarm_queries"]
    for alarm, queries in alarms.items():
        ids = {q["id"] for q in queries}
        p.check(sum(q["return_data"] for q in queries) >= 1, f"{where} alarm {alarm}: no query returns data")
        for q in queries:
            ctx = f"{where} alarm {alarm} query {q['id']}"
            if q["metric"]:
                m = q["metric"]
                metric(ctx, m["namespace"], m["metric_name"], m["dimensions"], m["stat"])
            else:
                for word in re.findall(r"\b([a-z_][a-z0-9_]*)\b", q["expression"]):
                    p.check(word in ids, f"{ctx}: {q['expression']!r} names {word!r}, no query of this alarm")

    for i, w in enumerate(ev["dashboard_widgets"]):
        props = w["properties"]
        for row in props.get("metrics", []):
            ctx = f"{where} dashboard widget {i} ({props.get('title')})"
            if isinstance(row[0], str):
                plain = [x for x in row if isinstance(x, str)]
                opts = next((x for x in row if isinstance(x, dict)), {})
                dims = dict(zip(plain[2::2], plain[3::2]))
                metric(ctx, plain[0], plain[1], dims, opts.get("stat", props.get("stat")))
            else:
                expr = row[0].get("expression", "")
                for dims, name in re.findall(r"SEARCH\('\{([^}]*)\}\s*MetricName=\"([^\"]+)\"", expr):
                    parts = [d.strip() for d in dims.split(",")]
                    metric(ctx, parts[0], name, {d: "*" for d in parts[1:]}, None)

    # The resources take what was checked: every alarm reads local.alarm_queries.<its key>.
    files = load_dir(module)
    used = set()
    for rtype, rname, body in blocks(files, "resource"):
        text = json.dumps(body)
        if rtype == "aws_cloudwatch_metric_alarm":
            keys = re.findall(r"local\.alarm_queries\.(\w+)", text)
            p.check(len(set(keys)) == 1, f"{where} alarm {rname}: its metric_query blocks must come from one local.alarm_queries entry")
            used |= set(keys)
            p.check("metric_name" not in text or "metric.value.metric_name" in text,
                    f"{where} alarm {rname}: names a metric itself, outside metrics.tf")
        if rtype == "aws_cloudwatch_dashboard":
            p.check("local.dashboard_widgets" in text, f"{where} dashboard {rname}: not built from local.dashboard_widgets")
    p.check(used == set(alarms), f"{where}: alarms {sorted(used)} vs local.alarm_queries {sorted(alarms)}")
    # The IAM condition names the same namespace.
    iam = json.dumps([b for t, _, b in blocks(files, "data") if t == "aws_iam_policy_document"])
    p.check("cloudwatch:namespace" in iam and "${var.namespace}" in iam,
            f"{where}: the IAM policy must scope PutMetricData with cloudwatch:namespace = var.namespace")
    p.check(inputs.get("namespace", variables(module)["namespace"]) == ns,
            f"{where}: module namespace {inputs.get('namespace')!r}, tailship publishes to {ns!r}")


# ---------------------------------------------------------------- Cloud Monitoring


def promql_name(metric_type: str) -> str:
    """Cloud Monitoring metric type -> PromQL name: the first "/" becomes ":", every other
    character but letters, digits and "_" becomes "_"."""
    domain, _, rest = metric_type.partition("/")
    clean = lambda s: re.sub(r"[^A-Za-z0-9_]", "_", s)  # noqa: E731
    return f"{clean(domain)}:{clean(rest)}"


def check_gcp(p: Problems, where: str, module: Path, inputs: dict, gcm: dict, resource_type: str) -> None:
    published = {m["type"]: m for m in gcm["metrics"]}
    by_promql = {promql_name(t): m for t, m in published.items()}
    ev = evaluate_locals(module, inputs)
    prefix = inputs.get("metric_prefix", variables(module)["metric_prefix"])
    p.check(prefix == gcm["metric_prefix"], f"{where}: module metric_prefix {prefix!r}, tailship writes {gcm['metric_prefix']!r}")
    rtype = inputs.get("resource_type", variables(module)["resource_type"])
    p.check(rtype == resource_type, f"{where}: module resource_type {rtype!r}, the overlay writes {resource_type!r}")
    resource_labels = RESOURCE_LABELS.get(resource_type, set())

    def label_set(ctx: str, m: dict, present: set[str], absent: set[str]) -> None:
        sets = [set(s) for s in m["labels"]]
        fits = [s for s in sets if present <= s and not (absent & s)]
        p.check(len(fits) == 1,
                f"{ctx}: {m['type']} is written with label sets {m['labels']}; the query picks "
                f"{len(fits)} of them (label present {sorted(present)}, absent {sorted(absent)})"
                + ("; aggregate and breakdown share the metric type: say which" if len(fits) > 1 else ""))

    def filter_(ctx: str, flt: str, aligner: str | None) -> None:
        types = re.findall(r'metric\.type\s*=\s*"([^"]+)"', flt)
        p.check(len(types) == 1, f"{ctx}: one metric.type per filter: {flt!r}")
        for rt in re.findall(r'resource\.type\s*=\s*"([^"]+)"', flt):
            p.check(rt == resource_type, f"{ctx}: resource.type {rt!r}, tailship writes {resource_type!r}")
        for t in types:
            m = published.get(t)
            p.check(m is not None, f"{ctx}: {t!r} is not a metric type tailship writes")
            if not m:
                continue
            present = set(re.findall(r"metric\.labels?\.(\w+)", flt))
            label_set(ctx, m, present, set())
            if aligner:
                ok = COUNTER_ALIGNERS if m["kind"] == "CUMULATIVE" else GAUGE_ALIGNERS
                p.check(aligner in ok, f"{ctx}: {t} is {m['kind']}: per_series_aligner {aligner} (use {sorted(ok)})")

    def promql(ctx: str, query: str) -> None:
        selectors = list(re.finditer(r"\b([a-z][a-z0-9]*(?:_[a-z0-9]+)+:[A-Za-z0-9_]+)(\{[^}]*\})?", query))
        p.check(bool(selectors), f"{ctx}: no metric in {query!r}")
        for sel in selectors:
            name, matchers = sel.group(1), sel.group(2) or ""
            m = by_promql.get(name)
            p.check(m is not None, f"{ctx}: {name!r} is not the PromQL name of a metric type tailship writes")
            if not m:
                continue
            present, absent = set(), set()
            for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers):
                if label == "monitored_resource":
                    p.check(op == "=" and value == resource_type, f"{ctx}: monitored_resource {value!r}, tailship writes {resource_type!r}")
                    continue
                if label in resource_labels:
                    continue
                if (op == "=" and value == "") or (op == "!~" and value in (".+", ".*")):
                    absent.add(label)
                elif op in ("=", "=~") or (op == "!=" and value == ""):
                    present.add(label)
            label_set(f"{ctx} {name}", m, present, absent)
            before = query[: sel.start()].rstrip()
            in_rate = bool(re.search(r"\b(rate|irate|increase)\($", before))
            if m["kind"] == "CUMULATIVE":
                p.check(in_rate, f"{ctx}: {name} is CUMULATIVE: read it with rate() or increase()")
            else:
                p.check(not in_rate, f"{ctx}: {name} is a GAUGE: not rate()")
        for labels in re.findall(r"\bby\s*\(([^)]*)\)", query):
            for label in filter(None, (x.strip() for x in labels.split(","))):
                known = resource_labels | {l for s in (m["labels"] for m in published.values()) for ls in s for l in ls}
                p.check(label in known, f"{ctx}: groups by {label!r}, neither a metric nor a resource label")

    for key, q in ev["promql_conditions"].items():
        promql(f"{where} alert {key}", q)
    for key, c in ev["threshold_conditions"].items():
        filter_(f"{where} alert condition {key}", c["filter"], c["per_series_aligner"])
    for key, c in ev["absent_conditions"].items():
        filter_(f"{where} absence condition {key}", c["filter"], c["per_series_aligner"])
    for tile in ev["dashboard"]["mosaicLayout"]["tiles"]:
        w = tile["widget"]
        for ds in w["xyChart"]["dataSets"]:
            promql(f"{where} dashboard chart {w['title']!r}", ds["timeSeriesQuery"]["prometheusQuery"])

    files = load_dir(module)
    for rtype, rname, body in blocks(files, "resource"):
        text = json.dumps(body)
        if rtype == "google_monitoring_alert_policy":
            p.check(re.search(r"local\.(promql|threshold|absent)_conditions", text) is not None,
                    f"{where} alert policy {rname}: its conditions must come from metrics.tf")
            p.check("metric.type" not in text, f"{where} alert policy {rname}: names a metric type itself")
        if rtype == "google_monitoring_dashboard":
            p.check("local.dashboard" in text, f"{where} dashboard {rname}: not built from local.dashboard")


# ---------------------------------------------------------------- everything


def literal_names(p: Problems, where: str, dirs: list[Path], names: set[str]) -> None:
    """Any catalog-looking name written anywhere in the HCL must be published."""
    for d in dirs:
        for fname, tree in load_dir(d).items():
            for s in strings(tree):
                for name in re.findall(r"\btailscale(?:\.[a-z0-9_]+){2,}", s):
                    p.check(name in names, f"{where} {d.name}/{fname}: {name!r} is not a published metric")


def service_account(objects: list[dict]) -> dict:
    sas = [o for o in objects if o["kind"] == "ServiceAccount"]
    if len(sas) != 1:
        sys.exit(f"expected one ServiceAccount, found {len(sas)}")
    return sas[0]


def run(examples: list[Example], module_override: dict[str, Path] | None = None) -> Problems:
    p = Problems()
    for ex in examples:
        where = ex.terraform
        objects = render(ex.overlay)
        config = rendered_config(objects)
        cat = catalog(config)
        module = (module_override or {}).get(ex.module, ROOT / "terraform/modules" / ex.module)
        inputs = module_inputs(ROOT / ex.terraform, ROOT / "terraform/modules" / ex.module)
        sa = service_account(objects)
        annotations = sa["metadata"].get("annotations", {})
        if ex.module == "aws":
            cw = sink(cat, "cloudwatch")
            check_aws(p, where, module, inputs, cw, kinds(cat))
            literal_names(p, where, [ROOT / ex.terraform, module], {m["name"] for m in cw["metrics"]})
            subject = (inputs.get("service_account_namespace"), inputs.get("service_account_name"))
            p.check("eks.amazonaws.com/role-arn" in annotations, f"{ex.overlay}: no IRSA annotation on the ServiceAccount")
        else:
            gcm = sink(cat, "gcm")
            # The overlay is a pod: the sidecar detects k8s_container (tests/deploy.rs shows it).
            check_gcp(p, where, module, inputs, gcm, "k8s_container")
            names = {m["type"].removeprefix(gcm["metric_prefix"]) for m in gcm["metrics"]}
            literal_names(p, where, [ROOT / ex.terraform, module], names)
            subject = (inputs.get("k8s_namespace"), inputs.get("k8s_service_account"))
            p.check("iam.gke.io/gcp-service-account" in annotations, f"{ex.overlay}: no Workload Identity annotation")
        rendered = (sa["metadata"].get("namespace"), sa["metadata"]["name"])
        p.check(subject == rendered, f"{where}: the IAM trusts the service account {subject}, the overlay runs as {rendered}")
    return p


def planted(module: str, old: str, new: str) -> Path:
    """A copy of a module with one metric renamed in metrics.tf."""
    dst = Path(tempfile.mkdtemp(prefix=f"tailship-consistency-{module}-"))
    shutil.copytree(ROOT / "terraform/modules" / module, dst, dirs_exist_ok=True)
    text = (dst / "metrics.tf").read_text()
    assert old in text, f"{old!r} not in {module}/metrics.tf"
    (dst / "metrics.tf").write_text(text.replace(old, new, 1))
    return dst


def main() -> int:
    for tool in ("kubectl", "terraform"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: the consistency test needs it (see README, Development)")
    if not tailship_bin().exists():
        sys.exit(f"{tailship_bin()} does not exist: run `cargo build` first")

    p = run(EXAMPLES)
    for item in p.items:
        print(f"FAIL  {item}")
    print(f"consistency: {p.checked} checks, {len(p.items)} failed")

    # The test has teeth: a renamed metric, a dropped label and a double-counting query fail.
    mutants = [
        ("aws", '"tailscale.bytes.sent.total", dimensions = { path = "derp" }', '"tailscale.bytes.sent", dimensions = { path = "derp" }'),
        ("aws", 'metric_name = "tailscale.health.messages", dimensions = {}', 'metric_name = "tailscale.health.messages", dimensions = { type = "warning" }'),
        ("gcp", "tailscale.packets.sent.dropped.total", "tailscale.packets.sent.drops.total"),
        ("gcp", 'tailscale_bytes_sent_total{${local.on_resource},path=\\"\\"}', "tailscale_bytes_sent_total{${local.on_resource}}"),
    ]
    escaped = 0
    for module, old, new in mutants:
        dst = planted(module, old, new)
        try:
            caught = run([e for e in EXAMPLES if e.module == module], {module: dst}).items
        finally:
            shutil.rmtree(dst)
        if not caught:
            escaped += 1
            print(f"FAIL  a planted change in terraform/modules/{module}/metrics.tf went unnoticed: {old!r} -> {new!r}")
        else:
            print(f"ok    planted in {module}: {new[:60]!r}... caught: {caught[0][:120]}")
    return 1 if p.items or escaped else 0


if __name__ == "__main__":
    sys.exit(main())
