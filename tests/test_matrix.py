"""load: matrix TOML -> Matrix. Discovery order, defaults, normalisation, and every refusal."""

# Tests leave fixtures unannotated (STYLE.md 7.7); pyproject's `tests.*` mypy override
# does not match these rootdir modules (test_plan, not tests.test_plan).
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pinner.errors import ConfigError
from pinner.load.matrix import DEFAULT_TORCH_INDEX, load_matrix, select_targets

if TYPE_CHECKING:
    from pinner.model import Matrix, Target

DATA = Path(__file__).parent / "data" / "matrices"
PRESET_TARGETS = ("rtx5090", "a100", "h100", "l4", "cpu")

WriteMatrix = Callable[..., Path]


def names(matrix: Matrix) -> tuple[str, ...]:
    return tuple(t.name for t in matrix.targets)


def only_target(text: str, write_matrix: WriteMatrix, tmp_path: Path) -> Target:
    matrix = load_matrix(write_matrix(text), cwd=tmp_path)
    (target,) = matrix.targets
    return target


def config_error(tmp_path: Path, explicit: Path | None = None) -> str:
    with pytest.raises(ConfigError) as e:
        load_matrix(explicit, cwd=tmp_path)
    return str(e.value)


# --- discovery: --matrix PATH > ./pinner.toml > [tool.pinner] in ./pyproject.toml > presets ------

FILES = {
    "other.toml": '[targets.from-explicit]\ngpu = "A100"\n',
    "pinner.toml": '[targets.from-pinner-toml]\ngpu = "A100"\n',
    "pyproject.toml": '[project]\nname = "x"\n[tool.pinner.targets.from-pyproject]\ngpu = "A100"\n',
}


@pytest.mark.parametrize(
    ("present", "explicit", "expected"),
    [
        pytest.param(set(FILES), "other.toml", ("from-explicit",), id="explicit-beats-all"),
        pytest.param(set(FILES), None, ("from-pinner-toml",), id="pinner-toml-beats-pyproject"),
        pytest.param({"pyproject.toml"}, None, ("from-pyproject",), id="pyproject-tool-pinner"),
        pytest.param(
            {"pinner.toml", "pyproject.toml"},
            "pyproject.toml",
            ("from-pyproject",),
            id="explicit-pyproject-reads-tool-pinner",
        ),
        pytest.param(set(), None, PRESET_TARGETS, id="nothing-means-presets"),
    ],
)
def test_load_matrix_discovery_order(tmp_path, present, explicit, expected):
    for name in present:
        (tmp_path / name).write_text(FILES[name], encoding="utf-8")
    matrix = load_matrix(tmp_path / explicit if explicit else None, cwd=tmp_path)
    assert names(matrix) == expected
    if expected == PRESET_TARGETS:
        assert matrix.path is None
        assert matrix.root == tmp_path.resolve()


