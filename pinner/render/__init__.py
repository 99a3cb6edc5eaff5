"""render: TargetLock + templates -> Artifacts, then write / check them.

`render` computes the install steps once and renders every recipe from them (pure: text out),
`pylock` and `sbom` the per-target PEP 751 lock and CycloneDX SBOM; `safety` checks every locked
value before it is rendered. `output` writes artifacts atomically and diffs them against disk;
`check` says which lock entry or file is stale and why (offline, fast: the pre-commit hook).
"""
