"""Prefect flows: the `jetx` pipeline (deployment `progressive`) and the `jetx-audit` flow."""
