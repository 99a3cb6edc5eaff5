"""pinned/<target>/sbom.cdx.json: CycloneDX 1.6, valid against the schema, one component per
locked package, the plan as properties, the same bytes for the same lock, checked by
`pinner check` (issue 15 items 2 and 5)."""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from pinner.cli import main
from pinner.lock import fingerprint
from pinner.model import Pin
from pinner.render.render import render_target
from pinner.render.sbom import NAMESPACE, purl
from tests.support.recipes import LOCKS, copy_project, render_lock, target_lock

if TYPE_CHECKING:
    from pinner.model import TargetLock

CASES = [
    ("llm-service", "rtx5090"),
    ("llm-service", "a100"),
    ("cu128", "cu128"),
    ("extensions", "flash-attn-a100"),
    ("extensions", "mamba-a100"),
]


def sbom_text(lock: str, target: str, installer: str = "pip") -> str:
    (art,) = [
        a
        for a in render_lock(LOCKS / lock / "pinner.lock", installer)[target]
        if a.path.name == "sbom.cdx.json"
    ]
    return art.text


def properties(doc: dict[str, Any]) -> dict[str, str]:
    return {p["name"]: p["value"] for p in doc["metadata"]["properties"]}


@pytest.mark.parametrize(("lock", "target"), CASES)
def test_sbom_is_valid_cyclonedx_1_6_with_one_component_per_locked_package(lock, target):
    text = sbom_text(lock, target)
    doc = json.loads(text)
    tl = target_lock(LOCKS / lock / "pinner.lock", target)

    validator = JsonStrictValidator(SchemaVersion.V1_6)
    assert validator.validate_str(text) is None
    broken = json.loads(text)
    broken["components"][0]["hashes"] = [{"alg": "SHA-256", "content": "not-hex"}]
    assert validator.validate_str(json.dumps(broken)) is not None  # the validator does check
    assert (doc["bomFormat"], doc["specVersion"], doc["version"]) == ("CycloneDX", "1.6", 1)
    refs = [c["bom-ref"] for c in doc["components"]]
    assert refs == sorted(refs)
    assert len(refs) == len(tl.pins) == len(set(refs))
    by_name = {c["name"]: c for c in doc["components"]}
    for pin in tl.pins:
        component = by_name[pin.name]
        assert component["version"] == pin.version
        assert component["bom-ref"] == component["purl"] == str(purl(pin, tl.plan.index_url))
        assert [f"sha256:{h['content']}" for h in component.get("hashes", [])] == sorted(pin.hashes)
        assert component["properties"] == [{"name": "pinner:layer", "value": pin.layer}]
    assert "timestamp" not in doc["metadata"]
    assert doc["metadata"]["component"]["bom-ref"] == f"pinner-target:{target}"


def test_index_builds_carry_the_repository_url_and_an_encoded_plus():
    doc = json.loads(sbom_text("cu128", "cu128"))
    by_name = {c["name"]: c for c in doc["components"]}

    assert by_name["torch"]["purl"] == (
        "pkg:pypi/torch@2.11.0%2Bcu128?repository_url=https://download.pytorch.org/whl/cu128"
    )
    assert by_name["torch"]["version"] == "2.11.0+cu128"
    assert by_name["nvidia-cublas-cu12"]["purl"].endswith(
        "?repository_url=https://download.pytorch.org/whl/cu128"
    )
    assert by_name["numpy"]["purl"] == "pkg:pypi/numpy@2.3.5"  # PyPI: the purl default


def test_a_prebuilt_extension_wheel_carries_its_download_url_and_hash():
    doc = json.loads(sbom_text("extensions", "flash-attn-a100"))
    (flash,) = [c for c in doc["components"] if c["name"] == "flash-attn"]
    tl = target_lock(LOCKS / "extensions" / "pinner.lock", "flash-attn-a100")
    (ext,) = tl.plan.extensions

    assert flash["purl"] == (
        "pkg:pypi/flash-attn@2.8.3.post1?download_url=" + ext.url.replace("+", "%2B")
    )
    assert flash["hashes"] == [{"alg": "SHA-256", "content": ext.sha256}]
    assert flash["properties"] == [{"name": "pinner:layer", "value": "extension"}]


def test_the_plan_is_in_the_metadata_properties():
    doc = json.loads(sbom_text("cu128", "cu128"))
    props = properties(doc)
    tl = target_lock(LOCKS / "cu128" / "pinner.lock", "cu128")

    assert {k: v for k, v in props.items() if k not in ("pinner:seal", "pinner:generated")} == {
        "pinner:target": "cu128",
        "pinner:gpu": tl.plan.gpu_name,
        "pinner:compute-capability": "12.0",
        "pinner:cuda": "12.8",
        "pinner:torch": "2.11.0+cu128",
        "pinner:torch-variant": "cu128",
        "pinner:driver-minimum": tl.plan.min_driver,
        "pinner:python": "3.11",
        "pinner:platform": "linux-x86_64",
        "pinner:base-image": tl.plan.base_image,
        "pinner:uv-image": "ghcr.io/astral-sh/uv:0.13.9",
    }
    assert tl.plan.base_image.startswith("nvidia/cuda:12.8")


