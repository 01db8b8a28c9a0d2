"""Argument parsing of the sources CLI (pure)."""

from __future__ import annotations

import argparse

import pytest

from ml.sources.__main__ import build_parser, parse_scale
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
