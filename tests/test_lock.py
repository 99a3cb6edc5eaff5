"""pinner.lock: exact round trip, stable order, versions kept unless --upgrade or the inputs
demand otherwise, fingerprints that change when and only when a target's inputs change, and
`--target` / removed targets handled without touching the other entries."""

from __future__ import annotations

import dataclasses
import random
import sys
from typing import TYPE_CHECKING, Any

import pytest

from pinner.load.matrix import read_matrix
from pinner.lock import fingerprint
from pinner.lock.fingerprint import knowledge_digest, lock_sections, target_inputs
from pinner.lock.lockfile import dump_lock, new_lock, pin_digest, read_lock
from pinner.model import File, Finding, LockFile, Pin, TargetLock
from tests.support.projects import CPU_MATRIX, Project, hashes_of, make_project
from tests.support.wheels import build_wheel

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from pinner.model import PlanResult
    from tests.support.index import LocalIndex
    from tests.support.projects import Run

pytest_plugins = ("tests.conftest_lock",)


# --- the file format (pure) ----------------------------------------------------------------------


@pytest.fixture
def sample_lock(plan_for: Callable[..., PlanResult]) -> LockFile:
    """Two targets with rich plans (extensions, env, constraints, builds) and varied pins."""
    gpu = plan_for(
        "rtx5090", "flash-attn", "mamba-ssm", "numpy", name="gpu", builds=(("mamba-ssm", "source"),)
    ).plan
    cpu = plan_for("cpu", "demo-app", name="cpu", torch="==2.13.0").plan
    assert gpu is not None
    assert cpu is not None
    assert gpu.extensions
    assert gpu.env or any(e.env for e in gpu.extensions)
    pins_gpu = (
        Pin(
            name="einops",
            version="0.8.1",
            files=(File(name="", hashes=("sha256:" + "1" * 64,)),),
            source="default",
            layer="main",
            via=("flash-attn", "mamba-ssm"),
        ),
        Pin(
            name="flash-attn",
            version="2.8.3.post1",
            files=(File(name="", hashes=()),),
            source="url",
            layer="extension",
            via=("-r requirements.in",),
            url="https://example.invalid/flash_attn-2.8.3.whl",
        ),
        Pin(
            name="ninja",
            version="1.13.0",
            files=(File(name="", hashes=tuple(f"sha256:{c * 64}" for c in "abcdef")),),
            source="default",
            layer="build",
            via=("pinner plan",),
        ),
        Pin(
            name="torch",
            version="2.8.0",
            files=(File(name="", hashes=("sha256:" + "2" * 64, "sha256:" + "3" * 64)),),
            source="default",
            layer="torch",
            via=('quote " and back\\slash', "pinner plan"),
        ),
    )
    pins_cpu = (
        Pin(
            name="demo-app",
            version="1.0",
            files=(File(name="", hashes=("sha256:" + "4" * 64,)),),
            source="default",
            layer="main",
            via=("-r requirements.in",),
        ),
        Pin(
            name="torch",
            version="2.13.0+cpu",
            files=(File(name="", hashes=("sha256:" + "5" * 64,)),),
            source="pytorch",
            layer="torch",
            via=("demo-app", "pinner plan"),
        ),
    )
    finding = Finding(
        target="gpu", severity="warning", code="x", message="two\nlines ü", fix="", source="s"
    )
    return new_lock(
        [
            TargetLock(plan=cpu, pins=pins_cpu, inputs="sha256:" + "a" * 64, findings=()),
            TargetLock(plan=gpu, pins=pins_gpu, inputs="sha256:" + "b" * 64, findings=(finding,)),
        ],
        "2026-11-23",
    )


def inputs_of(lock: LockFile) -> dict[str, str]:
    return {t.plan.target.name: t.inputs for t in lock.targets}


