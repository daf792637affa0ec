"""Prefect tasks: thin wrappers over `jetx` that exchange small records (paths + hashes)."""
