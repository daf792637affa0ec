"""Which micro-batch a stage falls back to after an out-of-memory error."""

import pytest

from jetx.training.resume import smaller_micro_batch


@pytest.mark.parametrize(
    ("micro_batch", "effective_batch", "replicas", "expected"),
    [
        (8, 64, 1, 4),  # stage 1: 8 x 8 -> 4 x 16
        (4, 32, 1, 2),
        (2, 16, 1, 1),
        (1, 16, 1, 0),  # nothing below 1
        (12, 48, 1, 6),
        (10, 40, 1, 5),
        (6, 48, 1, 3),
        (9, 36, 1, 4),  # half is 4.5: the largest divisor below it
        (8, 64, 2, 4),  # under 2 replicas the global micro-batch stays a multiple of 2
        (4, 32, 2, 2),
        (2, 16, 2, 0),  # one sample per replica cannot be halved
    ],
)
def test_smaller_micro_batch(micro_batch, effective_batch, replicas, expected):
    assert smaller_micro_batch(micro_batch, effective_batch, replicas) == expected
