"""Command line for the sources: ``python -m ml.sources {synthetic,files,export,summary,erase}``.

The warehouse is ``$LEADSCORE_WAREHOUSE`` (default ``data/warehouse.duckdb``). ``synthetic`` and ``files``
replace the raw tables behind the volume guards (``--allow-shrink``, ``--max-shrink``); a refused load
exits with status 2 and leaves the previous raw data in place.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys

from ml.sources.files import export_raw, load_files
from ml.sources.governance import ErasureError, erase
from ml.sources.landing import ALL_TABLES, DEFAULT_MAX_SHRINK, SourceLoadError, allowed_to_shrink, check_max_shrink
from ml.sources.summary import format_summary, warehouse_summary
from ml.sources.synthetic import SCALES, SyntheticConfig, load_synthetic
from ml.warehouse import connect, settings_from_env, table_exists, warehouse_path


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


def parse_table_to_shrink(value: str) -> str:
    """A raw table that may shrink (or ``all``)."""
    try:
        allowed_to_shrink([value])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value.strip().lower()


def parse_max_shrink(value: str) -> float:
    try:
        return check_max_shrink(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_guard_options(parser: argparse.ArgumentParser) -> None:
    """The volume guards of the landing step (ml/sources/landing.py)."""
    parser.add_argument(
        "--allow-shrink",
        action="append",
        default=[],
        type=parse_table_to_shrink,
        metavar="TABLE",
        help=f"let this raw table (repeatable, or '{ALL_TABLES}') become empty or shrink more than --max-shrink",
    )
    parser.add_argument(
        "--max-shrink",
        type=parse_max_shrink,
        default=DEFAULT_MAX_SHRINK,
        metavar="SHARE",
        help=f"share of a raw table's rows a load may drop before it is refused (default {DEFAULT_MAX_SHRINK})",
    )


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
    add_guard_options(syn)
    files = sub.add_parser("files", help="load raw tables from a folder of CSV/Parquet exports")
    files.add_argument("folder")
    add_guard_options(files)
    exp = sub.add_parser("export", help="write the raw tables to a folder (a template for your exports)")
    exp.add_argument("folder")
    exp.add_argument("--format", choices=["csv", "parquet"], default="csv")
    sub.add_parser("summary", help="print row counts and headline figures")
    erase_ = sub.add_parser(
        "erase",
        help="forget a person everywhere in the warehouse (GDPR Art. 17); the next sync clears their CRM fields",
    )
    erase_.add_argument("--email", action="append", default=[], help="the person's e-mail address (repeatable)")
    erase_.add_argument("--contact-id", action="append", default=[], help="a CRM contact id of theirs (repeatable)")
    erase_.add_argument("--requested-by", required=True, help="who asked, for the audit (e.g. 'dpo ticket 4711')")
    erase_.add_argument("--reason", default="right to erasure (GDPR Art. 17)", help="why, for the audit")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    path = warehouse_path(os.environ)  # the CLI is an entry point: it reads the environment, the library does not
    if args.command == "summary":
        with connect(path, read_only=True, settings=settings_from_env(os.environ)) as con:
            print(f"warehouse {path}\n{format_summary(warehouse_summary(con))}")
        return 0
    with connect(path, settings=settings_from_env(os.environ)) as con:
        if args.command in ("synthetic", "files"):
            guards = {"allow_shrink": args.allow_shrink, "max_shrink": args.max_shrink}
            try:
                if args.command == "files":
                    load_files(con, args.folder, **guards)
                elif args.if_absent and table_exists(con, "raw", "contacts"):
                    print(f"raw data already in {path}; not regenerating")
                else:
                    end = {"end_date": args.end_date} if args.end_date else {}
                    load_synthetic(con, SyntheticConfig(n_accounts=args.scale, seed=args.seed, **end), **guards)
            except SourceLoadError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        elif args.command == "export":
            for path in export_raw(con, args.folder, args.format):
                print(path)
        elif args.command == "erase":
            try:
                report = erase(
                    con,
                    emails=args.email,
                    contact_ids=args.contact_id,
                    requested_by=args.requested_by,
                    reason=args.reason,
                )
            except ErasureError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(report.summary())
            print("their leadscore fields are emptied in the CRMs at the next sync; later loads keep them out")
    return 0


if __name__ == "__main__":
    sys.exit(main())
