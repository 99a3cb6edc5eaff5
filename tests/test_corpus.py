"""The bad-input corpus (tests/corpus/cases.toml), one test per case.

Each case meets pinner with a hostile, malformed or faulty input and asserts what pinner owes:
no traceback, the exit status (2 bad input, 1 failed check, 0 accepted), a fragment of its
message, no file changed but those the case allows, and no side effect of a hostile value.

CI budget: 60 s on a 2-core runner (about 10 s of CPU: every case runs in-process through
`pinner.cli.main` in a copy of a small project; none runs a resolver or uses the network). The
figures: `python -m tests.corpus`. Cases marked `xfail` wait on other work (strict: they must
start passing when it lands, and then lose the mark).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tests.corpus import KINDS, Case, load_cases, run_case

if TYPE_CHECKING:
    from pathlib import Path

CASES = load_cases()


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_case(case: Case, workdir: Path) -> None:
    outcome = run_case(case, workdir)

    assert not outcome.problems, "\n".join(
        [*outcome.problems, f"stdout: {outcome.out}", f"stderr: {outcome.err}"]
    )


def test_the_corpus_is_large_and_varied() -> None:
    groups = {c.group: c.kind for c in CASES}  # a case run under several commands counts once
    distinct = Counter(groups.values())

    assert len(CASES) >= 150
    assert set(distinct) == set(KINDS)
    assert all(n >= 5 for n in distinct.values()), distinct
