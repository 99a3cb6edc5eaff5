"""The shared downloader: digests cached by URL, offline from the cache, the mirror override,
retries, and the no-progress timeout, against a scripted server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from pinner import download
from pinner.download import DownloadError, sha256_of, transport_url
from tests.support.stub_server import Reply, StubServer

if TYPE_CHECKING:
    from collections.abc import Iterator

DATA = b"a stand-in release asset\n" * 1000
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()
RELEASE = "https://github.com/owner/project/releases/download/v1/file.whl"


@pytest.fixture
def server() -> Iterator[StubServer]:
    with StubServer() as stub:
        stub.routes["/file.whl"] = lambda _r: Reply(
            body=DATA, headers={"ETag": '"v1"', "Last-Modified": "Mon, 30 Nov 2026 10:00:00 GMT"}
        )
        yield stub


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "BACKOFF", 0.0)
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)


def test_downloads_once_and_caches_digest_size_and_validators(server, tmp_path):
    url = server.base_url + "/file.whl"

    assert sha256_of(url, offline=False, cache=tmp_path) == DIGEST
    assert sha256_of(url, offline=False, cache=tmp_path) == DIGEST
    assert sha256_of(url, offline=True, cache=tmp_path) == DIGEST

    assert server.paths() == ["/file.whl"]  # one download for three questions
    (entry,) = (tmp_path / "downloads").glob("*.json")
    assert json.loads(entry.read_text()) == {
        "url": url,
        "sha256": DIGEST,
        "size": len(DATA),
        "etag": '"v1"',
        "last_modified": "Mon, 30 Nov 2026 10:00:00 GMT",
    }
    assert [p.name for p in (tmp_path / "downloads").iterdir()] == [entry.name]  # no temp left


def test_offline_without_a_cache_entry_names_the_url_and_the_way_out(tmp_path):
    with pytest.raises(DownloadError) as e:
        sha256_of(RELEASE, offline=True, cache=tmp_path)

    assert RELEASE in str(e.value)
    assert "run once without --offline" in str(e.value)
    assert e.value.exit_code == 1


def test_the_mirror_is_transport_only(server, tmp_path, monkeypatch):
    monkeypatch.setenv(download.MIRROR_ENV, server.base_url + "/")
    server.routes["/owner/project/releases/download/v1/file.whl"] = lambda _r: Reply(body=DATA)

    assert (
        transport_url(RELEASE) == server.base_url + "/owner/project/releases/download/v1/file.whl"
    )
    assert transport_url("https://example.org/x.whl") == "https://example.org/x.whl"
    assert sha256_of(RELEASE, offline=False, cache=tmp_path) == DIGEST

    monkeypatch.delenv(download.MIRROR_ENV)
    # the cache is keyed by the public URL: offline, without the mirror, it still answers
    assert sha256_of(RELEASE, offline=True, cache=tmp_path) == DIGEST


def test_transient_errors_are_retried(server, tmp_path):
    answers = iter([Reply(503, b"busy"), Reply(502, b"gateway"), Reply(body=DATA)])
    server.routes["/flaky.whl"] = lambda _r: next(answers)

    assert sha256_of(server.base_url + "/flaky.whl", offline=False, cache=tmp_path) == DIGEST
    assert server.paths() == ["/flaky.whl"] * 3


def test_a_missing_file_fails_at_once_naming_the_url(server, tmp_path):
    url = server.base_url + "/missing.whl"

    with pytest.raises(
        DownloadError, match=r"cannot download http://127\.0\.0\.1:\d+/missing\.whl: HTTP 404"
    ):
        sha256_of(url, offline=False, cache=tmp_path)

    assert server.paths() == ["/missing.whl"]  # a 404 is not retried
    assert not list((tmp_path / "downloads").glob("*.json"))


def test_a_stalled_download_names_the_url_that_stalled(server, tmp_path):
    server.routes["/slow.whl"] = lambda _r: Reply(body=DATA, stall=1)
    url = server.base_url + "/slow.whl"

    with pytest.raises(DownloadError) as e:
        sha256_of(url, offline=False, cache=tmp_path, stall=0.2, attempts=1)

    assert str(e.value) == f"cannot download {url}: no data for 0.2 s (stalled)"
    assert not list((tmp_path / "downloads").glob("*.json"))


def test_a_truncated_download_is_not_cached(server, tmp_path):
    server.routes["/short.whl"] = lambda _r: Reply(body=DATA[:100], length=len(DATA))
    url = server.base_url + "/short.whl"

    with pytest.raises(DownloadError) as e:
        sha256_of(url, offline=False, cache=tmp_path, attempts=2)

    assert url in str(e.value)
    assert server.paths() == ["/short.whl"] * 2
    assert not list((tmp_path / "downloads").glob("*.json"))


def test_concurrent_runs_agree_and_leave_one_entry(server, tmp_path):
    url = server.base_url + "/file.whl"

    with ThreadPoolExecutor(max_workers=6) as pool:
        digests = list(pool.map(lambda _i: sha256_of(url, offline=False, cache=tmp_path), range(6)))

    assert digests == [DIGEST] * 6
    assert len(list((tmp_path / "downloads").iterdir())) == 1


def test_a_corrupt_cache_entry_is_downloaded_again(server, tmp_path):
    url = server.base_url + "/file.whl"
    sha256_of(url, offline=False, cache=tmp_path)
    (entry,) = (tmp_path / "downloads").glob("*.json")
    entry.write_text("{not json", encoding="utf-8")

    assert sha256_of(url, offline=False, cache=tmp_path) == DIGEST
    assert server.paths() == ["/file.whl"] * 2


@pytest.mark.network
def test_a_real_https_download_matches_the_digest_pypi_publishes(tmp_path):
    """TLS, redirects and the connection classes against a real server: a small wheel from
    PyPI, whose PEP 691 page publishes its sha256."""
    request = urllib.request.Request(
        "https://pypi.org/simple/six/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with download.open_url(request) as r:
        files = json.load(r)["files"]
    (wheel,) = [f for f in files if f["filename"] == "six-1.17.0-py2.py3-none-any.whl"]

    digest = sha256_of(wheel["url"], offline=False, cache=tmp_path)

    assert digest == "sha256:" + wheel["hashes"]["sha256"]
    entry = download.cached(wheel["url"], tmp_path)
    assert entry is not None
    assert entry.size == wheel["size"]
