"""lock: TargetLocks <-> pinner.lock, and the seals that make it checkable offline.

`lockfile` writes and reads the lock, `fingerprint` digests inputs and rendered files (standard
library only: `pinner check` runs it on every commit), `diff` turns two locks into `Changes`;
`registry` (image digests) and `extension_hashes` (prebuilt wheel hashes) pin at lock time what
the resolver does not see.
"""
