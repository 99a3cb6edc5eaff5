"""Regenerate the locks the golden tests render from (tests/test_render.py).

    python tests/data/locks/make_locks.py

* ``llm-service/``: a copy of examples/llm-service (matrix, requirements, real pinner.lock made by
  pinner against PyPI): the default targets rtx5090 and a100.
* ``cu128/``: an index build, torch 2.11.0+cu128 from the PyTorch index, for an RTX 5090.
* ``extensions/``: an A100 on cu121 (torch 2.5.1+cu121) with flash-attn (prebuilt wheel) and
  with mamba-ssm (source build).

The crafted locks hold the real plans (``plan_target`` with pinner's knowledge) and small
hand-written resolutions with made-up (deterministic) hashes, turned into lock entries by pinner's
own ``build_job`` / ``assemble`` / ``lint_lock`` and written with ``dump_lock``, so every layer,
index and "via" is what pinner would give them. Rerun after a change of the knowledge or of the
lock format, then review ``git diff tests/data/locks tests/golden`` (and refresh the goldens with
``pytest tests/test_render.py --update-golden``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import sys
from pathlib import Path

from pinner import pipeline
from pinner.knowledge import knowledge
from pinner.knowledge.lint import lint_lock
from pinner.load.matrix import load_matrix
from pinner.lock.fingerprint import target_inputs
from pinner.lock.lockfile import dump_lock, new_lock
from pinner.model import File
from pinner.resolve.job import ResolvedPin
from pinner.resolve.resolve import assemble, build_job, normalize_via

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parents[2] / "examples" / "llm-service"

# name -> (version, via); via: "-r <file>" for a requirement of the project, package names, or
# "pinner-job" for the pins pinner adds itself (the torch family and build tools).
Resolution = dict[str, tuple[str, tuple[str, ...]]]

TORCH_DEPS_2_11: Resolution = {
    "filelock": ("3.20.0", ("torch",)),
    "fsspec": ("2025.10.0", ("torch",)),
    "jinja2": ("3.1.6", ("torch",)),
    "markupsafe": ("3.0.3", ("jinja2",)),
    "mpmath": ("1.3.0", ("sympy",)),
    "networkx": ("3.5", ("torch",)),
    "setuptools": ("80.9.0", ("torch",)),
    "sympy": ("1.14.0", ("torch",)),
    "typing-extensions": ("4.15.0", ("torch",)),
}
CU128: Resolution = {
    "torch": ("2.11.0+cu128", ("-r requirements.in", "pinner-job", "torchvision")),
    "torchvision": ("0.26.0+cu128", ("-r requirements.in", "pinner-job")),
    "triton": ("3.6.0", ("torch",)),
    "nvidia-cublas-cu12": ("12.8.4.1", ("nvidia-cudnn-cu12", "torch")),
    "nvidia-cuda-runtime-cu12": ("12.8.90", ("torch",)),
    "nvidia-cudnn-cu12": ("9.10.2.21", ("torch",)),
    "nvidia-nccl-cu12": ("2.27.5", ("torch",)),
    "numpy": ("2.3.5", ("-r requirements.in", "torchvision")),
    "pillow": ("12.0.0", ("torchvision",)),
    **TORCH_DEPS_2_11,
}

TORCH_2_5_1_CU121: Resolution = {
    "torch": ("2.5.1+cu121", ("pinner-job",)),
    "triton": ("3.1.0", ("torch",)),
    "nvidia-cublas-cu12": ("12.1.3.1", ("nvidia-cudnn-cu12", "torch")),
    "nvidia-cuda-runtime-cu12": ("12.1.105", ("torch",)),
    "nvidia-cudnn-cu12": ("9.1.0.70", ("torch",)),
    "nvidia-nccl-cu12": ("2.21.5", ("torch",)),
    "filelock": ("3.20.0", ("torch",)),
    "fsspec": ("2025.10.0", ("torch",)),
    "jinja2": ("3.1.6", ("torch",)),
    "markupsafe": ("3.0.3", ("jinja2",)),
    "mpmath": ("1.3.0", ("sympy",)),
    "networkx": ("3.5", ("torch",)),
    "sympy": ("1.13.1", ("torch",)),
    "typing-extensions": ("4.15.0", ("torch",)),
}
FLASH_ATTN: Resolution = {
    **TORCH_2_5_1_CU121,
    "torch": ("2.5.1+cu121", ("flash-attn", "pinner-job")),
    "flash-attn": ("2.8.3.post1", ("-r flash-attn.in",)),
    "einops": ("0.8.1", ("flash-attn",)),
}
MAMBA: Resolution = {
    **TORCH_2_5_1_CU121,
    "torch": ("2.5.1+cu121", ("mamba-ssm", "pinner-job")),
    "triton": ("3.1.0", ("mamba-ssm", "torch")),
    "mamba-ssm": ("2.3.1", ("-r mamba.in",)),
    "einops": ("0.8.1", ("mamba-ssm",)),
    "ninja": ("1.13.0", ("mamba-ssm", "pinner-job")),
    "packaging": ("25.0", ("huggingface-hub", "mamba-ssm", "pinner-job", "transformers")),
    "setuptools": ("80.9.0", ("mamba-ssm", "pinner-job")),
    "wheel": ("0.45.1", ("pinner-job",)),
    "transformers": ("4.57.1", ("mamba-ssm",)),
    "huggingface-hub": ("0.36.0", ("tokenizers", "transformers")),
    "hf-xet": ("1.2.0", ("huggingface-hub",)),
    "numpy": ("2.3.5", ("transformers",)),
    "pyyaml": ("6.0.3", ("huggingface-hub", "transformers")),
    "regex": ("2025.11.3", ("transformers",)),
    "requests": ("2.32.5", ("huggingface-hub", "transformers")),
    "certifi": ("2025.11.12", ("requests",)),
    "charset-normalizer": ("3.4.4", ("requests",)),
    "idna": ("3.11", ("requests",)),
    "urllib3": ("2.5.0", ("requests",)),
    "safetensors": ("0.6.2", ("transformers",)),
    "tokenizers": ("0.22.1", ("transformers",)),
    "tqdm": ("4.67.1", ("huggingface-hub", "transformers")),
}

PROJECTS: dict[str, tuple[str, dict[str, str], dict[str, Resolution]]] = {
    "cu128": (
        """\
