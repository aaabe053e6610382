#!/usr/bin/env python3
"""Renders every kustomization under deploy/k8s with `kubectl kustomize` and validates each
object against the Kubernetes OpenAPI schemas of kubernetes-validate, strictly (an unknown
field is an error), for the oldest and the newest Kubernetes versions supported: 1.29 (native
sidecars, initContainers with restartPolicy: Always, are on by default from 1.29) and 1.37.
Every rendered tailship.toml must be accepted by the built binary. The Tailscale operator's
custom resources (ProxyClass, Connector) have no schema there: the fields the example relies
on are checked by hand.

The rendered manifests are written to target/deploy/<name>.yaml for inspection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ["1.29.0", "1.37.0"]


def crd(obj: dict, objects: list[dict]) -> list[str]:
    """What the operator example needs of its custom resources."""
    kind, name, spec = obj["kind"], obj["metadata"]["name"], obj.get("spec", {})
    if obj.get("apiVersion") != "tailscale.com/v1alpha1":
        return [f"{kind}/{name}: unknown apiVersion {obj.get('apiVersion')}"]
    if kind == "ProxyClass":
        return [] if spec.get("metrics", {}).get("enable") is True else [f"ProxyClass/{name}: spec.metrics.enable must be true"]
    if kind == "Connector":
        classes = {o["metadata"]["name"] for o in objects if o["kind"] == "ProxyClass"}
        return [] if spec.get("proxyClass") in classes else [f"Connector/{name}: spec.proxyClass names no ProxyClass here"]
    return [f"{kind}/{name}: no schema and no hand check"]


def config_problems(config_map: dict) -> list[str]:
    """The ConfigMap's tailship.toml as the binary reads it (`catalog --config` loads and
    validates the whole file: unknown keys, bad values)."""
    binary = Path(os.environ.get("TAILSHIP_BIN") or Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug/tailship")
    if not binary.exists():
        return [f"{binary} does not exist: run `cargo build` first"]
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
        f.write(config_map["data"]["tailship.toml"])
        f.flush()
        r = subprocess.run([str(binary), "catalog", "--config", f.name, "--format", "json"], capture_output=True, text=True)
    name = config_map["metadata"]["name"]
    return [] if r.returncode == 0 else [f"ConfigMap/{name}: tailship.toml refused: {r.stderr.strip()}"]


def main() -> int:
    if shutil.which("kubectl") is None:
        sys.exit("kubectl is not installed: `kubectl kustomize` renders deploy/k8s (see README, Development)")
    out_dir = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "deploy"
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    dirs = sorted(p.parent for p in (ROOT / "deploy/k8s").rglob("kustomization.yaml"))
    for d in dirs:
        rel = d.relative_to(ROOT / "deploy/k8s")
        r = subprocess.run(["kubectl", "kustomize", str(d)], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"FAIL  kubectl kustomize deploy/k8s/{rel}:\n{r.stderr}")
            failures += 1
            continue
        (out_dir / f"{str(rel).replace('/', '-')}.yaml").write_text(r.stdout)
        objects = [o for o in yaml.safe_load_all(r.stdout) if o]
        problems = []
        for obj in objects:
            what = f"{obj['kind']}/{obj['metadata']['name']}"
            for version in VERSIONS:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                except kubernetes_validate.SchemaNotFoundError:
                    problems += crd(obj, objects)
                    break
                except kubernetes_validate.ValidationError as e:
                    path = ".".join(str(x) for x in e.path)
                    problems.append(f"{what} (Kubernetes {version}) at {path}: {e.message}")
        for obj in objects:
            if obj["kind"] == "ConfigMap" and "tailship.toml" in obj.get("data", {}):
                problems += config_problems(obj)
        kinds = ", ".join(sorted({o["kind"] for o in objects}))
        if problems:
            failures += 1
            for p in dict.fromkeys(problems):
                print(f"FAIL  deploy/k8s/{rel}: {p}")
        else:
            print(f"ok    deploy/k8s/{rel}: {len(objects)} objects ({kinds}) valid for Kubernetes {' and '.join(VERSIONS)}")
    print(f"manifests: {len(dirs)} kustomizations, {failures} failed")
    return 1 if failures or not dirs else 0


if __name__ == "__main__":
    sys.exit(main())
