"""Small statistics helpers of the bench: percentiles of samples and of Prometheus histograms."""

from __future__ import annotations


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[k]


def hist_quantile(buckets: dict[float, float], q: float) -> float | None:
    """Quantile from cumulative Prometheus buckets (linear inside a bucket)."""
    items = sorted(buckets.items())
    if not items or items[-1][1] <= 0:
        return None
    total = items[-1][1]
    target = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in items:
        if c >= target:
            if le == float("inf"):
                return prev_le
            frac = (target - prev_c) / (c - prev_c) if c > prev_c else 1.0
            return prev_le + frac * (le - prev_le)
        prev_le, prev_c = le, c
    return None
