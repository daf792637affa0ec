"""Which micro-batch a stage falls back to after an out-of-memory error."""

import pytest

from jetx.config import StageConfig


@pytest.mark.parametrize(
    ("micro_batch", "effective_batch", "replicas", "expected"),
    [
        (8, 64, 1, 4),  # stage 1: 8 x 8 -> 4 x 16
        (4, 32, 1, 2),
        (2, 16, 1, 1),
        (1, 16, 1, None),  # nothing below 1
        (12, 48, 1, 6),
        (10, 40, 1, 5),
        (6, 48, 1, 3),
        (9, 36, 1, 4),  # half is 4.5: the largest divisor below it
        (8, 64, 2, 4),  # under 2 replicas the global micro-batch stays a multiple of 2
        (4, 32, 2, 2),
        (2, 16, 2, None),  # one sample per replica cannot be halved
    ],
)
def test_smaller_micro_batch(micro_batch, effective_batch, replicas, expected):
    stage = StageConfig(1, 1, effective_batch, micro_batch, 1e-4, (0.4, 0.2, 0.4))
    assert stage.smaller_micro_batch(micro_batch, replicas=replicas) == expected


@pytest.mark.parametrize(
    ("effective_batch", "replicas", "at_most", "expected"),
    [
        (64, 1, None, (64, 32, 16, 8, 4, 2, 1)),
        (48, 1, 20, (16, 12, 8, 6, 4, 3, 2, 1)),
        (64, 2, 8, (8, 4, 2)),
        (16, 4, 2, ()),
    ],
)
def test_micro_batches_are_divisors_and_replica_multiples(
    effective_batch, replicas, at_most, expected
):
    stage = StageConfig(1, 1, effective_batch, 1, 1e-4, (0.4, 0.2, 0.4))
    assert stage.micro_batches(replicas=replicas, at_most=at_most) == expected
