"""The dependency graph's metadata: PEP 658 files, else the wheel's own METADATA read with HTTP
range requests (some indexes serve no `.metadata` file for a wheel), cached by file hash."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from pinner.download import DownloadError
from pinner.resolve import graph
from tests.support.index import LocalIndex, sha256_file
from tests.support.wheels import build_wheel

if TYPE_CHECKING:
    from pathlib import Path


def test_wheel_metadata_is_read_by_range_requests(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "rangeapp", "1.0", requires=["six>=1.0", 'idna; extra == "x"'])
    with LocalIndex() as index:
        index.add("pypi", wheel)
        text = graph.wheel_metadata(index.file_url("pypi", wheel.name), stall=10)

    assert "Name: rangeapp" in text
    assert graph.requires_of(text) == ("six>=1.0", 'idna; extra == "x"')


def test_a_missing_metadata_file_falls_back_to_the_wheel_and_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = build_wheel(tmp_path, "rangeapp", "1.0", requires=["six>=1.0"])
    real = graph.wheel_metadata
    calls: list[str] = []

    def no_pep658(url: str, *, stall: float | None = None) -> bytes:
        del stall
        msg = f"cannot read {url}: HTTP 404 Not Found"
        raise DownloadError(msg)

    def counting(url: str, *, stall: float) -> str:
        calls.append(url)
        return real(url, stall=stall)

    monkeypatch.setattr("pinner.download.read_url", no_pep658)
    monkeypatch.setattr(graph, "wheel_metadata", counting)
    with LocalIndex() as index:
        index.add("pypi", wheel)
        url = index.file_url("pypi", wheel.name)
        digest = f"sha256:{sha256_file(wheel)}"
        first = graph.fetch_metadata({"rangeapp": (url, digest)}, tmp_path / "cache", offline=False)
        again = graph.fetch_metadata({"rangeapp": (url, digest)}, tmp_path / "cache", offline=True)

    assert first["rangeapp"] is not None
    assert graph.requires_of(first["rangeapp"]) == ("six>=1.0",)
    assert again == first  # from the cache: offline, no request
    assert calls == [url]


@pytest.mark.parametrize(
    "text",
    [
        "Name: x\nRequires-Dist: a>=1\nRequires-Dist: b; extra == 'c'\n\nRequires-Dist: body\n",
        "Name: x\r\nrequires-dist:   d>1\r\nREQUIRES-DIST:e\r\n\r\nRequires-Dist: body\r\n",
        "Name: x\nRequires-Dist: folded\n  ; extra == 'b'\nRequires-Dist: c",
        "Metadata-Version: 2.1\n Requires-Dist: a continuation, not a field\nSummary: s\n",
        "\nRequires-Dist: after an empty first line: the body\n",
        # bare CR line ends (old Mac text): email splits there; a folded CRLF keeps its CRLF
        "Name: x\rRequires-Dist: a\rRequires-Dist: b\r\rRequires-Dist: body\r",
        "Name: x\r\nRequires-Dist: a\r\n\t; extra == 'b'\r\nRequires-Dist: c\r\n",
        "Requires-Dist: a\n\r\nRequires-Dist: body\n",
        "",
    ],
)
def test_requires_of_reads_what_the_email_header_parser_reads(text: str) -> None:
    from email.parser import HeaderParser

    expected = tuple(HeaderParser().parsestr(text).get_all("Requires-Dist") or ())
    assert graph.requires_of(text) == expected
