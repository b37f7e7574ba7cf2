"""spillover.evaluation.stats against reference values.

Wilson 95% reference intervals: Newcombe (1998), "Two-sided confidence intervals for the single
proportion", Statistics in Medicine 17:857, Table I (also what statsmodels'
proportion_confint(method="wilson") returns); 0/n has the closed form upper = z²/(n + z²).
"""

import numpy as np
import pytest

from spillover.evaluation import bootstrap_ci, bootstrap_diff, bootstrap_paired, rate, wilson


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (0, 10, 0.0, 0.2775),
        (1, 10, 0.0179, 0.4042),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),  # Newcombe's worked example
    ],
)
def test_wilson_matches_reference(k, n, lo, hi):
    got = wilson(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_empty_is_uninformative():
    assert wilson(0, 0) == (0.0, 1.0)


def test_rate_record():
    r = rate(3, 12)
    assert r["k"] == 3 and r["n"] == 12 and r["rate"] == pytest.approx(0.25)
    assert r["ci"] == pytest.approx(list(wilson(3, 12)))
    assert rate(0, 0)["rate"] is None


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    x = np.arange(20, dtype=float)
    a, b = bootstrap_ci(x, seed=1), bootstrap_ci(x, seed=1)
    assert a == b
    assert a[0] < x.mean() < a[1]
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert np.isnan(bootstrap_ci([])[0])


def test_bootstrap_ci_width_shrinks_with_more_units():
    rng = np.random.default_rng(0)
    small, large = rng.normal(size=20), rng.normal(size=2000)
    w_small = np.diff(bootstrap_ci(small))[0]
    w_large = np.diff(bootstrap_ci(large))[0]
    assert w_large < w_small / 4  # width ~ 1/sqrt(n): 10x fewer sqrt units


def test_bootstrap_diff_and_paired():
    d = bootstrap_diff([1.0, 1.0, 1.0], [0.0, 0.0])
    assert d == {"diff": 1.0, "ci": [1.0, 1.0]}
    p = bootstrap_paired([0.5, 1.5, 1.0, 1.0])
    assert p["diff"] == pytest.approx(1.0)
    assert p["ci"][0] <= 1.0 <= p["ci"][1]
    assert bootstrap_paired([])["diff"] is None
