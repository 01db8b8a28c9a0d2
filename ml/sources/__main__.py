"""Command line for the sources: ``python -m ml.sources {synthetic,files,export,summary}``.

The warehouse is ``$LEADSCORE_WAREHOUSE`` (default ``data/warehouse.duckdb``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys

from ml.sources.files import SourceFileError, export_raw, load_files
from ml.sources.summary import format_summary, warehouse_summary
from ml.sources.synthetic import SCALES, SyntheticConfig, load_synthetic
from ml.warehouse import connect, table_exists, warehouse_path


def parse_scale(value: str) -> int:
    """A named scale (tiny, small, bench) or a number of accounts."""
    if value in SCALES:
        return SCALES[value]
    try:
        accounts = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"scale must be one of {sorted(SCALES)} or a number, not {value!r}") from None
    if accounts < 10:
        raise argparse.ArgumentTypeError("scale must be at least 10 accounts")
    return accounts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml.sources", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    syn = sub.add_parser("synthetic", help="generate the synthetic company into raw, oracle and synthetic_crm")
    syn.add_argument(
        "--scale",
        type=parse_scale,
        default=SCALES["small"],
        help=f"accounts, or one of {', '.join(f'{k}={v}' for k, v in SCALES.items())}",
    )
    syn.add_argument("--seed", type=int, default=SyntheticConfig.seed)
    syn.add_argument(
        "--end-date",
        type=dt.date.fromisoformat,
        default=None,
        help="last day of history (default: yesterday, UTC)",
    )
    syn.add_argument("--if-absent", action="store_true", help="do nothing when raw data is already there")
    files = sub.add_parser("files", help="load raw tables from a folder of CSV/Parquet exports")
    files.add_argument("folder")
    exp = sub.add_parser("export", help="write the raw tables to a folder (a template for your exports)")
    exp.add_argument("folder")
    exp.add_argument("--format", choices=["csv", "parquet"], default="csv")
    sub.add_parser("summary", help="print row counts and headline figures")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.command == "summary":
        with connect(read_only=True) as con:
            print(f"warehouse {warehouse_path()}\n{format_summary(warehouse_summary(con))}")
        return 0
    with connect() as con:
        if args.command == "synthetic":
            if args.if_absent and table_exists(con, "raw", "contacts"):
                print(f"raw data already in {warehouse_path()}; not regenerating")
                return 0
            config = SyntheticConfig(
                n_accounts=args.scale,
                seed=args.seed,
                **({"end_date": args.end_date} if args.end_date else {}),
            )
            load_synthetic(con, config)
        elif args.command == "files":
            try:
                load_files(con, args.folder)
            except SourceFileError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        elif args.command == "export":
            for path in export_raw(con, args.folder, args.format):
                print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
