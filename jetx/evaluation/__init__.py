"""A trained run scored against baselines, compared across runs, and reported (tables, plots)."""
