"""render: a lock -> the files of each target, compared with reviewed golden files.

The locks are committed under tests/data/locks/ (see make_locks.py there): the example project's
real lock (rtx5090 and a100, PyPI's own CUDA builds), an index build (torch 2.11.0+cu128 from the
PyTorch index) and two A100 / cu121 targets with compiled extensions (a prebuilt flash-attn
wheel, a mamba-ssm source build). A change of output is a reviewed diff:
`pytest tests/test_render.py --update-golden`, then `git diff tests/golden`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pinner.errors import OutputError
from pinner.lock import fingerprint
from pinner.render.output import ARTIFACTS, template_folders, write_artifacts, write_text_atomic
from pinner.render.render import install_steps
from tests.support.recipes import LOCKS, REPO, dockerfile_install_commands, target_lock

if TYPE_CHECKING:
    from collections.abc import Callable

    from pinner.model import Artifact

# (lock folder, target, installer): the default targets, an index build (pip and uv) and
# the two extension strategies.
CASES = [
    ("llm-service", "rtx5090", "pip"),
    ("llm-service", "a100", "pip"),
    ("cu128", "cu128", "pip"),
    ("cu128", "cu128", "uv"),
    ("extensions", "flash-attn-a100", "pip"),
    ("extensions", "mamba-a100", "pip"),
]
IDS = [f"{lock}-{target}-{installer}" for lock, target, installer in CASES]
PREAMBLES = {
    "Dockerfile": "# syntax=docker/dockerfile:1",
    "install.sh": "#!/usr/bin/env bash",
    "verify_env.py": "#!/usr/bin/env python3",
}


@functools.cache
def rendered(lock: str, installer: str) -> dict[str, dict[str, str]]:
    """{target: {file: text}} of a committed lock (rendered once per session)."""
    from tests.support.recipes import render_lock

    arts = render_lock(LOCKS / lock / "pinner.lock", installer)
    return {t: {a.path.name: a.text for a in files} for t, files in arts.items()}


def files_of(lock: str, target: str, installer: str = "pip") -> dict[str, str]:
    return rendered(lock, installer)[target]


def golden_name(lock: str, target: str, installer: str, file: str) -> str:
    return f"{lock}/{target}{'' if installer == 'pip' else '-' + installer}/{file}"


# -- golden files ------------------------------------------------------------------------------


@pytest.mark.parametrize(("lock", "target", "installer"), CASES, ids=IDS)
def test_every_artifact_matches_its_golden_file(lock, target, installer, golden):
    files = files_of(lock, target, installer)

    assert list(files) == list(ARTIFACTS)
    for file, text in files.items():
        golden(golden_name(lock, target, installer, file), text)


def test_no_golden_file_is_orphaned():
    expected = {
        golden_name(lock, target, installer, file)
        for lock, target, installer in CASES
        for file in ARTIFACTS
    }
    root = REPO / "tests" / "golden"
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert on_disk == expected


def test_rendering_is_deterministic_and_host_independent(tmp_path):
    """Rendered in another process, from another folder, with another HOME, user and time zone:
    the same bytes, and nothing of the host in them."""
    lock = LOCKS / "cu128" / "pinner.lock"
    home = tmp_path / "somebody-else"
    home.mkdir()
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from tests.support.recipes import render_lock\n"
        "arts = render_lock(Path(sys.argv[1]), sys.argv[2])\n"
        "print(json.dumps({a.path.as_posix(): a.text for t in arts.values() for a in t}))\n"
    )
    env = dict(os.environ, HOME=str(home), USER="nobody", TZ="Pacific/Kiritimati", LANG="C")
    env["PYTHONPATH"] = str(REPO)
    for installer in ("pip", "uv"):
        proc = subprocess.run(
            [sys.executable, "-c", code, str(lock), installer],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )

        elsewhere = json.loads(proc.stdout)
        here = {f"cu128/{f}": t for f, t in files_of("cu128", "cu128", installer).items()}
        assert elsewhere == here

    # paths only this host has (not /usr/local: the image's own paths are fine), and the host
    # interpreter's full version (the target says only 3.11)
    host = [str(REPO), str(tmp_path), str(home), platform.python_version()]
    for lock_name, target, installer in CASES:
        for file, text in files_of(lock_name, target, installer).items():
            where = f"{lock_name}/{target}/{file} ({installer})"
            for value in host:
                assert value not in text, f"{where} contains host value {value!r}"
            assert not re.search(r"\d{4}-\d{2}-\d{2}", text), f"{where} contains a date"
            assert "\r" not in text


# -- headers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("lock", "target", "installer"), CASES, ids=IDS)
def test_headers_say_what_generated_the_file_and_seal_the_whole_file(lock, target, installer):
    from pinner.render.render import file_inputs

    section = fingerprint.lock_sections((LOCKS / lock / "pinner.lock").read_text())[target]
    tl = target_lock(LOCKS / lock / "pinner.lock", target)
    each = file_inputs(tl, section, template_folders(None), installer)
    assert len(set(each.values())) > 1  # each file fingerprints what it renders from

    for file, text in files_of(lock, target, installer).items():
        if file.endswith(".json"):
            continue  # sealed by a property: tests/test_sbom.py
        inputs = each[file]
        lines = text.splitlines()
        if file in PREAMBLES:
            assert lines.pop(0) == PREAMBLES[file]
        # the seal sits right after the preamble, at a fixed place
        seal = re.fullmatch(
            rf"# pinner: target={re.escape(target)} installer={installer} "
            r"inputs=(sha256:[0-9a-f]{64}) digest=sha256:([0-9a-f]{64})",
            lines[0],
        )
        assert seal is not None, file
        assert seal.group(1) == inputs
        assert lines[1:3] == [
            f"# Generated by pinner from pinner.toml (target {target}). Do not edit.",
            f"# Regenerate: pinner generate --target {target}"
            + ("" if installer == "pip" else f" --installer {installer}"),
        ]
        # the digest is the sha256 of every byte but its own 64 hex digits
        data = text.encode()
        assert hashlib.sha256(data.replace(seal.group(2).encode(), b"", 1)).hexdigest() == (
            seal.group(2)
        )
        assert fingerprint.read_seal(data) == (
            {
                "target": target,
                "installer": installer,
                "inputs": inputs,
                "digest": seal.group(0)[-71:],
            },
            True,
        )
        parsed = fingerprint.unseal(text)
        assert parsed is not None, file
        assert parsed[1] == "\n".join(lines[3:]) + "\n"


EDITS: dict[str, Callable[[str], str]] = {
    "a line above the seal": lambda t: "touch x\n" + t,
    "a line after the first": lambda t: t.replace("\n", "\ntouch x\n", 1),
    "a line in the do-not-edit header": lambda t: t.replace(
        "Do not edit.", "Do not edit.\ntouch x"
    ),
    "a changed inputs field": lambda t: re.sub(
        r"inputs=sha256:(.)", lambda m: "inputs=sha256:" + "10"[m[1] == "1"], t, count=1
    ),
    "a changed pin": lambda t: re.sub(r"numpy==[0-9]", "numpy==0", t, count=1),
    "a changed option": lambda t: t.replace("--require-hashes", "--no-require-hashes", 1),
    "CRLF line endings": lambda t: t.replace("\n", "\r\n"),
    "a trailing newline": lambda t: t + "\n",
    "one byte not UTF-8 at the end": lambda t: t + "\udcff",
}
SEALED_FILES = {
    # the edits that apply to each file (every one changes it)
    "requirements.txt": [e for e in EDITS if e != "a changed option"],
    "install.sh": [e for e in EDITS if e != "a changed pin"],
    "verify_env.py": [e for e in EDITS if e not in ("a changed pin", "a changed option")],
}


@pytest.mark.parametrize(
    ("file", "edit"), [(f, e) for f, edits in SEALED_FILES.items() for e in edits]
)
def test_any_changed_byte_breaks_the_seal(file, edit):
    text = files_of("cu128", "cu128")[file]
    edited = EDITS[edit](text)
    assert edited != text

    data = edited.encode("utf-8", "surrogateescape")
    found = fingerprint.read_seal(data)
    assert found is None or found[1] is False
    if found is None:  # the seal is no longer at its place, but is still there to be seen
        assert fingerprint.misplaced_seal(data)


def test_a_changed_preamble_breaks_the_seal():
    text = files_of("cu128", "cu128")["install.sh"]
    edited = text.replace("#!/usr/bin/env bash", "#!/bin/sh", 1)

    intact = fingerprint.read_seal(text.encode())
    assert intact is not None
    assert fingerprint.read_seal(edited.encode()) == (intact[0], False)


def test_json_artifacts_carry_the_seal_as_a_property():
    document = {"metadata": {"properties": []}, "components": [{"name": "torch"}], "b": "é"}

    text = fingerprint.seal_json(
        document,
        target="cpu",
        installer="pip",
        inputs="sha256:" + "0" * 64,
        source="s",
        command="c",
    )

    found = fingerprint.read_seal(text.encode())
    assert found is not None
    assert found[1] is True
    assert found[0]["target"] == "cpu"
    # formatting does not matter (canonical JSON), content does
    reformatted = json.dumps(json.loads(text), indent=None)
    assert fingerprint.read_seal(reformatted.encode()) == found
    edited = text.replace('"torch"', '"torch2"')
    assert fingerprint.read_seal(edited.encode()) == (found[0], False)


def test_write_artifacts_writes_files_atomically_with_modes(tmp_path):
    from tests.support.recipes import render_lock

    arts = render_lock(LOCKS / "cu128" / "pinner.lock")["cu128"]

    written = write_artifacts(arts, tmp_path)

    assert sorted(p.name for p in written) == sorted(ARTIFACTS)
    for art in arts:
        path = tmp_path / art.path
        assert path.read_text(encoding="utf-8") == art.text
        assert path.stat().st_mode & 0o777 == (0o755 if art.executable else 0o644)
    assert {a.path.name for a in arts if a.executable} == {"install.sh", "verify_env.py"}
    assert [p.name for p in tmp_path.rglob(".*")] == []  # no temporary file left behind
    assert write_artifacts(arts, tmp_path) == []  # unchanged files are not rewritten


def _two_versions(tmp_path: Path) -> tuple[tuple[Artifact, ...], tuple[Artifact, ...]]:
    """The cu128 artifacts written to tmp_path (old), and a changed copy of each (new)."""
    from pinner.model import Artifact
    from tests.support.recipes import render_lock

    old = render_lock(LOCKS / "cu128" / "pinner.lock")["cu128"]
    write_artifacts(old, tmp_path)
    new = tuple(
        Artifact(path=a.path, text=a.text + "# new\n", executable=a.executable) for a in old
    )
    return old, new


@pytest.mark.parametrize("errno_code", [28, 30, 5])  # ENOSPC, EROFS, EIO
def test_a_write_that_fails_while_staging_changes_nothing(tmp_path, monkeypatch, errno_code):
    import errno as errnos

    old, new = _two_versions(tmp_path)
    real = os.fdopen
    calls = []

    def failing(fd, *args, **kwargs):
        calls.append(fd)
        if len(calls) == 5:  # the fifth file cannot be written
            os.close(fd)
            raise OSError(errno_code, os.strerror(errno_code))
        return real(fd, *args, **kwargs)

    monkeypatch.setattr(os, "fdopen", failing)

    with pytest.raises(OutputError, match="nothing was changed") as caught:
        write_artifacts(new, tmp_path)

    assert os.strerror(errno_code) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert errnos.errorcode[errno_code]  # a real errno
    for a in old:
        assert (tmp_path / a.path).read_text(encoding="utf-8") == a.text
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_a_rename_that_fails_midway_leaves_each_file_old_or_new(tmp_path, monkeypatch):
    old, new = _two_versions(tmp_path)
    real = Path.replace
    done: list[Path] = []

    def replace(self, target):
        if len(done) == 3:
            raise OSError(5, "Input/output error", str(target))
        done.append(target)
        return real(self, target)

    monkeypatch.setattr(Path, "replace", replace)

    with pytest.raises(OutputError, match="3 of 10 files were replaced"):
        write_artifacts(new, tmp_path)

    for before, after in zip(old, new, strict=True):
        text = (tmp_path / before.path).read_text(encoding="utf-8")
        # renamed in the order given: the first three are new, the rest old
        expected = after if tmp_path / before.path in done else before
        assert text == expected.text
    assert [p.name for p in done] == [a.path.name for a in new[:3]]
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_write_artifacts_never_replaces_a_folder_or_a_device(tmp_path):
    old, new = _two_versions(tmp_path)
    target = tmp_path / new[4].path
    target.unlink()
    target.mkdir()

    with pytest.raises(OutputError, match="is not a regular file; nothing was changed"):
        write_artifacts(new, tmp_path)

    assert (tmp_path / old[0].path).read_text(encoding="utf-8") == old[0].text
    with pytest.raises(OutputError, match="not a regular file"):
        write_text_atomic(Path("/dev/null"), "x")
    assert Path("/dev/null").is_char_device()


# -- layers ------------------------------------------------------------------------------------


def test_constraints_pin_every_package_once_with_why():
    tl = target_lock(LOCKS / "cu128" / "pinner.lock", "cu128")
    text = files_of("cu128", "cu128")["constraints.txt"]
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]

    assert lines == [
        f"{p.name}=={p.version}  # {p.layer} layer; via {', '.join(p.via)}"
        for p in sorted(tl.pins, key=lambda p: p.name)
    ]
    assert (
        "torch==2.11.0+cu128  # torch layer; via -r requirements.in, pinner plan, torchvision"
        in lines
    )
    assert "numpy==2.3.5  # main layer; via -r requirements.in, torchvision" in lines


def pinned_names(requirements: str) -> list[str]:
    return re.findall(r"^([a-z0-9][a-z0-9._-]*)(?:==| @ )", requirements, re.MULTILINE)


def hashed_names(requirements: str) -> list[str]:
    """Names pinned with == and one or more hashes, then their "# via" line."""
    block = (
        r"^([a-z0-9][a-z0-9._-]*)==\S+ \\\n(?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+    # via "
    )
    return re.findall(block, requirements, re.MULTILINE)


@pytest.mark.parametrize(("lock", "target", "installer"), CASES, ids=IDS)
def test_each_package_is_installed_by_exactly_one_layer(lock, target, installer):
    tl = target_lock(LOCKS / lock / "pinner.lock", target)
    files = files_of(lock, target, installer)
    torch = pinned_names(files["torch-requirements.txt"])
    main = pinned_names(files["requirements.txt"])
    extensions = pinned_names(files["extensions.txt"])

    assert sorted(torch + main + extensions) == sorted(p.name for p in tl.pins)
    assert sorted(torch) == sorted(p.name for p in tl.pins if p.layer == "torch")
    assert sorted(extensions) == sorted(e.name for e in tl.plan.extensions)
    assert "torch" in torch
    # every requirement of the torch and main layers is pinned with its hashes
    for file in ("torch-requirements.txt", "requirements.txt"):
        assert hashed_names(files[file]) == pinned_names(files[file])


def test_torch_layer_of_an_index_build_keeps_local_tags_and_its_index():
    files = files_of("cu128", "cu128")
    torch = files["torch-requirements.txt"]

    assert "torch==2.11.0+cu128 \\\n" in torch
    assert "torchvision==0.26.0+cu128 \\\n" in torch
    assert "all from https://download.pytorch.org/whl/cu128." in torch
    assert (
        "# Install first: python -m pip install --no-deps --require-hashes "
        '--index-url "$TORCH_INDEX_URL" -r torch-requirements.txt\n'
    ) in torch
    assert "torch==2.11.0+cu128  # torch layer" in files["constraints.txt"]
    # PyPI's own build: no local tag, no index
    pypi = files_of("llm-service", "rtx5090")["torch-requirements.txt"]
    assert "torch==2.15.0 \\\n" in pypi
    assert "index-url" not in pypi


@pytest.mark.parametrize(("lock", "target", "installer"), CASES, ids=IDS)
def test_steps_run_in_layer_order_with_one_index_each(lock, target, installer):
    tl = target_lock(LOCKS / lock / "pinner.lock", target)
    steps = install_steps(tl, installer)
    commands = [s.command for s in steps]

    expected = ["torch", "main"] + (["extensions"] if tl.plan.extensions else []) + ["verify"]
    assert [s.layer for s in steps] == expected
    assert commands[-1] == "python verify_env.py"
    for text in files_of(lock, target, installer).values():
        assert "--extra-index-url" not in text
    option = "--index-url" if installer == "pip" else "--default-index"
    torch_index = [c for c in commands if option in c]
    if tl.plan.index_url:
        assert torch_index == [commands[0]]
        assert f'{option} "$TORCH_INDEX_URL" ' in commands[0]
    else:
        assert torch_index == []
    assert "-c constraints.txt" in commands[1]
    assert "--require-hashes" in commands[0]
    assert "--require-hashes" in commands[1]


def test_uv_recipes_use_uv_everywhere():
    files = files_of("cu128", "cu128", "uv")
    commands = dockerfile_install_commands(files["Dockerfile"])

    assert all(c.startswith("uv pip install ") for c in commands[:-1])
    assert "python -m pip" not in files["Dockerfile"] + files["install.sh"]
    assert files["Dockerfile"].count("--mount=type=cache,target=/root/.cache/uv") == 2
    assert "/root/.cache/pip" not in files["Dockerfile"]
    # an explicit --default-index wins over UV_DEFAULT_INDEX; uv's --index-url would not
    assert commands[0] == (
        "uv pip install --no-deps --require-hashes --default-index "
        '"$TORCH_INDEX_URL" -r torch-requirements.txt'
    )
    # uv's hash-checking mode also wants the hashes of the installed torch layer
    assert commands[1] == (
        "uv pip install --require-hashes -c constraints.txt -r torch-requirements.txt "
        "-r requirements.txt"
    )
    assert 'uv venv --seed --python "$PYTHON" "$VENV"' in files["install.sh"]


def test_cpu_builds_do_not_promise_cuda_libraries():

    from pinner.render.render import render_target

    tl = target_lock(LOCKS / "cu128" / "pinner.lock", "cu128")
    cpu = dataclasses.replace(tl.plan.torch, variant="cpu", cuda="", arches=())
    tl = dataclasses.replace(tl, plan=dataclasses.replace(tl.plan, torch=cpu))
    files = {a.path.name: a.text for a in render_target(tl, section="")}

    for file in ("Dockerfile", "install.sh"):
        assert "# 2. torch layer: torch 2.11.0+cpu\n" in files[file]
    for file in ("Dockerfile", "install.sh", "torch-requirements.txt"):
        assert "CUDA librar" not in files[file]


# -- compiled extensions (issue 5) -------------------------------------------------------------


def test_mamba_source_build_installs_build_tools_first_and_builds_without_isolation():
    files = files_of("extensions", "mamba-a100")
    docker = files["Dockerfile"]
    commands = dockerfile_install_commands(docker)

    assert "\nFROM nvidia/cuda:12.1.1-devel-ubuntu22.04\n" in docker
    apt = docker.index(
        "apt-get install -y --no-install-recommends ca-certificates build-essential ninja-build"
    )
    main = docker.index(commands[1])
    build = docker.index(commands[2])
    assert apt < main < build
    # the build tools are pinned and hashed in the main layer, which runs before the build
    main_layer = pinned_names(files["requirements.txt"])
    assert {"packaging", "ninja", "wheel", "setuptools"} <= set(main_layer)
    assert "main layer: the application's requirements and the source builds' tools " in docker
    assert commands[2] == (
        "CC=gcc CXX=g++ MAMBA_FORCE_BUILD=TRUE MAX_JOBS=${MAX_JOBS:-4} TORCH_CUDA_ARCH_LIST=8.0 "
        "python -m pip install --no-deps --no-build-isolation --require-hashes "
        "-c constraints.txt -r extensions.txt"
    )
    assert "\nARG MAX_JOBS=4\n" in docker
    assert re.search(
        r"^mamba-ssm==2\.3\.1 \\\n    --hash=sha256:", files["extensions.txt"], re.MULTILINE
    )
    assert "mamba-ssm" not in main_layer
    assert files["constraints.txt"].count("\nmamba-ssm==2.3.1  # extension layer") == 1
    # install.sh refuses to start a build without compilers
    assert "for tool in gcc g++ nvcc; do" in files["install.sh"]


def test_flash_attn_wheel_is_installed_once_after_torch_without_dependencies():
    files = files_of("extensions", "flash-attn-a100")
    wheel = "flash_attn-2.8.3.post1+cu12torch2.5cxx11abiFALSE-cp311-cp311-linux_x86_64.whl"
    url = f"https://github.com/Dao-AILab/flash-attention/releases/download/v2.8.3.post1/{wheel}"
    commands = dockerfile_install_commands(files["Dockerfile"])

    lock = target_lock(LOCKS / "extensions" / "pinner.lock", "flash-attn-a100")
    (digest,) = next(p.hashes for p in lock.pins if p.name == "flash-attn")
    assert f"\nflash-attn @ {url} \\\n    --hash={digest}\n" in files["extensions.txt"]
    assert (
        "why: prebuilt wheel matching torch 2.5, CUDA 12, C++ ABI FALSE, cp311"
        in files["extensions.txt"]
    )
    assert [c.split(" -r ")[-1] for c in commands[:3]] == [
        "torch-requirements.txt",
        "requirements.txt",
        "extensions.txt",
    ]
    assert commands[2].startswith("python -m pip install --no-deps --no-build-isolation ")
    assert " --require-hashes " in commands[2]  # pinner lock hashed the downloaded wheel
    assert "flash-attn" not in pinned_names(files["requirements.txt"])
    assert "einops" in pinned_names(files["requirements.txt"])  # its dependency, main layer
    assert [ln for ln in files["constraints.txt"].splitlines() if ln.startswith("flash-attn")] == [
        "flash-attn==2.8.3.post1  # extension layer; via -r flash-attn.in"
    ]
    # a prebuilt wheel needs no compiler and no -devel image
    assert "\nFROM nvidia/cuda:12.1.1-runtime-ubuntu22.04\n" in files["Dockerfile"]
    assert "build-essential" not in files["Dockerfile"]
    assert "CC=gcc" not in commands[2]


def test_verify_env_expects_the_locked_builds():

    text = files_of("extensions", "flash-attn-a100")["verify_env.py"]
    raw = text.split('EXPECTED = json.loads(r"""', 1)[1].split('""")', 1)[0]
    expected = json.loads(raw)

    assert expected["torch"] == {"version": "2.5.1+cu121", "cuda": "12.1", "numpy2": True}
    assert expected["packages"]["torch"] == "2.5.1+cu121"
    assert expected["gpu"] == {"name": "NVIDIA A100", "compute_capability": "8.0", "brand": "tesla"}
    assert [e["module"] for e in expected["extensions"]] == ["flash_attn"]
    # flash-attn's compiled module is loaded (knowledge/verify.toml), not only imported
    assert [(s["name"], s["import"]) for s in expected["loads"]] == [
        ("triton", ["triton._C.libtriton"]),
        ("flash-attn", ["flash_attn", "flash_attn_2_cuda"]),
    ]
    assert expected["image"]["name"] == "nvidia/cuda:12.1.1-runtime-ubuntu22.04"
    assert expected["image"]["min_driver"] == "530.30.02"
    assert text.rstrip().endswith("sys.exit(main(sys.argv[1:], EXPECTED))")


def test_verify_env_is_standard_library_only(tmp_path):
    """It runs in an interpreter with nothing installed (-I -S: no site-packages at all)."""
    script = tmp_path / "verify_env.py"
    script.write_text(files_of("cu128", "cu128")["verify_env.py"])

    proc = subprocess.run(
        [sys.executable, "-I", "-S", str(script), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert proc.returncode == 1, proc.stderr  # nothing of the lock is installed here

    report = json.loads(proc.stdout)
    assert report["target"] == "cu128"
    failed = [r["message"] for r in report["results"] if r["status"] == "FAIL"]
    assert any("torch" in m and "2.11.0+cu128" in m for m in failed), failed


def test_header_regenerate_command_honours_custom_command(monkeypatch):
    # STYLE 7.4: like pip-tools' CUSTOM_COMPILE_COMMAND, for projects that wrap pinner.
    monkeypatch.setenv("PINNER_CUSTOM_COMMAND", "make pinned")
    assert fingerprint.regenerate_command("a100", "uv", "out") == "make pinned"
    monkeypatch.delenv("PINNER_CUSTOM_COMMAND")
    assert fingerprint.regenerate_command("a100", "uv", "out") == (
        "pinner generate --target a100 --installer uv --out out"
    )
    assert fingerprint.regenerate_command("a100", "pip") == "pinner generate --target a100"


def test_renderer_code_is_part_of_every_files_fingerprint(tmp_path, monkeypatch):
    # The checks embedded in verify_env.py live in pinner/verify/checks.py: when they change,
    # `pinner check` must see every generated file as stale, not only after template edits.
    folders = template_folders(None)
    before = fingerprint.templates_digest(folders)
    original = Path(fingerprint.__file__).parent.parent
    shadow = tmp_path / "pinner"
    shadow.mkdir()
    for name in fingerprint.RENDERER:
        (shadow / name).parent.mkdir(exist_ok=True)
        (shadow / name).write_bytes((original / name).read_bytes())
    monkeypatch.setattr(fingerprint, "__file__", str(shadow / "lock" / "fingerprint.py"))
    assert fingerprint.templates_digest(folders) == before
    (shadow / "verify" / "checks.py").write_text("# changed\n")
    assert fingerprint.templates_digest(folders) != before


def test_a_local_project_is_locked_without_a_version_and_left_out_of_the_hashed_layers(tmp_path):
    """`-e ./pkg`: its dependencies are locked and installed hashed; the project itself is a
    folder (no version, no hash), in pylock.toml as a directory, never in a requirements file."""
    from pinner.lock.lockfile import dump_lock, read_lock
    from pinner.model import LockFile, Pin
    from pinner.render.render import render_target

    tl = target_lock(LOCKS / "cu128" / "pinner.lock", "cu128")
    local = Pin(
        name="mypkg", version="", source="local", layer="main", via=("-r req.in",), url="pkg"
    )
    tl = dataclasses.replace(tl, pins=(*tl.pins, local))
    lock = tmp_path / "pinner.lock"
    lock.write_text(dump_lock(LockFile(pinner="0", knowledge="k", targets=(tl,)), {"cu128": ""}))

    (read,) = read_lock(lock).targets  # a local project without a version is a valid entry
    files = {
        a.path.name: a.text
        for a in render_target(read, section=lock.read_text().split("[targets.cu128]", 1)[1])
    }

    for name in ("requirements.txt", "constraints.txt", "torch-requirements.txt"):
        assert "mypkg" not in files[name], name
    assert 'directory = { path = "../../pkg", editable = false }' in files["pylock.toml"]
