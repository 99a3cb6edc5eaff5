"""Hostile and corrupted inputs found by attacking pinner from outside: each test is a defect
that once ended in a traceback, a half-written file or an unquoted value, held to one clear line."""

from __future__ import annotations

import base64
import shutil
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pinner.errors import ConfigError
from pinner.lock.lockfile import read_lock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "llm-service"


def edited_lock(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the example's lock with one edit (`old` must be found)."""
    text = (EXAMPLE / "pinner.lock").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "pinner.lock"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Run]:
    """run_cli(root, "check") -> Run: `pinner.cli.main` in-process, in the folder `root`."""
    from pinner.cli import main

    def run(root: Path, *args: str) -> Run:
        monkeypatch.chdir(root)
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return Run(code, out, err)

    return run


def example(tmp_path: Path) -> Path:
    root = tmp_path / "llm-service"
    shutil.copytree(EXAMPLE, root)
    return root


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ('version = "2.15.0"\nvariant', "version = 2.15\nvariant", "expected str, found float"),
        ('python = "3.11"', "python = 3", "expected str, found int"),
        ("on_pypi = true", 'on_pypi = "yes"', "expected bool, found str"),
        ("pin_images = false", "pin_images = 0", "expected bool, found int"),
        ('companions = ["torchvision==0.29.2"]', 'companions = "x"', "expected an array"),
        ("extensions = []", "extensions = [1]", "expected a table, found int"),
        ('via = ["-r requirements.in", "peft"]', 'via = "peft"', "via: expected an array"),
        (
            'hashes = ["sha256:97eacca0b73e45cb867dbf8c5d5d4dc32219544300e0c8992c7334dc2ef33cec"]',
            'hashes = "sha256:97eacca0b73e45cb867dbf8c5d5d4dc32219544300e0c8992c7334dc2ef33cec"',
            "hashes: expected an array",
        ),
    ],
)
def test_a_plan_field_of_the_wrong_type_is_refused_when_read(
    tmp_path: Path, old: str, new: str, fragment: str
) -> None:
    """A hand-edited plan value of another TOML type was read as is, and `pinner lock --offline`
    then died writing it back (TypeError: cannot write float to the lock); a string where the
    lock has an array was read as its characters."""
    path = edited_lock(tmp_path, old, new)

    with pytest.raises(ConfigError) as err:
        read_lock(path)

    assert "targets.a100: unreadable" in str(err.value)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "folder",
    ["/tmp/elsewhere", "../../elsewhere", "x\\n\\u001b[31mfake", ""],
)
def test_check_refuses_a_generated_folder_outside_the_project(
    tmp_path: Path, run_cli: Callable[..., Run], folder: str
) -> None:
    """`pinner check` read the lock's `[generated]` table unchecked: it printed a tampered
    folder's escape sequences and line breaks raw, and advised `pinner generate --out /tmp/...`
    or a command with `; touch pwned` in it. `generate` and `lock` refuse such a table."""
    root = example(tmp_path)
    lock = root / "pinner.lock"
    text = lock.read_text(encoding="utf-8")
    lock.write_text(text.replace('a100 = "pinned"', f'a100 = "{folder}"', 1), encoding="utf-8")
    shutil.rmtree(root / "pinned" / "a100")

    run = run_cli(root, "check")

    assert run.code == 2
    assert "pinner.lock: generated.a100 = " in run.err
    assert "is not a folder inside the project" in run.err
    assert len(run.err.strip().splitlines()) == 1
    assert "\x1b" not in run.err
    assert "--out" not in run.err


def test_generate_into_a_folder_with_a_line_break_keeps_its_lock_readable(
    tmp_path: Path, run_cli: Callable[..., Run]
) -> None:
    """The `[generated]` table notes only folders a later read accepts: a folder named with a
    line break is written to, but not noted (a noted one would make the lock unreadable)."""
    root = example(tmp_path)

    run = run_cli(root, "generate", "--frozen", "--out", "odd\nname")

    assert run.code == 0, run.err
    assert (root / "odd\nname" / "a100" / "install.sh").is_file()
    assert "odd" not in (root / "pinner.lock").read_text(encoding="utf-8")
    assert run_cli(root, "check").code == 0


