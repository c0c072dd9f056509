"""The paired comparison of two recipes over seeds and subjects, and its verdict rule."""

from __future__ import annotations

import pytest
import torch

from course_utils.metrics.comparison import PairedDifference, paired_difference, verdict


def test_a_clear_consistent_gain_is_called_higher():
    generator = torch.Generator().manual_seed(0)
    base = [torch.rand(30, generator=generator) for _ in range(3)]
    better = [b + 0.05 + 0.01 * torch.randn(30, generator=generator) for b in base]
    change = paired_difference(better, base)
    assert change.clusters == 30 and len(change.per_seed) == 3
    assert change.lower > 0.04 and change.upper < 0.06 and abs(change.estimate - 0.05) < 0.01
    assert verdict(change, minimum=0.01) == "higher"
    assert verdict(paired_difference(base, better), minimum=0.01) == "lower"
    assert verdict(change, minimum=0.1) == "no clear difference", "below the minimum that matters"


def test_seeds_that_disagree_or_too_few_subjects_give_no_verdict():
    change = PairedDifference(estimate=0.05, lower=0.01, upper=0.09, per_seed=(0.1, 0.08, -0.03), clusters=30)
    assert verdict(change, minimum=0.01) == "no clear difference"
    few = PairedDifference(estimate=0.05, lower=0.01, upper=0.09, per_seed=(0.05,), clusters=3)
    assert verdict(few, minimum=0.01, min_clusters=10) == "too few subjects to tell"
    assert verdict(few, minimum=0.01, min_clusters=10, unit="cases") == "too few cases to tell"


def test_clusters_group_units_into_subjects():
    # two slices per subject: the interval is over the 10 subjects, and the estimate weighs subjects equally
    a = [torch.tensor([1.0, 3.0] * 10)]
    change = paired_difference(a, [torch.zeros(20)], clusters=torch.arange(10).repeat_interleave(2))
    assert change.clusters == 10 and change.estimate == pytest.approx(2.0)
    with pytest.raises(ValueError, match="one entry per unit"):
        paired_difference(a, [torch.zeros(20)], clusters=torch.arange(10))


def test_the_estimate_is_the_mean_over_seeds_and_subjects_and_inputs_are_checked():
    a = [torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 2.0, 2.0])]
    b = [torch.zeros(3), torch.ones(3)]
    change = paired_difference(a, b)
    assert change.estimate == pytest.approx(1.5) and change.per_seed == pytest.approx((2.0, 1.0))
    with pytest.raises(ValueError, match="same seeds and units"):
        paired_difference(a, b[:1])
    with pytest.raises(ValueError, match="NaN"):
        paired_difference([torch.tensor([1.0, float("nan")])], [torch.zeros(2)])
    with pytest.raises(ValueError, match="one tensor"):
        paired_difference(torch.zeros(3), b)
