"""plan: (Target, Knowledge, Requirements) -> PlanResult. Pure: no I/O.

`fit` and `builds` decide which torch builds fit a target, `diagnose` says why others lost,
`extensions`, `wheels` and `bitsandbytes` decide each compiled extension's wheel or source build;
`plan` splits the fitting builds into segments for the resolver and finishes the `Plan` from the
torch it chose.
"""
