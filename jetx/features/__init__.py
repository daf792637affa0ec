"""The 121 features of a sample, computed from its history only (see `registry`)."""

from jetx.features.compute import (
    DEFAULT_CHUNK_SIZE,
    compute_features,
    iter_feature_chunks,
    next_round_features,
    with_next_slot,
)
from jetx.features.registry import (
    CATEGORY_COUNTS,
    FEATURE_NAMES,
    FEATURE_VERSION,
    FEATURES,
    FIRST_SAMPLE,
    FeatureSpec,
)

__all__ = [
    "CATEGORY_COUNTS",
    "DEFAULT_CHUNK_SIZE",
    "FEATURES",
    "FEATURE_NAMES",
    "FEATURE_VERSION",
    "FIRST_SAMPLE",
    "FeatureSpec",
    "compute_features",
    "iter_feature_chunks",
    "next_round_features",
    "with_next_slot",
]
