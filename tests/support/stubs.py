"""Stub installed distributions for verify tests: a venv (no pip) whose site-packages holds
`.dist-info` metadata and small Python packages shaped like the real ones (PyPI's torch is
distribution 2.15.0 with `torch.__version__ == "2.15.0+cu132"`). Stdlib only; fast.
"""

from __future__ import annotations

import re
import subprocess
import textwrap
import venv
from pathlib import Path

# A stub torch. Knobs (module-level constants in torch/_stub.py):
# GPUS: [(name, (major, minor))]; ERRORS: {"alloc"|"matmul"|"sync"|"init": message}.
TORCH_INIT = """
__version__ = {version!r}
from torch import version, cuda, ops
float16, bfloat16 = "float16", "bfloat16"

class device:
    def __init__(self, kind, index=0):
        self.kind, self.index = kind, index

class Tensor:
    def __init__(self, dtype):
        self.dtype = dtype
    def __matmul__(self, other):
        cuda._fail("matmul")
        return Tensor(self.dtype)
    def to(self, dtype):
        return Tensor(dtype)
    def sum(self):
        return self
    def item(self):
        return 0.0

def ones(*shape, device=None, dtype=None):
    cuda._fail("alloc")
    return Tensor(dtype)

randn = ones
"""
TORCH_CUDA = """
import warnings
from torch import _stub

def _fail(step):
    message = _stub.ERRORS.get(step)
    if message == "HANG":
        import time
        time.sleep(600)
    if message:
        raise RuntimeError(message)

def is_available():
    if "init" in _stub.ERRORS:
        warnings.warn("CUDA initialization: " + _stub.ERRORS["init"])
        return False
    return bool(_stub.GPUS)

def device_count():
    return len(_stub.GPUS)

def get_device_name(i=0):
    return _stub.GPUS[i][0]

def get_device_capability(i=0):
    return _stub.GPUS[i][1]

def get_arch_list():
    return list(_stub.ARCHES)

def synchronize(device=None):
    _fail("sync")
"""


def site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def make_env(root: Path) -> Path:
    """An empty venv (no pip); returns its python."""
    venv.create(root, with_pip=False)
    return root / "bin" / "python"


def add_dist(site: Path, name: str, version: str, files: dict[str, str] | None = None) -> None:
    """An installed distribution: METADATA (+ RECORD) and the given files (path -> text)."""
    component = re.sub(r"[-_.]+", "_", name).lower()
    info = site / f"{component}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n", encoding="utf-8"
    )
    (info / "INSTALLER").write_text("stub\n", encoding="utf-8")
    for rel, text in (files or {}).items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def add_torch(
    site: Path,
    dist: str,
    shown: str,
    cuda: str | None,
    *,
    gpus: list[tuple[str, tuple[int, int]]] | None = None,
    errors: dict[str, str] | None = None,
    arches: tuple[str, ...] = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"),
) -> None:
    """A stub torch distribution `dist` whose module reports `shown` and torch.version.cuda."""
    add_dist(
        site,
        "torch",
        dist,
        {
            "torch/__init__.py": TORCH_INIT.format(version=shown),
            "torch/version.py": f"cuda = {cuda!r}\n",
            "torch/cuda/__init__.py": TORCH_CUDA,
            "torch/ops.py": "def load_library(path):\n    import ctypes\n    ctypes.CDLL(path)\n",
            "torch/_stub.py": f"GPUS = {gpus or []!r}\nERRORS = {errors or {}!r}\n"
            f"ARCHES = {arches!r}\n",
        },
    )


def set_stub(site: Path, **knobs: object) -> None:
    """Change the stub torch's knobs (GPUS, ERRORS, ARCHES) in place."""
    path = site / "torch" / "_stub.py"
    lines = dict(ln.split(" = ", 1) for ln in path.read_text(encoding="utf-8").splitlines())
    lines.update({k: repr(v) for k, v in knobs.items()})
    path.write_text("".join(f"{k} = {v}\n" for k, v in lines.items()), encoding="utf-8")


def compile_so(path: Path, *, calls: str = "", needs: str = "") -> Path:
    """A real shared library at `path` (cc): `calls` names an undefined function it calls (dlopen
    then fails with 'undefined symbol'); `needs` a soname it links against that will not exist
    (dlopen fails with '<needs>: cannot open shared object file')."""
    work = path.parent / f".build-{path.name}"
    work.mkdir(parents=True, exist_ok=True)
    body = (
        f"extern void {calls}(int);\nvoid pinner_stub(void) {{ {calls}(0); }}\n"
        if calls
        else ("int pinner_stub(void) { return 0; }\n")
    )
    (work / "lib.c").write_text(body, encoding="utf-8")
    cmd = ["cc", "-shared", "-fPIC", "-o", str(path), str(work / "lib.c")]
    if needs:
        (work / "dep.c").write_text("int pinner_dep(void) { return 0; }\n", encoding="utf-8")
        dep = work / needs
        subprocess.run(
            ["cc", "-shared", "-fPIC", f"-Wl,-soname,{needs}", "-o", str(dep), str(work / "dep.c")],
            check=True,
        )
        cmd += ["-Wl,--no-as-needed", f"-L{work}", f"-l:{needs}"]
    subprocess.run(cmd, check=True)
    for item in work.iterdir():
        item.unlink()
    work.rmdir()
    return path


def add_loads(site: Path, loads: list[dict[str, object]]) -> None:
    """Make each verify load spec pass: its modules as .py files, its first library compiled."""
    for spec in loads:
        if spec["library"]:
            package = site / str(spec["dir"]) / "__init__.py"
            package.parent.mkdir(parents=True, exist_ok=True)
            package.touch()
        for module in spec["import"]:  # type: ignore[attr-defined]
            parts = str(module).split(".")
            for i in range(1, len(parts)):
                init = site.joinpath(*parts[:i], "__init__.py")
                if not init.exists():
                    init.parent.mkdir(parents=True, exist_ok=True)
                    init.write_text("", encoding="utf-8")
            path = site.joinpath(*parts)
            if not (path / "__init__.py").exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.with_suffix(".py").write_text("", encoding="utf-8")
        libraries = list(spec["library"])  # type: ignore[call-overload]
        if libraries:
            target = site / str(spec["dir"]) / str(libraries[0])
            target.parent.mkdir(parents=True, exist_ok=True)
            compile_so(target)
