"""verify: the running environment vs what pinner.lock says -> a list of results.

Standard library only, and no pinner imports: this file's source is embedded in every rendered
verify_env.py, so a built image needs no pinner to check itself; `pinner verify` runs the same code.
Checks that need a GPU say "not checked: no GPU" when none is visible (as in `docker build`); they
fail for it only when the caller requires a GPU (--gpu).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from typing import Any

OK, FAIL, SKIP, WARN = "ok", "FAIL", "skip", "warn"
SHOWN = 8  # report() lists this many wrong packages, then summarises the rest
# `"schema"` of verify_env.py --json: pinner.console.JSON_SCHEMA, which this file cannot import
# (a test keeps them equal; docs/json.md)
JSON_SCHEMA = 1
NO_GPU = "not checked: no GPU"
MACHINES = {
    "x86_64": "linux-x86_64",
    "amd64": "linux-x86_64",
    "aarch64": "linux-aarch64",
    "arm64": "linux-aarch64",
}
PROBE = """
import json, sys, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import torch
    available = bool(torch.cuda.is_available())
info = {"version": torch.__version__, "cuda": torch.version.cuda, "available": available,
        "warnings": [str(w.message) for w in caught if "CUDA" in str(w.message)]}
try:
    if available:
        info["arch_list"] = list(torch.cuda.get_arch_list())
        info["capability"] = "%d.%d" % tuple(torch.cuda.get_device_capability(0))
        info["name"] = torch.cuda.get_device_name(0)
        info["count"] = torch.cuda.device_count()
except Exception as e:
    info["gpu_error"] = type(e).__name__ + ": " + str(e)
info["companions"] = {}
for name in json.loads(sys.argv[1]):
    try:
        info["companions"][name] = str(__import__(name).__version__)
    except Exception as e:
        info["companions"][name] = "!" + type(e).__name__ + ": " + (str(e).splitlines() or [""])[0]
print("PINNER-PROBE" + json.dumps(info))
"""
COMPANIONS = ("torchvision", "torchaudio")
SMOKE_TIMEOUT = 300  # seconds for the whole GPU smoke test (a hung GPU or driver fails it)
# On each visible GPU: allocate, one float16 matmul (bfloat16 too from compute capability 8.0),
# synchronize; then one real call of each extension verify knows a cheap call for.
SMOKE = """
import json, sys
import torch

def error(e):
    return type(e).__name__ + ": " + str(e)

def flash_attn():
    from flash_attn import flash_attn_func
    q = torch.randn(1, 16, 2, 64, device="cuda", dtype=torch.float16)
    flash_attn_func(q, q, q).sum().item()

def bitsandbytes():
    import bitsandbytes as bnb
    layer = bnb.nn.Linear8bitLt(64, 64, bias=False, has_fp16_weights=False).to("cuda")
    layer(torch.randn(4, 64, device="cuda", dtype=torch.float16)).sum().item()

CALLS = {"flash-attn": flash_attn, "bitsandbytes": bitsandbytes}
gpus, calls = [], []
for i in range(torch.cuda.device_count()):
    cap = tuple(torch.cuda.get_device_capability(i))
    done, step = [], "allocate"
    entry = {"index": i, "name": torch.cuda.get_device_name(i), "capability": "%d.%d" % cap}
    try:
        dev = torch.device("cuda", i)
        a = torch.ones(64, 64, device=dev, dtype=torch.float16)
        step = "float16 matmul"
        (a @ a).sum().item()
        done.append("float16")
        if cap >= (8, 0):
            step = "bfloat16 matmul"
            b = a.to(torch.bfloat16)
            (b @ b).sum().item()
            done.append("bfloat16")
        step = "synchronize"
        torch.cuda.synchronize(dev)
    except Exception as e:
        entry["error"], entry["step"] = error(e), step
    entry["done"] = done
    gpus.append(entry)
