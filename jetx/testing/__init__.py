"""Test hooks of jetx: faults that a test makes happen on purpose (`jetx.testing.faults`).

Not part of the pipeline's stages: production code consults it at one point only,
`faults.active()`, which is None unless a test set `JETX_FAULTS`.
"""
