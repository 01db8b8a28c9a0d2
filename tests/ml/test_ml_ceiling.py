"""The fair ceiling: the oracle's conversion probability without knowing when a future evaluation starts."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.data import fair_probabilities, load_oracle_truth, oracle_probabilities
from ml.sources.synthetic import fair_probability, oracle_probability

DELAY_MIN, DELAY_MAX, MEAN, HORIZON = 10.0, 120.0, 40.0, 90.0


def fair(p, start, as_of, delay_min=DELAY_MIN, delay_max=DELAY_MAX, mean=MEAN, **kwargs):
    return fair_probability(
        np.asarray(p, dtype=float),
        np.asarray(start, dtype=float),
        np.asarray(as_of, dtype=float),
        delay_min,
        delay_max,
        mean,
        horizon_days=kwargs.pop("horizon_days", HORIZON),
        **kwargs,
    )


def oracle(p, start, as_of, delay_min=DELAY_MIN, delay_max=DELAY_MAX):
    return oracle_probability(
        np.asarray(p, dtype=float), np.asarray(start, dtype=float), np.asarray(as_of, dtype=float), delay_min, delay_max
    )


def monte_carlo(p, delay_min=DELAY_MIN, delay_max=DELAY_MAX, mean=MEAN, horizon=HORIZON, n=200_000, seed=1):
    """Simulate the generator from a lead whose evaluation has not begun: wait, then maybe convert."""
    rng = np.random.default_rng(seed)
    conversion = rng.exponential(mean, n) + rng.uniform(delay_min, delay_max, n)
    converts = rng.random(n) < p
    return np.mean(converts & (conversion <= horizon))


def test_fair_equals_oracle_once_the_evaluation_has_started():
    p = np.array([0.5, 0.3, 0.9, 0.7])
    start = np.array([0.0, 50.0, 100.0, 100.0])
    as_of = np.array([0.0, 65.0, 160.0, 300.0])
    assert fair(p, start, as_of) == pytest.approx(oracle(p, start, as_of), abs=1e-12)


@pytest.mark.parametrize(
    ("p", "delay_min", "delay_max", "mean", "horizon"),
    [
        (0.6, DELAY_MIN, DELAY_MAX, MEAN, HORIZON),
        (0.9, 0.0, 60.0, 20.0, 90.0),  # delay_min = 0 and delay_max < horizon: every branch of the hinge
        (0.4, 30.0, 200.0, 10.0, 45.0),  # horizon inside the delay range
        (1.0, 100.0, 120.0, 40.0, 90.0),  # horizon below delay_min: impossible
    ],
)
def test_fair_matches_a_simulation_for_a_lead_not_yet_evaluating(p, delay_min, delay_max, mean, horizon):
    got = fair([p], [500.0], [100.0], delay_min, delay_max, mean, horizon_days=horizon)
    expected = monte_carlo(p, delay_min, delay_max, mean, horizon)
    assert got[0] == pytest.approx(expected, abs=0.005)


def test_fair_does_not_depend_on_the_hidden_start_of_a_future_evaluation():
    starts = np.array([100.5, 101.0, 130.0, 300.0, 5000.0])
    got = fair(np.full(5, 0.6), starts, np.full(5, 100.0))
    assert np.ptp(got) == 0.0 and got[0] > 0.0
    # Nor on as_of or the creation day (memorylessness), as long as the lead exists.
    assert fair([0.6], [900.0], [400.0], created_day=np.array([399.0])) == pytest.approx(got[0])


def test_fair_sits_between_the_oracles_extremes():
    p, as_of = np.full(2, 0.8), np.full(2, 100.0)
    start = np.array([101.0, 300.0])  # tomorrow, and in 200 days
    f, o = fair(p, start, as_of), oracle(p, start, as_of)
    assert o[1] == 0.0
    assert f[0] < o[0]
    assert f[1] > o[1]


def test_fair_is_a_probability_and_zero_without_a_chance_to_convert():
    rng = np.random.default_rng(0)
    n = 5_000
    p = rng.random(n)
    p[:100] = 0.0
    start = rng.uniform(0, 400, n)
    as_of = rng.uniform(0, 400, n)
    got = fair(p, start, as_of)
    assert np.all((got >= 0.0) & (got <= 1.0))
    assert np.all(got[:100] == 0.0)
    assert np.all(got <= p + 1e-12)  # conditioning on no conversion yet never lifts it above p
    assert fair([1.0], [1.0], [0.0], delay_min=0.0, delay_max=1.0, mean=1e-9)[0] == pytest.approx(1.0)


def test_fair_rejects_a_conversion_that_could_precede_its_evaluation():
    with pytest.raises(ValueError):
        fair([0.5], [10.0], [0.0], delay_min=-1.0)


def _truth(with_mean: bool) -> pd.DataFrame:
    truth = pd.DataFrame(
        {
            "lead_id": ["L-1", "L-2"],
            "p_convert": [0.6, 0.6],
            "evaluation_start": pd.to_datetime(["2026-01-01", "2026-12-01"]),
            "conversion_delay_min_days": [DELAY_MIN, DELAY_MIN],
            "conversion_delay_max_days": [DELAY_MAX, DELAY_MAX],
        }
    )
    if with_mean:
        truth["evaluation_delay_mean_days"] = MEAN
    return truth


def test_fair_probabilities_use_the_close_of_as_of():
    rows = pd.DataFrame({"lead_id": ["L-2", "L-1"], "as_of": pd.to_datetime(["2026-02-01", "2026-02-01"])})
    got = fair_probabilities(rows, _truth(with_mean=True))
    oracle_rows = oracle_probabilities(rows, _truth(with_mean=True))
    assert got is not None and oracle_rows is not None
    # L-1 has been evaluating for 32 days at the close of 2026-02-01: the oracle's answer.
    assert got[1] == pytest.approx(oracle_rows[1])
    # L-2 will only start in ten months: the oracle says 0, the fair ceiling averages over the start.
    assert oracle_rows[0] == 0.0
    assert got[0] == pytest.approx(fair([0.6], [1e9], [0.0])[0])


def test_fair_probabilities_need_the_evaluation_delay_and_every_lead():
    rows = pd.DataFrame({"lead_id": ["L-1"], "as_of": pd.to_datetime(["2026-02-01"])})
    assert fair_probabilities(rows, None) is None
    assert fair_probabilities(rows, _truth(with_mean=False)) is None
    assert oracle_probabilities(rows, _truth(with_mean=False)) is not None
    unknown = pd.DataFrame({"lead_id": ["L-9"], "as_of": pd.to_datetime(["2026-02-01"])})
    assert fair_probabilities(unknown, _truth(with_mean=True)) is None


@pytest.mark.parametrize("with_mean", [True, False])
def test_load_oracle_truth_reads_the_evaluation_delay_when_present(with_mean):
    truth = _truth(with_mean).rename(columns={"lead_id": "contact_id"})
    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA oracle")
        con.register("_t", truth)
        con.execute("CREATE TABLE oracle.lead_truth AS SELECT * FROM _t")
        loaded = load_oracle_truth(con)
    assert loaded is not None and list(loaded["lead_id"]) == ["L-1", "L-2"]
    assert ("evaluation_delay_mean_days" in loaded.columns) == with_mean
