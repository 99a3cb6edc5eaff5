"""A resolver for lock tests that need no index: it answers exactly what the job asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pinner.resolve import Job, ResolvedPin

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
            name, _, version = req.partition("==")
            index = job.torch_index if name in job.routed else ""
            pins.append(
                ResolvedPin(
                    name=name,
                    version=version,
                    hashes=(f"sha256:{'1' * 64}",),
                    index=index,
                    via=("pinner-job",),
                )
            )
        for name, version, requires in job.metadata:
            pins.append(
                ResolvedPin(
                    name=name,
                    version=version,
                    hashes=(f"sha256:{'2' * 64}",),
                    index="",
                    via=(f"-r {name}.in",),
                )
            )
            pins += [
                ResolvedPin(
                    name=r, version="0.8.1", hashes=(f"sha256:{'3' * 64}",), index="", via=(name,)
                )
                for r in requires
                if r != "torch"
            ]
        return tuple(pins)
