"""Image digest pinning (`pin-images = true`, issue 15 item 4) against a loopback registry
stand-in that serves OCI image indexes and demands the bearer-token flow, as Docker Hub and
ghcr.io do for anonymous pulls."""

from __future__ import annotations

import hashlib
import json
import subprocess
import urllib.parse
from typing import TYPE_CHECKING

import pytest

from pinner.cli import main
from pinner.errors import ConfigError
from pinner.load.matrix import load_matrix
from pinner.lock import registry
from pinner.lock.lockfile import read_lock
from pinner.lock.registry import ACCEPT, Reference, RegistryError, challenge, digest_of, parse
from tests.support.echo import EchoResolver
from tests.support.stub_server import Reply, Request, StubServer
from tests.test_dockerfile import hadolint

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

UV_IMAGE = "ghcr.io/astral-sh/uv:0.13.9"
SERVICE = "registry.stub"


class Registry:
    """OCI distribution endpoints for any repository and tag: a 401 with a bearer challenge
    without a token, an image index (digest in `Docker-Content-Digest`) with one."""

    def __init__(self, stub: StubServer) -> None:
        self.stub = stub
        self.generation = 1  # bump to make every tag name a new index
        self.digest_header = True
        self.tokens = True
        stub.routes["/token"] = self.token
        stub.fallback = self.manifest

    def index(self, repository: str, tag: str) -> bytes:
        doc = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": "sha256:"
                    + hashlib.sha256(
                        f"{repository}:{tag}:{arch}:{self.generation}".encode()
                    ).hexdigest(),
                    "size": 1000,
                    "platform": {"architecture": arch, "os": "linux"},
                }
                for arch in ("amd64", "arm64")
            ],
        }
        return json.dumps(doc).encode()

    def digest(self, ref: str) -> str:
        r = parse(ref)
        return "sha256:" + hashlib.sha256(self.index(r.repository, r.tag)).hexdigest()

    def token(self, request: Request) -> Reply:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.path).query))
        scope = query.get("scope", "")
        if not self.tokens or query.get("service") != SERVICE or not scope.endswith(":pull"):
            return Reply(401, b'{"errors": [{"code": "UNAUTHORIZED"}]}')
        return Reply(body=json.dumps({"token": f"tok {scope}"}).encode())

    def manifest(self, request: Request) -> Reply:
        path = urllib.parse.urlsplit(request.path).path
        if not path.startswith("/v2/") or "/manifests/" not in path:
            return Reply(404, b"not found\n")
        repository, tag = path[4:].split("/manifests/")
        scope = f"repository:{repository}:pull"
        if request.headers.get("Authorization") != f"Bearer tok {scope}":
            realm = f"{self.stub.base_url}/token"
            return Reply(
                401,
                b'{"errors": [{"code": "UNAUTHORIZED"}]}',
                {"WWW-Authenticate": f'Bearer realm="{realm}",service="{SERVICE}",scope="{scope}"'},
            )
        if tag == "missing":
            return Reply(404, b'{"errors": [{"code": "MANIFEST_UNKNOWN"}]}')
        body = self.index(repository, tag)
        headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
        if self.digest_header:
            headers["Docker-Content-Digest"] = "sha256:" + hashlib.sha256(body).hexdigest()
        return Reply(body=body, headers=headers)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    monkeypatch.setattr("pinner.download.BACKOFF", 0.0)
    with StubServer() as stub:
        monkeypatch.setenv(registry.REGISTRY_ENV, stub.base_url)
        yield Registry(stub)


# -- references ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("ubuntu:24.04", Reference("docker.io", "library/ubuntu", "24.04", "")),
        ("ubuntu", Reference("docker.io", "library/ubuntu", "latest", "")),
        (
            "nvidia/cuda:12.8.1-runtime-ubuntu24.04",
            Reference("docker.io", "nvidia/cuda", "12.8.1-runtime-ubuntu24.04", ""),
        ),
        ("docker.io/library/python:3.11", Reference("docker.io", "library/python", "3.11", "")),
        (UV_IMAGE, Reference("ghcr.io", "astral-sh/uv", "0.13.9", "")),
        ("localhost:5000/team/app:1", Reference("localhost:5000", "team/app", "1", "")),
        (
            "ubuntu:24.04@sha256:" + "a" * 64,
            Reference("docker.io", "library/ubuntu", "24.04", "sha256:" + "a" * 64),
        ),
    ],
)
def test_references_are_read_as_docker_reads_them(ref, expected):
    assert parse(ref) == expected


