"""A resolver for lock tests that need no index: it answers exactly what the job asks for."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pinner.model import File
from pinner.resolve.job import Job, ResolvedPin

if TYPE_CHECKING:
    from pathlib import Path


class EchoResolver:
    """Resolves a job to exactly what it asks for: its direct pins and the extensions' metadata."""

    name = "echo"

    def __init__(self, cache: Path) -> None:
        del cache

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
        pins = []
        for req in job.direct:
            # "torch==2.5.1+cu121", or a segment "torch>=2.5.0,<=2.5.1": the newest it allows
            name = re.split(r"[<>=!~]", req, maxsplit=1)[0]
            bound = re.search(r"(?:==|<=)([^,]+)", req)
            version = bound.group(1) if bound else "0"
            if job.torch_index and name in job.routed and "+" not in version:
                version += "+" + job.torch_index.rstrip("/").rsplit("/", 1)[-1]  # an index build
            index = job.torch_index if name in job.routed else ""
            pins.append(
                ResolvedPin(
                    name=name,
                    version=version,
                    files=(File(name="", hashes=(f"sha256:{'1' * 64}",)),),
                    source="pytorch" if index else "default",
                    via=("pinner plan",),
                )
            )
        for name, version, requires in job.metadata:
            pins.append(
                ResolvedPin(
                    name=name,
                    version=version,
                    files=(File(name="", hashes=(f"sha256:{'2' * 64}",)),),
                    source="default",
                    via=(f"-r {name}.in",),
                )
            )
            pins += [
                ResolvedPin(
                    name=r,
                    version="0.8.1",
                    files=(File(name="", hashes=(f"sha256:{'3' * 64}",)),),
                    source="default",
                    via=(name,),
                )
                for r in requires
                if r != "torch"
            ]
        return tuple(pins)
