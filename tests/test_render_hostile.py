"""Every template rendered with each class of hostile value, and the output parsed.

Two kinds of values:

* values that break a field's grammar (a newline, a command, an option in a package name, a
  second instruction in an image): `render_target` refuses them naming the lock key, and renders
  nothing;
* values that are valid but full of shell, Docker and Python metacharacters (`$(...)`, quotes,
  backslashes, `#`, triple quotes): they render, and each file still parses as what it is, with the
  value arriving intact as one word or one literal: `bash -n` and a run of install.sh with
  recording stand-ins for python and pip, dockerfile-parse for the Dockerfile (the same
  instructions as a benign render, no more), `ast.parse` for modal_image.py and verify_env.py,
  and packaging for every requirements line.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

import pytest
from packaging.requirements import Requirement

from pinner.errors import ConfigError
from pinner.model import File
from pinner.render.render import render_target
from tests.support.recipes import LOCKS, target_lock

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from pinner.model import TargetLock

BASH = shutil.which("bash") or ""
PAYLOAD = "$(touch pwned)`touch pwned2`"


def base() -> TargetLock:
    """A source-build target with apt packages, build environment and an index URL."""
    return target_lock(LOCKS / "extensions" / "pinner.lock", "mamba-a100")


def wheel_base() -> TargetLock:
    """A target whose extension is a prebuilt wheel from a URL."""
    return target_lock(LOCKS / "extensions" / "pinner.lock", "flash-attn-a100")


def with_plan(tl: TargetLock, **changes: Any) -> TargetLock:
    return dataclasses.replace(tl, plan=dataclasses.replace(tl.plan, **changes))


def with_pin(tl: TargetLock, index: int, **changes: Any) -> TargetLock:
    pins = list(tl.pins)
    pins[index] = dataclasses.replace(pins[index], **changes)
    return dataclasses.replace(tl, pins=tuple(pins))


def with_extension(tl: TargetLock, **changes: Any) -> TargetLock:
    (ext,) = tl.plan.extensions
    return with_plan(tl, extensions=(dataclasses.replace(ext, **changes),))


def render(tl: TargetLock, installer: str = "pip", **kwargs: Any) -> dict[str, str]:
    arts = render_target(tl, section="hostile", installer=installer, **kwargs)
    return {a.path.name: a.text for a in arts}


# -- values that break a grammar: refused, naming the key ---------------------------------------

REFUSED: dict[str, tuple[Callable[[TargetLock], TargetLock], str]] = {
    "index URL with a newline": (
        lambda t: with_plan(t, index_url="https://h/whl/cu121\nRUN touch pwned"),
        "plan.index_url",
    ),
    "index URL with a space": (
        lambda t: with_plan(t, index_url="https://h/whl --extra-index-url http://evil"),
        "plan.index_url",
    ),
    "index URL with a quote": (
        lambda t: with_plan(t, index_url="https://h/'$(touch pwned)'"),
        "plan.index_url",
    ),
    "index URL of another scheme": (
        lambda t: with_plan(t, index_url="ftp://h/whl"),
        "plan.index_url",
    ),
    "base image with a second instruction": (
        lambda t: with_plan(t, base_image="ubuntu:24.04\nRUN touch pwned"),
        "plan.base_image",
    ),
    "base image with a Python quote": (
        lambda t: with_plan(t, base_image="ubuntu'); import os; ('"),
        "plan.base_image",
    ),
    "package name with an option": (
        lambda t: with_pin(t, 0, name="six --index-url http://evil"),
        "packages[0].name",
    ),
    "package name with a newline": (
        lambda t: with_pin(t, 0, name="six\n--extra-index-url http://evil"),
        "packages[0].name",
    ),
    "version with a marker": (
        lambda t: with_pin(t, 0, version='1.0 ; python_version > "0"'),
        "packages[0].version",
    ),
    "hash with an option": (
        lambda t: with_pin(
            t,
            0,
            files=(File(name="", hashes=("sha256:" + "0" * 64 + " --index-url=http://evil",)),),
        ),
        "packages[0].hashes[0]",
    ),
    "via with a newline": (
        lambda t: with_pin(t, 0, via=("x\n--index-url http://evil",)),
        "packages[0].via[0]",
    ),
    "apt package with a command": (
        lambda t: with_plan(t, apt=("gcc; touch pwned",)),
        "plan.apt[0]",
    ),
    "env name with a command": (
        lambda t: with_plan(t, env=(("A=1 touch pwned; B", "1"),)),
        "plan.env[0][0]",
    ),
    "env value with a newline": (
        lambda t: with_plan(t, env=(("A", "1\nRUN touch pwned"),)),
        "plan.env[0][1]",
    ),
    "MAX_JOBS that is no number": (
        lambda t: with_extension(t, env=(("MAX_JOBS", "4}; touch pwned; #"),)),
        "plan.extensions[0].env[0][1]",
    ),
    "extension name with a space": (
        lambda t: with_extension(t, name="mamba ssm"),
        "plan.extensions[0].name",
    ),
    "extension URL with whitespace": (
        lambda t: with_extension(t, url="https://h/x.whl --index-url http://evil"),
        "plan.extensions[0].url",
    ),
    "extension sha256 that is no digest": (
        lambda t: with_extension(t, sha256="abc --hash=sha256:0"),
        "plan.extensions[0].sha256",
    ),
    "extension why with a newline": (
        lambda t: with_extension(t, why="ok\nRUN touch pwned"),
        "plan.extensions[0].why",
    ),
    "GPU name with a carriage return": (
        lambda t: with_plan(t, gpu_name="A100\rRUN touch pwned"),
        "plan.gpu_name",
    ),
    "GPU name with a line separator": (
        lambda t: with_plan(t, gpu_name="A100\u2028import os"),
        "plan.gpu_name",
    ),
    "Python version with a command": (
        lambda t: with_plan(
            t, target=dataclasses.replace(t.plan.target, python="3.11 && touch pwned")
        ),
        "plan.target.python",
    ),
    "target name climbing out": (
        lambda t: with_plan(t, target=dataclasses.replace(t.plan.target, name="../../etc")),
        "plan.target.name",
    ),
    "torch version with a command": (
        lambda t: with_plan(t, torch=dataclasses.replace(t.plan.torch, version="2.5.1;id")),
        "plan.torch.version",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_value_that_breaks_its_grammar_is_refused_naming_the_key(case: str) -> None:
    make, key = REFUSED[case]

    with pytest.raises(ConfigError) as caught:
        render(make(base()))

    message = str(caught.value)
    assert message.startswith(f"pinner.lock: targets.{base().plan.target.name}.{key}: ") or (
        key == "plan.target.name" and message.startswith("pinner.lock: targets.'../../etc'")
    ), message
    assert "\n" not in message
    assert "regenerate it with `pinner lock`" in message


# -- valid values full of metacharacters: rendered, quoted, and every file still parses -----------

HOSTILE_URL = "https://user@mirror.example:8443/whl/cu121?a=1&b=$(touch%20pwned);c=(x)!*,+=@%41"
HOSTILE_TEXT = "A100 \"\"\" ''' \\ $(touch pwned) `id` # {{ x }} %s \\n"
HOSTILE_ENV = "$(touch pwned) \"q\" 's' \\ ${HOME} `id` # é; exit 1"
# case -> (how the value is put into the lock, the hostile value, a benign value of the same shape)
ACCEPTED: dict[str, tuple[Callable[[TargetLock, str], TargetLock], str, str]] = {
    "index URL with shell metacharacters": (
        lambda t, v: with_plan(t, index_url=v),
        HOSTILE_URL,
        "https://mirror.example/whl/cu121",
    ),
    "GPU name with quotes and backslashes": (
        lambda t, v: with_plan(t, gpu_name=v),
        HOSTILE_TEXT,
        "NVIDIA A100",
    ),
    "plan environment with every quote": (
        lambda t, v: with_plan(t, env=(("HOSTILE", v), ("EMPTY", ""))),
        HOSTILE_ENV,
        "plain",
    ),
    "build environment with every quote": (
        lambda t, v: with_extension(t, env=(("MAMBA_FORCE_BUILD", v),)),
        HOSTILE_ENV,
        "TRUE",
    ),
    "extension reason with metacharacters": (
        lambda t, v: with_extension(t, why=v),
        HOSTILE_TEXT,
        "a reason",
    ),
    "via with metacharacters": (
        lambda t, v: with_pin(t, 0, via=(v, "-r x.in")),
        HOSTILE_TEXT,
        "requests",
    ),
    "image with registry, port and digest": (
        lambda t, v: with_plan(t, base_image=v),
        "registry.example:5000/ml/cuda:12.1.1-devel@sha256:" + "a" * 64,
        "ubuntu:24.04",
    ),
    "local version with every separator": (
        lambda t, v: with_pin(t, 0, version=v),
        "1.0.post1.dev2+a.b-c_d",
        "1.0",
    ),
}


def hostile_files(case: str, installer: str) -> tuple[TargetLock, dict[str, str], dict[str, str]]:
    """The hostile lock, its files, and the files of its benign twin."""
    put, hostile, benign = ACCEPTED[case]
    tl = put(base(), hostile)
    return tl, render(tl, installer), render(put(base(), benign), installer)


@pytest.mark.parametrize("installer", ["pip", "uv"])
@pytest.mark.parametrize("case", list(ACCEPTED))
def test_hostile_values_render_into_files_that_parse(case: str, installer: str) -> None:
    tl, files, benign = hostile_files(case, installer)

    for name in ("modal_image.py", "verify_env.py"):
        ast.parse(files[name], filename=name)
    assert dockerfile_shape(files["Dockerfile"]) == dockerfile_shape(benign["Dockerfile"])
    for name in ("constraints.txt", "torch-requirements.txt", "requirements.txt", "extensions.txt"):
        assert_requirements_parse(files[name])
    if BASH:
        syntax = subprocess.run([BASH, "-n"], input=files["install.sh"], text=True, check=False)
        assert syntax.returncode == 0
    # every value arrives whole where it is used
    assert_values_arrive(tl, files)


def assert_values_arrive(tl: TargetLock, files: dict[str, str]) -> None:
    plan = tl.plan
    modal = ast.parse(files["modal_image.py"])
    docstring = ast.get_docstring(modal)
    assert docstring is not None
    assert docstring.splitlines()[0].endswith(
        f": {plan.gpu_name}, torch {plan.torch.pin}, Python {plan.target.python}."
    )
    strings = {n.value for n in ast.walk(modal) if isinstance(n, ast.Constant)}
    assert plan.base_image in strings
    if plan.index_url:
        assert plan.index_url in strings
    for key, value in plan.env:
        assert {key, value} <= strings
    for word in (
        shlex.split(files["install.sh"].split("# 2. torch layer", 1)[1].splitlines()[2])
        if plan.index_url
        else []
    ):
        if word.startswith("http"):
            assert word == plan.index_url
    exports = [
        shlex.split(line)[1]
        for line in files["install.sh"].splitlines()
        if line.startswith("export ") and "=" in line and "$" not in line.split("=", 1)[0]
    ]
    for key, value in plan.env:
        assert f"{key}={value}" in exports


def dockerfile_shape(text: str) -> list[str]:
    """The instructions, in order (RUN steps by their first words): a hostile value may change
    a value, never add or remove an instruction."""
    from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

    parser = DockerfileParser(fileobj=io.BytesIO(text.encode("utf-8")), env_replace=False)
    return [i["instruction"] for i in parser.structure if i["instruction"] != "COMMENT"]


def assert_requirements_parse(text: str) -> None:
    """Each logical line is a comment, or a requirement (packaging) with --hash options only."""
    logical = text.replace("\\\n", " ").splitlines()
    for line in logical:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        stripped = re.split(r"\s#", stripped, maxsplit=1)[0].strip()  # pip's comment rule
        words = stripped.split(" --hash=")
        Requirement(words[0])
        for digest in words[1:]:
            assert digest.startswith("sha256:")
            assert len(digest.strip()) == 71, line


@pytest.mark.skipif(not BASH or platform.machine() != "x86_64", reason="needs bash on x86_64")
@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_install_sh_with_hostile_values_runs_only_what_it_says(
    installer: str, tmp_path: Path
) -> None:
    """install.sh run with recording stand-ins for python, uv, gcc, g++ and nvcc: every command
    gets the hostile values as single, intact arguments, and no substitution runs."""
    tl = with_plan(
        with_extension(base(), env=(("MAMBA_FORCE_BUILD", HOSTILE_ENV),)),
        index_url=HOSTILE_URL,
        env=(("HOSTILE", HOSTILE_ENV),),
    )
    folder = tmp_path / "pinned"
    folder.mkdir()
    for name, text in render(tl, installer).items():
        (folder / name).write_text(text, encoding="utf-8")
    bin_dir = tmp_path / "bin"
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    log = tmp_path / "calls.jsonl"
    recorder = (
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'argv': [os.path.basename(sys.argv[0]), *sys.argv[1:]],"
        " 'env': {k: os.environ.get(k) for k in ('HOSTILE', 'MAMBA_FORCE_BUILD')}}) + '\\n')\n"
    )
    for tool in ("gcc", "g++", "nvcc", "uv", "python3.11"):
        (bin_dir / tool).write_text(recorder)
        (bin_dir / tool).chmod(0o755)
    (venv / "bin" / "python").write_text(recorder)
    (venv / "bin" / "python").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "VENV": str(venv),
        "PYTHON": "python3.11",
        "HOME": str(tmp_path),
    }

    run = subprocess.run(
        [BASH, str(folder / "install.sh")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert run.returncode == 0, run.stderr
    assert not list(tmp_path.rglob("pwned*"))
    assert not list(folder.rglob("pwned*"))
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    installs = [c for c in calls if "install" in c["argv"]]
    assert len(installs) == 3  # torch, main, extensions
    option = "--index-url" if installer == "pip" else "--default-index"
    torch_argv = installs[0]["argv"]
    assert torch_argv[torch_argv.index(option) + 1] == HOSTILE_URL
    for call in installs:
        assert call["env"]["HOSTILE"] == HOSTILE_ENV
    assert installs[2]["env"]["MAMBA_FORCE_BUILD"] == HOSTILE_ENV
    assert calls[-1]["argv"] == ["python", "verify_env.py"]


def test_a_custom_command_and_a_source_name_with_newlines_stay_in_their_comment() -> None:
    files = render(
        base(),
        source="pinner.toml\nRUN touch pwned",
        command="make pins\nRUN touch pwned\r\u2028x",
    )

    for name, text in files.items():
        assert not any(line.startswith("RUN touch") for line in text.splitlines()), name
        if name.endswith(".json"):  # the SBOM carries the header as a JSON string property
            values = [p["value"] for p in json.loads(text)["metadata"]["properties"]]
            assert any("Regenerate: make pins\nRUN touch pwned\r\u2028x" in v for v in values)
            continue
        header = text.split("\n")[:4]
        assert "# Regenerate: make pins\\nRUN touch pwned\\r\\u2028x" in header, name
        assert any("from pinner.toml\\nRUN touch pwned (target" in line for line in header), name
    assert dockerfile_shape(files["Dockerfile"]) == dockerfile_shape(render(base())["Dockerfile"])


def test_extension_wheel_url_with_metacharacters_is_one_requirement() -> None:
    url = "https://h.example/a%20b/flash_attn-2.8.3.post1-cp311-cp311-linux_x86_64.whl?x=$(id)#sha"
    tl = with_extension(wheel_base(), url=url, sha256="b" * 64)

    files = render(tl)

    assert_requirements_parse(files["extensions.txt"])
    (line,) = [
        ln
        for ln in files["extensions.txt"].replace("\\\n", " ").splitlines()
        if ln.startswith("flash-attn @")
    ]
    assert Requirement(line.split(" --hash=")[0]).url == url
    ast.parse(files["modal_image.py"])


def test_a_template_that_prints_a_newline_value_gets_it_escaped(tmp_path: Path) -> None:
    own = tmp_path / "tpl"
    own.mkdir()
    (own / "Dockerfile.j2").write_text(
        "FROM {{ plan.base_image }}\n# {{ 'x\\nRUN touch pwned' }}\nLABEL a={{ 'b\\nRUN c' | shq }}\n"
    )

    files = render(base(), templates=own)

    assert "RUN touch" not in files["Dockerfile"].replace("\\nRUN touch", "")
    assert dockerfile_shape(files["Dockerfile"]) == ["FROM", "LABEL"]