@pytest.mark.parametrize("ref", ["Ubuntu:24.04", "ubuntu:24 04", "ubuntu@sha256:abc", "a//b:1"])
def test_bad_references_are_refused(ref):
    with pytest.raises(RegistryError, match="image"):
        parse(ref)


def test_docker_hub_is_asked_at_its_api_host_unless_overridden(monkeypatch):
    monkeypatch.delenv(registry.REGISTRY_ENV, raising=False)
    assert parse("ubuntu:24.04").api == "https://registry-1.docker.io"
    assert parse(UV_IMAGE).api == "https://ghcr.io"
    monkeypatch.setenv(registry.REGISTRY_ENV, "http://127.0.0.1:9/")
    assert parse("ubuntu:24.04").api == "http://127.0.0.1:9"


def test_bearer_challenges_are_parsed():
    header = 'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"'
    assert challenge(header) == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "repository:a/b:pull",
    }
    assert challenge('Basic realm="x"') == {}


# -- the registry API --------------------------------------------------------------------------


def test_digest_of_the_index_through_the_bearer_token_flow(hub):
    ref = "nvidia/cuda:12.8.1-runtime-ubuntu24.04"

    assert digest_of(ref) == hub.digest(ref)

    log = hub.stub.log
    assert [(r.method, urllib.parse.urlsplit(r.path).path) for r in log] == [
        ("HEAD", "/v2/nvidia/cuda/manifests/12.8.1-runtime-ubuntu24.04"),
        ("GET", "/token"),
        ("HEAD", "/v2/nvidia/cuda/manifests/12.8.1-runtime-ubuntu24.04"),
    ]
    assert "scope=repository%3Anvidia%2Fcuda%3Apull" in log[1].path
    assert f"service={SERVICE}" in log[1].path
    assert log[2].headers["Authorization"] == "Bearer tok repository:nvidia/cuda:pull"
    assert log[2].headers["Accept"] == ACCEPT
    assert ACCEPT.startswith("application/vnd.oci.image.index.v1+json, ")


def test_without_a_digest_header_the_manifest_is_hashed(hub):
    hub.digest_header = False

    assert digest_of("ubuntu:24.04") == hub.digest("ubuntu:24.04")
    assert [r.method for r in hub.stub.log] == ["HEAD", "GET", "HEAD", "GET"]


def test_transient_answers_are_retried(hub):
    busy = iter([Reply(503, b"busy"), Reply(429, b"slow down")])
    answer = hub.manifest
    hub.stub.fallback = lambda r: next(busy, None) or answer(r)

    assert digest_of("ubuntu:24.04") == hub.digest("ubuntu:24.04")
    assert [r.method for r in hub.stub.log] == ["HEAD", "HEAD", "HEAD", "GET", "HEAD"]


def test_a_registry_that_stays_down_is_named_after_the_retries(hub):
    hub.stub.fallback = lambda _r: Reply(502, b"bad gateway")

    with pytest.raises(RegistryError) as e:
        digest_of("ubuntu:24.04", attempts=2)

    assert "HTTP 502" in str(e.value)
    assert len(hub.stub.log) == 2


def test_a_reference_with_a_digest_needs_no_registry(hub):
    assert digest_of("ubuntu:24.04@sha256:" + "b" * 64) == "sha256:" + "b" * 64
    assert hub.stub.log == []


def test_an_unknown_tag_and_a_refused_token_are_named(hub):
    with pytest.raises(RegistryError) as e:
        digest_of("ubuntu:missing")
    assert str(e.value).startswith("pin-images: cannot read the digest of ubuntu:missing (")
    assert "HTTP 404" in str(e.value)
    assert "set pin-images = false" in str(e.value)

    hub.tokens = False
    with pytest.raises(RegistryError, match=r"token service: HTTP 401"):
        digest_of("ubuntu:24.04")


# -- pin-images in a project ---------------------------------------------------------------------

