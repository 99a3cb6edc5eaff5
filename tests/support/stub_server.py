"""A scripted HTTP server on 127.0.0.1 for the downloader and registry tests.

Each route maps a path to a function of the request that returns a :class:`Reply`; every request
is logged. A reply can stall (send nothing for a while) or announce more bytes than it sends.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from typing_extensions import Self


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # with the query string
    headers: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stall: float = 0.0  # seconds of silence after the headers, before the body
    length: int | None = None  # Content-Length to announce; default: len(body)


class StubServer:
    def __init__(self) -> None:
        self.routes: dict[str, Callable[[Request], Reply]] = {}
        self.fallback: Callable[[Request], Reply] = lambda _r: Reply(404, b"not found\n")
        self.log: list[Request] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def paths(self) -> list[str]:
        return [r.path for r in self.log]

    def __enter__(self) -> Self:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._answer()

            def do_HEAD(self) -> None:
                self._answer()

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self) -> None:
                request = Request(self.command, self.path, dict(self.headers.items()))
                stub.log.append(request)
                route = stub.routes.get(self.path.split("?", 1)[0])
                reply = (route or stub.fallback)(request)
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                length = len(reply.body) if reply.length is None else reply.length
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.flush()
                if reply.stall:
                    time.sleep(reply.stall)
                if self.command != "HEAD":
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self.wfile.write(reply.body)
                if length != len(reply.body):
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