def test_lock_round_trip_is_exact(sample_lock: LockFile, tmp_path: Path) -> None:
    path = tmp_path / "pinner.lock"
    text = dump_lock(sample_lock, inputs_of(sample_lock))
    path.write_text(text, encoding="utf-8")

    read = read_lock(path)

    # what is read back carries each package's integrity digest; everything else is identical
    assert all(p.digest == pin_digest(p) for t in read.targets for p in t.pins)
    unsealed = tuple(
        dataclasses.replace(t, pins=tuple(dataclasses.replace(p, digest="") for p in t.pins))
        for t in read.targets
    )
    assert dataclasses.replace(read, targets=unsealed) == sample_lock
    assert dump_lock(read, inputs_of(read)) == text


def test_generated_table_round_trips_and_is_read_by_check(
    sample_lock: LockFile, tmp_path: Path
) -> None:
    from pinner.lock.lockfile import with_generated
    from pinner.render.check import read_head

    lock = dataclasses.replace(sample_lock, generated=(("cpu", "pinned"), ("gpu", "out/gpu")))
    path = tmp_path / "pinner.lock"
    text = dump_lock(lock, inputs_of(lock))
    path.write_text(text, encoding="utf-8")

    read = read_lock(path)

    assert read.generated == (("cpu", "pinned"), ("gpu", "out/gpu"))
    assert dump_lock(read, inputs_of(read)) == text
    # check's fast path reads it from the head alone, never the target tables
    assert read_head(path) == (inputs_of(lock), {"cpu": "pinned", "gpu": "out/gpu"})
    plain = dump_lock(sample_lock, inputs_of(sample_lock))
    # generate rewrites the head only: the same bytes as a whole dump, every section kept
    assert with_generated(plain, dict(lock.generated)) == text
    assert with_generated(text, {}) == plain
    assert lock_sections(text) == lock_sections(plain)


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ('cpu = "../elsewhere"', "generated.cpu = '../elsewhere' is not a folder inside"),
        ('cpu = "/abs"', "generated.cpu = '/abs' is not a folder inside"),
        ('nope = "pinned"', "generated.nope = 'pinned' names no locked target"),
        ("cpu = 3", "generated.cpu: expected a string, found int"),
    ],
)
def test_a_bad_generated_table_is_refused_naming_the_key(
    sample_lock: LockFile, tmp_path: Path, table: str, fragment: str
) -> None:
    from pinner.errors import ConfigError

    text = dump_lock(sample_lock, inputs_of(sample_lock))
    head, sep, rest = text.partition("\n[targets.")
    path = tmp_path / "pinner.lock"
    path.write_text(f"{head}\n[generated]\n{table}\n{sep}{rest}", encoding="utf-8")

    with pytest.raises(ConfigError) as err:
        read_lock(path)

    assert fragment in str(err.value)


def test_lock_order_does_not_depend_on_input_order(sample_lock: LockFile) -> None:
    text = dump_lock(sample_lock, inputs_of(sample_lock))
    rng = random.Random(7)
    for _ in range(5):
        targets = list(sample_lock.targets)
        rng.shuffle(targets)
        shuffled = [
            dataclasses.replace(t, pins=tuple(rng.sample(t.pins, len(t.pins)))) for t in targets
        ]
        inputs = dict(rng.sample(sorted(inputs_of(sample_lock).items()), 2))
        assert dump_lock(dataclasses.replace(sample_lock, targets=tuple(shuffled)), inputs) == text
    names = [
        line for line in text.splitlines() if line.startswith("[targets.") and "." not in line[9:-1]
    ]
    assert names == ["[targets.cpu]", "[targets.gpu]"]
    packages = [p["name"] for p in tomllib.loads(text)["targets"]["gpu"]["packages"]]
    assert packages == sorted(packages)
    assert len(packages) == 4


# --- fingerprints (pure) -------------------------------------------------------------------------

MATRIX = """\
# the project's GPU fleet
[defaults]
python = "3.11"

[targets.a]
gpu = "cpu"
requirements = ["requirements-a.in"]

# the training boxes
[targets.b]
gpu = "A100"
requirements = ["requirements-b.in"]
"""


