"""Verdicts on the paper's findings (bench/rd/verdicts.py) and the cubic BD-rate's reliability flag."""

import numpy as np
import pytest

from bench.rd.bdrate import cubic_is_monotone
from bench.rd.records import Estimate
from bench.rd.verdicts import decide


def est(low, high):
    return Estimate((low + high) / 2, low, high)


@pytest.mark.parametrize(
    "parts, outcome",
    [
        ([(est(-40, -5), "negative")], "reproduced"),
        ([(est(-40, -5), "negative"), (est(3, 9), "positive")], "reproduced"),  # every part on its side
        ([(est(-40, -5), "negative"), (est(-3, 9), "positive")], "inconclusive"),  # one part open
        (
            [(est(-40, -5), "negative"), (est(-9, -3), "positive")],
            "contradicted",
        ),  # one part on the other side
        ([(est(-40, 5), "negative")], "inconclusive"),
        ([(None, "negative")], "not measured"),
    ],
)
def test_a_finding_needs_every_part_on_its_side_and_is_contradicted_by_any(parts, outcome):
    assert decide([(f"part {i}", e, e, sign) for i, (e, sign) in enumerate(parts)])[0] == outcome


def test_contradiction_is_read_at_the_stricter_level():
    loose, strict = est(2, 9), est(-1, 12)  # wholly positive at the finding's level, not at the stricter one
    outcome, (evidence,) = decide([("depth", loose, strict, "negative")])
    assert outcome == "inconclusive" and evidence.outcome == "open"


def test_a_saturating_curve_makes_the_cubic_fit_unreliable():
    rates = [0.1, 0.2, 0.4, 0.8, 1.6]
    assert cubic_is_monotone(rates, [0.30, 0.24, 0.20, 0.18, 0.17], higher_is_better=False)
    # a curve that jumps then flattens: the cubic through it turns inside the range (the "+685578 %" case)
    assert not cubic_is_monotone(rates, [0.30, 0.1801, 0.1800, 0.17999, 0.1799], higher_is_better=False)
    assert cubic_is_monotone(np.geomspace(0.1, 1, 4), [0.2, 0.4, 0.6, 0.8])
