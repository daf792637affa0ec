"""Staged training: inputs and windows, the stage loop, accumulation, checkpoints, resume,
losses, validation, precision, distribution and the epoch callbacks."""