# An index build: torch 2.11.0+cu128 from the PyTorch index (PyPI's 2.11.0 is another build).
[defaults]
python = "3.11"
requirements = ["requirements.in"]

[targets.cu128]
gpu = "RTX 5090"
cuda = "cu128"
torch = "==2.11.0"
""",
        {"requirements.in": "torchvision\nnumpy\n"},
        {"cu128": CU128},
    ),
    "extensions": (
        """\
# Compiled extensions on an A100 with CUDA 12.1: a prebuilt flash-attn wheel, a mamba-ssm source build.
[defaults]
python = "3.11"

[targets.flash-attn-a100]
gpu = "A100"
cuda = "12.1"
requirements = ["flash-attn.in"]

[targets.mamba-a100]
gpu = "A100"
cuda = "12.1"
requirements = ["mamba.in"]
""",
        {"flash-attn.in": "flash-attn\n", "mamba.in": "mamba-ssm\n"},
        {"flash-attn-a100": FLASH_ATTN, "mamba-a100": MAMBA},
    ),
}


def fake_hashes(name: str, version: str, files: int = 2) -> tuple[str, ...]:
    """Deterministic stand-ins for the sha256 of a release's files."""
    return tuple(
        "sha256:" + hashlib.sha256(f"{name}=={version}#{i}".encode()).hexdigest()
        for i in range(files)
    )


def write_project(folder: Path, matrix: str, files: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pinner.toml").write_text(matrix, encoding="utf-8")
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")


def craft_lock(folder: Path, resolutions: dict[str, Resolution]) -> str:
    """pinner.lock text for the project in `folder` from hand-written resolutions."""
    matrix = load_matrix(folder / "pinner.toml", folder)
    digest = knowledge.digest()
    locks, inputs = [], {}
    for target, result in pipeline.plan_all(matrix, list(resolutions)):
        assert result.plan is not None, result.findings
        # the sha256 `pinner lock` records for a prebuilt wheel (it downloads it; made up here)
        plan = dataclasses.replace(
            result.plan,
            extensions=tuple(
                dataclasses.replace(e, sha256=fake_hashes(e.wheel, e.version, 1)[0][7:])
                if e.strategy == "wheel"
                else e
                for e in result.plan.extensions
            ),
        )
        job = build_job(
            plan,
            pipeline.requirements_of(matrix, target),
            folder,
            previous=None,
            upgrade=False,
            offline=True,
        )
        resolved = [
            ResolvedPin(
                name=name,
                version=version,
                files=(
                    File(
                        name="",
                        hashes=fake_hashes(name, version, 1 if name.startswith("nvidia-") else 2),
                    ),
                ),
                source="pytorch"
                if job.torch_index
                and ("+" in version or name in job.routed or name.startswith(("nvidia-", "triton")))
                else "default",
                via=normalize_via(via, folder),
            )
            for name, (version, via) in resolutions[target.name].items()
        ]
        inputs[target.name] = target_inputs(dataclasses.asdict(target), folder, digest)
        tl = assemble(plan, job, resolved, inputs[target.name])
        locks.append(dataclasses.replace(tl, findings=lint_lock(tl)))
    return dump_lock(new_lock(locks, knowledge.load_knowledge().as_of), inputs)


def main() -> int:
    copy = HERE / "llm-service"
    copy.mkdir(exist_ok=True)
    for name in ("pinner.toml", "requirements.in", "pinner.lock"):
        shutil.copyfile(EXAMPLE / name, copy / name)
    for name, (matrix, files, resolutions) in PROJECTS.items():
        folder = HERE / name
        write_project(folder, matrix, files)
        (folder / "pinner.lock").write_text(craft_lock(folder, resolutions), encoding="utf-8")
        print(f"wrote {(folder / 'pinner.lock').relative_to(HERE.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
