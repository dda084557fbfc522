"""The paired interval beside every comparison with the prompt (core/intervals.py)."""

import pytest
import torch

from nla_variants.core.intervals import paired_fve_difference
from nla_variants.core.vectors import fve


def _rows(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = 1.0 + torch.rand(n, generator=g)
    return base, base * torch.rand(n, generator=g)


def test_the_difference_is_the_difference_of_the_two_fves():
    base, a = _rows(200)
    b = a * 1.1
    diff, lo, hi = paired_fve_difference(a, b, base)
    assert diff == pytest.approx(fve(a, base) - fve(b, base), abs=1e-6)  # fve: fp32
    assert lo < diff < hi
    # reversing the readings mirrors the difference and its interval
    back, blo, bhi = paired_fve_difference(b, a, base)
    assert (back, blo, bhi) == pytest.approx((-diff, -hi, -lo), abs=1e-9)


def test_pairing_resolves_a_difference_that_unpaired_rows_do_not():
    # every row's difficulty varies widely, the readings differ by a little on each row
    base, a = _rows(256, seed=1)
    b = a + 0.02 * base
    paired = paired_fve_difference(a, b, base)
    assert paired[1] > 0  # resolved: a is better on every row
    # the same readings with their rows shuffled against each other: the pairing is lost
    g = torch.Generator().manual_seed(4)
    shuffled = paired_fve_difference(a, b[torch.randperm(256, generator=g)], base)
    assert shuffled[2] - shuffled[1] > 5 * (paired[2] - paired[1])


def test_the_interval_narrows_with_more_rows():
    widths = []
    for n in (64, 1024):
        base, a = _rows(n, seed=2)
        g = torch.Generator().manual_seed(3)
        b = a + 0.1 * torch.randn(n, generator=g)
        _, lo, hi = paired_fve_difference(a, b, base)
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2  # about 1/sqrt(16) = 1/4


def test_the_same_rows_give_the_same_interval():
    base, a = _rows(50)
    assert paired_fve_difference(a, a * 0.9, base) == paired_fve_difference(a, a * 0.9, base)


def test_bad_shapes_are_refused():
    base, a = _rows(8)
    with pytest.raises(ValueError, match="same rows"):
        paired_fve_difference(a, a[:4], base)
    with pytest.raises(ValueError, match="at least one row"):
        paired_fve_difference(a[:0], a[:0], base[:0])
