"""One lock run's resolver: runs started ahead of need, each made once, and skipped when they
cannot tell anything.

A target's resolution takes several engine runs: the resolution itself, its files pass, and the
comparison run (the requirements without pinner's torch bounds, pinner.resolve.choose), which
finds direct requirements the lock holds back. Most locks hold nothing back: every direct
requirement, and torch, is at its newest release for the target. The probe (`probe_job`) says
so for a fraction of a comparison run: each direct requirement and torch resolved alone
(`--no-deps`) within the user's ranges, which bounds from above what the comparison run can
take. For PyPI's torch build it starts once the resolution has read the indexes (`prefetch(...,
after=)`) and reads the same pages from the engine's cache, beside the files pass, so one lock
has one engine client on the network; for a PyTorch index's build it starts with the
resolution. When the lock is at those releases (`settled`), nothing can be held back and the
comparison run is not made. Targets with
the same probe or comparison run (same requirements, Python and platform; the torch build does
not enter them) share one run; so do targets whose first resolution is the same job.
"""

from __future__ import annotations

import functools
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from typing_extensions import Self  # typing.Self from Python 3.11; pinner supports 3.10

    from pinner.model import TargetLock
    from pinner.resolve.job import Job, ResolvedPin, Resolver

AHEAD = 4  # runs started ahead at once (each is an engine process that mostly waits)


class Shared:
    """A `Resolver` that can start jobs ahead (`prefetch`) and answers those from the run."""

    def __init__(self, inner: Resolver, workers: int = AHEAD) -> None:
        self.inner = inner
        self.name = inner.name
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pinner-ahead")
        self._started: dict[str, Future[tuple[ResolvedPin, ...]]] = {}
        self._lock = threading.Lock()
        # job key -> set once that job has read the indexes: True when it did (its engine run
        # succeeded), False when it failed or the run ends first
        self._fetched: dict[str, tuple[threading.Event, list[bool]]] = {}
        self._closed = False
        if hasattr(inner, "on_fetched"):
            inner.on_fetched = lambda job: self._gate(_key(job), ok=True)

    def _gate(self, key: str, *, ok: bool | None = None) -> tuple[threading.Event, list[bool]]:
        """The gate of `key`'s resolution; with `ok`, opened saying so (the first word stays)."""
        with self._lock:
            gate = self._fetched.setdefault(key, (threading.Event(), []))
            if ok is not None and not gate[1]:
                gate[1].append(ok)
        if ok is not None:
            gate[0].set()
        return gate

    def prefetch(
        self,
        job: Job,
        then: Callable[[tuple[ResolvedPin, ...]], Job | None] | None = None,
        after: Job | None = None,
    ) -> None:
        """Start `job` now (once per run, whichever target asks first); when it succeeds, start
        the job `then` makes of its answer, if any. With `after`, start it once `after` has
        read the indexes (a `cache_first` job then reads them from the engine's cache); when
        `after` failed instead, it runs from the network, so its answer is never stale."""
        key = _key(job)
        run = self.inner.resolve
        if after is not None:
            run = functools.partial(self._after, self._gate(_key(after)))
        with self._lock:
            if self._closed:  # a run that ended early (a target failed): nothing more to start
                return
            if key not in self._started:
                self._started[key] = self._pool.submit(run, job)
            started = self._started[key]
        if then is not None:

            def next_job(done: Future[tuple[ResolvedPin, ...]]) -> None:
                if not done.cancelled() and done.exception() is None:
                    following = then(done.result())
                    if following is not None:
                        self.prefetch(following)

            started.add_done_callback(next_job)

    def _after(self, gate: tuple[threading.Event, list[bool]], job: Job) -> tuple[ResolvedPin, ...]:
        from dataclasses import replace

        gate[0].wait()
        return self.inner.resolve(job if gate[1] == [True] else replace(job, cache_first=False))

    def resolve(self, job: Job) -> tuple[ResolvedPin, ...]:
        """The answer to `job`, made once per run: targets whose plans differ only in the
        segments they would fall back to share their first resolution. A resolution that
        failed is run again for each other target that asks, so its error names that target;
        a comparison run's error is shared."""
        from pinner.errors import PinnerError

        key = _key(job)
        with self._lock:
            started = self._started.get(key)
            mine = started is None
            if started is None:
                started = self._started[key] = Future()
        if mine:
            try:
                started.set_result(self.inner.resolve(job))
            except (PinnerError, OSError) as e:
                started.set_exception(e)
            finally:  # interrupted: the others stop waiting
                if not started.done():
                    started.cancel()
                self._gate(key, ok=False)  # no-op when the engine said it read the indexes
            return started.result()
        try:
            return started.result()
        except (PinnerError, OSError):
            if job.files_pass:  # a resolution: its own run, its own error
                return self.inner.resolve(job)
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        # runs nobody asked for (a target that failed first) are not started; running ones end
        with self._lock:
            self._closed = True
            gates = list(self._fetched.values())
        for event, said in gates:  # a run still waiting for a resolution that never came
            with self._lock:
                if not said:
                    said.append(False)
            event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _key(job: Job) -> str:
    from pinner.resolve.uv import job_key

    return job_key(job)


