"""load: the project's inputs, read and checked, per target.

Takes the matrix TOML (`pinner.toml`, `[tool.pinner]` in pyproject.toml, or the presets) and the
requirement files each target names; gives a `Matrix` of `Target`s (`matrix`) and each target's
`Requirements` (`requirements`; pip's line format in `reqfile`, one requirement's forms in
`requirement_forms`, pyproject.toml dependencies in `pyproject_deps`). No resolver, no network.
"""
