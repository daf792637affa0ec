"""The models dir's ledger: promotion.json (the last decision) and promotions.jsonl (every one).

The ledger is what the lifetime budget stands on (`jetx.serving.gate`): the look number of a
new test is one more than the looks the ledger holds, so it lives in models/ beside the bundles
and is never touched by retention (which removes bundles), `jetx promote` (which appends a
manual record that is no look) or a deleted `latest`. Counting errs on the safe side: a line
that cannot be read counts as one look, and so does a decision of a jetx before the budget; the
same forecasts tested again (a rerun of the same export) keep their look instead of spending
another. Deleting promotions.jsonl starts a new life with a new budget: the one way to reset it,
and the user's own decision.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from jetx.io import json_lines, write_json
from jetx.layout import ModelsDir
from jetx.serving.gate import Evidence, GateForecasts


def look_id(forecasts: GateForecasts) -> str:
    """The identity of a test: sha256 of the rounds' positions, outcomes and forecasts."""
    digest = hashlib.sha256()
    for array in (forecasts.index, forecasts.y_value, forecasts.p_model):
        digest.update(array.astype(array.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Promotion:
    """One decision as promotion.json and each line of promotions.jsonl hold it.

    Args:
        decided_at: ISO time, UTC.
        bundle: the candidate's name in models/.
        manual: pinned by hand (`jetx promote`), not decided by the gate.
        blessed: the candidate is the champion now.
        demoted: the champion that failed its re-score at this decision, else None.
        prospective: the champion's re-score on new rounds at this look, which later looks
            pool (`jetx.serving.gate.Evidence`), or None.
        reasons: one sentence per condition.
        budget: look, level, alpha and rule of the look it spent (None: no look).
        look_id: `look_id` of the candidate's forecasts, when a look was spent.
        scores: each test read (`jetx.serving.gate.GateTest.to_dict`), by role.
        test, references, min_rounds, alpha: the gate's test, its constant references, the
            fewest rounds it judges and its lifetime level.
        champion_before, champion, latest: the pointers before and after.
    """

    decided_at: str
    bundle: str
    manual: bool
    blessed: bool
    reasons: list[str]
    champion_before: str | None
    champion: str | None
    latest: str | None
    demoted: str | None = None
    prospective: dict[str, Any] | None = None
    budget: dict[str, Any] | None = None
    look_id: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    test: dict[str, Any] | None = None
    references: dict[str, float] = field(default_factory=dict)
    min_rounds: int | None = None
    alpha: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.__dict__))


def _lines(models: ModelsDir) -> Iterator[dict[str, Any] | None]:
    """Each line of promotions.jsonl as a dict, or None where it cannot be read."""
    for _, record in json_lines(models.promotions):
        yield record


def next_look(models: ModelsDir, test: str) -> int:
    """The look number of the test `test` (a `look_id`): its earlier number if the ledger has
    it, else one more than every look the ledger holds (module docstring)."""
    count, seen = 0, {}
    for record in _lines(models):
        budget = record.get("budget") if record else None
        if isinstance(budget, dict) and isinstance(budget.get("look"), int):
            seen.setdefault(record.get("look_id"), budget["look"])
            count = max(count, budget["look"])
        elif record is None or ("budget" not in record and not record.get("manual")):
            count += 1  # unreadable, or a decision of a jetx before the budget
    return seen.get(test, count + 1)


def evidence(models: ModelsDir, champion: str) -> Evidence:
    """The champion's evidence on rounds it never saw, from every look since its blessing."""
    found = Evidence()
    for record in _lines(models):
        if record is None:
            continue
        if record.get("bundle") == champion and record.get("champion_before") != champion:
            found = Evidence()  # blessed or pinned (again): its record starts here
        entry = record.get("prospective")
        if isinstance(entry, dict) and entry.get("champion") == champion:
            found = found.add(int(entry["rounds"]), dict(entry["z"]), int(entry["last_index"]))
    return found


def demotion(models: ModelsDir, name: str) -> Promotion | None:
    """The decision that demoted bundle `name`, unless it was made champion again after it."""
    found = None
    for record in _lines(models):
        if record is None:
            continue
        if record.get("demoted") == name:
            found = record
        elif record.get("champion") == name:
            found = None
    return Promotion(**{k: v for k, v in found.items() if k in _FIELDS}) if found else None


def write(models: ModelsDir, promotion: Promotion) -> dict[str, Any]:
    """Write the decision to promotion.json and append it to promotions.jsonl (fsynced)."""
    record = promotion.to_dict()
    write_json(models.promotion, record)
    with open(models.promotions, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")
        log.flush()
        os.fsync(log.fileno())
    return record


_FIELDS = set(Promotion.__dataclass_fields__)