def test_the_regenerate_command_quotes_an_out_folder_with_spaces(
    tmp_path: Path, run_cli: Callable[..., Run]
) -> None:
    """Each generated file, and `check`, says how to regenerate it; with `--out "my out"` the
    command read `--out my out` (copied into a shell, it renders into ./my)."""
    root = example(tmp_path)

    assert run_cli(root, "generate", "--frozen", "--out", "my out; x").code == 0

    header = (root / "my out; x" / "a100" / "constraints.txt").read_text(encoding="utf-8")
    assert "# Regenerate: pinner generate --target a100 --out 'my out; x'\n" in header
    (root / "my out; x" / "a100" / "constraints.txt").write_text("edited\n", encoding="utf-8")
    run = run_cli(root, "check", "--out", "my out; x")
    assert run.code == 1
    assert "refresh: pinner generate --target a100 --out 'my out; x'" in run.err


class _AuthHandler(BaseHTTPRequestHandler):
    """Answers 200 only to `Authorization: Basic` of user `me`, password `s3cret/+`."""

    def do_GET(self) -> None:
        want = "Basic " + base64.b64encode(b"me:s3cret/+").decode()
        ok = self.headers.get("Authorization") == want
        body = b"torch" if ok else b"who are you?"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def auth_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_mirror_url_with_credentials_is_fetched_with_them_and_never_shown(
    auth_server: int,
) -> None:
    """A private mirror's URL carries its credentials (`https://user:token@host/...`, as pip and
    uv accept it). pinner's own requests sent `user:token@host` to DNS as the host name ("Name or
    service not known") and printed the token in the error."""
    from pinner.download import DownloadError, read_url

    base = f"http://me:s3cret%2F%2B@127.0.0.1:{auth_server}"

    assert read_url(f"{base}/whl/cu128/torch/") == b"torch"

    with pytest.raises(DownloadError) as err:
        read_url("http://me:s3cret%2F%2B@127.0.0.1:9/whl/cu128/torch/", stall=2)
    assert "s3cret" not in str(err.value)
    assert "127.0.0.1:9/whl/cu128/torch/" in str(err.value)


def test_an_unreachable_torch_mirror_with_credentials_is_named_without_them() -> None:
    from pinner.errors import NetworkError
    from pinner.resolve.output import probe_index

    with pytest.raises(NetworkError) as err:
        probe_index("http://me:s3cret@127.0.0.1:9/whl/cu128", "a100", timeout=2)

    assert "cannot reach the PyTorch index http://***@127.0.0.1:9/whl/cu128 (" in str(err.value)
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize("userinfo", ["user:s3cret@", "__token__:glpat-s3cret@"])
def test_a_committed_torch_index_url_with_credentials_is_refused(
    tmp_path: Path, run_cli: Callable[..., Run], userinfo: str
) -> None:
    """The matrix's torch-index-url is written into pinner.lock and every recipe (install.sh,
    the Dockerfile, modal_image.py): credentials in it were accepted and would be committed and
    baked into images. Requirement URLs already refuse them. (A user name alone is accepted: it
    is what a netrc or keyring looks the password up by.)"""
    (tmp_path / "pinner.toml").write_text(
        "[defaults]\n"
        f'torch-index-url = "https://{userinfo}mirror.example/whl/{{variant}}"\n'
        '[targets.x]\ngpu = "A100"\ncuda = "12.8"\n',
        encoding="utf-8",
    )

    run = run_cli(tmp_path, "targets")

    assert run.code == 2
    assert "pinner.toml: targets.x.torch-index-url: credentials in a URL" in run.err
    assert "PINNER_TORCH_INDEX_URL" in run.err
    assert "s3cret" not in run.err


