"""Pure functions: encoding, hashing, diff, batching, backoff, rate limiting, result parsing."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import math

import pytest

from activation.csvtext import csv_lines, read_csv_rows
from activation.destination import BY_EMAIL, BY_ID, BY_KEY, Address, OutgoingRecord, resolve_address
from activation.diff import (
    Confirmed,
    Desired,
    desired_hash,
    make_batches,
    plan_changes,
    samples,
    shared_addresses,
    split_batch,
)
from activation.encoding import (
    EncodingError,
    hubspot_value,
    normalize,
    payload_hash,
    salesforce_csv_value,
    salesforce_value,
)
from activation.hubspot import (
    batch_results,
    contacts_by_email,
    property_value_problem,
    update_results,
    value_error_code,
)
from activation.mapping import parse_mapping
from activation.ratelimit import RateLimiter, RetryPolicy, backoff_delay, backoff_schedule, parse_retry_after
from activation.salesforce import (
    bulk_csv_chunks,
    bulk_results,
    check_login_url,
    collection_results,
    is_daily_limit,
    org_id_from_identity_url,
    parse_limit_info,
)


def rec(key: str, payload: dict | None = None, action: str = "new", address: Address | None = None) -> OutgoingRecord:
    payload = payload if payload is not None else {"f": key}
    return OutgoingRecord(key, payload, payload_hash(payload), action, address or Address("contacts", BY_ID, key))


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


# --- addresses and the diff -----------------------------------------------------------------------------
def at(value: str, obj: str = "contacts") -> Address:
    return Address(obj, BY_ID, value)


def want(payload: dict, address: Address) -> Desired:
    return Desired(payload, address)


def seen(payload: dict, address: Address, cleared: bool = False) -> Confirmed:
    return Confirmed(desired_hash(Desired(payload, address)), cleared, address)


def test_rows_find_their_crm_record_by_route_then_email() -> None:
    document = {
        "version": 1,
        "objects": {
            "leads": {
                "relation": "r",
                "key_column": "lead_id",
                "destinations": {
                    "hubspot": {"object": "contacts", "record_id": "hs_id", "match_email": "email"},
                    "salesforce": {"routes": [{"object": "Contact", "record_id": "sf_contact"},
                                              {"object": "Lead", "record_id": "sf_lead"}]},
                },
                "fields": [{"column": "score", "type": "number", "hubspot": "s", "salesforce": "S__c"}],
            }
        },
    }  # fmt: skip
    obj = parse_mapping(document).object("leads")
    hubspot, salesforce = obj.target("hubspot"), obj.target("salesforce")
    assert resolve_address(hubspot, "L1", {"hs_id": " 42 ", "email": "A@x.io"}) == Address("contacts", BY_ID, "42")
    assert resolve_address(hubspot, "L1", {"hs_id": None, "email": " A@X.io"}) == Address(
        "contacts", BY_EMAIL, "a@x.io"
    )
    assert resolve_address(hubspot, "L1", {"hs_id": "", "email": None}) is None
    assert resolve_address(salesforce, "L1", {"sf_contact": "003A", "sf_lead": "00QA"}) == at("003A", "Contact")
    assert resolve_address(salesforce, "L1", {"sf_contact": None, "sf_lead": "00QA"}) == at("00QA", "Lead")
    assert salesforce.object == "Contact|Lead" and hubspot.identity_columns == ("hs_id", "email")
    document["objects"]["leads"]["destinations"] = {"hubspot": {"mode": "upsert", "object": "contacts",
                                                                "id_property": "lid"}}  # fmt: skip
    document["objects"]["leads"]["fields"] = [{"column": "score", "type": "number", "hubspot": "s"}]
    upsert = parse_mapping(document).object("leads").target("hubspot")
    assert resolve_address(upsert, "L1", {}) == Address("contacts", BY_KEY, "L1")


def test_plan_classifies_new_updates_unchanged_and_clears() -> None:
    desired = {"k1": want({"s": "1"}, at("1")), "k2": want({"s": "2"}, at("2")), "k3": want({"s": "3"}, at("3"))}
    empty = {"s": ""}
    confirmed = {"k2": seen({"s": "old"}, at("2")), "k3": seen({"s": "3"}, at("3")), "k4": seen({"s": "4"}, at("4"))}
    plan = plan_changes(desired, confirmed, empty, clear_missing=True)
    assert [(c.key, c.action) for c in plan.changes] == [("k1", "new"), ("k2", "update"), ("k4", "clear")]
    assert plan.unchanged == 1
    assert plan.changes[-1].payload == empty and plan.changes[-1].address == at("4"), "cleared where confirmed"


def test_a_record_that_moved_is_sent_again_even_with_the_same_values() -> None:
    confirmed = {"k": seen({"s": "1"}, at("00Q1", "Lead"))}
    plan = plan_changes({"k": want({"s": "1"}, at("0031", "Contact"))}, confirmed, {"s": ""}, clear_missing=True)
    assert [(c.key, c.action, c.address) for c in plan.changes] == [("k", "update", at("0031", "Contact"))]


def test_already_cleared_records_are_not_cleared_again_and_come_back_as_updates() -> None:
    empty = {"s": ""}
    confirmed = {"gone": seen(empty, at("1"), cleared=True), "back": seen(empty, at("2"), cleared=True)}
    plan = plan_changes({"back": want({"s": "9"}, at("2"))}, confirmed, empty, clear_missing=True)
    assert [(c.key, c.action) for c in plan.changes] == [("back", "update")]


def test_clear_missing_false_and_kept_keys_leave_departed_records_alone() -> None:
    confirmed = {"gone": seen({"s": "1"}, at("1"))}
    assert plan_changes({}, confirmed, {"s": ""}, clear_missing=False).changes == ()
    assert plan_changes({}, confirmed, {"s": ""}, clear_missing=True, keep={"gone"}).changes == ()


def test_plan_is_sorted_by_key_for_deterministic_batches() -> None:
    desired = {k: want({"s": k}, at(k)) for k in ["c", "a", "b"]}
    plan = plan_changes(desired, {}, {"s": ""}, clear_missing=True)
    assert [c.key for c in plan.changes] == ["a", "b", "c"]


def test_rows_sharing_a_crm_record_are_found() -> None:
    desired = {"a": want({}, at("1")), "b": want({}, at("1")), "c": want({}, at("2")), "d": want({}, at("1", "X"))}
    assert shared_addresses(desired) == {"a": ["b"], "b": ["a"]}


def test_samples_take_a_few_per_action() -> None:
    changes = [rec(f"k{i}", action="new") for i in range(5)] + [rec("u", action="update")]
    picked = samples(changes, 2)
    assert [(p["action"], p["key"]) for p in picked] == [("new", "k0"), ("new", "k1"), ("update", "u")]
    assert picked[0]["target"] == "contacts:id:k0"


# --- batching ---------------------------------------------------------------------------------------------
def test_batches_are_full_except_the_last() -> None:
    batches = make_batches([rec(str(i)) for i in range(250)], 100)
    assert [len(b) for b in batches] == [100, 100, 50]
    assert [r.key for b in batches for r in b] == [str(i) for i in range(250)]


def test_batches_hold_one_object_each() -> None:
    records = [rec(str(i), address=at(str(i), "Lead" if i % 3 else "Contact")) for i in range(10)]
    batches = make_batches(records, 3, lambda r: r.address.object)
    assert [[r.address.object for r in b] for b in batches] == [["Contact"] * 3, ["Contact"], ["Lead"] * 3,
                                                                ["Lead"] * 3]  # fmt: skip


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
def test_hubspot_update_ties_results_and_not_found_errors_back() -> None:
    records = [rec("a"), rec("b"), rec("c"), rec("d")]
    ids = ["11", "12", "13", "14"]
    body = {
        "status": "COMPLETE",
        "results": [{"id": "11", "objectWriteTraceId": "a"}, {"id": "13"}],  # c: tied by its id
        "errors": [
            {
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some CONTACT objects",
                "context": {"ids": ["12"]},
            }
        ],
    }
    results = update_results(records, ids, body)
    assert [(r.key, r.ok, r.crm_id, r.error_code) for r in results] == [
        ("a", True, "11", ""),
        ("b", False, None, "not_found"),
        ("c", True, "13", ""),
        ("d", False, None, "UNCONFIRMED"),
    ]


def test_hubspot_email_lookup_is_case_insensitive() -> None:
    body = {"results": [{"id": "7", "properties": {"email": "Ada@Example.com"}}, {"id": "8", "properties": {}}]}
    assert contacts_by_email(body) == {"ada@example.com": "7"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"category": "VALIDATION_ERROR", "message": 'Property values were not valid: [{"isValid":false,'
          '"message":"Email address x is invalid","error":"INVALID_EMAIL","name":"email"}]'}, "INVALID_EMAIL"),
        ({"category": "VALIDATION_ERROR", "message": "Property values were not valid",
          "errors": [{"code": "INVALID_OPTION", "message": "x"}]}, "INVALID_OPTION"),
        ({"category": "VALIDATION_ERROR", "message": "Property values were not valid",
          "errors": [{"code": "PROPERTY_DOESNT_EXIST"}]}, None),
        ({"category": "VALIDATION_ERROR", "message": "Unable to perform update/upsert by non-unique 0-1 property"},
         None),
        ({"category": "CONFLICT", "message": "x"}, None),
    ],
)  # fmt: skip
def test_only_value_errors_make_a_400_worth_splitting(body: dict, code: str | None) -> None:
    assert value_error_code(body) == code


def test_dropdown_values_are_checked_against_the_options() -> None:
    dropdown = {"type": "enumeration", "fieldType": "select", "options": [{"value": "A1"}, {"value": "B2"}]}
    assert property_value_problem(dropdown, "A1") is None and property_value_problem(dropdown, "") is None
    assert "'C3' is not one of" in (property_value_problem(dropdown, "C3") or "")
    assert property_value_problem({"type": "string"}, "C3") is None and property_value_problem(None, "x") is None


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


def test_a_failed_bulk_job_keeps_what_it_wrote_and_names_why_the_rest_failed() -> None:
    records = [rec("a"), rec("b"), rec("c")]
    keys = {"00Q1": "a", "00Q2": "b", "00Q3": "c"}
    outcome = {
        "successfulResults": [{"sf__Id": "00Q1", "sf__Created": "false", "Id": "00Q1"}],
        "failedResults": [{"sf__Id": "00Q2", "sf__Error": "ENTITY_IS_DELETED:entity is deleted", "Id": "00Q2"}],
        "unprocessedrecords": [{"Id": "00Q3"}],
    }
    results = bulk_results(records, "Id", outcome, keys, failure="Bulk job 750x ended Failed: boom")
    assert [(r.key, r.ok, r.error_code) for r in results] == [("a", True, ""), ("b", False, "not_found"),
                                                              ("c", False, "UNPROCESSED")]  # fmt: skip
    assert "ended Failed: boom" in results[2].message


def test_bulk_csv_is_split_by_size_and_keeps_every_record() -> None:
    records = [rec(f"k{i:03d}", {"F__c": "x" * 50}) for i in range(30)]
    chunks = list(bulk_csv_chunks(records, ["X__c", "F__c"], max_bytes=600))
    assert len(chunks) > 1
    assert [r.key for chunk, _ in chunks for r in chunk] == [r.key for r in records]
    for chunk, text in chunks:
        assert len(text.encode()) <= 600
        assert text.splitlines()[0] == "X__c,F__c"
        assert len(text.splitlines()) == len(chunk) + 1


@pytest.mark.parametrize(
    ("header", "usage"),
    [
        ("api-usage=10018/100000", (10018, 100000)),
        ("api-usage=25/5000; per-app-api-usage=17/250(appName=x)", (17, 250)),  # the app's share is tighter
        ("api-usage=4990/5000; per-app-api-usage=17/250(appName=x)", (4990, 5000)),
        ("api-usage=25/5000,per-app-api-usage=1/2(appName=leadscore)", (1, 2)),
        ("per-app-api-usage=1/2", (1, 2)),
        ("api-usage=abc", None),
        ("", None),
        (None, None),
    ],
)
def test_limit_info_parsing(header: str | None, usage: tuple[int, int] | None) -> None:
    assert parse_limit_info(header) == usage


def test_request_limit_exceeded_is_daily_only_when_it_says_so_or_the_usage_is_spent() -> None:
    assert is_daily_limit("TotalRequests Limit exceeded.", None)
    assert not is_daily_limit("ConcurrentPerOrgLongTxn Limit exceeded.", (10, 100))
    assert is_daily_limit("ConcurrentPerOrgLongTxn Limit exceeded.", (100, 100))


def test_org_id_and_login_host_rules() -> None:
    url = "https://login.salesforce.com/id/00D5g000004SbXzEAK/0055g000001AbCdAAK"
    assert org_id_from_identity_url(url) == "00D5g000004SbXzEAK"
    assert org_id_from_identity_url("https://x/other") is None
    check_login_url("https://login.salesforce.com", jwt=True)  # JWT bearer works on the generic host
    check_login_url("https://acme.my.salesforce.com", jwt=False)
    with pytest.raises(Exception, match="My Domain"):
        check_login_url("https://LOGIN.salesforce.com/", jwt=False)


def test_salesforce_empty_text_travels_as_null() -> None:
    assert salesforce_value("string", "") is None and salesforce_value("text", "") is None
    assert salesforce_csv_value(salesforce_value("string", "")) == "#N/A"


def test_state_of_the_first_design_is_kept_aside_in_one_step() -> None:
    import duckdb

    from activation.state import ensure_tables

    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA activation")
    conn.execute("CREATE TABLE activation.sync_state (destination VARCHAR, object VARCHAR, record_key VARCHAR)")
    conn.execute("INSERT INTO activation.sync_state VALUES ('hubspot', 'contacts', 'L-1')")
    conn.execute("CREATE TABLE activation.rejects (destination VARCHAR)")
    ensure_tables(conn)
    tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"sync_state", "sync_state_v1", "rejects", "rejects_v1", "sync_runs", "state_version"} <= tables
    assert conn.execute("SELECT count(*) FROM activation.sync_state_v1").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM activation.sync_state").fetchone()[0] == 0
    ensure_tables(conn)  # idempotent: the new state is not moved aside again
    assert conn.execute("SELECT count(*) FROM activation.sync_state_v1").fetchone()[0] == 1


def test_erased_people_are_erased_then_forgotten_whatever_clear_missing_says() -> None:
    confirmed = {
        "live": seen({"s": "1"}, at("1"), cleared=False),
        "erased": Confirmed(desired_hash(Desired({"s": "2"}, at("2"))), False, at("2"), erased=True),
        "erased_cleared": Confirmed("x", True, at("3"), erased=True),
    }
    plan = plan_changes({"live": want({"s": "1"}, at("1"))}, confirmed, {"s": ""}, clear_missing=False)
    assert [(c.key, c.action, c.address) for c in plan.changes] == [("erased", "erase", at("2"))]
    assert plan.forget == ("erased_cleared",)


@pytest.mark.parametrize(
    "text",
    ["", "a,b\n", "a,b\n1,2", 'a,b\n1,"x\u2028y\r\nz"\n2,"q""r"\n', "a\n\n1\n"],
    ids=["empty", "header only", "no final newline", "quoted newlines and separators", "blank line"],
)
def test_csv_lines_read_as_a_string_buffer_does(text: str) -> None:
    """The line slicer feeds csv the same rows as io.StringIO, without copying the document."""
    assert list(read_csv_rows(text)) == list(csv.reader(io.StringIO(text)))
    assert "".join(csv_lines(text)) == text
