"""The sources CLI: argument parsing, and the volume guard flags reaching the load."""

from __future__ import annotations

import argparse
import shutil

import duckdb
import pytest

from ml.sources.__main__ import build_parser, main, parse_scale
from ml.sources.files import export_raw
from ml.sources.synthetic import SCALES


def test_parse_scale_accepts_names_and_numbers():
    assert parse_scale("tiny") == SCALES["tiny"]
    assert parse_scale("1234") == 1234
    for bad in ("huge", "5", "-3"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_scale(bad)


def test_synthetic_defaults_and_options():
    args = build_parser().parse_args(["synthetic", "--scale", "bench", "--seed", "3", "--end-date", "2026-01-31"])
    assert (args.scale, args.seed, str(args.end_date), args.if_absent) == (SCALES["bench"], 3, "2026-01-31", False)
    assert build_parser().parse_args(["synthetic"]).scale == SCALES["small"]


def test_volume_guard_options_of_both_loaders():
    for command in (["files", "/exports"], ["synthetic"]):
        args = build_parser().parse_args([*command, "--allow-shrink", "payments", "--allow-shrink", "Invoices"])
        assert (args.allow_shrink, args.max_shrink) == (["payments", "invoices"], 0.5)
        assert build_parser().parse_args([*command, "--max-shrink", "0.8"]).max_shrink == 0.8
        assert build_parser().parse_args([*command, "--allow-shrink", "all"]).allow_shrink == ["all"]
        for bad in (["--allow-shrink", "paymnts"], ["--max-shrink", "80%"], ["--max-shrink", "2"]):
            with pytest.raises(SystemExit):
                build_parser().parse_args([*command, *bad])


def test_the_flags_reach_the_guard(tmp_path, tiny_raw_warehouse, monkeypatch, capsys):
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(tiny_raw_warehouse, warehouse)
    monkeypatch.setenv("LEADSCORE_WAREHOUSE", str(warehouse))
    folder = tmp_path / "exports"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        export_raw(con, folder)
        payments = con.execute("SELECT count(*) FROM raw.payments").fetchall()[0][0]
    (folder / "payments.csv").write_bytes(b"payment_id,invoice_id,amount,paid_at,_loaded_at\n")

    assert main(["files", str(folder)]) == 2
    assert f"raw.payments would go from {payments:,} rows to 0" in capsys.readouterr().err
    assert main(["files", str(folder), "--max-shrink", "1"]) == 2, "an empty table needs --allow-shrink"
    assert main(["files", str(folder), "--allow-shrink", "payments"]) == 0
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.payments").fetchall()[0][0] == 0