for name in json.loads(sys.argv[1]):
    try:
        CALLS[name]()
        torch.cuda.synchronize()
        calls.append({"name": name})
    except Exception as e:
        calls.append({"name": name, "error": error(e)})
print("PINNER-SMOKE" + json.dumps({"gpus": gpus, "calls": calls}))
"""
SMOKE_CALLS = ("flash-attn", "bitsandbytes")
LOAD_TIMEOUT = 300
# Loads one package's compiled part after `import torch` (spec: one entry of expected["loads"]).
LOAD = """
import ctypes, importlib, importlib.util, json, os, sys
spec = json.loads(sys.argv[1])
done = []
try:
    import torch
except Exception:
    pass
try:
    for name in spec["import"]:
        importlib.import_module(name)
        done.append(name)
    if spec["library"]:
        found_spec = importlib.util.find_spec(spec["dir"])
        where = (found_spec.submodule_search_locations or [os.path.dirname(found_spec.origin)])[0]
        paths = [os.path.join(where, lib) for lib in spec["library"]]
        found = [p for p in paths if os.path.exists(p)]
        if not found:
            raise FileNotFoundError("no " + " or ".join(spec["library"]) + " in " + where)
        errors = []
        for path in found:
            try:
                ctypes.CDLL(path)
                done.append(os.path.basename(path))
                break
            except OSError as e:
                errors.append(str(e))
        else:
            raise OSError(errors[0])
except BaseException as e:
    print("PINNER-LOAD" + json.dumps({"done": done, "error": type(e).__name__ + ": " + str(e)}))
    sys.exit(0)
