"""``python -m activation.digest --warehouse PATH --preview-dir DIR``: write every rep's digest as HTML and text
to look at before anything is sent. Opens the warehouse read-only; sends nothing, records nothing."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb

from activation.digest import DigestInputError, send_digests

DEFAULT_SENDER = "Leadscore <leadscore@localhost>"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m activation.digest", description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=Path("data/warehouse.duckdb"), help="DuckDB file")
    parser.add_argument("--preview-dir", type=Path, required=True, help="where <day>/<user id>.html|.txt go")
    parser.add_argument("--day", type=dt.date.fromisoformat, default=None, help="YYYY-MM-DD (default: latest)")
    parser.add_argument("--sender", default=DEFAULT_SENDER, help="the From shown in the preview")
    args = parser.parse_args(argv)
    if not args.warehouse.exists():
        print(f"no warehouse at {args.warehouse}", file=sys.stderr)
        return 2
    with duckdb.connect(str(args.warehouse), read_only=True) as con:
        try:
            report = send_digests(con, sender=args.sender, day=args.day, dry_run=True, out_dir=args.preview_dir)
        except (DigestInputError, ValueError) as exc:
            print(exc, file=sys.stderr)
            return 2
    print(report.summary())
    for outcome in report.outcomes:
        if outcome.status == "would_send":
            print(f"  {outcome.user_id}: {outcome.subject}")
    htmls = [p for p in report.previews if p.suffix == ".html"]
    print(f"{len(htmls)} previews in {args.preview_dir / report.day.isoformat()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
