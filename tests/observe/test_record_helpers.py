"""The anomaly detector's MAD helper gives exactly what the plain computation gives."""

from __future__ import annotations

import random

from wardgate.anomaly import _median, _median_deviation


def test_median_deviation_is_the_median_of_the_sorted_absolute_deviations():
    rng = random.Random(5)
    draws = (lambda: rng.random(), lambda: float(rng.randint(0, 4)), lambda: rng.lognormvariate(0, 3),
             lambda: rng.choice([0.0, 1e-6, 250.0]), lambda: -rng.random() * 10, lambda: 5.0)
    for _ in range(3000):
        draw = rng.choice(draws)
        values = [draw() for _ in range(rng.randint(1, 80))]
        ordered = sorted(values)
        for centre in (_median(ordered), rng.choice(values), rng.random()):
            assert _median_deviation(ordered, centre) == _median(sorted([abs(v - centre) for v in values]))