MATRIX = """\
[defaults]
requirements = ["requirements.in"]
pin-images = true

[targets.a100]
gpu = "A100"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(
        "pinner.resolve.engines.get_resolver", lambda _name, cache: EchoResolver(cache)
    )
    root = tmp_path / "project"
    root.mkdir()
    (root / "pinner.toml").write_text(MATRIX, encoding="utf-8")
    (root / "requirements.in").write_text("", encoding="utf-8")
    monkeypatch.chdir(root)
    return root


def images(root: Path) -> dict[str, str]:
    (tl,) = read_lock(root / "pinner.lock").targets
    return dict(tl.plan.images)


def test_generate_pins_the_base_and_uv_images_by_digest(project, hub, capsys):
    assert main(["generate"]) == 0, capsys.readouterr().err

    (tl,) = read_lock(project / "pinner.lock").targets
    base = tl.plan.base_image
    assert base.startswith("nvidia/cuda:")
    assert "@" not in base  # the plan keeps the tag; the digest is recorded beside it
    assert images(project) == {base: hub.digest(base), UV_IMAGE: hub.digest(UV_IMAGE)}
    dockerfile = (project / "pinned" / "a100" / "Dockerfile").read_text()
    assert f"\nFROM {base}@{hub.digest(base)}\n" in dockerfile
    assert (
        f"\nCOPY --from={UV_IMAGE}@{hub.digest(UV_IMAGE)} /uv /uvx /usr/local/bin/\n" in dockerfile
    )
    lint = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "warning", "Dockerfile"],
        cwd=project / "pinned" / "a100",
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout  # a digest reference lints like a tag
    sbom = json.loads((project / "pinned" / "a100" / "sbom.cdx.json").read_text())
    props = {p["name"]: p["value"] for p in sbom["metadata"]["properties"]}
    assert props["pinner:base-image"] == f"{base}@{hub.digest(base)}"
    assert props["pinner:uv-image"] == f"{UV_IMAGE}@{hub.digest(UV_IMAGE)}"
    assert "127.0.0.1" not in (project / "pinner.lock").read_text()  # the override is transport
    assert main(["check"]) == 0


def test_lock_keeps_the_digests_and_update_refreshes_them_in_the_pr_body(project, hub, capsys):
    assert main(["lock"]) == 0, capsys.readouterr().err
    before = images(project)
    hub.generation = 2  # the tags move to new indexes
    hub.stub.log.clear()
    (project / "requirements.in").write_text("# a change: the target is re-locked\n")

    assert main(["lock"]) == 0
    assert images(project) == before  # a re-lock keeps what was recorded
    assert hub.stub.log == []

    body = project / "body.md"
    assert main(["update", "--pr-body", str(body)]) == 0
    after = images(project)
    assert after != before
    assert after == {ref: hub.digest(ref) for ref in before}
    text = body.read_text()
    for ref in before:
        assert f"- **image {ref}**: {before[ref]} → {after[ref]}" in text


@pytest.mark.usefixtures("project")
def test_offline_without_recorded_digests_fails_with_the_way_out(hub, capsys):
    assert main(["lock", "--offline"]) == 1
    err = capsys.readouterr().err
    assert "--offline: target a100: pin-images needs the digest of nvidia/cuda:" in err
    assert "run once without --offline" in err
    assert hub.stub.log == []


def test_an_unreachable_registry_fails_the_lock_naming_the_image(project, capsys, monkeypatch):
    with StubServer() as down:
        monkeypatch.setenv(registry.REGISTRY_ENV, down.base_url)
        assert main(["lock"]) == 1
    err = capsys.readouterr().err
    assert "pin-images: cannot read the digest of nvidia/cuda:" in err
    assert not (project / "pinner.lock").exists()


def test_pin_images_must_be_a_boolean(tmp_path, monkeypatch):
    (tmp_path / "pinner.toml").write_text('[targets.a]\ngpu = "A100"\npin-images = "yes"\n')
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError) as e:
        load_matrix(None, tmp_path)
    assert str(e.value) == "pinner.toml: targets.a.pin-images: must be true or false, got 'yes'"


def test_pin_images_is_per_target_with_a_default(tmp_path):
    (tmp_path / "pinner.toml").write_text(
        '[defaults]\npin-images = true\n[targets.a]\ngpu = "A100"\n'
        '[targets.b]\ngpu = "A100"\npin-images = false\n'
    )
    matrix = load_matrix(tmp_path / "pinner.toml", tmp_path)
    assert [t.pin_images for t in matrix.targets] == [True, False]