@pytest.fixture
def fingerprinted(tmp_path: Path) -> Path:
    root = tmp_path / "fp"
    root.mkdir()
    (root / "pinner.toml").write_text(MATRIX)
    (root / "requirements-a.in").write_text("-r common.in\n-c limits.txt\ndemo-app\n")
    (root / "common.in").write_text("other-app\n")
    (root / "limits.txt").write_text("other-app<2\n")
    (root / "requirements-b.in").write_text("other-app\n")
    (root / "unrelated.in").write_text("x\n")
    return root


def fingerprints(root: Path) -> dict[str, str]:
    raw = read_matrix(root / "pinner.toml")
    digest = knowledge_digest()
    return {t["name"]: target_inputs(t, raw["root"], digest) for t in raw["targets"]}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def _rename_requirements(root: Path) -> None:
    (root / "reqs-a.in").write_text((root / "requirements-a.in").read_text())
    _edit(root / "pinner.toml", '"requirements-a.in"', '"reqs-a.in"')


EDITS: dict[str, tuple[Callable[[Path], Any], set[str]]] = {
    # what a target's lock is computed from: its table (defaults merged) and requirements files
    "own table": (
        lambda r: _edit(r / "pinner.toml", 'gpu = "cpu"', 'gpu = "cpu"\ntorch = "<2.14"'),
        {"a"},
    ),
    "other table": (lambda r: _edit(r / "pinner.toml", 'gpu = "A100"', 'gpu = "H100"'), {"b"}),
    "defaults": (
        lambda r: _edit(r / "pinner.toml", 'python = "3.11"', 'python = "3.12"'),
        {"a", "b"},
    ),
    "requirements file": (
        lambda r: _edit(r / "requirements-a.in", "demo-app", "demo-app>=1"),
        {"a"},
    ),
    "nested -r file": (lambda r: _edit(r / "common.in", "other-app", "other-app==1.0"), {"a"}),
    "nested -c file": (lambda r: _edit(r / "limits.txt", "<2", "<3"), {"a"}),
    "shared file": (lambda r: _edit(r / "requirements-b.in", "other-app", "other-app\nfoo"), {"b"}),
    # files are hashed byte for byte: even a comment in a requirements file counts
    "requirements comment": (
        lambda r: _edit(r / "common.in", "other-app", "# hi\nother-app"),
        {"a"},
    ),
    "requirements path": (_rename_requirements, {"a"}),
    # not inputs of any target's lock
    "matrix comment": (
        lambda r: _edit(r / "pinner.toml", "# the training boxes", "# moved"),
        set(),
    ),
    "matrix comment added": (
        lambda r: _edit(r / "pinner.toml", "[targets.a]", "# new\n[targets.a]"),
        set(),
    ),
    "tables reordered": (
        lambda r: (r / "pinner.toml").write_text(
            '[targets.b]\nrequirements = ["requirements-b.in"]\ngpu = "A100"\n\n'
            '[defaults]\npython="3.11"\n\n[targets.a]\ngpu = "cpu"\nrequirements = [ "requirements-a.in" ]\n'
        ),
        set(),
    ),
    "default made explicit": (
        lambda r: _edit(r / "pinner.toml", 'gpu = "cpu"', 'gpu = "cpu"\npython = "3.11"'),
        set(),
    ),
    "out folder": (
        lambda r: _edit(r / "pinner.toml", "[defaults]", 'out = "elsewhere"\n\n[defaults]'),
        set(),
    ),
    "unreferenced file": (lambda r: (r / "unrelated.in").write_text("y\n"), set()),
}


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_fingerprint_changes_when_and_only_when_inputs_change(
    fingerprinted: Path, edit: str
) -> None:
    change, expected = EDITS[edit]
    before = fingerprints(fingerprinted)

    change(fingerprinted)

    after = fingerprints(fingerprinted)
    assert {n for n in before if before[n] != after[n]} == expected


