"""cluster/: launcher YAMLs against Ray's own schema, KubeRay manifests against the real CRDs."""

from __future__ import annotations

import functools
import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from rayir.cli import main
from tests.conftest import shared_path

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
LAUNCHERS = ["aws.yaml", "gcp.yaml"]
KUBERAY = {"kuberay/raycluster.yaml": "ray.io_rayclusters.yaml", "kuberay/rayjob.yaml": "ray.io_rayjobs.yaml"}


def test_every_cluster_file_is_checked_here():
    files = {p.relative_to(CLUSTER).as_posix() for p in CLUSTER.rglob("*") if p.is_file()}
    assert files == {*LAUNCHERS, *KUBERAY, "Dockerfile", "README.md"}


@pytest.mark.parametrize("name", LAUNCHERS)
def test_launcher_config_is_valid_for_ray(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CLUSTER / name).read_text())
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    validate_config(prepare_config(config))  # what `ray up` runs before it launches anything
    nodes = config["available_node_types"]
    assert nodes[config["head_node_type"]]["resources"]["CPU"] == 0
    assert any(node["resources"].get("GPU", 0) >= 1 for node in nodes.values())
    assert any(node["resources"].get("index_shard", 0) >= 1 for node in nodes.values())
    assert config["docker"]["image"].startswith(f"rayproject/ray:{ray.__version__}-")
    assert any("RAY_AUTH_MODE=token" in command for command in config["head_start_ray_commands"])


@functools.cache
def _crd(crd_file: str) -> dict:
    """A CRD file, read once (1-1.4 MB of YAML: libyaml's loader takes 0.5 s, the pure-Python one
    ~6 s); callers only read it."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(shared_path("schemas", "kuberay", crd_file).read_text(), Loader=loader)


def _crd_schema(crd_file: str, api_version: str) -> dict:
    crd = _crd(crd_file)
    version = api_version.split("/")[1]
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    return entry["schema"]["openAPIV3Schema"]


def _pruned_fields(value, schema: dict, path: str = "") -> list[str]:
    """Fields Kubernetes would silently drop (structural-schema pruning): each one is a typo."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found: list[str] = []
    if isinstance(value, dict):
        properties, extra = schema.get("properties"), schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                found += _pruned_fields(item, properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                found += _pruned_fields(item, extra, f"{path}.{key}")
            elif properties is not None:
                found.append(f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            found += _pruned_fields(item, schema["items"], f"{path}[{i}]")
    return found


@pytest.mark.parametrize("name", sorted(KUBERAY))
def test_kuberay_manifest_matches_crd(name):
    manifest = yaml.safe_load((CLUSTER / name).read_text())
    schema = _crd_schema(KUBERAY[name], manifest["apiVersion"])
    jsonschema.validate(manifest, schema)
    assert _pruned_fields(manifest, schema) == []
    cluster_spec = manifest["spec"].get("rayClusterSpec", manifest["spec"])
    assert cluster_spec["rayVersion"] == ray.__version__
    assert cluster_spec["authOptions"]["mode"] == "token"


def test_pruning_check_catches_a_misspelt_field():
    manifest = yaml.safe_load((CLUSTER / "kuberay/raycluster.yaml").read_text())
    manifest["spec"]["workerGroupSpecs"][0]["maxReplica"] = 4
    schema = _crd_schema(KUBERAY["kuberay/raycluster.yaml"], manifest["apiVersion"])
    jsonschema.validate(manifest, schema)  # the CRD schema alone accepts it...
    assert _pruned_fields(manifest, schema) == [".spec.workerGroupSpecs[0].maxReplica"]  # ...pruning does not


def test_rayjob_entrypoint_parses_with_the_rayir_parser(capsys):
    manifest = yaml.safe_load((CLUSTER / "kuberay/rayjob.yaml").read_text())
    words = shlex.split(manifest["spec"]["entrypoint"])
    assert words[:2] == ["python", "/home/ray/rayir/jobs/index.py"]
    args = [word.replace("/home/ray/rayir/", f"{ROOT}/") for word in words[2:]]
    with pytest.raises(SystemExit) as exit_info:
        main(["index", *args, "--print_config"])
    assert exit_info.value.code in (0, None)
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["encoding"]["gpus_per_encoder"] == 1 and resolved["output"].startswith("/mnt/rayir/")


def test_dockerfile_builds_on_the_pinned_ray_image():
    text = (CLUSTER / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", text, re.M).group(1)
    assert base == f"rayproject/ray:{ray.__version__}-py311-gpu"
    images = {image for name in KUBERAY for image in re.findall(r"image: (\S+)", (CLUSTER / name).read_text())}
    assert len(images) == 1  # one rayir image everywhere, the one the README says to build
    assert images.pop() in (CLUSTER / "README.md").read_text()