def test_load_matrix_pyproject_without_tool_pinner_uses_presets(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    matrix = load_matrix(None, cwd=tmp_path)
    assert matrix.path is None
    assert names(matrix) == PRESET_TARGETS


def test_load_matrix_explicit_missing_file(tmp_path):
    message = config_error(tmp_path, tmp_path / "nope.toml")
    assert message == f"{tmp_path / 'nope.toml'}: no such matrix file (given with --matrix)"


def test_load_matrix_presets_read_requirements_in_of_cwd(tmp_path):
    assert {t.requirements for t in load_matrix(None, cwd=tmp_path).targets} == {()}
    (tmp_path / "requirements.in").write_text("numpy\n", encoding="utf-8")
    matrix = load_matrix(None, cwd=tmp_path)
    assert {t.requirements for t in matrix.targets} == {("requirements.in",)}
    assert matrix.root == tmp_path.resolve()


def test_load_matrix_presets_match_the_readme_targets(tmp_path):
    # issue 2: matrices/default.toml ships rtx5090 and a100, plus at least h100, l4 and cpu
    by_name = {t.name: t for t in load_matrix(None, cwd=tmp_path).targets}
    assert by_name["rtx5090"].gpu == "RTX 5090"
    assert by_name["cpu"].cuda == "cpu"
    assert {t.cuda for n, t in by_name.items() if n != "cpu"} == {"auto"}


# --- defaults and normalisation ------------------------------------------------------------------


def test_load_matrix_defaults_merge_into_targets(write_matrix, tmp_path):
    (tmp_path / "base.in").write_text("numpy\n", encoding="utf-8")
    matrix = load_matrix(
        write_matrix(
            """
            [defaults]
            python = "3.12"
            platform = "linux-aarch64"
            requirements = ["base.in"]
            build = { flash-attn = "wheel", mamba_ssm = "source" }

            [targets.inherits]
            gpu = "GH200"

            [targets.overrides]
            gpu = "A100"
            python = "3.10"
            platform = "x86_64"
            requirements = []
            build = { flash-attn = "source" }
            """
        ),
        cwd=tmp_path,
    )
    inherits, overrides = matrix.targets
    assert (inherits.python, inherits.platform, inherits.requirements) == (
        "3.12",
        "linux-aarch64",
        ("base.in",),
    )
    assert inherits.builds == (("flash-attn", "wheel"), ("mamba-ssm", "source"))
    assert (overrides.python, overrides.platform, overrides.requirements) == (
        "3.10",
        "linux-x86_64",
        (),
    )
    # a target's build table is merged over the defaults' one, key by key
    assert overrides.builds == (("flash-attn", "source"), ("mamba-ssm", "source"))


def test_load_matrix_unset_fields_get_documented_defaults(write_matrix, tmp_path):
    target = only_target('[targets.a]\ngpu = "A100"\n', write_matrix, tmp_path)
    assert (target.cuda, target.torch, target.python, target.platform, target.driver) == (
        "auto",
        "",
        "3.11",
        "linux-x86_64",
        "",
    )
    assert target.torch_index_url == DEFAULT_TORCH_INDEX
    # relative to the project root: the lock records it, and must not depend on where pinner ran
    assert target.origin == "pinner.toml: targets.a"


@pytest.mark.parametrize(
    ("written", "variant"),
    [
        ("12.8", "cu128"),
        ("cu128", "cu128"),
        ("CU128", "cu128"),
        ("12.8.1", "cu128"),
        ("13.0", "cu130"),
        ("13.2", "cu132"),
        ("11.8", "cu118"),
        ("auto", "auto"),
        ("AUTO", "auto"),
    ],
)
def test_load_matrix_cuda_normalised(write_matrix, tmp_path, written, variant):
    text = f'[targets.a]\ngpu = "A100"\ncuda = "{written}"\n'
    assert only_target(text, write_matrix, tmp_path).cuda == variant


def test_load_matrix_cpu_gpu_means_cpu_variant(write_matrix, tmp_path):
    assert only_target('[targets.c]\ngpu = "cpu"\n', write_matrix, tmp_path).cuda == "cpu"


@pytest.mark.parametrize(
    ("written", "platform"),
    [
        ("linux-x86_64", "linux-x86_64"),
        ("linux_x86_64", "linux-x86_64"),
        ("x86_64", "linux-x86_64"),
        ("AMD64", "linux-x86_64"),
        ("linux-aarch64", "linux-aarch64"),
        ("linux_aarch64", "linux-aarch64"),
        ("aarch64", "linux-aarch64"),
        ("arm64", "linux-aarch64"),
    ],
)
def test_load_matrix_platform_aliases(write_matrix, tmp_path, written, platform):
    text = f'[targets.a]\ngpu = "A100"\nplatform = "{written}"\n'
    assert only_target(text, write_matrix, tmp_path).platform == platform


def test_load_matrix_requirements_relative_to_matrix_file(write_matrix, tmp_path):
    (tmp_path / "sub" / "reqs").mkdir(parents=True)
    (tmp_path / "sub" / "reqs" / "base.in").write_text("numpy\n", encoding="utf-8")
    path = write_matrix(
        '[targets.a]\ngpu = "A100"\nrequirements = ["reqs/base.in"]\n', "sub/matrix.toml"
    )
    matrix = load_matrix(path, cwd=tmp_path)
    assert matrix.root == (tmp_path / "sub").resolve()
    assert matrix.targets[0].requirements == ("reqs/base.in",)
    assert matrix.lock == matrix.root / "pinner.lock"


def test_load_matrix_requirements_not_relative_to_cwd(write_matrix, tmp_path, monkeypatch):
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "base.in").write_text("numpy\n", encoding="utf-8")
    path = write_matrix(
        '[targets.a]\ngpu = "A100"\nrequirements = ["reqs/base.in"]\n', "sub/matrix.toml"
    )
    monkeypatch.chdir(tmp_path)
    assert config_error(tmp_path, path) == (
        "sub/matrix.toml: targets.a.requirements: reqs/base.in does not exist "
        f"(paths are relative to {(tmp_path / 'sub').resolve()})"
    )


