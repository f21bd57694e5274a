"""The workload's draws."""

from __future__ import annotations

import itertools
import random

from wiserpa.sim.workload import _pick


def test_pick_draws_what_choices_draws() -> None:
    # Workloads drawn before must stay the same: `_pick` is `choices` for one item, draw for draw.
    population = ["a", "b", "c", "d"]
    cum = list(itertools.accumulate([0.1, 2.5, 0.0, 1.4]))
    mine, theirs = random.Random(11), random.Random(11)
    picks = [_pick(mine, population, cum) for _ in range(5_000)]
    assert picks == [theirs.choices(population, cum_weights=cum)[0] for _ in range(5_000)]
    assert mine.random() == theirs.random()  # one draw each, in step
    assert "c" not in picks  # a zero weight is never drawn