def test_fingerprint_covers_knowledge_pinner_version_and_torch_index(
    fingerprinted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = read_matrix(fingerprinted / "pinner.toml")
    (a, _) = raw["targets"]
    base = target_inputs(a, raw["root"], knowledge_digest())

    assert target_inputs(a, raw["root"], "sha256:other-knowledge") != base
    monkeypatch.setattr(fingerprint, "__version__", "99.0")
    assert target_inputs(a, raw["root"], knowledge_digest()) != base
    monkeypatch.undo()
    assert target_inputs(a, raw["root"], knowledge_digest()) == base
    # A mirror of the PyTorch index is transport: it changes no input (the recipes name the
    # committed index and take the mirror at install time)...
    monkeypatch.setenv("PINNER_TORCH_INDEX_URL", "https://mirror.invalid/whl/{variant}")
    (a2, _) = read_matrix(fingerprinted / "pinner.toml")["targets"]
    assert target_inputs(a2, raw["root"], knowledge_digest()) == base
    # ...the committed index does
    (fingerprinted / "pinner.toml").write_text(
        (fingerprinted / "pinner.toml")
        .read_text()
        .replace(
            "[defaults]", '[defaults]\ntorch-index-url = "https://other.invalid/whl/{variant}"'
        )
    )
    (a3, _) = read_matrix(fingerprinted / "pinner.toml")["targets"]
    assert target_inputs(a3, raw["root"], knowledge_digest()) != base


def test_fingerprint_does_not_depend_on_where_the_project_is(
    fingerprinted: Path, tmp_path: Path
) -> None:
    import shutil

    moved = tmp_path / "elsewhere" / "project"
    shutil.copytree(fingerprinted, moved)

    assert fingerprints(moved) == fingerprints(fingerprinted)


# --- locking through the loopback indexes --------------------------------------------------------

TWO_TARGETS = (
    CPU_MATRIX
    + """
[targets.tools]
gpu = "cpu"
torch = "==2.13.0"
requirements = ["requirements-tools.in"]
"""
)


@pytest.fixture
def two_targets(project: Project) -> Project:
    project.write("pinner.toml", TWO_TARGETS)
    project.write("requirements-tools.in", "other-app\n")
    return project


def test_relock_without_changes_is_byte_identical(
    two_targets: Project, cli: Callable[..., Run]
) -> None:
    first = cli("lock")
    assert first.code == 0, first.err
    text = two_targets.lock.read_text()

    again = cli("lock")

    assert again.code == 0, again.err
    assert "pinner.lock: no changes (2 targets; cpu, tools resolved)" in again.out
    assert two_targets.lock.read_text() == text
    assert list(two_targets.lock_doc()["inputs"]) == ["cpu", "tools"]


def test_lock_target_relocks_only_that_target(
    two_targets: Project, cli: Callable[..., Run]
) -> None:
    assert cli("lock").code == 0
    before = two_targets.lock.read_text()
    two_targets.write("requirements.in", "demo-app\nother-app\n")
    two_targets.write("requirements-tools.in", "other-app\nneeds-vision\n")

    result = cli("lock", "--target", "cpu")

    assert result.code == 0, result.err
    assert "(cpu resolved)" in result.out
    after = two_targets.lock.read_text()
    assert lock_sections(after)["tools"] == lock_sections(before)["tools"]
    # tools keeps its old entry and the fingerprint it was resolved from, so it stays stale.
    assert two_targets.lock_doc()["inputs"]["tools"] == read_inputs(before)["tools"]
    assert "other-app" in two_targets.packages("cpu")
    assert "needs-vision" not in two_targets.packages("tools")
    check = cli("check")
    assert check.code == 1
    assert "pinner.lock: target tools is stale" in check.err
    assert "target cpu" not in check.err


def test_target_removed_from_the_matrix_is_dropped(
    two_targets: Project, cli: Callable[..., Run]
) -> None:
    assert cli("lock").code == 0
    two_targets.write("pinner.toml", CPU_MATRIX)

    result = cli("lock", "--target", "cpu")

    assert result.code == 0, result.err
    doc = two_targets.lock_doc()
    assert list(doc["targets"]) == ["cpu"]
    assert list(doc["inputs"]) == ["cpu"]


def test_lock_unknown_target_is_refused(two_targets: Project, cli: Callable[..., Run]) -> None:
    result = cli("lock", "--target", "tool")

    assert result.code == 2
    assert "tools" in result.err
    assert not two_targets.lock.exists()


def test_requirement_removed_is_dropped_with_what_it_pulled(
    project: Project, cli: Callable[..., Run]
) -> None:
    """The old lock's torch-layer names are routed again (one uv run), but only kept when
    something still requires them."""
    project.write("requirements.in", "demo-app\ntorchvision\n")
    assert cli("lock").code == 0
    assert project.packages()["torchvision"]["layer"] == "torch"
    project.write("requirements.in", "needs-vision\n")
    assert cli("lock").code == 0
    assert "needs-vision" in project.packages()["torchvision"]["via"]

    project.write("requirements.in", "demo-app\n")
    result = cli("lock")

    assert result.code == 0, result.err
    assert "torchvision" not in project.packages()
    assert "needs-vision" not in project.packages()
    assert "demo-app" in project.packages()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("this is [not toml\n", "invalid TOML"),
        (
            "version = 2\n<<<<<<< HEAD\n[inputs]\n=======\n>>>>>>> other\n",
            "pinner.lock:2: merge-conflict marker",
        ),
        ('version = 2\n[inputs]\ncpu = "sha256:x"\n', "the file is truncated"),
        ("version = 9\n", "written by a newer pinner"),
    ],
)
def test_unreadable_lock_is_an_error_until_upgrade_starts_over(
    project: Project, cli: Callable[..., Run], text: str, fragment: str
) -> None:
    """A conflicted, truncated or unknown lock is never silently re-resolved (versions would
    move); `--upgrade` starts over."""
    project.lock.write_text(text)

    refused = cli("lock")

    assert refused.code == 2
    assert fragment in refused.err
    assert "Traceback" not in refused.err
    assert project.lock.read_text() == text

    fresh = cli("lock", "--upgrade")

    assert fresh.code == 0, fresh.err
    assert project.packages()["torch"]["version"] == "2.13.0+cpu"


