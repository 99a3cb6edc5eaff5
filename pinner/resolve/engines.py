"""The resolver engines by name: uv (the default) or pip-tools. Imported
lazily, so planning never loads an engine it does not run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pinner.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from pinner.resolve.job import Resolver


def get_resolver(name: str, cache: Path) -> Resolver:
    if name == "uv":
        from pinner.resolve.uv import UvResolver

        return UvResolver(cache)
    if name == "pip-tools":
        from pinner.resolve.piptools import PipToolsResolver

        return PipToolsResolver(cache)
    msg = f"--resolver: unknown engine {name!r}; use uv or pip-tools"
    raise ConfigError(msg)
