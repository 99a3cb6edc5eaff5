"""read: requirements files and pyproject.toml dependencies -> Requirements per target.

Every accepted form with the fields it yields, every refused form with its file:line and the
fragment of its message, markers evaluated as uv evaluates them (checked against real uv), and
the hostile option lines of issue 11."""

# Tests leave fixtures unannotated (STYLE.md 7.7).
from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from pinner.errors import ConfigError
from pinner.load.requirements import files_of, marker_environment, read_requirements
from tests.support.wheels import build_wheel

if TYPE_CHECKING:
    from pathlib import Path

    from pinner.model import Requirements

SHA = "a" * 64
WHEEL = "pkg-1.0-py3-none-any.whl"
HOST = "https://files.example.org/packages"  # never fetched: reading does no I/O


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def read(
    root: Path,
    text: str | None = None,
    *,
    entries: tuple[str, ...] = ("requirements.in",),
    **target: str,
) -> Requirements:
    if text is not None:
        write(root, {"requirements.in": text})
    target = {"python": "3.11", "platform": "linux-x86_64"} | target
    return read_requirements(tuple(root / e for e in entries), root, **target)


def refused(root: Path, text: str | None = None, **kw: Any) -> str:
    with pytest.raises(ConfigError) as e:
        read(root, text, **kw)
    message = str(e.value)
    assert "\n" not in message
    return message


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root with a local package, a legacy package, a wheel file and a bare folder."""
    write(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "My_App"\nversion = "1"\n',
            "pkg/pyproject.toml": '[project]\nname = "local-pkg"\nversion = "1"\n',
            "legacy/setup.py": "",
            "legacy/setup.cfg": "[metadata]\nname = Legacy.Pkg\n",
            "noname/setup.py": "",
            "bare/README": "",
        },
    )
    build_wheel(tmp_path / "dist", "pkg", "1.0")
    return tmp_path


# --- accepted forms ------------------------------------------------------------------------------

ACCEPTED: dict[str, tuple[str, dict[str, Any]]] = {
    "name, extras, specifier": (
        "Flash_Attn[X, a] >= 2.7",
        {"name": "flash-attn", "text": "flash-attn[a,x]>=2.7", "specifier": ">=2.7"},
    ),
    "specifiers normalized": ("six >= 1.0 , <2", {"text": "six<2,>=1.0", "specifier": "<2,>=1.0"}),
    "comment after whitespace": ("six==1.16  # pinned for x", {"text": "six==1.16"}),
    "hash": (
        f"six==1.16 --hash=sha256:{SHA.upper()}",
        {"hashes": (f"sha256:{SHA}",), "text": "six==1.16"},
    ),
    "hashes, both spellings, continued": (
        f"six==1.16 \\\n    --hash sha256:{SHA} \\\n    --hash=sha512:{'b' * 128}\n",
        {"hashes": (f"sha256:{SHA}", f"sha512:{'b' * 128}"), "origin": "requirements.in:1"},
    ),
    "continuation inside the name": ("si\\\nx>=1", {"name": "six", "specifier": ">=1"}),
    "name @ URL": (
        f"pkg @ {HOST}/{WHEEL}",
        {"name": "pkg", "text": f"pkg @ {HOST}/{WHEEL}", "url": f"{HOST}/{WHEEL}"},
    ),
    "bare wheel URL": (
        f"{HOST}/flash_attn-2.7.4-cp311-cp311-linux_x86_64.whl",
        {
            "name": "flash-attn",
            "text": f"flash-attn @ {HOST}/flash_attn-2.7.4-cp311-cp311-linux_x86_64.whl",
            "specifier": "",
        },
    ),
    "bare URL with #sha256": (
        f"{HOST}/{WHEEL}#sha256={SHA}",
        {"name": "pkg", "hashes": (f"sha256:{SHA}",), "url": f"{HOST}/{WHEEL}#sha256={SHA}"},
    ),
    "bare sdist URL": (f"{HOST}/my_pkg-2.0.tar.gz", {"name": "my-pkg"}),
    "bare URL, #egg= name": (f"{HOST}/download/latest.tar.gz#egg=thing", {"name": "thing"}),
    "wheel file by path": (
        f"dist/{WHEEL}",
        {"name": "pkg", "path": f"dist/{WHEEL}", "text": "pkg @ file://{root}/dist/" + WHEEL},
    ),
    "wheel file, ./ path": (f"./dist/{WHEEL}", {"path": f"dist/{WHEEL}"}),
    "wheel file, name @ file:": (f"pkg @ file:./dist/{WHEEL}", {"path": f"dist/{WHEEL}"}),
    "wheel file, file:///": (
        "file://{root}/dist/" + WHEEL,
        {"path": f"dist/{WHEEL}", "url": "file://{root}/dist/" + WHEEL},
    ),
    "-e .": (
        "-e .",
        {"name": "my-app", "path": ".", "editable": True, "local_project": True, "url": ""},
    ),
    "-e ./pkg[extra]": (
        "-e ./pkg[Extra]",
        {"name": "local-pkg", "path": "pkg", "extras": ("extra",), "local_project": True},
    ),
    "--editable=": ("--editable=./pkg", {"path": "pkg", "editable": True}),
    "./pkg": (
        "./pkg",
        {"name": "local-pkg", "text": "local-pkg @ file://{root}/pkg", "editable": False},
    ),
    "name @ file:./dir": ("local-pkg @ file:./pkg", {"path": "pkg", "local_project": True}),
    "setup.py project named in setup.cfg": ("-e ./legacy", {"name": "legacy-pkg"}),
    "setup.py project named by the line": ("thing @ file:./noname", {"name": "thing"}),
    "a / inside the marker is no path": (
        'six ; sys_platform != "a/b"',
        {"name": "six", "marker": 'sys_platform != "a/b"'},
    ),
    "marker kept as written": (
        'six ; python_version >= "3.8"',
        {"marker": 'python_version >= "3.8"', "text": "six"},
    ),
}


@pytest.mark.parametrize(("line", "fields"), ACCEPTED.values(), ids=ACCEPTED.keys())
def test_read_accepts(project, line, fields):
    reqs = read(project, line.replace("{root}", str(project)) + "\n")
    (req,) = reqs.items
    assert reqs.skipped == ()
    for key, value in fields.items():
        expected = value.replace("{root}", str(project)) if isinstance(value, str) else value
        assert getattr(req, key) == expected, key
    assert req.origin == "requirements.in:1"


def test_read_keeps_file_order_through_includes(tmp_path):
    write(
        tmp_path,
        {
            "requirements.in": "a\n-r sub/b.in\nc\n-c limits.txt\n",
            "sub/b.in": "b\n-r ../d.in\n",  # an include is relative to the file that names it
            "d.in": "d\n",
            "limits.txt": "a<2\n-r e.in\n",  # pip: a -r inside a -c file lists requirements
            "e.in": "e\n",
        },
    )
    reqs = read(tmp_path)
    got = [(r.name, r.origin, r.constraint) for r in reqs.items]
    assert got == [
        ("a", "requirements.in:1", False),
        ("b", "sub/b.in:1", False),
        ("d", "d.in:1", False),
        ("c", "requirements.in:3", False),
        ("a", "limits.txt:1", True),
        ("e", "e.in:1", False),
    ]
    assert [p.name for p in reqs.files] == ["requirements.in", "b.in", "d.in", "limits.txt", "e.in"]


@pytest.mark.parametrize(
    "line",
    ["-rother.in", "--requirement=other.in", "--requirement other.in", "--requireme other.in"],
)
def test_read_include_spellings(tmp_path, line):
    write(tmp_path, {"other.in": "six\n"})
    assert [r.origin for r in read(tmp_path, line + "\n").items] == ["other.in:1"]


def test_read_diamond_reads_a_file_once(tmp_path):
    write(
        tmp_path,
        {"requirements.in": "-r a.in\n-r b.in\n", "a.in": "-r c.in\n", "b.in": "-r c.in\n"},
    )
    write(tmp_path, {"c.in": "six\n"})
    assert [r.origin for r in read(tmp_path).items] == ["c.in:1"]


def test_read_long_include_chain_is_iterative(tmp_path):
    depth = 3000  # far past Python's recursion limit
    for i in range(depth):
        write(tmp_path, {f"r{i}.in": f"-r r{i + 1}.in\n"})
    write(tmp_path, {f"r{depth}.in": "six\n"})
    reqs = read(tmp_path, entries=("r0.in",))
    assert [r.origin for r in reqs.items] == [f"r{depth}.in:1"]
    assert len(reqs.files) == depth + 1
    assert len(files_of([tmp_path / "r0.in"])) == depth + 1


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"\xef\xbb\xbfsix\n", "utf-8 bom"),
        ("six\n".encode("utf-16"), "utf-16 bom (PowerShell's > writes it)"),
    ],
)
def test_read_byte_order_marks(tmp_path, data, name):
    (tmp_path / "requirements.in").write_bytes(data)
    assert [r.name for r in read(tmp_path).items] == ["six"], name


# --- refused forms -------------------------------------------------------------------------------

INDEX = "pinner chooses the indexes"
REFUSED: dict[str, tuple[str, str]] = {
    # issue 11: index options past the filter
    "index option after --hash": (
        f"six --hash=sha256:{SHA} --extra-index-url=http://attacker/simple",
        f"requirements.in:1: --extra-index-url is not allowed: {INDEX}",
    ),
    "index option on a continuation line": (
        "six \\\n--index-url http://attacker/simple",
        f"requirements.in:1: --index-url is not allowed: {INDEX}",
    ),
    "abbreviated index option": (
        "six --extra=http://attacker/simple",
        "requirements.in:1: --extra-index-url is not allowed",
    ),
    "-i": ("-i http://mirror/simple", "requirements.in:1: -i is not allowed: " + INDEX),
    "--pypi-url": ("--pypi-url http://x", "--pypi-url is not allowed"),
    "-f": ("-f ./wheels", "requirements.in:1: -f is not allowed: " + INDEX),
    "--find-links=": ("--find-links=./wheels", "--find-links is not allowed"),
    "--no-index": ("--no-index", "--no-index is not allowed: " + INDEX),
    "--trusted-host": ("--trusted-host attacker", "--trusted-host is not allowed: " + INDEX),
    "--pre": ("--pre", "--pre is not allowed: it would allow pre-releases of every package"),
    "--prefer-binary": ("--prefer-binary", "pinner decides wheels and source builds"),
    "--only-binary": ("--only-binary :all:", "--only-binary is not allowed: pinner decides"),
    "--no-binary": ("--no-binary=torch", "--no-binary is not allowed"),
    "--use-feature": ("--use-feature fast-deps", "pip feature flags"),
    "--require-hashes": ("--require-hashes", "always install with --require-hashes"),
    "per-requirement option": (
        "six --config-settings=a=b",
        (
            "requirements.in:1: --config-settings is not allowed: per-requirement options other "
            "than --hash"
        ),
    ),
    "-C": ("six -C a=b", "-C is not allowed: per-requirement options"),
    "--global-option": ("six --global-option=x", "--global-option is not allowed"),
    "unknown option": ("--bogus", "requirements.in:1: --bogus is not a pip requirements-file"),
    "unknown short option": ("-x y", "requirements.in:1: -x is not a pip requirements-file"),
    "ambiguous prefix": ("--req x.in", "requirements.in:1: --req is ambiguous"),
    "--hash alone": (f"--hash=sha256:{SHA}", "requirements.in:1: --hash without a requirement"),
    "weak hash": ("six --hash=md5:abcd", "requirements.in:1: --hash=md5:abcd: not a hash pip"),
    "short hash": ("six --hash=sha256:abc", "--hash=sha256:abc: not a hash pip accepts"),
    "hash with no value": ("six --hash", "requirements.in:1: --hash needs a value"),
    "flag with a value": ("--pre=1", "--pre takes no value"),
    "text after options": ("-r a.in six", "requirements.in:1: unexpected 'six' after the options"),
    "-r beside a requirement": ("six -r other.in", "-r must be alone on its line"),
    "two includes on a line": ("-r a.in -c b.in", "requirements.in:1: one -r or -c per line"),
    "unbalanced quote": ('six --hash="sha256:x', "requirements.in:1: cannot split the options"),
    "environment variable": (
        "pkg @ https://${TOKEN}@host/pkg-1.0-py3-none-any.whl",
        "requirements.in:1: ${TOKEN}: environment variables are not expanded",
    ),
    "remote -r": ("-r https://host/reqs.txt", "reads requirements files from the project only"),
    # requirement text
    "not PEP 508": ("six ==", "requirements.in:1: not a valid requirement: 'six =='"),
    "# without whitespace": ("six#x", "requirements.in:1: not a valid requirement"),
    "bad marker": ('six ; python_version >> "3"', "requirements.in:1: not a valid requirement"),
    "marker on platform_release": (
        'six ; platform_release >= "5.15"',
        "requirements.in:1: the marker 'platform_release >= \"5.15\"' tests platform_release",
    ),
    "marker on platform_version": ('six ; platform_version == "x"', "tests platform_version"),
    "marker on extra": ('six ; extra == "gpu"', "requirements.in:1: the marker"),
    # URLs
    "VCS": (
        "git+https://github.com/org/repo@0123abc#egg=repo",
        (
            "requirements.in:1: git+https://github.com/org/repo@0123abc#egg=repo: version-control "
            "requirements cannot be locked"
        ),
    ),
    "named VCS": ("repo @ git+https://github.com/org/repo@v1", "build a wheel at a pinned commit"),
    "editable VCS": ("-e git+https://github.com/org/repo#egg=repo", "version-control"),
    "no name in the URL": (
        "https://host/download?id=3",
        (
            "requirements.in:1: https://host/download?id=3: pinner cannot tell the package's name "
            "from the URL; write <name> @ https://host/download?id=3"
        ),
    ),
    "credentials": (f"pkg @ https://user:tok@host/{WHEEL}", "credentials in a URL"),
    "name differs from the wheel": (f"other @ {HOST}/{WHEEL}", "is a file of pkg, not of other"),
    "ftp": (f"pkg @ ftp://host/{WHEEL}", "ftp: URLs are not supported"),
    "path after @": ("pkg @ ./pkg", "./pkg: not a URL; use an https:// URL, or a file:./path"),
    "marker glued to the URL": (
        f'pkg @ {HOST}/{WHEEL};python_version>"3"',
        "put a space before the ';' of the marker",
    ),
    "weak fragment hash": (f"{HOST}/{WHEEL}#md5=abc", "#md5= is too weak"),
    "-e of a URL": (f"-e {HOST}/{WHEEL}", "-e takes a local project folder"),
    # local paths
    "outside the root": (f"../{WHEEL}", "requirements.in:1: ../" + WHEEL + " is outside the"),
    "missing path": ("./missing", "requirements.in:1: ./missing does not exist"),
    "missing wheel": ("dist/nope-1.0-py3-none-any.whl", "does not exist"),
    "folder that is no project": ("./bare", "requirements.in:1: ./bare is not a Python project"),
    "project without a static name": (
        "./noname",
        "requirements.in:1: ./noname: pinner cannot read the project's name",
    ),
    "name differs from the project": ("other @ file:./pkg", "is the project local-pkg, not other"),
    "-e of a file": (f"-e dist/{WHEEL}", "-e takes a project folder; drop -e"),
    "hash on a local project": (f"./pkg --hash=sha256:{SHA}", "a local project is not hashed"),
    "hash on -e": (f"-e ./pkg --hash=sha256:{SHA}", "--hash on an editable project"),
    "neither wheel nor sdist": ("./pyproject.toml", "is neither a wheel nor a source archive"),
    "remote file: host": (f"file://server/share/{WHEEL}", "a file: URL on another host"),
}


@pytest.mark.parametrize(("line", "fragment"), REFUSED.values(), ids=REFUSED.keys())
def test_read_refuses(project, line, fragment):
    (project.parent / WHEEL).write_bytes(b"")  # for "outside the root"
    message = refused(project, "# a comment line first\n" + line + "\n")
    assert fragment.replace("requirements.in:1", "requirements.in:2") in message


CONSTRAINTS = {
    "extras": ("six[x]<2", "limits.txt:1: a constraint cannot have extras; write six<2"),
    "path": ("./pkg", "limits.txt:1: ./pkg: a constraint names a package and version"),
    "URL": (f"pkg @ {HOST}/{WHEEL}", "a URL is a requirement, not a constraint"),
}


@pytest.mark.parametrize(("line", "fragment"), CONSTRAINTS.values(), ids=CONSTRAINTS.keys())
def test_read_refuses_in_constraints(project, line, fragment):
    write(project, {"limits.txt": line + "\n"})
    assert fragment in refused(project, "-c limits.txt\n")


def test_read_refuses_missing_include(tmp_path):
    message = refused(tmp_path, "six\n-r missing.in\n")
    assert message == "requirements.in:2: -r missing.in: missing.in does not exist"


def test_read_refuses_include_cycle(tmp_path):
    write(tmp_path, {"a.in": "-r b.in\n", "b.in": "six\n-r a.in\n"})
    message = refused(tmp_path, "-r a.in\n")
    assert message == (
        "b.in:2: -r a.in: includes a.in again (a.in -> b.in -> a.in); remove one of the includes"
    )


def test_read_refuses_a_long_cycle_in_one_short_line(tmp_path):
    for i in range(500):
        write(tmp_path, {f"r{i}.in": f"-r r{(i + 1) % 500}.in\n"})
    message = refused(tmp_path, entries=("r0.in",))
    assert message == (
        "r499.in:1: -r r0.in: includes r0.in again "
        "(r0.in -> r1.in -> r2.in -> ... 496 more -> r499.in -> r0.in); remove one of the includes"
    )


def test_read_refuses_invalid_utf8(tmp_path):
    (tmp_path / "requirements.in").write_bytes(b"six\nnumpy \xff\n")
    assert refused(tmp_path) == "requirements.in:2: not UTF-8 text (byte 10); save it as UTF-8"
    assert files_of([tmp_path / "requirements.in"]) == [tmp_path / "requirements.in"]


# --- markers: per target, as uv evaluates them ---------------------------------------------------

# Every marker line of these tests; the agreement tests run them through real uv.
MARKERS = (
    'sys_platform == "linux"',
    'sys_platform == "win32"',
    'sys_platform == "darwin"',
    'platform_system == "Windows"',
    'platform_system == "Linux"',
    'platform_machine == "x86_64"',
    'platform_machine == "aarch64"',
    'platform_machine == "AMD64"',
    'platform_machine in "x86_64 aarch64"',
    'os_name == "posix"',
    'os_name == "nt"',
    'implementation_name == "cpython"',
    'platform_python_implementation == "CPython"',
    'platform_python_implementation == "PyPy"',
    'python_version >= "3.8"',
    'python_version < "3.11"',
    'python_version == "3.11"',
    'python_version >= "3.12"',
    'python_version ~= "3.10"',
    'python_version == "3.*"',
    'python_version > "3.1"',
    'python_version in "3.10 3.11"',
    'python_full_version == "3.11.0"',
    'python_full_version >= "3.11.1"',
    'python_full_version < "3.12"',
    'implementation_version >= "3.11"',
    '"linux" in sys_platform',
    'sys_platform != "a/b"',
    'python_version >= "3.11" and platform_machine == "aarch64" or sys_platform == "linux"',
    '(sys_platform == "win32" or os_name == "nt") and python_version > "3"',
)
TARGETS = (("3.11", "linux-x86_64"), ("3.12", "linux-aarch64"), ("3.10", "linux-x86_64"))
UV_PLATFORM = {"linux-x86_64": "x86_64-manylinux_2_28", "linux-aarch64": "aarch64-manylinux_2_28"}


def kept_by_pinner(root: Path, lines: list[str], python: str, platform: str) -> list[str]:
    reqs = read(root, "".join(f"{line}\n" for line in lines), python=python, platform=platform)
    assert len(reqs.items) + len(reqs.skipped) == len(lines)
    return sorted(r.name for r in reqs.items)


def uv_compile(root: Path, args: list[str], python: str, platform: str) -> list[str]:
    """The package names `uv pip compile` keeps for the target."""
    from pinner.resolve.uv import uv_binary

    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env |= {"UV_PYTHON_DOWNLOADS": "never", "UV_CACHE_DIR": str(root / "uv-cache")}
    cmd = [uv_binary(), "pip", "compile", "--no-config", "--no-header", "--no-annotate"]
    cmd += ["--python-version", python, "--python-platform", UV_PLATFORM[platform], *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root, check=False)
    assert done.returncode == 0, done.stderr
    return sorted(line.split("==")[0] for line in done.stdout.splitlines() if "==" in line)


@pytest.mark.parametrize(("python", "platform"), TARGETS)
def test_markers_agree_with_uv_offline(tmp_path, python, platform):
    wheels = tmp_path / "wheels"
    for i in range(len(MARKERS)):
        build_wheel(wheels, f"m{i}", "1.0")
    lines = [f"m{i} ; {marker}" for i, marker in enumerate(MARKERS)]
    ours = kept_by_pinner(tmp_path, lines, python, platform)
    (tmp_path / "uv.in").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    theirs = uv_compile(
        tmp_path, ["--no-index", "--find-links", str(wheels), "uv.in"], python, platform
    )
    assert ours == theirs
    assert 0 < len(ours) < len(lines)


@pytest.mark.network
def test_markers_agree_with_uv_on_pypi(tmp_path):
    python, platform = TARGETS[1]
    for marker in MARKERS:
        line = f"six ; {marker}"
        (tmp_path / "uv.in").write_text(line + "\n", encoding="utf-8")
        theirs = uv_compile(tmp_path, ["uv.in"], python, platform)
        assert kept_by_pinner(tmp_path, [line], python, platform) == theirs, marker


def test_marker_environment_is_uvs():
    env = marker_environment("3.12", "linux-aarch64")
    assert env["python_full_version"] == "3.12.0"
    assert env["platform_machine"] == "aarch64"
    assert (env["platform_release"], env["platform_version"]) == ("", "")


def test_skipped_lines_plan_nothing(plan_for):
    # issue 10: a Windows-only flash-attn held an A100 at torch 2.8 and refused a T4
    plain = plan_for("T4")
    assert plain.plan is not None
    for line in (
        'flash-attn ; platform_system == "Windows"',
        'xformers==0.0.30 ; sys_platform == "win32"',
        'mamba-ssm ; sys_platform == "darwin"',
    ):
        result = plan_for("T4", line)
        assert result.plan is not None, line
        assert result.plan.torch == plain.plan.torch
        assert result.plan.extensions == ()
        assert result.plan.base_image == plain.plan.base_image


# --- pyproject.toml -------------------------------------------------------------------------------

PYPROJECT = """\
[project]
name = "My-App"
version = "1"
dependencies = ["numpy>=1.26", "six ; sys_platform == 'win32'"]