def test_versions_are_kept_unless_upgrade_or_the_inputs_demand(
    tmp_path: Path,
    fresh_index: LocalIndex,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., Run],
) -> None:
    project = make_project(
        tmp_path / "proj", fresh_index, monkeypatch, requirements="demo-app\nother-app\n"
    )
    assert cli("lock").code == 0
    assert project.packages()["demo-app"]["version"] == "1.0"
    newer = tmp_path / "newer"
    fresh_index.add("pypi", build_wheel(newer, "demo-app", "1.1", requires=["torch>=2.0"]))
    fresh_index.add("pypi", build_wheel(newer, "other-app", "1.1"))

    kept = cli("lock")

    assert kept.code == 0, kept.err
    assert project.packages()["demo-app"]["version"] == "1.0"
    assert project.packages()["other-app"]["version"] == "1.0"

    # The inputs demand a newer demo-app: it moves, other-app stays.
    project.write("requirements.in", "demo-app>=1.1\nother-app\n")
    demanded = cli("lock")

    assert demanded.code == 0, demanded.err
    assert project.packages()["demo-app"]["version"] == "1.1"
    assert project.packages()["other-app"]["version"] == "1.0"

    upgraded = cli("lock", "--upgrade")

    assert upgraded.code == 0, upgraded.err
    assert project.packages()["other-app"]["version"] == "1.1"
    assert hashes_of(project.packages()["other-app"]) == [
        f"sha256:{f.sha256}" for f in fresh_index.files("pypi", "other-app") if "1.1" in f.filename
    ]


def read_inputs(text: str) -> dict[str, str]:
    return dict(tomllib.loads(text)["inputs"])
