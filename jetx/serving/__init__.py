"""A trained run put to use: the exported bundle, the next round's prediction, the promotion of a
champion and the retention of old runs."""