def test_dependencies_follow_the_lock():
    doc = json.loads(sbom_text("cu128", "cu128"))
    graph = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    refs = {c["name"]: c["bom-ref"] for c in doc["components"]}

    assert refs["torchvision"] in graph["pinner-target:cu128"]  # -r requirements.in
    assert refs["numpy"] in graph["pinner-target:cu128"]
    assert refs["pillow"] in graph[refs["torchvision"]]
    assert refs["nvidia-cudnn-cu12"] in graph[refs["torch"]]
    assert refs["nvidia-cublas-cu12"] in graph[refs["nvidia-cudnn-cu12"]]
    assert all(v == sorted(v) for v in graph.values())


def test_the_same_lock_gives_the_same_bytes_and_another_lock_another_serial():
    lock = LOCKS / "cu128" / "pinner.lock"
    section = fingerprint.lock_sections(lock.read_text())["cu128"]
    tl = target_lock(lock, "cu128")

    def sbom(tl: TargetLock, section: str) -> str:
        arts = render_target(tl, section=section, source="pinner.toml")
        return next(a.text for a in arts if a.path.name == "sbom.cdx.json")

    first = sbom(tl, section)
    assert sbom(tl, section) == first
    doc = json.loads(first)
    expected = uuid.uuid5(NAMESPACE, f"pinner.lock cu128 {fingerprint.sha256(section)}")
    assert doc["serialNumber"] == f"urn:uuid:{expected}"
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", first)  # no timestamp anywhere

    bumped = dataclasses.replace(
        tl,
        pins=tuple(
            dataclasses.replace(p, version="2.3.6") if p.name == "numpy" else p for p in tl.pins
        ),
    )
    other = json.loads(sbom(bumped, section.replace('"2.3.5"', '"2.3.6"')))
    assert other["serialNumber"] != doc["serialNumber"]


def test_the_seal_is_a_property_over_the_canonical_json():
    text = sbom_text("cu128", "cu128", "uv")
    props = properties(json.loads(text))

    assert props["pinner:generated"] == (
        "Generated by pinner from pinner.toml (target cu128). Do not edit. "
        "Regenerate: pinner generate --target cu128 --installer uv"
    )
    parsed = fingerprint.unseal(text)
    assert parsed is not None
    fields, body = parsed
    assert fields["target"] == "cu128"
    assert fields["installer"] == "uv"
    assert fields["body"] == fingerprint.sha256(body)
    assert "pinner:seal" not in body
    assert "pinner:generated" not in body
    assert text == fingerprint.canonical_json(json.loads(text))


def test_purl_of_a_pin_without_index_is_plain():
    pin = Pin(name="typing-extensions", version="4.15.0", source="default", layer="main", via=())
    assert str(purl(pin)) == "pkg:pypi/typing-extensions@4.15.0"


# -- pinner check covers the SBOM -----------------------------------------------------------------


@pytest.fixture
def generated(tmp_path, monkeypatch):
    root = copy_project("cu128", tmp_path / "cu128")
    monkeypatch.chdir(root)
    assert main(["generate", "--frozen"]) == 0
    return root


def test_check_finds_a_hand_edited_sbom(generated, capsys):
    path = generated / "pinned" / "cu128" / "sbom.cdx.json"
    assert main(["check"]) == 0
    path.write_text(path.read_text().replace('"2.3.5"', '"2.3.4"'))
    capsys.readouterr()

    assert main(["check"]) == 1
    assert "pinned/cu128/sbom.cdx.json: edited by hand" in capsys.readouterr().err


def test_check_finds_a_missing_or_unsealed_sbom(generated, capsys):
    path = generated / "pinned" / "cu128" / "sbom.cdx.json"
    doc = json.loads(path.read_text())
    doc["metadata"]["properties"] = [
        p for p in doc["metadata"]["properties"] if p["name"] != "pinner:seal"
    ]
    path.write_text(json.dumps(doc))
    capsys.readouterr()

    assert main(["check"]) == 1
    assert "pinned/cu128/sbom.cdx.json: not generated by pinner (no header)" in (
        capsys.readouterr().err
    )
    path.unlink()
    assert main(["check"]) == 1
    assert "pinned/cu128/sbom.cdx.json: missing" in capsys.readouterr().err
    assert main(["generate", "--frozen"]) == 0
    assert main(["check"]) == 0