print("PINNER-LOAD" + json.dumps({"done": done}))
"""
CUDA_LIBS = (
    r"(?:cudart|cublas|cublasLt|cudnn\w*|cufft|curand|cusolver|cusparse|nvrtc|nvJitLink|nccl)"
)
# CUDA errors that mean one thing each: (pattern, what it means and what to do).
CUDA_ERRORS = (
    (
        r"no kernel image is available",
        (
            "no kernel image is available for execution on the device: this build has no code for "
            "this GPU's architecture; lock a build for it (`pinner explain` shows the arch rule)"
        ),
    ),
    (
        r"driver version is insufficient|driver on your system is too old",
        (
            "CUDA driver version is insufficient for CUDA runtime version: driver {driver} is too "
            "old for this build's CUDA {cuda}; install driver >= {min_driver} or lock an older CUDA"
        ),
    ),
    (
        r"forward compatibility was attempted on non supported HW",
        (
            "forward compatibility was attempted on non supported HW: the image's cuda-compat "
            "libraries need a data-center GPU; use a base image this driver runs natively"
        ),
    ),
    (
        r"out of memory",
        (
            "out of memory: the GPU has no room for a 64x64 matrix; another process holds its "
            "memory (nvidia-smi lists them)"
        ),
    ),
)


def _result(status: str, check: str, message: str) -> dict[str, str]:
    return {"status": status, "check": check, "message": message}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed() -> dict[str, str]:
    out = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            out[_canonical(name)] = dist.version
    return out


def _arch(text: str) -> tuple[int, int]:
    digits = re.sub(r"\D", "", text)
    return int(digits[:-1]), int(digits[-1])


def arch_runs(capability: str, arch_list: list[str]) -> str:
    """The entry of torch.cuda.get_arch_list() that runs on a GPU of this compute capability:
    a cubin sm_X.y runs on major X with minor >= y, never across majors; PTX compiles forward."""
    major, minor = (int(p) for p in capability.split("."))
    for entry in sorted(arch_list, key=_arch, reverse=True):
        a_major, a_minor = _arch(entry)
        if entry.startswith("sm_") and a_major == major and a_minor <= minor:
            return entry
        if entry.startswith("compute_") and (a_major, a_minor) <= (major, minor):
            return entry
    return ""


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _driver() -> str:
    try:
        proc = subprocess.run(
            [
                os.environ.get("PINNER_NVIDIA_SMI") or "nvidia-smi",
                "--query-gpu=driver_version",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (
        proc.stdout.strip().splitlines()[0].strip()
        if proc.returncode == 0 and proc.stdout.strip()
        else ""
    )


def _brand() -> str:
    """The GPU's product brand as the container runtime names it ("NVIDIA RTX" -> nvidiartx),
    from `nvidia-smi -q`; "" when unknown."""
    try:
        proc = subprocess.run(
            [os.environ.get("PINNER_NVIDIA_SMI") or "nvidia-smi", "-q"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    found = re.search(r"Product Brand\s*:\s*(.+)", proc.stdout)
    return re.sub(r"\s+", "", found.group(1)).lower() if found else ""


def _child(
    code: str, python: str, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-c", code, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def check_python(expected: dict[str, Any]) -> list[dict[str, str]]:
    here = "{}.{}".format(*sys.version_info[:2])
    machine = MACHINES.get(platform.machine().lower(), platform.machine())
    out = [
        _result(
            OK if here == expected["python"] else FAIL,
            "python",
            f"Python {here}"
            + (
                ""
                if here == expected["python"]
                else f", but the lock is for Python {expected['python']}"
            ),
        )
    ]
    out.append(
        _result(
            OK if machine == expected["platform"] else FAIL,
            "platform",
            f"{machine}"
            + (
                ""
                if machine == expected["platform"]
                else f", but the lock is for {expected['platform']}"
            ),
        )
    )
    return out


def check_packages(
    expected: dict[str, Any], installed: dict[str, str] | None = None
) -> list[dict[str, str]]:
    installed = _installed() if installed is None else installed
    out = []
    loose = {e["name"] for e in expected.get("extensions", [])}
    sources = expected.get("sources", {})
    bad = []
    for name, version in sorted(expected["packages"].items()):
        have = installed.get(name)
        want = version.split("+")[0] if name in loose else version
        got = (have or "").split("+")[0] if name in loose else have
        locked = f"{version} from [indexes.{sources[name]}]" if name in sources else version
        if have is None:
            bad.append(f"{name} is not installed (locked: {locked})")
        elif version and got != want:  # "": a local project, no version of its own
            bad.append(f"{name} {have} is installed, the lock says {locked}")
    if bad:
        out += [_result(FAIL, "packages", line) for line in bad]
    else:
        out.append(
            _result(
                OK,
                "packages",
                f"{len(expected['packages'])} locked packages at their locked versions",
            )
        )
    return out


def _public(version: str) -> str:
    return version.partition("+")[0]


def tag_cuda(tag: str) -> str | None:
    """The CUDA version a local version tag names: cu132 -> 13.2, cpu -> "", other -> None."""
    if tag == "cpu":
        return ""
    if re.fullmatch(r"cu\d{3,}", tag):
        return f"{tag[2:-1]}.{tag[-1]}"
    return None


def _build_line(name: str, shown: str, want_cuda: str) -> dict[str, str] | None:
    """A FAIL when the local tag of `shown` (e.g. torch.__version__ 2.15.0+cu128) names a build
    other than the plan's CUDA; None when it matches or carries no tag."""
    tag = shown.partition("+")[2]
    if not tag:
        return None
    have = tag_cuda(tag)
    if have == want_cuda:
        return None
    what = f"a CUDA {have} build" if have else ("a CPU build" if have == "" else f"a {tag} build")
    want = f"CUDA {want_cuda}" if want_cuda else "no CUDA (a CPU build)"
    return _result(FAIL, name, f"{name} {shown} is {what}, but the plan's build has {want}")


