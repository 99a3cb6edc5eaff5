"""pinner: GPU-aware, hash-locked install recipes."""

__version__ = "0.1.0"
