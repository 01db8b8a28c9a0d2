"""Pure functions: encoding, hashing, diff, batching, backoff, rate limiting, result parsing."""

from __future__ import annotations

import datetime as dt
import decimal
import math

import pytest

from activation.destination import OutgoingRecord
from activation.diff import make_batches, plan_changes, samples, split_batch
from activation.encoding import (
    EncodingError,
    hubspot_value,
    normalize,
    payload_hash,
    salesforce_csv_value,
    salesforce_value,
)
from activation.hubspot import batch_results
from activation.ratelimit import RateLimiter, RetryPolicy, backoff_delay, backoff_schedule, parse_retry_after
from activation.salesforce import bulk_csv_chunks, bulk_results, collection_results, parse_limit_info


def rec(key: str, payload: dict | None = None, action: str = "create") -> OutgoingRecord:
    payload = payload if payload is not None else {"f": key}
    return OutgoingRecord(key, payload, payload_hash(payload), action)


# --- encoding -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field_type", "value", "digits", "hubspot", "salesforce"),
    [
        ("number", 87.0, None, "87", 87.0),
        ("number", 87.123456, 1, "87.1", 87.1),
        ("number", decimal.Decimal("12.50"), 2, "12.5", 12.5),
        ("integer", 12.0, None, "12", 12),
        ("string", "A1", None, "A1", "A1"),
        ("text", ["Visited pricing", "Director"], None, "Visited pricing\nDirector", "Visited pricing\nDirector"),
        ("bool", True, None, "true", True),
        ("date", dt.date(2026, 1, 2), None, "1767312000000", "2026-01-02"),
        ("datetime", dt.datetime(2026, 1, 2, 3, 4, 5, 678000), None, "1767323045678", "2026-01-02T03:04:05.678Z"),
        ("number", None, None, "", None),
        ("number", math.nan, None, "", None),
    ],
)
def test_values_encode_per_destination(field_type, value, digits, hubspot, salesforce) -> None:
    canonical = normalize(field_type, value, digits)
    assert hubspot_value(field_type, canonical) == hubspot
    assert salesforce_value(field_type, canonical) == salesforce


def test_hubspot_dates_are_midnight_utc_epoch_millis() -> None:
    assert int(hubspot_value("date", dt.date(2026, 3, 4))) % 86_400_000 == 0


def test_bulk_csv_writes_null_as_na_because_empty_means_unchanged() -> None:
    assert salesforce_csv_value(None) == "#N/A"
    assert salesforce_csv_value(False) == "false"
    assert salesforce_csv_value(3.0) == "3"


@pytest.mark.parametrize(("field_type", "value"), [("integer", 1.5), ("number", "abc"), ("bool", "maybe")])
def test_unrepresentable_values_raise(field_type: str, value: object) -> None:
    with pytest.raises(EncodingError):
        normalize(field_type, value)


def test_payload_hash_ignores_key_order_but_not_values() -> None:
    assert payload_hash({"a": "1", "b": "2"}) == payload_hash({"b": "2", "a": "1"})
    assert payload_hash({"a": "1"}) != payload_hash({"a": "1.0"})


# --- diff -------------------------------------------------------------------------------------------------
def test_plan_classifies_creates_updates_unchanged_and_clears() -> None:
    desired = {"k1": {"s": "1"}, "k2": {"s": "2"}, "k3": {"s": "3"}}
    empty = {"s": ""}
    confirmed = {"k2": payload_hash({"s": "old"}), "k3": payload_hash({"s": "3"}), "k4": payload_hash({"s": "4"})}
    plan = plan_changes(desired, confirmed, empty, clear_missing=True)
    assert [(c.key, c.action) for c in plan.changes] == [("k1", "create"), ("k2", "update"), ("k4", "clear")]
    assert plan.unchanged == 1
    assert plan.changes[-1].payload == empty


def test_already_cleared_records_are_not_cleared_again_and_come_back_as_updates() -> None:
    empty = {"s": ""}
    confirmed = {"gone": payload_hash(empty), "back": payload_hash(empty)}
    plan = plan_changes({"back": {"s": "9"}}, confirmed, empty, clear_missing=True)
    assert [(c.key, c.action) for c in plan.changes] == [("back", "update")]


def test_clear_missing_false_leaves_departed_records_alone() -> None:
    plan = plan_changes({}, {"gone": payload_hash({"s": "1"})}, {"s": ""}, clear_missing=False)
    assert plan.changes == ()


def test_plan_is_sorted_by_key_for_deterministic_batches() -> None:
    plan = plan_changes({k: {"s": k} for k in ["c", "a", "b"]}, {}, {"s": ""}, clear_missing=True)
    assert [c.key for c in plan.changes] == ["a", "b", "c"]


def test_samples_take_a_few_per_action() -> None:
    changes = [rec(f"k{i}", action="create") for i in range(5)] + [rec("u", action="update")]
    picked = samples(changes, 2)
    assert [(p["action"], p["key"]) for p in picked] == [("create", "k0"), ("create", "k1"), ("update", "u")]


# --- batching ---------------------------------------------------------------------------------------------
def test_batches_are_full_except_the_last() -> None:
    batches = make_batches([rec(str(i)) for i in range(250)], 100)
    assert [len(b) for b in batches] == [100, 100, 50]
    assert [r.key for b in batches for r in b] == [str(i) for i in range(250)]