def test_load_matrix_requirements_outside_the_repository_are_refused(write_matrix, tmp_path):
    """A matrix names the project's files: not /etc/passwd (whose first line an error quoted),
    not ../../etc/hostname; a monorepo's ../shared.in inside the repository is the project's."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "shared.in").write_text("numpy\n", encoding="utf-8")
    (tmp_path / "app").mkdir()
    path = write_matrix(
        '[targets.a]\ngpu = "A100"\nrequirements = ["../shared.in"]\n', "app/pinner.toml"
    )
    assert load_matrix(path, cwd=tmp_path).targets[0].requirements == ("../shared.in",)

    for rel, why in [
        ("/etc/passwd", "an absolute path"),
        ("../../etc/hostname", "outside the repository"),
    ]:
        path.write_text(f'[targets.a]\ngpu = "A100"\nrequirements = ["{rel}"]\n', encoding="utf-8")
        with pytest.raises(ConfigError) as e:
            load_matrix(path, cwd=tmp_path)
        assert f"targets.a.requirements: '{rel}' is {why}" in str(e.value)
        assert "root:" not in str(e.value)  # nothing of the file is quoted


# --- the torch index: matrix value, PINNER_TORCH_INDEX_URL --------------------------------------

MIRROR_MATRIX = """
[targets.a]
gpu = "A100"
torch-index-url = "https://matrix.example/whl/{variant}/"
"""


def test_load_matrix_torch_index_url_from_matrix(write_matrix, tmp_path):
    target = only_target(MIRROR_MATRIX, write_matrix, tmp_path)
    assert target.torch_index_url == "https://matrix.example/whl/{variant}"


def test_load_matrix_torch_index_env_is_a_mirror_not_an_input(write_matrix, tmp_path, monkeypatch):
    """PINNER_TORCH_INDEX_URL is transport: the target keeps the committed index."""
    monkeypatch.setenv("PINNER_TORCH_INDEX_URL", "https://env.example/pytorch/{variant}")
    target = only_target(MIRROR_MATRIX, write_matrix, tmp_path)
    assert target.torch_index_url == "https://matrix.example/whl/{variant}"


def test_load_matrix_torch_index_needs_variant_placeholder(write_matrix, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_matrix('[targets.a]\ngpu = "A100"\ntorch-index-url = "https://m.example/whl/cu128"\n')
    assert config_error(tmp_path) == (
        "pinner.toml: targets.a.torch-index-url: 'https://m.example/whl/cu128' must contain "
        "{variant} (e.g. .../whl/{variant})"
    )


# --- refusals: each names file, key and fix ---------------------------------------------------


def test_load_matrix_unknown_key_suggests_close_match(tmp_path, monkeypatch):
    shutil.copy(DATA / "bad_unknown_key.toml", tmp_path / "pinner.toml")
    monkeypatch.chdir(tmp_path)
    assert config_error(tmp_path) == (
        "pinner.toml: targets.rtx5090.torhc: unknown key (did you mean 'torch'?)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '[defaults]\npyhton = "3.12"\n[targets.a]\ngpu = "A100"\n',
            "pinner.toml: defaults.pyhton: unknown key (did you mean 'python'?)",
            id="defaults",
        ),
        pytest.param(
            '[target.a]\ngpu = "A100"\n[targets.b]\ngpu = "A100"\n',
            "pinner.toml: target: unknown key (did you mean 'targets'?)",
            id="top-level",
        ),
        pytest.param(
            '[targets.a]\ngpu = "A100"\nwhatever = 1\n',
            "pinner.toml: targets.a.whatever: unknown key (known keys: gpu, cuda, torch, "
            "python, platform, driver, base-image, requirements, build, torch-index-url, "
            "pin-images, apt, env)",
            id="no-close-match",
        ),
    ],
)
def test_load_matrix_unknown_key_message(write_matrix, tmp_path, monkeypatch, text, expected):
    write_matrix(text)
    monkeypatch.chdir(tmp_path)
    assert config_error(tmp_path) == expected


def test_load_matrix_unknown_key_in_pyproject_names_table(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pinner.targets.a]\ngpu = "A100"\ncudaa = "12.8"\n', encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    assert config_error(tmp_path) == (
        "pyproject.toml: tool.pinner.targets.a.cudaa: unknown key (did you mean 'cuda'?)"
    )


def test_load_matrix_malformed_toml_names_file_and_line(tmp_path):
    path = tmp_path / "bad_syntax.toml"
    shutil.copy(DATA / "bad_syntax.toml", path)
    message = config_error(tmp_path, path)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "line 3" in message


def test_load_matrix_missing_requirements_file(write_matrix, tmp_path, monkeypatch):
    write_matrix('[targets.a]\ngpu = "A100"\nrequirements = ["missing.in"]\n')
    monkeypatch.chdir(tmp_path)
    assert config_error(tmp_path) == (
        "pinner.toml: targets.a.requirements: missing.in does not exist "
        f"(paths are relative to {tmp_path.resolve()})"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('python = "2.7"', "targets.a.python: '2.7' is not a CPython version such as \"3.11\""),
        ('python = "3"', "targets.a.python: '3' is not a CPython version such as \"3.11\""),
        ('driver = "abc"', "targets.a.driver: 'abc' is not a driver version such as \"570.86\""),
        ('driver = "570.86.x"', "targets.a.driver: '570.86.x' is not a driver version"),
        ('torch = "latest"', "targets.a.torch: 'latest' is not a version range"),
        ('torch = ">=2.7,2.8"', "targets.a.torch: '>=2.7,2.8' is not a version range"),
        ('cuda = "eleven"', "targets.a.cuda: 'eleven' is not a CUDA version; use \"12.8\""),
        ('platform = "windows"', "targets.a.platform: 'windows' is not supported"),
        ("python = 3.11", "targets.a.python: must be a string, got float"),
        ('build = { flash-attn = "yes" }', "targets.a.build.flash-attn: 'yes' must be one of"),
    ],
)
def test_load_matrix_bad_value(write_matrix, tmp_path, monkeypatch, line, expected):
    write_matrix(f'[targets.a]\ngpu = "A100"\n{line}\n')
    monkeypatch.chdir(tmp_path)
    assert config_error(tmp_path).startswith(f"pinner.toml: {expected}")


def test_load_matrix_cpu_target_refuses_cuda_version(write_matrix, tmp_path, monkeypatch):
    write_matrix('[targets.c]\ngpu = "cpu"\ncuda = "12.8"\n')
    monkeypatch.chdir(tmp_path)
    assert config_error(tmp_path) == (
        'pinner.toml: targets.c.cuda: gpu = "cpu" needs no CUDA build; drop cuda or set "cpu"'
    )


def test_load_matrix_reports_every_problem_at_once(write_matrix, tmp_path, monkeypatch):
    write_matrix(
        """
        [defaults]
        requirments = ["x.in"]

        [targets.rtx5090]
        gpu = "RTX 5090"
        torhc = ">=2.7"
        driver = "abc"

        [targets.a100]
        cuda = "eleven"
        """
    )
    monkeypatch.chdir(tmp_path)
    assert config_error(tmp_path).splitlines() == [
        "pinner.toml: defaults.requirments: unknown key (did you mean 'requirements'?)",
        "pinner.toml: targets.rtx5090.torhc: unknown key (did you mean 'torch'?)",
        "pinner.toml: targets.rtx5090.driver: 'abc' is not a driver version such as \"570.86\"",
        'pinner.toml: targets.a100.gpu: missing; name a GPU (e.g. gpu = "A100") or gpu = "cpu"',
        (
            "pinner.toml: targets.a100.cuda: 'eleven' is not a CUDA version; "
            'use "12.8", "cu128" or "auto"'
        ),
    ]


def test_load_matrix_needs_a_target(write_matrix, tmp_path, monkeypatch):
    write_matrix('[defaults]\npython = "3.11"\n')
    monkeypatch.chdir(tmp_path)
    assert config_error(tmp_path) == (
        "pinner.toml: targets: define at least one [targets.<name>] table"
    )


# --- select_targets --------------------------------------------------------------------------


def test_select_targets_all_when_none_named(tmp_path):
    matrix = load_matrix(None, cwd=tmp_path)
    assert select_targets(matrix, []) == matrix.targets


def test_select_targets_named_once_each(tmp_path):
    matrix = load_matrix(None, cwd=tmp_path)
    chosen = select_targets(matrix, ["a100", "a100"])
    assert [t.name for t in chosen] == ["a100"]


def test_select_targets_unknown_suggests_close_match(tmp_path):
    matrix = load_matrix(None, cwd=tmp_path)
    with pytest.raises(ConfigError) as e:
        select_targets(matrix, ["rtx509"])
    assert str(e.value) == (
        "--target: unknown target 'rtx509' (did you mean 'rtx5090'?) in the built-in presets; "
        "known targets: rtx5090, a100, h100, l4, cpu"
    )


def test_select_targets_unknown_names_matrix_file(tmp_path):
    path = tmp_path / "two_targets.toml"
    shutil.copy(DATA / "two_targets.toml", path)
    matrix = load_matrix(path, cwd=tmp_path)
    with pytest.raises(ConfigError) as e:
        select_targets(matrix, ["zzz"])
    assert str(e.value) == (
        f"--target: unknown target 'zzz' in {path.resolve()}; known targets: rtx5090, a100"
    )


# --- hostile values: refused at load, one line each, naming file, key and fix --------------------

HOSTILE = [
    # (TOML lines of target "a", the key named, what is said)
    ('torch-index-url = "http://h/$(touch${IFS}x)/{variant}"', "torch-index-url", "'{'"),
    ('torch-index-url = "https://h/{variant}\\nRUN x"', "torch-index-url", "a newline"),
    ('torch-index-url = "https://h/a b/{variant}"', "torch-index-url", "whitespace"),
    ('torch-index-url = "ftp://h/{variant}"', "torch-index-url", "https://"),
    ('base-image = "ubuntu:24.04\\nRUN curl x | sh"', "base-image", "a newline"),
    ('base-image = "ubuntu:24.04 AS x"', "base-image", "is not an image reference"),
    ('gpu = "A100\\r\\nRUN x"', "gpu", "a carriage return"),
]


@pytest.mark.parametrize(("line", "key", "said"), HOSTILE)
def test_hostile_values_are_refused_with_file_key_and_fix(
    write_matrix, tmp_path, monkeypatch, line, key, said
):
    monkeypatch.chdir(tmp_path)
    gpu = "" if line.startswith("gpu") else 'gpu = "A100"\n'
    write_matrix(f"[targets.a]\n{gpu}{line}\n")

    message = config_error(tmp_path)

    assert message.startswith(f"pinner.toml: targets.a.{key}: ")
    assert said in message
    assert "\n" not in message
    assert "; " in message  # what is wrong; how to fix it


def test_a_target_name_ending_in_a_newline_is_refused(write_matrix, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # `^[a-z0-9][a-z0-9_-]*$` accepted "a100\n": names are matched whole now
    write_matrix('[targets."a100\\n"]\ngpu = "A100"\n')

    message = config_error(tmp_path)

    assert message.startswith("pinner.toml: targets.'a100\\n': ")
    assert "contains a newline" in message
    assert "\n" not in message


def test_a_matrix_that_is_not_utf8_names_its_line(tmp_path):
    (tmp_path / "pinner.toml").write_bytes(b'[targets.a]\ngpu = "A100\xe9"\n')

    message = config_error(tmp_path)

    assert message == (
        f"{tmp_path / 'pinner.toml'}:2: not UTF-8 text (byte 23); save the file as UTF-8"
    )


def test_a_deeply_nested_matrix_is_refused_without_a_traceback(tmp_path):
    (tmp_path / "pinner.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")

    assert config_error(tmp_path).endswith(
        "nested too deeply to read; flatten its arrays and tables"
    )