def check_distribution(
    name: str, shown: str, expected: dict[str, Any], installed: dict[str, str]
) -> list[dict[str, str]]:
    """torch, torchvision, torchaudio: the installed *distribution* against the lock (PyPI's
    torch is distribution 2.11.0 with __version__ 2.11.0+cu130); the module's __version__ local
    tag only against the plan's CUDA, and shown."""
    want = expected["packages"][name]
    want_cuda = expected["torch"]["cuda"] or ""
    have = installed.get(name)
    if shown.startswith("!"):
        return [_result(FAIL, name, f"import {name} failed: {shown[1:]}")]
    if have is None:
        return [_result(FAIL, name, f"{name} is not installed (locked: {want})")]
    if have != want:
        return [_result(FAIL, name, f"{name} {have}, but the lock says {want}")]
    if _public(shown) != _public(have):
        return [
            _result(
                FAIL,
                name,
                f"{name}.__version__ is {shown}, but the installed distribution is {have}: "
                f"another {name} shadows it on sys.path",
            )
        ]
    bad = _build_line(name, shown, want_cuda) or _build_line(name, have, want_cuda)
    if bad:
        return [bad]
    detail = f" ({name}.__version__ {shown})" if shown != have else ""
    return [_result(OK, name, f"{name} {have}{detail}")]


def check_torch(
    expected: dict[str, Any], python: str, installed: dict[str, str] | None = None
) -> list[dict[str, str]]:
    installed = _installed() if installed is None else installed
    torch = expected["torch"]
    companions = [c for c in COMPANIONS if c in expected["packages"]]
    proc = _child(PROBE, python, json.dumps(companions))
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PINNER-PROBE")), "")
    if not line:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return [_result(FAIL, "torch", f"import torch failed: {tail}")]
    info = json.loads(line[len("PINNER-PROBE") :])
    out = check_distribution("torch", info["version"], expected, installed)
    cuda_ok = (info["cuda"] or "") == (torch["cuda"] or "")
    have = info["cuda"] or "None (a CPU build)"
    want = torch["cuda"] or "none (a CPU build)"
    out.append(
        _result(
            OK if cuda_ok else FAIL,
            "torch.version.cuda",
            have if cuda_ok else f"{have}, but the plan's build has CUDA {want}",
        )
    )
    for name in companions:
        out += check_distribution(name, info["companions"][name], expected, installed)
    out += _check_gpu(expected, info)
    if torch["cuda"] and info["available"] and "gpu_error" not in info:
        out += check_smoke(expected, python)
    return out


def cuda_error(text: str, expected: dict[str, Any]) -> str:
    """One line for a CUDA failure: the known ones say what they mean and what to do."""
    for pattern, meaning in CUDA_ERRORS:
        if re.search(pattern, text, re.IGNORECASE):
            return meaning.format(
                driver=_driver() or "(unknown)",
                cuda=expected["torch"]["cuda"],
                min_driver=expected.get("min_driver") or "the build's minimum",
            )
    return (text.strip().splitlines() or ["no output"])[-1]


def check_smoke(expected: dict[str, Any], python: str) -> list[dict[str, str]]:
    """The GPU smoke test in a child process, under SMOKE_TIMEOUT."""
    calls = [n for n in SMOKE_CALLS if n in expected["packages"]]
    try:
        proc = _child(SMOKE, python, json.dumps(calls), timeout=SMOKE_TIMEOUT)
    except subprocess.TimeoutExpired:
        return [
            _result(
                FAIL,
                "cuda smoke",
                f"no answer within {SMOKE_TIMEOUT} s: the GPU or its driver hangs "
                "(nvidia-smi shows its state)",
            )
        ]
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PINNER-SMOKE")), "")
    if not line:
        return [_result(FAIL, "cuda smoke", cuda_error(proc.stderr, expected))]
    data = json.loads(line[len("PINNER-SMOKE") :])
    out = []
    for gpu in data["gpus"]:
        what = f"GPU {gpu['index']} {gpu['name']} ({gpu['capability']})"
        if "error" in gpu:
            message = f"{what}: {gpu['step']}: {cuda_error(gpu['error'], expected)}"
            out.append(_result(FAIL, "cuda smoke", message))
        else:
            done = " and ".join(gpu["done"])
            out.append(_result(OK, "cuda smoke", f"{what}: {done} matmul, synchronized"))
    for call in data["calls"]:
        name = call["name"]
        if "error" in call:
            out.append(_result(FAIL, f"{name} call", cuda_error(call["error"], expected)))
        else:
            out.append(_result(OK, f"{name} call", "one real call on GPU 0"))
    return out