def test_split_batch_halves_and_refuses_singletons() -> None:
    left, right = split_batch([rec(str(i)) for i in range(5)])
    assert ([r.key for r in left], [r.key for r in right]) == (["0", "1"], ["2", "3", "4"])
    with pytest.raises(ValueError):
        split_batch([rec("x")])


# --- backoff and rate limiting ------------------------------------------------------------------------------
def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    assert backoff_schedule(policy, [0.0] * 5) == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff_schedule(policy, [0.999999] * 5) == pytest.approx([1.0, 2.0, 4.0, 8.0, 8.0], rel=1e-5)
    assert 0.5 <= backoff_delay(policy, 1, 0.5) <= 1.0


@pytest.mark.parametrize(("header", "seconds"), [("3", 3.0), ("0.25", 0.25), (None, None), ("Wed, 21 Oct", None)])
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_limiter_never_exceeds_the_window_and_paces_evenly() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 1.0, burst=2, clock=clock, sleep=clock.sleep)
    sends = []
    for _ in range(50):
        limiter.acquire()
        sends.append(clock.now)
    for i, start in enumerate(sends):
        in_window = [t for t in sends[i:] if t < start + 1.0]
        assert len(in_window) <= 10
    # Evenly paced: 50 sends at 10/s take about 5 s, not 4 bursts.
    assert sends[-1] == pytest.approx(4.8, abs=0.25)


def test_limiter_pause_delays_every_reservation() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, 10.0, clock=clock, sleep=clock.sleep)
    limiter.pause(2.0)
    assert limiter.reserve() == pytest.approx(2.0)


def test_limiter_can_be_resized_from_server_headers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(100, 10.0, burst=1, clock=clock, sleep=clock.sleep)
    limiter.configure(5, 1.0)
    for _ in range(12):
        limiter.acquire()
    assert clock.now >= 2.0


# --- result parsing -------------------------------------------------------------------------------------------
def test_hubspot_207_ties_errors_back_by_trace_id() -> None:
    records = [rec("a"), rec("b"), rec("c")]
    body = {
        "status": "COMPLETE",
        "results": [{"id": "1", "new": True, "objectWriteTraceId": "a"}, {"id": "3", "properties": {"lid": "c"}}],
        "errors": [{"category": "VALIDATION_ERROR", "message": "bad", "context": {"objectWriteTraceId": ["b"]}}],
    }
    results = batch_results(records, body, "lid")
    assert [(r.key, r.ok, r.created, r.crm_id) for r in results] == [
        ("a", True, True, "1"),
        ("b", False, False, None),
        ("c", True, False, "3"),
    ]
    assert results[1].error_code == "VALIDATION_ERROR"


def test_hubspot_unmentioned_records_are_not_confirmed() -> None:
    results = batch_results([rec("a")], {"status": "COMPLETE", "results": [], "errors": []}, "lid")
    assert not results[0].ok and results[0].error_code == "UNCONFIRMED"


def test_collections_results_zip_in_order_and_reject_short_answers() -> None:
    records = [rec("a"), rec("b")]
    answer = [
        {"id": "00Q1", "success": True, "errors": [], "created": True},
        {"success": False, "errors": [{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "locked"}]},
    ]
    results = collection_results(records, answer)
    assert [(r.ok, r.created, r.error_code) for r in results] == [
        (True, True, ""),
        (False, False, "UNABLE_TO_LOCK_ROW"),
    ]
    assert all(not r.ok for r in collection_results(records, answer[:1]))


def test_bulk_results_join_on_external_id_whatever_the_order() -> None:
    records = [rec("a"), rec("b"), rec("c"), rec("d")]
    outcome = {
        "successfulResults": [
            {"sf__Id": "2", "sf__Created": "false", "X__c": "b"},
            {"sf__Id": "1", "sf__Created": "true", "X__c": "a"},
        ],
        "failedResults": [{"sf__Id": "", "sf__Error": "INVALID_FIELD:bad", "X__c": "c"}],
        "unprocessedrecords": [],
    }
    results = bulk_results(records, "X__c", outcome)
    assert [(r.key, r.ok, r.created, r.error_code) for r in results] == [
        ("a", True, True, ""),
        ("b", True, False, ""),
        ("c", False, False, "INVALID_FIELD"),
        ("d", False, False, "UNCONFIRMED"),
    ]


def test_bulk_csv_is_split_by_size_and_keeps_every_record() -> None:
    records = [rec(f"k{i:03d}", {"F__c": "x" * 50}) for i in range(30)]
    chunks = bulk_csv_chunks(records, ["X__c", "F__c"], max_bytes=600)
    assert len(chunks) > 1
    assert [r.key for chunk, _ in chunks for r in chunk] == [r.key for r in records]
    for chunk, text in chunks:
        assert len(text.encode()) <= 600
        assert text.splitlines()[0] == "X__c,F__c"
        assert len(text.splitlines()) == len(chunk) + 1


@pytest.mark.parametrize(
    ("header", "usage"), [("api-usage=10018/100000", (10018, 100000)), ("per-app-api-usage=1/2", None), (None, None)]
)
def test_limit_info_parsing(header: str | None, usage: tuple[int, int] | None) -> None:
    assert parse_limit_info(header) == usage
