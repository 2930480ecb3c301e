"""Comparisons across seeds: the paired test every table of mtlab reports beside its mean ± std."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def paired_p(a: pd.Series, b: pd.Series) -> float:
    """Two-sided paired t-test over seeds (aligned by seed); NaN with fewer than two pairs or no
    variance in the differences."""
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1).dropna()
    diff = joined["a"] - joined["b"]
    if len(joined) < 2 or np.allclose(diff, diff.iloc[0]):
        return float("nan")
    return float(stats.ttest_rel(joined["a"], joined["b"]).pvalue)
