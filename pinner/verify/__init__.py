"""verify: pinner.lock + the running environment -> Report.

`checks` is standard library only and imports nothing of pinner: its source is embedded in every
rendered verify_env.py (so this stage sits below render); `verify` runs it for `pinner verify`.
"""
