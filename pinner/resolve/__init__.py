"""resolve: (Plan, Requirements, old lock) -> TargetLock, through an engine.

`job` holds what the stage passes around (`Job`, `ResolvedPin`, the `Resolver` protocol, the
torch family's names); `resolve` builds the job (index routing, layers) and assembles the lock
from the answer; `engines` names the engines (`uv`, `piptools`); `choose` picks torch together
with the dependency graph (`graph`); `answer` reads the resolver's PEP 751 output. The one stage
that runs a resolver and may use the network.
"""
