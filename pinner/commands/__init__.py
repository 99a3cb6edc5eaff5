"""commands: one module per command, around the pipeline; each parses, calls, prints.

`app` is the typer application; `check` is `pinner check` (which `cli` also runs without typer,
its fast path); `doctor`, `init` (with what it writes: `hooks`, `workflow`) and `report` (text and
JSON views) hold the rest. `pinner.cli.main` is the entry point and the only exit.
"""
