"""verify: lock + the running environment -> Report. The checks themselves live in
`verify_checks` (standard library only), whose source every rendered verify_env.py embeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pinner import verify_checks
from pinner.model import TargetLock


def module_name(package: str) -> str:
    """The import name of an extension distribution: flash-attn -> flash_attn."""
    return package.replace("-", "_")


def expected_from_lock(tl: TargetLock) -> dict[str, Any]:
    """What the environment must look like, as plain JSON-able data."""
    plan = tl.plan
    from pinner.knowledge import load_knowledge

    release = load_knowledge().release(plan.torch.version)
    return {
        "target": plan.target.name,
        "python": plan.target.python,
        "platform": plan.target.platform,
        "packages": {p.name: p.version for p in sorted(tl.pins, key=lambda p: p.name)},
        "torch": {
            "version": next((p.version for p in tl.pins if p.name == "torch"), plan.torch.pin),
            "cuda": plan.torch.cuda or None,
            "numpy2": release.numpy2 if release else True,
        },
        "gpu": {"name": plan.gpu_name, "compute_capability": plan.compute_capability}
        if plan.compute_capability
        else None,
        "min_driver": plan.min_driver,
        "extensions": [
            {
                "name": e.name,
                "module": module_name(e.name),
                "version": e.version,
                "build": e.wheel or f"source build against torch {plan.torch.pin}",
            }
            for e in plan.extensions
        ],
    }


def source_text() -> str:
    """The checks, as embedded into verify_env.py (the module docstring is kept)."""
    return Path(verify_checks.__file__).read_text(encoding="utf-8")
