"""Per-request timeouts beyond the downloader: the dependency graph's metadata fetch, the
PyTorch index probe and the index page read share download.py's connect and no-progress
timeouts, and a stall is reported naming the URL. The servers here stall for 30 s; the
requests give up after PINNER_STALL_TIMEOUT (0.3 s), so a call that did not time out would get
its answer late and fail the assertions on what it returned, not on a clock."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest

from pinner.download import DownloadError, read_url, stall_timeout
from pinner.errors import ConfigError, NetworkError
from pinner.resolve.graph import fetch_metadata
from pinner.resolve.output import page_hashes, probe_index
from tests.support.stub_server import Reply, StubServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

METADATA = b"Metadata-Version: 2.1\nName: quick\nVersion: 1.0\nRequires-Dist: six\n"
LINK = '<a href="six-1.0-py3-none-any.whl#sha256=' + "ab" * 32 + '">six</a>'


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubServer]:
    monkeypatch.setenv("PINNER_STALL_TIMEOUT", "0.3")
    with StubServer() as stub:
        stub.routes["/quick-1.0-py3-none-any.whl.metadata"] = lambda _r: Reply(body=METADATA)
        stub.fallback = lambda _r: Reply(body=METADATA + LINK.encode(), stall=30)
        yield stub


def test_a_stalled_response_names_the_url(server: StubServer) -> None:
    url = server.base_url + "/slow/"

    with pytest.raises(DownloadError) as e:
        read_url(url)

    assert str(e.value) == f"cannot read {url}: no data for 0.3 s (stalled)"


def test_a_stalled_index_page_names_the_url(server: StubServer) -> None:
    url = server.base_url + "/simple/six/"

    with pytest.raises(NetworkError) as e:
        page_hashes(url)

    assert str(e.value) == f"cannot read {url}: no data for 0.3 s (stalled)"


def test_stalled_metadata_leaves_the_graph_unknown_with_one_note(
    server: StubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = server.base_url
    files = {
        name: (f"{base}/{name}-1.0-py3-none-any.whl", f"sha256:{n}" + "0" * 63)
        for n, name in enumerate(("quick", "slow-a", "slow-b", "slow-c"))
    }

    texts = fetch_metadata(files, tmp_path, offline=False)

    assert texts == {
        "quick": METADATA.decode(),
        "slow-a": None,
        "slow-b": None,
        "slow-c": None,
    }
    err = capsys.readouterr().err
    (note,) = err.splitlines()  # one note, however many requests stalled
    assert note.startswith(f"note: cannot read {base}/slow-")
    assert ".whl.metadata: no data for 0.3 s (stalled); the dependency graph" in note
    cached = sorted(p.name for p in (tmp_path / "metadata").iterdir())
    assert cached == ["0" * 63 + "0.metadata"]  # the one that answered; no temp file left


def test_a_silent_pytorch_index_is_reported_naming_the_probe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PINNER_STALL_TIMEOUT", "0.3")
    with socket.socket() as listener:  # accepts connections (the kernel does), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/whl/cu128"

        with pytest.raises(NetworkError) as e:
            probe_index(url, "gpu")

    assert str(e.value).startswith(
        f"target gpu: cannot reach the PyTorch index {url} "
        f"({url}/torch/: no answer for 0.3 s (stalled)).\n  fix: "
    )


@pytest.mark.parametrize("value", ["soon", "0", "-1", "inf", "nan"])
def test_a_bad_stall_timeout_is_a_config_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PINNER_STALL_TIMEOUT", value)

    with pytest.raises(ConfigError) as e:
        stall_timeout()

    assert str(e.value).startswith(f"PINNER_STALL_TIMEOUT={value!r}: give a number of seconds")


def test_the_stall_timeout_defaults_to_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PINNER_STALL_TIMEOUT", raising=False)

    assert stall_timeout() == 60.0
