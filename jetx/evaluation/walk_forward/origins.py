"""Rolling forecasting origins: where each walk-forward origin trains, validates and scores.

Origin k of K trains on the samples before its validation block, validates on the block just
before its origin, and scores the `block` samples after it; the K scored blocks are the newest
K blocks of the history, back to back, so that pooled they are K x block out-of-sample rounds
with no round scored twice. Each origin's data is built from the history cut at the end of its
scored block: its features dir never holds a later round, so nothing of the future can reach
its training, its scaler or its validation (features read only earlier rounds, and the scaler
is fit on the origin's own train split).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jetx.errors import JetxInputError
from jetx.features import FIRST_SAMPLE
from jetx.features.build import build_features
from jetx.features.splits import split_counts
from jetx.io import sha256_file, write_json, write_parquet
from jetx.layout import OriginDir, SeriesDir
from jetx.readers import read_parquet

logger = logging.getLogger(__name__)

#: The fewest origins a walk-forward evaluation has: fewer would rest on too few windows.
MIN_ORIGINS = 5
#: Share of the samples scored out of sample when the preset caps no split (`default_block`).
OUT_OF_SAMPLE_SHARE = 0.3
#: The smallest scored block: a block of a few rounds would say nothing.
MIN_BLOCK = 10


@dataclass(frozen=True)
class Origin:
    """One origin, in samples (sample 0 is the history's round FIRST_SAMPLE).

    Args:
        number: 1..K, oldest first.
        train: samples [0, train) train.
        val: samples [train, train + val) validate; the origin is sample train + val.
        test: samples [origin, origin + test) are scored.
    """

    number: int
    train: int
    val: int
    test: int

    @property
    def origin(self) -> int:
        """The first scored sample: everything the origin learns from is before it."""
        return self.train + self.val

    @property
    def end(self) -> int:
        """One past the last scored sample."""
        return self.origin + self.test

    @property
    def rounds(self) -> int:
        """Rounds of the history this origin reads: up to its last scored round, no later."""
        return FIRST_SAMPLE + self.end

    @property
    def key(self) -> str:
        """A name that says which samples the origin reads and how it splits them."""
        return f"o{self.number}-t{self.train}-v{self.val}-b{self.test}"

    def fractions(self) -> tuple[float, float, float]:
        """Split fractions that `jetx.features.splits.split_counts` turns into exactly
        (train, val, test) samples: train and val get half a sample more than they need, so
        that flooring n x fraction can never lose one to float rounding."""
        n = self.end
        return ((self.train + 0.5) / n, (self.val + 0.5) / n, (self.test - 1.0) / n)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Origin:
        return cls(**{k: int(data[k]) for k in ("number", "train", "val", "test")})


def default_block(samples: int, origins: int, max_eval_samples: int | None) -> int:
    """The scored block: the preset's evaluation cap (every scored round is evaluated), or,
    without one, OUT_OF_SAMPLE_SHARE of the samples over the origins."""
    if max_eval_samples is not None:
        return int(max_eval_samples)
    return max(MIN_BLOCK, int(samples * OUT_OF_SAMPLE_SHARE) // origins)


def plan_for_preset(
    samples: int, *, origins: int, block: int | None, max_eval_samples: int | None
) -> list[Origin]:
    """`plan_origins` with the block a preset allows: by default its evaluation cap, and never
    more, or rounds of each block would go unscored.

    Raises:
        JetxInputError: a block larger than the cap, or a bad plan (`plan_origins`).
    """
    block = block or default_block(samples, origins, max_eval_samples)
    if max_eval_samples is not None and block > max_eval_samples:
        raise JetxInputError(
            f"`block` must be at most the preset's evaluation cap {max_eval_samples}, or rounds "
            f"of each block would go unscored. Received: block={block}"
        )
    return plan_origins(samples, origins=origins, block=block)


def plan_origins(
    samples: int, *, origins: int = MIN_ORIGINS, block: int, val: int | None = None
) -> list[Origin]:
    """The K origins over a history of `samples` samples, oldest first.

    Args:
        samples: samples of the whole history (rounds - FIRST_SAMPLE).
        origins: K, at least MIN_ORIGINS.
        block: samples each origin scores.
        val: samples each origin validates on, just before its origin (default: `block`).

    Raises:
        JetxInputError: fewer than MIN_ORIGINS origins, a block under MIN_BLOCK, or a history
            too short for the first origin to train on at least one block.
    """
    val = block if val is None else val
    if origins < MIN_ORIGINS:
        raise JetxInputError(
            f"`origins` must be at least {MIN_ORIGINS}. Received: origins={origins}"
        )
    if block < MIN_BLOCK or val < MIN_BLOCK:
        raise JetxInputError(
            f"`block` and `val` must be at least {MIN_BLOCK} samples. "
            f"Received: block={block}, val={val}"
        )
    first = samples - origins * block
    if first - val < block:
        raise JetxInputError(
            f"{origins} origins of {block} samples (+ {val} validation, + at least {block} to "
            f"train) need {origins * block + val + block} samples; the history has {samples} "
            f"({samples + FIRST_SAMPLE} rounds). Use fewer origins or a smaller block."
        )
    return [
        Origin(number=k + 1, train=first + k * block - val, val=val, test=block)
        for k in range(origins)
    ]


def build_origin(series_dir: Path, origin: Origin, out: Path) -> dict[str, Any]:
    """Build one origin's data: the history cut after its block, and its features dir.

    Args:
        series_dir: the whole ingested history (`jetx ingest` output).
        origin: the origin to build.
        out: the `OriginDir` to write (series/, features/, then origin.json last).

    Returns:
        origin.json's content: the origin, the rounds it reads and its features' counts.

    Raises:
        JetxInputError: a history shorter than the origin needs.
    """
    layout = OriginDir(Path(out))
    source = SeriesDir(series_dir).series
    table = read_parquet(source)
    if table.num_rows < origin.rounds:
        raise JetxInputError(
            f"Origin {origin.number} reads {origin.rounds} rounds; {source} has {table.num_rows}."
        )
    layout.origin_file.unlink(missing_ok=True)
    Path(layout.series.path).mkdir(parents=True, exist_ok=True)
    write_parquet(layout.series.series, table.slice(0, origin.rounds))
    write_json(
        layout.series.manifest_path,
        {
            "source": str(source.resolve()),
            "rounds": origin.rounds,
            "origin": origin.to_dict(),
            "outputs": {SeriesDir.SERIES: sha256_file(layout.series.series)},
        },
    )
    manifest = build_features(
        layout.series.path, layout.features.path, fractions=origin.fractions()
    )
    expected = {"train": origin.train, "val": origin.val, "test": origin.test}
    if manifest["counts"] != expected or split_counts(origin.end, origin.fractions()) != expected:
        raise JetxInputError(
            f"Origin {origin.number}: split counts {manifest['counts']} != {expected}"
        )
    record = {"origin": origin.to_dict(), "rounds": origin.rounds, "counts": manifest["counts"]}
    write_json(layout.origin_file, record)
    logger.info("origin %d: %d rounds, %s -> %s", origin.number, origin.rounds, expected, out)
    return record