def probe_job(free_job: Job) -> Job | None:
    """The probe of a comparison run: each direct requirement that can be held back, and torch,
    resolved alone (`--no-deps`) with the user's ranges and constraints, from the same index,
    for the same Python and platform. None when nothing can be held back."""
    from dataclasses import replace

    from pinner.resolve.job import direct_names, requirement_name

    direct = direct_names(free_job)
    if not direct:
        return None
    return replace(
        free_job,
        requirements=(
            *(t for t in free_job.requirements if requirement_name(t) in direct),
            "torch",
        ),
        constraints=tuple(c for c in free_job.constraints if "@" not in c.split(";")[0]),
        roots=tuple(r for r in free_job.roots if r[0] in direct),
        urls=(),
        no_deps=True,
    )


def probe(
    resolver: Resolver, free_job: Job, *, cache_first: bool = False
) -> tuple[ResolvedPin, ...]:
    """The probe's answer: the newest release of each direct requirement that can be held back,
    and of torch, installable on the target (answered from the run started ahead, when one was).
    () where there is nothing to probe, the engine cannot (pip-compile has no --no-deps) or the
    run fails. `cache_first`: the resolution of this run has just read every index page the
    probe reads (its direct requirements and torch, all from the default index), so the engine's
    cache answers it without a second client on the network."""
    from dataclasses import replace

    from pinner.errors import PinnerError

    job = probe_job(free_job)
    if job is None or resolver.name != "uv":
        return ()
    try:
        return resolver.resolve(replace(job, cache_first=cache_first))
    except PinnerError:
        return ()


def settled(
    resolver: Resolver, locked: TargetLock, free_job: Job, *, cache_first: bool = False
) -> bool:
    """Whether the comparison run of `free_job` cannot tell anything about `locked`: every
    direct requirement that can be held back, and torch, is locked at (or above) the newest
    release the probe found. The comparison run takes no release above those (it resolves the
    same requirements with their dependencies), so it would find nothing held back, no lower
    torch and no torch newer than pinner's knowledge. Any doubt (no probe, a failed one, a
    name it did not answer, a version it cannot compare) says no."""
    from packaging.version import InvalidVersion, Version

    from pinner.resolve.job import direct_names

    newest = {p.name: p.version for p in probe(resolver, free_job, cache_first=cache_first)}
    have = {p.name: p.version for p in locked.pins}
    wanted = [(n, have[n]) for n in direct_names(free_job) if n in have]
    wanted.append(("torch", locked.plan.torch.version))
    try:
        return all(n in newest and Version(newest[n]) <= Version(v) for n, v in wanted)
    except InvalidVersion:
        return False
