"""sbom: TargetLock -> CycloneDX 1.6 JSON (`pinned/<target>/sbom.cdx.json`).

One component per locked package: purl `pkg:pypi/<name>@<version>` (`+` percent-encoded as
%2B by packageurl), `?repository_url=` for packages from the PyTorch index and
`?download_url=` for a direct wheel, the lock's hashes, and its install layer. The target is the
BOM's metadata component, and the plan (GPU, compute capability, CUDA, minimum driver, images)
its properties; `dependencies` follow the lock's "via". Byte-identical for the same lock: the
serial number is a uuid5 of the target's lock section, there is no timestamp, every `bom-ref` is
the purl and every list is sorted. cyclonedx-python-lib is imported here only (render time).
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from pinner.lock.fingerprint import sha256

if TYPE_CHECKING:
    from packageurl import PackageURL

    from pinner.model import Pin, TargetLock

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://pypi.org/project/pinner/")
ROOT_VIA = ("-r ", "pinner plan")  # a pin the project itself (or pinner's plan) asked for


def purl(pin: Pin, torch_index: str = "") -> PackageURL:
    """The package URL of a locked package; `torch_index` is the committed PyTorch index its
    `pytorch` files come from."""
    from packageurl import PackageURL

    qualifiers = {}
    if pin.source == "pytorch" and torch_index:
        qualifiers["repository_url"] = torch_index.rstrip("/")
    elif pin.source == "url" and pin.url.startswith(("https://", "http://")):
        qualifiers["download_url"] = pin.url
    return PackageURL(
        type="pypi", name=pin.name, version=pin.version, qualifiers=qualifiers or None
    )


def plan_properties(tl: TargetLock, images: dict[str, str]) -> list[tuple[str, str]]:
    """The target's plan as (name, value) pairs; empty values left out."""
    plan = tl.plan
    pairs = [
        ("pinner:target", plan.target.name),
        ("pinner:gpu", plan.gpu_name),
        ("pinner:compute-capability", plan.compute_capability),
        ("pinner:cuda", plan.torch.cuda or "none (CPU build)"),
        ("pinner:torch", plan.torch.pin),
        ("pinner:torch-variant", plan.torch.variant),
        ("pinner:driver-minimum", plan.min_driver),
        ("pinner:python", plan.target.python),
        ("pinner:platform", plan.target.platform),
        ("pinner:base-image", images.get("base", "")),
        ("pinner:uv-image", images.get("uv", "")),
    ]
    return [(k, v) for k, v in pairs if v]


def document(tl: TargetLock, *, section: str, images: dict[str, str]) -> dict[str, Any]:
    """The SBOM of one target as a JSON object (not yet sealed); `section` is the target's raw
    text in pinner.lock, `images` the recipe's `base` and `uv` image references."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.bom_ref import BomRef
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6

    name = tl.plan.target.name
    bom = Bom(serial_number=uuid.uuid5(NAMESPACE, f"pinner.lock {name} {sha256(section)}"))
    root = Component(
        name=name,
        type=ComponentType.APPLICATION,
        bom_ref=BomRef(f"pinner-target:{name}"),
        description=f"pinner target {name}",
    )
    bom.metadata.component = root
    for key, value in plan_properties(tl, images):
        bom.metadata.properties.add(Property(name=key, value=value))
    components: dict[str, Component] = {}
    for pin in sorted(tl.pins, key=lambda p: p.name):
        ref = purl(pin, tl.plan.index_url)
        components[pin.name] = Component(
            name=pin.name,
            version=pin.version,
            type=ComponentType.LIBRARY,
            purl=ref,
            bom_ref=BomRef(str(ref)),
            hashes=[
                HashType(alg=HashAlgorithm.SHA_256, content=h.removeprefix("sha256:"))
                for h in sorted(pin.hashes)
                if h.startswith("sha256:")
            ],
            properties=[Property(name="pinner:layer", value=pin.layer)],
        )
        bom.components.add(components[pin.name])
    direct, children = _graph(tl, components)
    bom.register_dependency(root, [components[n] for n in sorted(direct)])
    for parent, kids in sorted(children.items()):
        bom.register_dependency(components[parent], [components[n] for n in sorted(kids)])
    doc: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    doc.get("metadata", {}).pop("timestamp", None)  # the same lock gives the same bytes
    return _sorted(doc)


def _graph(tl: TargetLock, known: dict[str, Any]) -> tuple[set[str], dict[str, set[str]]]:
    """(packages the project or the plan asked for, parent -> children) from the lock's via."""
    direct: set[str] = set()
    children: dict[str, set[str]] = {}
    for pin in tl.pins:
        if not pin.via:
            direct.add(pin.name)
        for via in pin.via:
            parent = via.split()[0] if via else ""
            if via.startswith(ROOT_VIA) or parent not in known:
                direct.add(pin.name)
            elif parent != pin.name:
                children.setdefault(parent, set()).add(pin.name)
    return direct, children


def _sorted(doc: dict[str, Any]) -> dict[str, Any]:
    """Lists in a fixed order whatever the library's: components and dependencies by ref."""
    doc["components"] = sorted(doc.get("components", []), key=lambda c: c["bom-ref"])
    doc["dependencies"] = sorted(doc.get("dependencies", []), key=lambda d: d["ref"])
    for dep in doc["dependencies"]:
        if "dependsOn" in dep:
            dep["dependsOn"] = sorted(dep["dependsOn"])
    return doc
