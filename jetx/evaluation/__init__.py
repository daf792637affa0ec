"""A trained run scored against baselines, tested, calibrated, and reported.

Where a new piece goes:

- `inference`: a model's outputs on a split (Predictions, predictions.npz).
- `scores/`: what a forecast or a bet scores on the rounds: `proper` (log loss, Brier, skill),
  `forecasts` (the model against the constant forecasters), `heads` (each head's metrics: bets,
  bankroll, win rate, classes, baselines). A new metric goes here.
- `significance/`: whether a score is evidence: `diebold_mariano`, `bootstrap` (intervals),
  `power` (what a test could have detected), `trials` (every trial counted, Holm), `verdicts`
  (the tests in words). A new test goes here.
- `calibration/`: `reliability` (Spiegelhalter, the diagram's bins), `platt` (the recalibration).
- `run`: one run's evaluation (evaluation.json), built from the above; `records`: its typed shape.
- `walk_forward/`: `origins` (where each origin trains and scores), `pool` (the pooled rounds).
- `report/`: `tables` (rows), `plots` (PNGs), `markdown` (report.md), `compare` (across runs);
  `formatting` is how every figure reads. A new table or plot goes here.
"""
