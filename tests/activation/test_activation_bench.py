"""The bench runs end to end on a small record count (the 100k run is `uv run python -m activation.bench`).

Throughput is not asserted here (no timed assertions; a 350-record run measures start-up, not pace)."""

from __future__ import annotations

import pytest

from activation.bench import main


def test_bench_small_run_reports_minimum_calls_no_429s_and_no_resend(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--records", "350"])
    out = capsys.readouterr().out
    assert "records/s" in out and "ceiling 1,900 records/s" in out
    assert "[ok] batch calls = minimum (4 vs 4)" in out
    assert "[ok] zero 429s (0)" in out
    assert "[ok] no-change resync sends 0 (0)" in out
    assert "[ok] no record created (350 contacts, 0 created)" in out
    assert "[ok] every contact carries its score (350 of 350)" in out
