"""Four `pinner generate` runs started together in one project end as one run would: each exits
0, pinner.lock and pinned/ are byte for byte what a single run writes, `pinner check` is fresh,
and no temporary file is left, in the project or in the cache the four runs share.

Real processes against loopback indexes (the cpu project of tests/test_generate.py); the write
lock they take turns on lives in pinner's cache, keyed by the project's root, not in the project.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.support.index import LocalIndex
from tests.support.recipes import build_wheelhouse, cpu_project

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.support.recipes import CpuProject

RUNS = 4


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CpuProject]:
    """A cpu project (not yet locked) and its loopback indexes, open for the module."""
    root = tmp_path_factory.mktemp("concurrency")
    wheels = build_wheelhouse(root / "wheels")
    with LocalIndex() as index:
        yield cpu_project(root / "template", index, wheels)


def files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def leftovers(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.tmp"))


def start(project: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pinner", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_four_parallel_generates_end_as_one_run_would(served: CpuProject, tmp_path: Path) -> None:
    template = served
    alone = tmp_path / "alone"
    shutil.copytree(template.root, alone)
    env = template.pinner_env(tmp_path / "cache-alone")
    one = subprocess.run(
        [sys.executable, "-m", "pinner", "generate"],
        cwd=alone,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert one.returncode == 0, one.stderr
    expected = files(alone)

    together = tmp_path / "together"
    shutil.copytree(template.root, together)
    cache = tmp_path / "cache-shared"  # one cold cache for all four: they race on it too
    env = template.pinner_env(cache)
    procs = [start(together, env, "generate") for _ in range(RUNS)]
    results = [(*p.communicate(timeout=300), p.returncode) for p in procs]

    for out, err, code in results:
        assert code == 0, err
        assert "Traceback" not in err
        assert out.startswith("generated pinned/:")
    # one run wrote the files; the others found the lock fresh and the files the same
    assert [out for out, _, _ in results].count("generated pinned/: 10 files written\n") == 1
    assert files(together) == expected
    check = subprocess.run(
        [sys.executable, "-m", "pinner", "check"],
        cwd=together,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (check.returncode, check.stdout) == (0, "pinner check: 1 target fresh\n"), check.stderr
    assert leftovers(together) == []
    assert leftovers(cache) == []
    assert not any((cache / "pinner" / "jobs").iterdir())  # every work folder removed
    key = hashlib.sha256(str(together.resolve()).encode()).hexdigest()[:24]
    assert (cache / "pinner" / "locks" / f"{key}.lock").is_file()  # the write lock: in the cache
    assert sorted(p.name for p in together.iterdir()) == [
        "pinned",
        "pinner.lock",
        "pinner.toml",
        "requirements.in",
    ]


def test_parallel_locks_of_different_targets_lose_no_entry(
    served: CpuProject, tmp_path: Path
) -> None:
    """Each run reads the old lock, resolves its own target and writes the lock with the other
    entries kept: without turns, the later write would drop the entry the other run added."""
    template = served
    project = tmp_path / "two"
    shutil.copytree(template.root, project)
    matrix = project / "pinner.toml"
    matrix.write_text(
        matrix.read_text(encoding="utf-8") + '\n[targets.cpu2]\ngpu = "cpu"\ntorch = "==2.13.0"\n',
        encoding="utf-8",
    )
    env = template.pinner_env(tmp_path / "cache")
    procs = [start(project, env, "lock", "--target", name) for name in ("cpu", "cpu2", "cpu")]
    results = [(*p.communicate(timeout=300), p.returncode) for p in procs]

    for _, err, code in results:
        assert code == 0, err
    text = (project / "pinner.lock").read_text(encoding="utf-8")
    assert "\n[targets.cpu]\n" in text
    assert "\n[targets.cpu2]\n" in text


HOLDER = """
import sys, time
from pathlib import Path
from pinner.render.output import project_lock
with project_lock(Path(sys.argv[1]), Path(sys.argv[2])):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def test_the_write_lock_waits_for_another_process_and_nests_within_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The OS lock (flock, stdlib: no third-party lock package) is held across processes, said
    on stderr while waiting, reentrant within a process, and gone when its holder exits."""
    import time

    from pinner.render.output import project_lock

    root, cache = tmp_path / "project", tmp_path / "cache"
    root.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(root), str(cache), "1.0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline() == "held\n"
    start_at = time.monotonic()
    with project_lock(root, cache), project_lock(root, cache):  # nested: no self-deadlock
        waited = time.monotonic() - start_at
    assert holder.wait(timeout=30) == 0
    holder.stdout.close()
    assert waited > 0.3  # the holder slept 1.0 s holding it
    assert f"pinner: waiting for another pinner run in {root} to finish" in capsys.readouterr().err
    with project_lock(root, cache):  # released on the way out: taken again at once
        pass
    assert "waiting" not in capsys.readouterr().err
    assert [p.name for p in (cache / "locks").iterdir()] == [
        hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24] + ".lock"
    ]


@pytest.mark.parametrize("broken", ["a file", "no permission"])
def test_a_cache_the_write_lock_cannot_live_in_names_the_cache_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    """PINNER_CACHE_DIR naming a file, or a folder pinner may not write: one line that names the
    setting to change (not --out, which is the output's), and nothing is written."""
    import errno
    import os

    from pinner.errors import OutputError
    from pinner.render.output import project_lock

    root, cache = tmp_path / "project", tmp_path / "cache"
    root.mkdir()
    if broken == "a file":
        cache.write_text("", encoding="utf-8")
    else:  # as root chmod does not stop a write: the refusal the OS gives a user, by hand

        def refused(path: str, *_: object) -> int:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

        monkeypatch.setattr(os, "open", refused)
    with pytest.raises(OutputError) as caught, project_lock(root, cache):
        pass
    message = str(caught.value)
    assert "\n" not in message
    assert "pinner's cache" in message
    assert message.endswith(
        "nothing was changed; set PINNER_CACHE_DIR to a folder pinner can write"
    )
    assert "--out" not in message


DRIVER = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (not a background job)
import pinner.resolve.uv as uv
uv.uv_binary = lambda: sys.argv[1]  # a uv that takes 3 s, as a resolution on the network does
from pinner.cli import main
sys.exit(main(["lock", "--jobs", "1"]))
"""
MATRIX = """\
[defaults]
python = "3.11"

[targets.rtx5090]
gpu = "RTX 5090"
requirements = ["a.in"]

[targets.a100]
gpu = "A100"
requirements = ["b.in"]
"""


@pytest.mark.skipif(not hasattr(os, "killpg"), reason="needs process groups")
def test_ctrl_c_stops_the_lock_run_at_once(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) ends a lock run within a
    moment: the uv it killed is not taken for a failed resolution (no other segment is tried, no
    other target started); before, the run went on for every segment of every target."""
    import signal
    import time

    fake = tmp_path / "uv"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background job's ignored SIGINT too\n"
        "time.sleep(3)\n"
        "sys.exit('error: no answer')\n",
        encoding="utf-8",
    )
    fake.chmod(0o755)
    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "pinner.toml").write_text(MATRIX, encoding="utf-8")
    (project / "a.in").write_text("demo-app\n", encoding="utf-8")
    (project / "b.in").write_text("other-app\n", encoding="utf-8")
    env = {**os.environ, "PINNER_CACHE_DIR": str(tmp_path / "cache")}

    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(fake)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    time.sleep(1.5)  # the first resolution is running
    os.killpg(proc.pid, signal.SIGINT)
    interrupted = time.monotonic()
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - interrupted

    assert proc.returncode == 130, err
    assert "pinner: interrupted" in err
    assert "Traceback" not in err
    assert took < 2.5, f"{took:.1f} s after Ctrl-C"
    assert not (project / "pinner.lock").exists()
