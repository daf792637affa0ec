"""Shared test setup: quiet TensorFlow, bounded threads on the 2-core machine, fixed seeds."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")
