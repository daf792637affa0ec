"""Whether a score is evidence: the skill test, bootstrap intervals, power, every
trial counted, verdicts."""
