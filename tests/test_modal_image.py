"""modal_image.py: valid Python that builds, through Modal's Image API, the recipe's layers.

Modal is not installed (and needs an account): a stub `modal` module records the chained calls
of `modal.Image`, and each golden modal_image.py is executed against it.
"""

from __future__ import annotations

import ast
import runpy
import shlex
import sys
import types
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from pinner.render.render import install_steps
from tests.support.recipes import LOCKS, REPO, target_lock

if TYPE_CHECKING:
    from pathlib import Path

GOLDEN = REPO / "tests" / "golden"
MODAL_FILES = sorted(GOLDEN.rglob("modal_image.py"))
IDS = [p.parent.relative_to(GOLDEN).as_posix() for p in MODAL_FILES]


@dataclass
class Recorder:
    """Stands for modal.Image: every method call is recorded and returns the same recorder."""

    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def method(*args: Any, **kwargs: Any) -> Recorder:
            self.calls.append((name, args, kwargs))
            return self

        return method


@pytest.fixture
def modal(monkeypatch):
    image = Recorder()
    stub = types.ModuleType("modal")
    stub.Image = image  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "modal", stub)
    return image


def case(path: Path) -> tuple[str, str, str]:
    lock, folder = path.parent.relative_to(GOLDEN).parts
    installer = "uv" if folder.endswith("-uv") else "pip"
    return lock, folder.removesuffix("-uv"), installer


def flags(options: str) -> set[str]:
    """The flags of a pip command line or of extra_options, file names and paths left out."""
    words = shlex.split(options)
    out = set()
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in ("-c", "-r", "--index-url", "--default-index"):
            out.add(word)
            skip = True
        elif word.startswith("--"):
            out.add(word)
    return out


@pytest.mark.parametrize("path", MODAL_FILES, ids=IDS)
def test_modal_image_parses(path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert "modal" in imported
    assert any(
        isinstance(node, ast.Assign)
        and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["image"]
        for node in tree.body
    )


@pytest.mark.parametrize("path", MODAL_FILES, ids=IDS)
def test_modal_image_builds_the_recipe_layers_in_order(path, modal):
    lock, target, installer = case(path)
    tl = target_lock(LOCKS / lock / "pinner.lock", target)
    plan = tl.plan
    steps = {s.layer: s for s in install_steps(tl, installer)}

    namespace = runpy.run_path(str(path))

    assert namespace["image"] is modal
    names = [name for name, _, _ in modal.calls]
    first, *rest = modal.calls
    assert first == ("from_registry", (plan.base_image,), {"add_python": plan.target.python})
    if plan.apt:
        assert rest[0] == ("apt_install", tuple(plan.apt), {})
    installs = [
        (args, kwargs)
        for name, args, kwargs in modal.calls
        if name == "pip_install_from_requirements"
    ]
    files = [args[0].rsplit("/", 1)[-1] for args, _ in installs]
    expected = ["torch-requirements.txt", "requirements.txt"]
    if plan.extensions:
        expected.append("extensions.txt")
    assert files == expected
    for (args, _), _file in zip(installs, expected, strict=True):
        assert args[0] == str(path.parent / _file)

    torch_kwargs, main_kwargs = installs[0][1], installs[1][1]
    if plan.index_url:
        assert torch_kwargs["index_url"] == plan.index_url
    else:
        assert "index_url" not in torch_kwargs
    assert "index_url" not in main_kwargs
    # the same flags as the Dockerfile's and install.sh's command of each layer
    # (the requirements file is the call's first argument, the index its own keyword)
    assert flags(torch_kwargs["extra_options"]) == flags(steps["torch"].command) - {
        "-r",
        "--index-url",
        "--default-index",
    }
    assert flags(main_kwargs["extra_options"]) >= {"--require-hashes", "-c"}
    assert "/pinner/constraints.txt" in main_kwargs["extra_options"]
    # constraints.txt is in the image before the main layer reads it
    constraints = names.index("add_local_file")
    assert modal.calls[constraints][1][1] == "/pinner/constraints.txt"
    assert constraints < [i for i, n in enumerate(names) if n == "pip_install_from_requirements"][1]
    if plan.extensions:
        ext_kwargs = installs[2][1]
        assert flags(ext_kwargs["extra_options"]) == flags(steps["extensions"].command) - {"-r"}
        ext_at = [i for i, n in enumerate(names) if n == "pip_install_from_requirements"][2]
        if steps["extensions"].env:
            assert modal.calls[ext_at - 1] == ("env", (dict(steps["extensions"].env),), {})
    # the verify command last
    assert modal.calls[-1] == ("run_commands", ("python /pinner/verify_env.py",), {})
    assert modal.calls[-2][0] == "add_local_file"
    assert modal.calls[-2][1][1] == "/pinner/verify_env.py"


def test_mamba_source_build_gets_its_build_environment(modal):
    path = GOLDEN / "extensions" / "mamba-a100" / "modal_image.py"

    runpy.run_path(str(path))

    assert modal.calls[0] == (
        "from_registry",
        ("nvidia/cuda:12.1.1-devel-ubuntu22.04",),
        {"add_python": "3.11"},
    )
    assert modal.calls[1] == ("apt_install", ("build-essential", "ninja-build"), {})
    env = next(args[0] for name, args, _ in modal.calls if name == "env")
    assert env == {
        "CC": "gcc",
        "CXX": "g++",
        "MAMBA_FORCE_BUILD": "TRUE",
        "MAX_JOBS": "4",
        "TORCH_CUDA_ARCH_LIST": "8.0",
    }