def _no_gpu(expected: dict[str, Any], info: dict[str, Any]) -> list[dict[str, str]]:
    """torch sees no GPU: a driver torch cannot use is a failure; none at all is a skip, unless
    the caller requires a GPU (--gpu)."""
    broken = [w for w in info.get("warnings", []) if re.search(CUDA_ERRORS[1][0], w, re.IGNORECASE)]
    broken += [info["gpu_error"]] if "gpu_error" in info else []
    if broken:
        return [_result(FAIL, "gpu", cuda_error(broken[0], expected))]
    if expected.get("require_gpu"):
        return [
            _result(
                FAIL,
                "gpu",
                "no GPU visible, and --gpu requires one: run the container with --gpus all "
                "(or NVIDIA_VISIBLE_DEVICES), and check nvidia-smi",
            )
        ]
    return [
        _result(SKIP, "gpu arch", NO_GPU),
        _result(SKIP, "driver", NO_GPU),
        _result(SKIP, "cuda smoke", NO_GPU),
    ]


def _check_gpu(expected: dict[str, Any], info: dict[str, Any]) -> list[dict[str, str]]:
    if not expected["torch"]["cuda"]:
        return [_result(SKIP, "gpu", "CPU build: no GPU checks")]
    if not info["available"] or "gpu_error" in info:
        return _no_gpu(expected, info)
    out = []
    serving = arch_runs(info["capability"], info["arch_list"])
    message = f"{info['name']} (compute capability {info['capability']})"
    if serving:
        out.append(_result(OK, "gpu arch", f"{message} runs {serving} code"))
    else:
        out.append(
            _result(
                FAIL,
                "gpu arch",
                f"{message}: no kernel in this torch build runs on it "
                f"(it has {' '.join(info['arch_list'])}); expect 'no kernel image is available'",
            )
        )
    gpu = expected.get("gpu") or {}
    if gpu and gpu.get("compute_capability") != info["capability"]:
        out.append(
            _result(
                WARN,
                "gpu",
                f"the lock targets {gpu['name']} ({gpu['compute_capability']}); "
                f"this host has {info['name']} ({info['capability']})",
            )
        )
    driver, needed = _driver(), expected.get("min_driver", "")
    if not driver:
        out.append(_result(SKIP, "driver", "not checked: nvidia-smi gave no driver version"))
    elif needed and _version_tuple(driver) < _version_tuple(needed):
        out.append(
            _result(
                FAIL,
                "driver",
                f"driver {driver} is older than {needed}, which this CUDA build needs",
            )
        )
    else:
        out.append(
            _result(OK, "driver", f"driver {driver}" + (f" (needs >= {needed})" if needed else ""))
        )
    if driver and expected.get("image"):
        same = gpu.get("compute_capability") == info["capability"]
        brand = _brand() or (gpu.get("brand", "") if same else "")
        out.append(check_image(expected["image"], driver, brand))
    return out


