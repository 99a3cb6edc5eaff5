"""Matrix keys `apt` and `env`: checked when the matrix is read (one line naming the file, the key,
what is wrong and how to fix it; exit 2), merged with [defaults] entry by entry, and rendered,
quoted, into the Dockerfile, install.sh and modal_image.py (lock and generate through the CLI,
on the loopback indexes)."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import stat
import subprocess
import textwrap
from typing import TYPE_CHECKING

import pytest
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from pinner.load.matrix import load_matrix
from tests.support.projects import CPU_MATRIX, make_project
from tests.test_dockerfile import hadolint

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.support.index import LocalIndex
    from tests.support.projects import Project, Run

pytest_plugins = ("tests.conftest_lock",)

BASE = """\
[targets.a100]
gpu = "A100"
"""


def matrix_error(tmp_path: Path, cli: Callable[..., Run], text: str) -> str:
    (tmp_path / "pinner.toml").write_text(textwrap.dedent(text), encoding="utf-8")
    os.chdir(tmp_path)
    result = cli("targets")
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    return result.err


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            'apt = ["ffmpeg; touch pwned"]',
            (
                "pinner: error: pinner.toml: targets.a100.apt: 'ffmpeg; touch pwned' is not a "
                "Debian package name (lowercase letters, digits, '+', '.', '-'); write a Debian "
                'package name, optionally with =version (e.g. "ffmpeg" or "libsndfile1=1.2.2-1")\n'
            ),
        ),
        ('apt = ["FFmpeg"]', "targets.a100.apt: 'FFmpeg' is not a Debian package name"),
        ('apt = ["ffmpeg=$(id)"]', "targets.a100.apt: '$(id)' is not a Debian version"),
        ('apt = ["ffmpeg=6.1:1"]', "has a ':' but no epoch"),
        ('apt = ["ffmpeg\\nRUN touch pwned"]', "contains a newline"),
        (
            'apt = ["ffmpeg=7:6.1.1-3", "ffmpeg"]',
            "targets.a100.apt: ffmpeg is listed twice ('ffmpeg=7:6.1.1-3', 'ffmpeg'); keep one",
        ),
        (
            'apt = "ffmpeg"',
            'targets.a100.apt: must be a list of Debian package names, e.g. ["ffmpeg"]',
        ),
        ('env = { "1X" = "y" }', "targets.a100.env.1X: '1X' is not an environment variable name"),
        ("env = { HF_HOME = 3 }", "targets.a100.env.HF_HOME: 3 is not a string"),
        ('env = { HF_HOME = "a\\nb" }', "targets.a100.env.HF_HOME: 'a\\nb' contains a newline"),
        (
            'env = { PIP_EXTRA_INDEX_URL = "https://evil.example/simple" }',
            (
                "targets.a100.env.PIP_EXTRA_INDEX_URL: pinner sets PIP_EXTRA_INDEX_URL itself, "
                "or it would steer the installer; remove it"
            ),
        ),
        ('env = { PATH = "/x" }', "targets.a100.env.PATH: pinner sets PATH itself"),
        (
            'env = { UID = "1000" }',
            "targets.a100.env.UID: UID is read-only in bash, so install.sh would stop at it",
        ),
        ('env = "HF_HOME=/x"', "targets.a100.env: must be a table such as"),
    ],
)
def test_bad_apt_and_env_are_one_line_each(
    tmp_path: Path, cli: Callable[..., Run], table: str, expected: str
) -> None:
    err = matrix_error(tmp_path, cli, BASE + table + "\n")
    assert expected in err
    assert err.count("\n") == 1
    assert not (tmp_path / "pwned").exists()


def test_a_bad_defaults_entry_is_named_once(tmp_path: Path, cli: Callable[..., Run]) -> None:
    err = matrix_error(
        tmp_path,
        cli,
        '[defaults]\napt = ["Bad"]\n\n[targets.a]\ngpu = "A100"\n\n[targets.b]\ngpu = "A100"\n',
    )
    assert err == (
        "pinner: error: pinner.toml: defaults.apt: 'Bad' is not a Debian package name "
        "(lowercase letters, digits, '+', '.', '-'); write a Debian package name, optionally "
        'with =version (e.g. "ffmpeg" or "libsndfile1=1.2.2-1")\n'
    )


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            '[indexes.pytorch]\nurl = "https://h/simple"\npackages = ["x"]',
            "indexes.pytorch: 'pytorch' is a source pinner uses itself",
        ),
        (
            '[indexes.fi]\nurl = "https://h/`id`"\npackages = ["x"]',
            "indexes.fi.url: 'https://h/`id`' contains '`'",
        ),
        (
            '[indexes.fi]\nurl = "https://h/simple"',
            'indexes.fi.packages: name the packages it serves, e.g. ["flashinfer-python"]',
        ),
        (
            '[indexes.fi]\nurl = "https://h/simple"\npackages = ["torch"]',
            "indexes.fi.packages: torch belongs to the torch layer",
        ),
        (
            '[indexes.fi]\nurl = "https://h/simple"\npackages = ["x"]\ntargets = ["h100"]',
            "indexes.fi.targets: h100 is not a [targets.<name>] table",
        ),
        (
            '[indexes.fi]\nurl = "https://h/simple"\npackages = ["x"]\ntargets = []',
            "indexes.fi.targets: an empty list binds no target; name the targets",
        ),
        (
            '[indexes.fi]\nurl = "https://h/simple"\npackages = ["x"]\nextra = true',
            "indexes.fi.extra: unknown key",
        ),
        (
            '[indexes.Fi]\nurl = "https://h/simple"\npackages = ["x"]',
            "indexes.Fi: 'Fi' is not a target name",
        ),
        (
            '[indexes.a]\nurl = "https://h/a"\npackages = ["x"]\n[indexes.b]\nurl = "https://h/b"\npackages = ["X"]',
            "indexes.b.packages: x is already bound to [indexes.a]; bind each package to one index",
        ),
        (
            '[indexes.fi]\nurl = "https://me:s3cret@h/simple"\npackages = ["x"]',
            (
                "indexes.fi.url: credentials in a URL would be written into pinner.lock and every "
                "recipe; set PINNER_INDEX_FI_URL"
            ),
        ),
        (
            (
                '[indexes.flash-infer]\nurl = "https://h/a"\npackages = ["x"]\n'
                '[indexes.flash_infer]\nurl = "https://h/b"\npackages = ["y"]'
            ),
            (
                "indexes.flash_infer: its variables PINNER_INDEX_FLASH_INFER_URL and "
                "INDEX_FLASH_INFER_URL are those of [indexes.flash-infer]; rename one of the tables"
            ),
        ),
    ],
)
def test_bad_indexes_tables(
    tmp_path: Path, cli: Callable[..., Run], table: str, expected: str
) -> None:
    err = matrix_error(tmp_path, cli, BASE + "\n" + table + "\n")
    assert f"pinner: error: pinner.toml: {expected}" in err
    assert err.count("\n") == 1
    assert "s3cret" not in err


def test_defaults_merge_entry_by_entry(tmp_path: Path) -> None:
    (tmp_path / "pinner.toml").write_text(
        textwrap.dedent(
            """\
            [defaults]
            apt = ["ffmpeg", "git"]
            env = { HF_HOME = "/models", TOKENIZERS_PARALLELISM = "false" }

            [targets.a]
            gpu = "A100"
            apt = ["libsndfile1=1.2.2-1", "ffmpeg=7:6.1.1-3ubuntu5"]
            env = { HF_HOME = "/data" }

            [targets.b]
            gpu = "A100"

            [indexes.fi]
            url = "https://h/whl/{variant}"
            packages = ["Flashinfer_Python"]
            targets = ["a"]
            """
        ),
        encoding="utf-8",
    )
    a, b = load_matrix(cwd=tmp_path).targets
    assert a.apt == ("ffmpeg=7:6.1.1-3ubuntu5", "git", "libsndfile1=1.2.2-1")
    assert a.env == (("HF_HOME", "/data"), ("TOKENIZERS_PARALLELISM", "false"))
    assert a.indexes == (("fi", "https://h/whl/{variant}/", ("flashinfer-python",)),)
    assert b.apt == ("ffmpeg", "git")
    assert b.env == (("HF_HOME", "/models"), ("TOKENIZERS_PARALLELISM", "false"))
    assert b.indexes == ()


def test_explain_and_targets_show_the_bindings(
    tmp_path: Path, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`explain` and `targets`, text and --json, show what the matrix adds to a target's
    recipes: its apt packages, env variables and the [indexes] tables that serve it."""
    (tmp_path / "pinner.toml").write_text(
        textwrap.dedent(
            """\
            [defaults]
            apt = ["ffmpeg"]

            [targets.a]
            gpu = "A100"
            cuda = "cu128"
            torch = "==2.7.1"
            env = { HF_HOME = "/data/hf cache" }

            [targets.b]
            gpu = "cpu"

            [indexes.fi]
            url = "https://h.example/whl/{variant}"
            packages = ["flashinfer-python"]
            targets = ["a"]
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    index = {
        "url": "https://h.example/whl/{variant}/",
        "resolved": "https://h.example/whl/cu128",
        "packages": ["flashinfer-python"],
        "mirror": "PINNER_INDEX_FI_URL",
    }

    explained = cli("explain", "--target", "a")
    assert explained.code == 0, explained.err
    assert (
        "from the matrix (system packages, environment, [indexes]):\n"
        "  apt: ffmpeg\n"
        '  env: HF_HOME="/data/hf cache"\n'
        "  [indexes.fi]: flashinfer-python from https://h.example/whl/cu128 "
        "(mirror: $PINNER_INDEX_FI_URL)\n"
    ) in explained.out
    doc = json.loads(cli("explain", "--target", "a", "--json").out)
    assert (doc["apt"], doc["env"], doc["indexes"]) == (
        ["ffmpeg"],
        {"HF_HOME": "/data/hf cache"},
        {"fi": index},
    )
    b = json.loads(cli("explain", "--target", "b", "--json").out)
    assert (b["apt"], b["env"], b["indexes"]) == (["ffmpeg"], {}, {})

    listed = cli("targets")
    assert listed.code == 0, listed.err
    assert listed.out.endswith(
        "system packages, environment and [indexes] of the matrix:\n"
        "  a:\n"
        "    apt: ffmpeg\n"
        '    env: HF_HOME="/data/hf cache"\n'
        "    [indexes.fi]: flashinfer-python from https://h.example/whl/cu128 "
        "(mirror: $PINNER_INDEX_FI_URL)\n"
        "  b:\n"
        "    apt: ffmpeg\n"
    )
    entries = {t["name"]: t for t in json.loads(cli("targets", "--json").out)["targets"]}
    assert entries["a"]["indexes"] == {"fi": index}
    assert entries["a"]["env"] == {"HF_HOME": "/data/hf cache"}
    assert (entries["b"]["apt"], entries["b"]["env"], entries["b"]["indexes"]) == (
        ["ffmpeg"],
        {},
        {},
    )


HOSTILE = 'a "quoted" $HOME `id` \\ back; it\'s'
KEYS = f"""
apt = ["ffmpeg", "libsndfile1=1.2.2-1~rc1"]
env = {{ HF_HOME = "/models", ODD = {json.dumps(HOSTILE)} }}
"""


@pytest.fixture
def keyed(tmp_path: Path, loopback: LocalIndex, monkeypatch: pytest.MonkeyPatch) -> Project:
    return make_project(tmp_path / "proj", loopback, monkeypatch, matrix=CPU_MATRIX + KEYS)


def test_apt_and_env_are_rendered_quoted(keyed: Project, cli: Callable[..., Run]) -> None:
    assert load_matrix().targets[0].env == (("HF_HOME", "/models"), ("ODD", HOSTILE))
    assert cli("lock").code == 0
    result = cli("generate")
    assert result.code == 0, result.err
    folder = keyed.root / "pinned" / "cpu"

    dockerfile = (folder / "Dockerfile").read_text()
    parser = DockerfileParser(path=str(folder / "Dockerfile"), env_replace=False)
    runs = [i["value"] for i in parser.structure if i["instruction"] == "RUN"]
    assert " ".join(runs[0].split()) == (
        "apt-get update && apt-get install -y --no-install-recommends ca-certificates ffmpeg "
        "'libsndfile1=1.2.2-1~rc1' && rm -rf /var/lib/apt/lists/*"
    )
    envs = [i["value"] for i in parser.structure if i["instruction"] == "ENV"]
    assert envs[-2:] == ["HF_HOME=/models", 'ODD="a \\"quoted\\" \\$HOME `id` \\\\ back; it\'s"']
    assert "ENV HF_HOME=/models\nENV ODD=" in dockerfile
    lint = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "warning", "Dockerfile"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout

    install = (folder / "install.sh").read_text()
    assert f"export ODD={shlex.quote(HOSTILE)}\n" in install
    exported = subprocess.run(
        ["bash", "-c", f'export ODD={shlex.quote(HOSTILE)}; printf %s "$ODD"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert exported.stdout == HOSTILE

    modal = (folder / "modal_image.py").read_text()
    tree = ast.parse(modal)
    calls = {
        node.func.attr: node.args
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert [ast.literal_eval(a) for a in calls["apt_install"]] == [
        "ffmpeg",
        "libsndfile1=1.2.2-1~rc1",
    ]
    assert ast.literal_eval(calls["env"][0]) == {"HF_HOME": "/models", "ODD": HOSTILE}


def _apt_check(install: str) -> str:
    found = re.search(r"\nif command -v dpkg-query.*?\nfi\n", install, re.DOTALL)
    assert found is not None
    return "set -euo pipefail\n" + found.group() + "echo checked\n"


def _fake_dpkg(folder: Path, installed: dict[str, str]) -> dict[str, str]:
    """A dpkg-query on PATH that knows `installed` (name -> version)."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    cases = "".join(
        f'    {name}) echo "install ok installed {version}" ;;\n'
        for name, version in installed.items()
    )
    script = bin_dir / "dpkg-query"
    script.write_text(
        f'#!/bin/sh\nfor last; do :; done\ncase "$last" in\n{cases}    *) exit 1 ;;\nesac\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_install_sh_prints_the_apt_command_for_missing_packages(
    keyed: Project, cli: Callable[..., Run], tmp_path: Path
) -> None:
    assert cli("lock").code == 0
    assert cli("generate").code == 0
    check = _apt_check((keyed.root / "pinned" / "cpu" / "install.sh").read_text())

    env = _fake_dpkg(tmp_path, {"ffmpeg": "7:6.1.1", "libsndfile1": "1.2.2-1"})
    missing = subprocess.run(
        ["bash", "-c", check], env=env, capture_output=True, text=True, check=False
    )
    assert missing.returncode == 1
    assert missing.stderr == (
        "install.sh: missing system packages: libsndfile1=1.2.2-1~rc1; install them with:\n"
        "    sudo apt-get install -y --no-install-recommends libsndfile1=1.2.2-1~rc1\n"
    )

    env = _fake_dpkg(tmp_path, {"ffmpeg": "7:6.1.1", "libsndfile1": "1.2.2-1~rc1"})
    present = subprocess.run(
        ["bash", "-c", check], env=env, capture_output=True, text=True, check=False
    )
    assert (present.returncode, present.stdout, present.stderr) == (0, "checked\n", "")


def test_adding_a_key_makes_the_target_stale(keyed: Project, cli: Callable[..., Run]) -> None:
    assert cli("lock").code == 0
    assert cli("generate").code == 0
    assert cli("check").code == 0
    keyed.write("pinner.toml", keyed.read("pinner.toml").replace('"ffmpeg", ', '"git", '))
    stale = cli("check")
    assert stale.code == 1
    assert "target cpu" in stale.text
