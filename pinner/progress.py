"""Progress of parallel resolutions: a live display on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11; pinner supports 3.10


class Progress:
    """Thread-safe; `start` and `done` are called from resolver threads. Silent with -q; in
    colour as --color, NO_COLOR and FORCE_COLOR say."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        from pinner import console

        self.stream = stream or sys.stderr
        self.total = total
        self.started: dict[str, float] = {}
        self.lock = threading.Lock()
        self.live: Any = None
        self.tasks: dict[str, Any] = {}
        self.silent = console.quiet()
        if self.stream.isatty() and not self.silent:
            from rich.console import Console
            from rich.progress import Progress as RichProgress
            from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

            self.live = RichProgress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                transient=False,
                console=Console(file=self.stream, no_color=not console.color_on(self.stream)),
            )

    def __enter__(self) -> Self:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def start(self, names: list[str]) -> None:
        label = ", ".join(names)
        with self.lock:
            self.started[label] = time.monotonic()
            if self.live is not None:
                self.tasks[label] = self.live.add_task(f"resolving {label}", total=1)
            elif not self.silent:
                print(f"resolving {label} ...", file=self.stream, flush=True)

    def done(self, names: list[str], packages: int, *, failed: bool = False) -> None:
        label = ", ".join(names)
        with self.lock:
            took = time.monotonic() - self.started.get(label, time.monotonic())
            text = (
                f"failed {label} ({took:.1f}s)"
                if failed
                else f"locked {label}: {packages} packages ({took:.1f}s)"
            )
            if self.live is not None:
                self.live.update(self.tasks[label], description=text, completed=1)
            elif not self.silent:
                print(text, file=self.stream, flush=True)