def check_image(image: dict[str, Any], driver: str, brand: str) -> dict[str, str]:
    """Does this host's driver start the lock's base image? Its NVIDIA_REQUIRE_CUDA: the driver
    supports CUDA >= X.Y natively, or the GPU's brand is on one of the listed driver branches."""
    name = image["name"]
    if _version_tuple(driver) >= _version_tuple(image["min_driver"]):
        return _result(OK, "image", f"driver {driver} starts {name} (CUDA {image['cuda']})")
    branch = str((_version_tuple(driver) or (0,))[0])
    if brand in image["brands"] and branch in image["branches"]:
        return _result(
            OK, "image", f"driver {driver} starts {name} (brand={brand}, driver branch {branch})"
        )
    branches = ", ".join(image["branches"])
    also = f", or a listed brand on driver branch {branches}" if branches else ""
    if not brand and branch in image["branches"]:
        return _result(
            WARN,
            "image",
            f"{name} needs driver >= {image['min_driver']} (CUDA {image['cuda']}), or a listed "
            f"brand on driver branch {branches}: driver {driver} is on branch {branch}, and this "
            "GPU's brand is unknown (nvidia-smi -q shows no Product Brand)",
        )
    return _result(
        FAIL,
        "image",
        f"the NVIDIA container runtime refuses {name} on driver {driver}: it needs driver >= "
        f'{image["min_driver"]} (CUDA {image["cuda"]}){also}; set driver = "{driver}" on '
        "the target and re-lock (pinner then picks an image this driver starts)",
    )


def check_numpy(
    expected: dict[str, Any], installed: dict[str, str] | None = None
) -> list[dict[str, str]]:
    have = (_installed() if installed is None else installed).get("numpy")
    if have is None:
        return [_result(SKIP, "numpy", "numpy is not installed")]
    major = _version_tuple(have)[0]
    if major >= 2 and not expected["torch"]["numpy2"]:
        return [
            _result(
                FAIL,
                "numpy",
                f"numpy {have} with torch {expected['torch']['version']}, which was "
                "built against NumPy 1.x (needs numpy<2)",
            )
        ]
    return [_result(OK, "numpy", f"numpy {have} suits torch {expected['torch']['version']}")]


def load_error(text: str, what: str, expected: dict[str, Any], torch_version: str) -> str:
    """One line for a compiled part that does not load."""
    symbols = re.findall(r"undefined symbol: ([\w$.@]+)", text)
    if symbols:
        return (
            f"{what} does not match the installed torch {torch_version}: undefined symbol "
            f"{symbols[-1]}"
        )
    missing = re.search(r"(lib[\w+.-]+?\.so(?:\.(\d+))?[\w.]*): cannot open shared object", text)
    if missing:
        lib, major = missing.group(1), missing.group(2)
        cuda = expected["torch"]["cuda"]
        if major and re.match(r"lib" + CUDA_LIBS + r"\.so", lib):
            have = f"CUDA {cuda}" if cuda else "no CUDA (a CPU build)"
            return (
                f"{what} needs {lib}, which is not installed: it was built for CUDA {major}; "
                f"the locked torch brings {have}"
            )
        return f"{what} needs {lib}, which is not installed"
    last = (text.strip().splitlines() or ["no output"])[-1]
    return f"{what} fails to load: {last}"


def check_loads(
    expected: dict[str, Any], python: str, installed: dict[str, str] | None = None
) -> list[dict[str, str]]:
    """Each torch-linked package's compiled part, loaded in its own child (no GPU needed)."""
    torch_version = (_installed() if installed is None else installed).get("torch", "not installed")
    out = []
    for spec in expected.get("loads", []):
        name = spec["name"]
        what = f"{name} {spec['version']}" + (f" ({spec['build']})" if spec["build"] else "")
        try:
            proc = _child(LOAD, python, json.dumps(spec), timeout=LOAD_TIMEOUT)
        except subprocess.TimeoutExpired:
            out.append(_result(FAIL, name, f"{what}: loading took over {LOAD_TIMEOUT} s"))
            continue
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("PINNER-LOAD")), "")
        data = json.loads(line[len("PINNER-LOAD") :]) if line else {"error": proc.stderr}
        fell_back = next(
            (ln.strip() for ln in proc.stderr.splitlines() for f in spec["fallback"] if f in ln),
            "",
        )
        if "error" in data:
            out.append(
                _result(FAIL, name, load_error(data["error"], what, expected, torch_version))
            )
        elif fell_back:
            out.append(_result(FAIL, name, f"{what} imports but falls back: {fell_back}"))
        else:
            out.append(_result(OK, name, f"{what}: loads {', '.join(data['done'])}"))
    return out


