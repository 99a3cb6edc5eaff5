"""One lock run's resolver: runs started ahead of need, and each such run made once.

A target's resolution takes several engine runs: the resolution itself, its files pass, and the
comparison run (the requirements without pinner's torch bounds, pinner.resolve.choose). The
comparison run needs nothing from the resolution, so it is started with it, on a thread of its
own; the engine mostly waits on the indexes, so the two overlap almost fully. Targets whose
comparison runs are identical (same requirements, Python and platform; the torch build does not
enter it) share one run. A job that was not started ahead runs in the caller's thread, as before.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self  # typing.Self from Python 3.11; pinner supports 3.10

    from pinner.resolve import Job, ResolvedPin, Resolver

AHEAD = 4  # runs started ahead at once (each is an engine process that mostly waits)


class Shared:
    """A `Resolver` that can start jobs ahead (`prefetch`) and answers those from the run."""

    def __init__(self, inner: Resolver, workers: int = AHEAD) -> None:
        self.inner = inner
        self.name = inner.name
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pinner-ahead")
        self._started: dict[str, Future[tuple[ResolvedPin, ...]]] = {}
        self._lock = threading.Lock()

    def prefetch(self, job: Job) -> None:
        """Start `job` now (once per run, whichever target asks first)."""
        key = _key(job)
        with self._lock:
            if key not in self._started:
                self._started[key] = self._pool.submit(self.inner.resolve, job)

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
        with self._lock:
            started = self._started.get(_key(job))
        if started is None:
            return self.inner.resolve(job)
        return started.result()  # its error, if it failed, is raised here, as the run's own

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        # runs nobody asked for (a target that failed first) are not started; running ones end
        self._pool.shutdown(wait=True, cancel_futures=True)


def _key(job: Job) -> str:
    from pinner.resolve.uv import job_key

    return job_key(job)
