"""Carbon savings on the Let's Wait Awhile data (Wiesner et al., Middleware '21) match the paper.

Published (paper's evaluation notebook; 5% forecast error, ML jobs to the next working day):
Germany 5.91% / 7.93%, Great Britain 6.56% / 9.03% (non-interruptible / interruptible).
"""

from __future__ import annotations

import pytest

from carbonshift.signals.tracedata import research_data_dir
from carbonshift.sim import engine, traces, workloads

PUBLISHED = {("ger", False): 5.91, ("ger", True): 7.93, ("gb", False): 6.56, ("gb", True): 9.03}

pytestmark = pytest.mark.research_data("lets-wait-awhile")


@pytest.mark.parametrize(("country", "interruptible"), sorted(PUBLISHED))
def test_savings_at_least_published(country: str, interruptible: bool) -> None:
    trace = traces.load([f"{country}={research_data_dir() / 'lets-wait-awhile' / f'{country}_ci.csv'}"])
    scenario = engine.Scenario(regions=(country,), home=country, interruptible=interruptible,
                               forecast_error=0.05, seed=0, forecast_smoothing_slots=3)
    result = engine.run(trace, workloads.ml(), scenario)
    assert result["jobs"] == workloads.ML_JOBS
    assert result["deadline_misses"] == 0 and result["unplaced_jobs"] == 0
    assert result["savings_pct"] >= PUBLISHED[(country, interruptible)]
    assert result["fraction_of_oracle"] >= 0.95