def test_a_shared_resolution_that_fails_is_reported_once(
    tmp_path: Path, run_cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Targets with identical inputs resolve once; when that run failed, the other target's
    line read `target a100: target rtx5090: offline resolution failed: ...` (the whole error
    again, under two names)."""
    # an empty uv cache: the user's own (warm from a real lock of these pages) let it pass
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv"))
    root = example(tmp_path)
    matrix = root / "pinner.toml"
    matrix.write_text(matrix.read_text().replace('cuda = "auto"', 'cuda = "12.8"'))

    run = run_cli(root, "lock", "--offline")

    assert run.code == 1
    assert run.err.count("offline resolution failed") == 1
    assert "target a100: resolved with target rtx5090 (same inputs), which failed" in run.err
    assert "target a100: target rtx5090" not in run.err


def test_a_requirements_file_beside_the_project_does_not_tie_the_lock_to_its_path(
    tmp_path: Path,
) -> None:
    """A monorepo's shared file (`-r ../shared.in`, or `requirements = ["../shared.in"]`) was
    fingerprinted by its absolute path: `pinner check` in another clone (CI) said the lock was
    stale."""
    from pinner.load.matrix import read_matrix
    from pinner.lock.fingerprint import knowledge_digest, target_inputs

    def fingerprint(repo: Path) -> str:
        raw = read_matrix(repo / "app" / "pinner.toml")
        return target_inputs(raw["targets"][0], raw["root"], knowledge_digest())

    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / ".git").mkdir()  # the repository: ../extra.in is inside it
    (repo / "app" / "pinner.toml").write_text(
        '[defaults]\nrequirements = ["requirements.in", "../extra.in"]\n'
        '[targets.a100]\ngpu = "A100"\n',
        encoding="utf-8",
    )
    (repo / "app" / "requirements.in").write_text("-r ../shared.in\nsix\n", encoding="utf-8")
    (repo / "shared.in").write_text("numpy\n", encoding="utf-8")
    (repo / "extra.in").write_text("idna\n", encoding="utf-8")
    clone = tmp_path / "ci" / "checkout" / "repo"
    shutil.copytree(repo, clone)

    assert fingerprint(clone) == fingerprint(repo)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (
            "pkg @ https://h.example/{x}/pkg-1.0-py3-none-any.whl",
            "contains '{', which a URL carries percent-encoded",
        ),
        ("pkg @ https://h.example/pkg'-1.0-py3-none-any.whl", 'contains "\'"'),
        ("pkg @ https://h.example/a\\b/pkg-1.0-py3-none-any.whl", "contains '\\\\'"),
        ("https://h.example/x.tar.gz#egg=evil;touch", "'evil;touch' is not a package name"),
    ],
)
def test_a_requirement_url_a_recipe_could_not_carry_is_refused_naming_its_line(
    tmp_path: Path, line: str, fragment: str
) -> None:
    """Such URLs were read, locked, and only then refused by `generate` with `the lock was
    edited or is corrupt` (it was not: the requirement was); a name taken from `#egg=` was not
    checked at all."""
    from pinner.load.requirements import read_requirements

    (tmp_path / "requirements.in").write_text(f"six\n{line}\n", encoding="utf-8")

    with pytest.raises(ConfigError) as err:
        read_requirements(
            (tmp_path / "requirements.in",), tmp_path, python="3.11", platform="linux-x86_64"
        )

    assert str(err.value).startswith("requirements.in:2: ")
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_generate_does_not_write_through_a_symlinked_target_folder(
    tmp_path: Path, run_cli: Callable[..., Run]
) -> None:
    """A target folder that is a symbolic link (a repository can commit `pinned/a100 ->
    ~/bin`) was written through: `generate` put install.sh and the rest wherever it pointed.
    A symlinked file is replaced by a regular file, never written through (already so)."""
    root = example(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "install.sh").write_text("#!/bin/sh\necho mine\n", encoding="utf-8")
    shutil.rmtree(root / "pinned" / "a100")
    (root / "pinned" / "a100").symlink_to(elsewhere, target_is_directory=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("victim\n", encoding="utf-8")
    (root / "pinned" / "rtx5090" / "install.sh").unlink()
    (root / "pinned" / "rtx5090" / "install.sh").symlink_to(victim)
    before = (root / "pinned" / "rtx5090" / "constraints.txt").read_bytes()

    run = run_cli(root, "generate", "--frozen")

    assert run.code == 2
    assert "pinned/a100: a symbolic link" in run.err
    assert len(run.err.strip().splitlines()) == 1
    assert sorted(p.name for p in elsewhere.iterdir()) == ["install.sh"]
    assert (elsewhere / "install.sh").read_text(encoding="utf-8") == "#!/bin/sh\necho mine\n"
    assert (root / "pinned" / "rtx5090" / "constraints.txt").read_bytes() == before  # nothing

    (root / "pinned" / "a100").unlink()
    assert run_cli(root, "generate", "--frozen").code == 0
    assert victim.read_text(encoding="utf-8") == "victim\n"
    assert not (root / "pinned" / "rtx5090" / "install.sh").is_symlink()


def _held_message(name: str, newest: str, free: list[tuple[str, str, tuple[str, ...]]]) -> str:
    """The held-back note for `name` of the example's a100 (torch 2.15.0) against a comparison
    run that took `free` (name, version, Requires-Dist)."""
    from pinner.resolve.choose import _held_note
    from pinner.resolve.job import ResolvedPin

    locked = next(
        t for t in read_lock(EXAMPLE / "pinner.lock").targets if t.plan.target.name == "a100"
    )
    version = next(p.version for p in locked.pins if p.name == name)
    pins = [
        ResolvedPin(name=n, version=v, files=(), source="default", requires=r) for n, v, r in free
    ]
    release = next(p for p in pins if p.name == name and p.version == newest)
    return _held_note(locked, name, version, release, pins, (("2.15.0",),)).message


def test_a_held_back_note_names_no_requirement_the_lock_satisfies() -> None:
    """trl's requirements on an H100: `huggingface-hub stays at 1.33.0: huggingface-hub 2.4.0
    requires torch` (a requirement of its `torch` extra), and `transformers stays at 5.17.0:
    transformers 5.24.0 requires huggingface-hub<3.0,>=1.31.0` (which the locked 1.33.0
    satisfies); the binding one was vllm 0.31.0's transformers<5.18. Both also ended `but newer
    direct requirements listed earlier won`, with torch the same in both runs (no segment was
    chosen over another) and transformers listed before vllm."""
    hub = next(
        p.version
        for t in read_lock(EXAMPLE / "pinner.lock").targets
        for p in t.pins
        if p.name == "huggingface-hub"
    )
    free = [
        ("torch", "2.15.0", ()),
        ("huggingface-hub", "9.0.0", ('torch; extra == "torch"', "filelock")),
        ("transformers", "99.0.0", (f"huggingface-hub>={hub}", "torch>=2.4")),
        ("accelerate", "0.1.0", ()),
    ]

    hub_note = _held_message("huggingface-hub", "9.0.0", free)
    transformers_note = _held_message("transformers", "99.0.0", free)

    assert "requires torch" not in hub_note
    assert "requires huggingface-hub" not in transformers_note
    assert "requires torch" not in transformers_note
    for note in (hub_note, transformers_note):
        assert "listed earlier won" not in note
        assert "torch 2.15.0 as well" in note
        assert "newer releases the resolver took (torch 2.15.0 as well): accelerate " in note


def test_the_dockerfile_base_image_comment_is_wrapped_into_comment_lines() -> None:
    """The reason above `FROM` was word-wrapped with `\\n#   ` inside one `{{ }}`, whose
    newlines the template guard escapes: every Dockerfile carried one comment line with literal
    `\\n#   ` in it."""
    from pinner.lock.fingerprint import lock_sections
    from pinner.render.render import render_target

    text = (EXAMPLE / "pinner.lock").read_text(encoding="utf-8")
    tl = next(t for t in read_lock(EXAMPLE / "pinner.lock").targets if t.plan.target.name == "a100")
    artifacts = render_target(tl, section=lock_sections(text)["a100"])
    dockerfile = next(a.text for a in artifacts if a.path.name == "Dockerfile")
    head = dockerfile.split("\nFROM ", 1)[0]

    assert "\\n" not in head
    comment = [line for line in head.splitlines() if line.startswith("# Base image:")]
    assert len(comment) == 1
    following = head.split(comment[0], 1)[1].splitlines()[1:]
    assert following
    assert all(line.startswith("#   ") and len(line) <= 100 for line in following)
    assert "stricter than the wheels' own minimum" in " ".join(following)


def test_tool_pinner_with_dynamic_dependencies_is_not_locked_as_torch_alone(
    tmp_path: Path, run_cli: Callable[..., Run]
) -> None:
    """[tool.pinner] without `requirements` in a project whose dependencies are dynamic
    (setuptools reads them from a file) said `note: no requirements: locking the torch layer
    alone` and went on: recipes without any of the project's packages. Now the reader's own
    refusal of dynamic dependencies, with the fix."""
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "1"\ndynamic = ["dependencies"]\n'
        '[tool.pinner.targets.a100]\ngpu = "A100"\n',
        encoding="utf-8",
    )

    run = run_cli(tmp_path, "explain", "--target", "a100")

    assert run.code == 2
    assert "project.dependencies is dynamic" in run.err
    assert "name a requirements file in `requirements`" in run.err
    assert "torch layer alone" not in run.err


def test_a_package_locked_twice_in_a_target_is_refused(tmp_path: Path) -> None:
    """Two entries of one package in a target (an edit, a merge gone wrong) were rendered as
    two lines of requirements.txt and constraints.txt, which pip refuses at install time."""
    text = (EXAMPLE / "pinner.lock").read_text(encoding="utf-8")
    start = text.index('[[targets.a100.packages]]\nname = "annotated-doc"\nversion = "0.0.7"')
    digest = text.index("\ndigest = ", start)
    text = text[:digest] + text[text.index("\n", digest + 1) :]  # a hand edit drops its digest
    text = text.replace(
        'name = "annotated-doc"\nversion = "0.0.7"', 'name = "accelerate"\nversion = "0.0.7"', 1
    )
    path = tmp_path / "pinner.lock"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigError) as err:
        read_lock(path)

    assert "targets.a100.packages[1]: 'accelerate' is locked twice (also packages[0])" in str(
        err.value
    )


def test_a_refused_mirror_url_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pinner.resolve.environment import mirror

    monkeypatch.setenv("PINNER_INDEX_URL", "https://me:s3cret@mirror.example/simple x")

    with pytest.raises(ConfigError) as err:
        mirror()

    assert "PINNER_INDEX_URL='https://***@mirror.example/simple x': not an http(s)" in str(
        err.value
    )
    assert "s3cret" not in str(err.value)


def test_every_hash_of_a_url_fragment_is_kept(tmp_path: Path) -> None:
    """`#sha256=A&sha256=B`: the fragment was read as a dict, so A (the one pip checks: its
    first) was dropped and a download matching it failed the target."""
    from pinner.load.requirements import read_requirements

    a, b = "a" * 64, "b" * 64
    (tmp_path / "requirements.in").write_text(
        f"pkg @ https://h.example/pkg-1.0-py3-none-any.whl#sha256={a}&sha256={b}\n",
        encoding="utf-8",
    )

    reqs = read_requirements(
        (tmp_path / "requirements.in",), tmp_path, python="3.11", platform="linux-x86_64"
    )

    assert reqs.items[0].hashes == (f"sha256:{a}", f"sha256:{b}")


def test_a_requirements_txt_that_is_not_read_is_named_in_the_note(
    tmp_path: Path, run_cli: Callable[..., Run]
) -> None:
    """A new user's project holds requirements.txt (most do); with the presets pinner reads
    requirements.in only and said `no requirements ... name them with requirements = [...] in
    [defaults]`: no word of the file beside it, and no matrix to put [defaults] in."""
    (tmp_path / "requirements.txt").write_text("transformers\n", encoding="utf-8")

    run = run_cli(tmp_path, "targets")

    assert run.code == 0
    note = next(line for line in run.err.splitlines() if "no requirements" in line)
    assert "requirements.txt in the working folder is not read unless named" in note
    assert 'requirements = ["requirements.txt"] in pinner.toml (pinner init writes one)' in note


def test_no_note_on_unverified_torch_variants_a_requirement_rules_out(
    plan_for: Callable[..., Any],
) -> None:
    """whisperx requires torch~=2.8.0; its plan still noted `torch 2.15.0: its PyTorch-index
    variants are not verified ..., so only PyPI's own build is offered`, a release it can never
    get. The note stays where 2.15 is in reach."""
    pinned = plan_for("RTX 5090", "torch~=2.8.0")
    free = plan_for("RTX 5090", "transformers")

    assert "variants-unverified" not in [f.code for f in pinned.findings]
    assert "variants-unverified" in [f.code for f in free.findings]


def test_an_unreachable_pytorch_index_names_pypis_own_build_that_fits(
    plan_for: Callable[..., Any],
) -> None:
    """diffusers' requirements with xformers on an RTX 5090, on a machine that reaches PyPI only:
    the preferred build (2.11.0+cu128) lives on the PyTorch index and the lock failed naming a
    mirror or --offline, though PyPI's own torch 2.10.0 fits (the next segment)."""
    from pinner.errors import NetworkError
    from pinner.resolve.choose import choose

    result = plan_for("RTX 5090", "torch>=2.6", "xformers")
    assert result.segments[:2] == (("2.11.0+cu128",), ("2.10.0",))

    class Unreachable:
        name = "uv"

        def resolve(self, _job: object) -> tuple[()]:
            msg = "target t: cannot reach the PyTorch index https://download.pytorch.org/whl/cu128"
            raise NetworkError(msg)

    with pytest.raises(NetworkError) as err:
        choose(
            Unreachable(),
            result,
            make_job=lambda *_: object(),  # type: ignore[arg-type]
            replan=lambda _: result.plan,
            inputs="",
            free_job=None,
        )

    assert str(err.value).startswith("target t: cannot reach the PyTorch index")
    assert (
        'or use PyPI\'s own build, which needs no PyTorch index: torch = "==2.10.0" on '
        "pinner.toml: targets.t" in str(err.value)
    )


def test_torch_held_by_the_targets_own_range_is_said_so() -> None:
    """diffusers on an RTX 5090 with torch = "==2.10.0" in the matrix: `torch stays at 2.10.0:
    ...; torch 2.15.0 has no build that fits this target`, though PyPI's 2.15.0 runs there:
    the user's range held it."""
    import dataclasses

    from pinner.resolve.choose import _torch_note

    a100 = next(
        t for t in read_lock(EXAMPLE / "pinner.lock").targets if t.plan.target.name == "a100"
    )
    target = dataclasses.replace(a100.plan.target, torch="==2.14.1")
    locked = dataclasses.replace(a100, plan=dataclasses.replace(a100.plan, target=target))

    ranged = _torch_note(locked, "2.15.0", (("2.14.1",),), "").message
    hardware = _torch_note(a100, "2.99.0", (("2.15.0",),), "").message

    assert "the target's torch range (==2.14.1, on pinner.toml: targets.a100) excludes it" in ranged
    assert "no build that fits" not in ranged
    assert "torch 2.99.0 has no build that fits this target and its requirements" in hardware


def test_a_requirement_held_by_the_targets_own_range_is_said_so() -> None:
    """xformers on an L4 with torch = "<2.10": `xformers stays at 0.0.33.post2: xformers 0.0.35
    requires torch>=2.10, and torch 2.15.0 has no build that fits this target`, though PyPI's
    2.15.0 runs there: the user's range held it (as the note on torch itself says)."""
    import dataclasses

    from pinner.resolve.choose import _held_note
    from pinner.resolve.job import ResolvedPin

    a100 = next(
        t for t in read_lock(EXAMPLE / "pinner.lock").targets if t.plan.target.name == "a100"
    )
    plan = a100.plan
    target = dataclasses.replace(plan.target, torch="<2.10")
    torch = dataclasses.replace(plan.torch, version="2.9.1")
    locked = dataclasses.replace(a100, plan=dataclasses.replace(plan, target=target, torch=torch))
    newest = ResolvedPin(name="xformers", version="0.0.35", files=(), source="default",
                         requires=("torch>=2.10",))  # fmt: skip
    free = (ResolvedPin(name="torch", version="2.15.0", files=(), source="default"),)

    ranged = _held_note(locked, "xformers", "0.0.33.post2", newest, free, (("2.9.1",),)).message
    wider = dataclasses.replace(locked.plan, target=dataclasses.replace(target, torch="<2.99"))
    hardware = _held_note(
        dataclasses.replace(locked, plan=wider), "xformers", "0.0.33.post2", newest, free,
        (("2.9.1",),),
    ).message  # fmt: skip

    assert ranged == (
        "xformers stays at 0.0.33.post2: xformers 0.0.35 requires torch>=2.10, and the target's "
        "torch range (<2.10, on pinner.toml: targets.a100) excludes every torch release it admits"
    )
    assert "torch 2.15.0 has no build that fits this target" in hardware