def check_extensions(
    expected: dict[str, Any], python: str, installed: dict[str, str] | None = None
) -> list[dict[str, str]]:
    out = []
    torch_version = (_installed() if installed is None else installed).get("torch", "not installed")
    loaded = {spec["name"] for spec in expected.get("loads", [])}
    for ext in expected.get("extensions", []):
        if ext["name"] in loaded:
            continue
        proc = _child(f"import {ext['module']}", python)
        if proc.returncode == 0:
            out.append(_result(OK, ext["name"], f"imports ({ext['build']})"))
            continue
        err = proc.stderr.strip()
        # the exception's own line is the last; the traceback above may quote the source
        symbols = re.findall(r"undefined symbol: ([\w$.@]+)", err)
        if symbols:
            message = (
                f"{ext['name']} {ext['version']} ({ext['build']}) does not match the installed "
                f"torch {torch_version}: undefined symbol {symbols[-1]}"
            )
        else:
            last = (err.splitlines() or [f"exit status {proc.returncode}, no output"])[-1]
            message = f"{ext['name']} {ext['version']} ({ext['build']}) fails to import: {last}"
        out.append(_result(FAIL, ext["name"], message))
    return out


def run_checks(expected: dict[str, Any], python: str = sys.executable) -> list[dict[str, str]]:
    installed = _installed()
    results = check_python(expected) + check_packages(expected, installed)
    if "torch" in expected.get("packages", {}):
        results += check_torch(expected, python, installed) + check_numpy(expected, installed)
    return (
        results
        + check_loads(expected, python, installed)
        + check_extensions(expected, python, installed)
    )


def report(results: list[dict[str, str]], target: str) -> str:
    """One line per result; past SHOWN wrong packages, one line says how many more (the JSON
    output lists them all)."""
    wrong = [i for i, r in enumerate(results) if r["check"] == "packages" and r["status"] == FAIL]
    hidden = set(wrong[SHOWN:])
    lines = []
    for i, r in enumerate(results):
        if i in hidden:
            continue
        lines.append(f"{r['status']:<5} {r['check']}: {r['message']}")
        if hidden and i == wrong[SHOWN - 1]:
            lines.append(
                f"{FAIL:<5} packages: ... and {len(hidden)} more packages differ from the lock "
                "(--json lists them all; was this environment installed from the target's recipe?)"
            )
    counts = {s: sum(r["status"] == s for r in results) for s in (OK, FAIL, SKIP, WARN)}
    lines.append(
        f"verify {target}: {counts[OK]} ok, {counts[FAIL]} failed, {counts[SKIP]} not checked"
        + (f", {counts[WARN]} warnings" if counts[WARN] else "")
    )
    return "\n".join(lines) + "\n"


USAGE = "usage: python verify_env.py [--json] [--gpu]"


def main(argv: list[str], expected: dict[str, Any]) -> int:
    """--gpu: a GPU must be visible (a container started without --gpus all fails); without it,
    GPU checks run when a GPU is visible and say "not checked: no GPU" otherwise (docker build)."""
    unknown = [a for a in argv if a not in ("--json", "--gpu")]
    if unknown:
        print(f"{USAGE}\nverify_env.py: error: unknown argument {unknown[0]!r}", file=sys.stderr)
        return 2
    if "--gpu" in argv:
        expected = {**expected, "require_gpu": True}
    results = run_checks(expected)
    if "--json" in argv:
        doc = {"schema": JSON_SCHEMA, "target": expected["target"], "results": results}
        print(json.dumps(doc, indent=2))
    else:
        print(report(results, expected["target"]), end="")
    return 1 if any(r["status"] == FAIL for r in results) else 0