[project.optional-dependencies]
train = ["accelerate", "my_app[Eval] ; python_version >= '3.12'"]
eval = ["lm-eval==0.4.8"]
gpu = ["my-app[train]", "flash-attn"]
"""


@pytest.mark.parametrize(
    ("entry", "python", "items"),
    [
        ("pyproject.toml", "3.11", ["numpy"]),
        ("pyproject.toml[train]", "3.11", ["numpy", "accelerate"]),
        ("pyproject.toml[train]", "3.12", ["numpy", "accelerate", "lm-eval"]),
        ("pyproject.toml[gpu]", "3.12", ["numpy", "accelerate", "lm-eval", "flash-attn"]),
        ("pyproject.toml[train,eval]", "3.11", ["numpy", "accelerate", "lm-eval"]),
    ],
)
def test_pyproject_dependencies_and_extras(tmp_path, entry, python, items):
    write(tmp_path, {"pyproject.toml": PYPROJECT})
    reqs = read(tmp_path, entries=(entry,), python=python)
    assert [r.name for r in reqs.items] == items
    assert reqs.items[0].origin == "pyproject.toml:project.dependencies[0]"
    assert reqs.skipped[0].origin == "pyproject.toml:project.dependencies[1]"
    assert reqs.files == (tmp_path / "pyproject.toml",)
    assert files_of([tmp_path / entry]) == [tmp_path / "pyproject.toml"]


def test_pyproject_origins_of_extras(tmp_path):
    write(tmp_path, {"pyproject.toml": PYPROJECT, "requirements.in": "torch\n"})
    reqs = read(tmp_path, entries=("requirements.in", "pyproject.toml[gpu]"), python="3.12")
    assert [(r.name, r.origin) for r in reqs.items] == [
        ("torch", "requirements.in:1"),
        ("numpy", "pyproject.toml:project.dependencies[0]"),
        ("accelerate", "pyproject.toml:project.optional-dependencies.train[0]"),
        ("lm-eval", "pyproject.toml:project.optional-dependencies.eval[0]"),
        ("flash-attn", "pyproject.toml:project.optional-dependencies.gpu[1]"),
    ]


@pytest.mark.parametrize(
    ("text", "entry", "fragment"),
    [
        (
            '[project]\nname = "x"\ndynamic = ["dependencies"]\n',
            "pyproject.toml",
            "pyproject.toml: project.dependencies is dynamic (listed in project.dynamic)",
        ),
        (
            '[project]\nname = "x"\ndynamic = ["optional-dependencies"]\n',
            "pyproject.toml[gpu]",
            "pyproject.toml: project.optional-dependencies is dynamic",
        ),
        (PYPROJECT, "pyproject.toml[nope]", "has no extra 'nope' (its extras: eval, gpu, train)"),
        ("[tool.poetry]\n", "pyproject.toml", "pyproject.toml: no [project] table"),
        ('[project]\ndependencies = "six"\n', "pyproject.toml", "must be a list of requirement"),
        (
            '[project]\ndependencies = ["six ="]\n',
            "pyproject.toml",
            "pyproject.toml:project.dependencies[0]: not a valid requirement",
        ),
        ("[project\n", "pyproject.toml", "invalid TOML"),
    ],
)
def test_pyproject_refusals(tmp_path, text, entry, fragment):
    write(tmp_path, {"pyproject.toml": text})
    assert fragment in refused(tmp_path, entries=(entry,))


def test_pyproject_deep_chain_of_own_extras_is_iterative(tmp_path):
    depth = 3000
    lines = [f'e{i} = ["app[e{i + 1}]"]' for i in range(depth)] + [f'e{depth} = ["six"]']
    text = '[project]\nname = "app"\n[project.optional-dependencies]\n' + "\n".join(lines)
    write(tmp_path, {"pyproject.toml": text + "\n"})
    (req,) = read(tmp_path, entries=("pyproject.toml[e0]",)).items
    assert req.origin == f"pyproject.toml:project.optional-dependencies.e{depth}[0]"


def test_pyproject_own_extra_that_does_not_exist(tmp_path):
    text = '[project]\nname = "app"\n[project.optional-dependencies]\na = ["app[zz]"]\n'
    write(tmp_path, {"pyproject.toml": text})
    message = refused(tmp_path, entries=("pyproject.toml[a]",))
    assert message == (
        "pyproject.toml:project.optional-dependencies.a[0]: pyproject.toml has no extra 'zz' "
        "(its extras: a)"
    )


# --- files_of: the same walk for `pinner check` ----------------------------------------------------


def test_files_of_follows_the_same_walk(tmp_path):
    write(
        tmp_path,
        {
            "requirements.in": "six \\\n  --hash=sha256:" + SHA + "\n-rsub/a.in\n",
            "sub/a.in": "--constraint ../c.txt\n-r a.in\n",  # a self include: no loop here
            "c.txt": "six<2\n",
            "pyproject.toml": PYPROJECT,
        },
    )
    found = files_of([tmp_path / "requirements.in", tmp_path / "pyproject.toml[train]"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "requirements.in",
        "sub/a.in",
        "c.txt",
        "pyproject.toml",
    ]


def test_files_of_imports_nothing_heavy():
    code = (
        "import sys, pathlib; from pinner.load.requirements import files_of; "
        "files_of([pathlib.Path('x.in')]); "
        "print(sorted(m for m in ('packaging', 'typer', 'jinja2') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- torch-family spelling ------------------------------------------------------------------------


def test_companion_spelling_does_not_change_planning(plan_for):
    # issue 10: `torchaudio` and `torchaudio>=2.0.0` gave different torch
    bare = plan_for("A100", "torchaudio")
    assert bare.plan is not None
    # LLaMA-Factory's `torchaudio>=2.4.0` is met by torchaudio 2.11.1, which admits torch>=2.11
    spellings = ("torchaudio>=2.0.0", "torchaudio>=2.4.0", "torchaudio>=2.11", "torchaudio<100")
    for line in (*spellings, "TorchAudio>=0", "torchvision>=0.1"):
        spelled = plan_for("A100", line)
        assert spelled.plan is not None
        assert spelled.plan.torch == bare.plan.torch, line
    pinned = plan_for("A100", "torchaudio==2.5.1")  # a real bound still bounds
    assert pinned.plan is not None
    assert pinned.plan.torch.version == "2.5.1"
