"""``python -m activation sync hubspot|salesforce [--dry-run]``: sync the warehouse to a CRM from a shell.

Credentials come from the environment (see activation/README.md); ``--sandbox`` starts the local CRM
sandbox in-process instead, copies the company's CRM records it lacks from the warehouse (``synthetic_crm``
or the raw export) and points the clients at it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb

from activation.errors import ActivationError
from activation.mapping import DEFAULT_MAPPING_PATH
from activation.sync import SyncOptions, run_sync


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m activation", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser("sync", help="sync the mapped relations to one CRM")
    sync.add_argument("destination", choices=["hubspot", "salesforce"])
    sync.add_argument("--dry-run", action="store_true", help="report what would change; send nothing")
    sync.add_argument("--objects", nargs="*", help="mapping objects to sync (default: all for the destination)")
    sync.add_argument(
        "--warehouse",
        type=Path,
        default=Path(os.environ.get("LEADSCORE_WAREHOUSE", "data/warehouse.duckdb")),
        help="DuckDB file (default: $LEADSCORE_WAREHOUSE or data/warehouse.duckdb)",
    )
    sync.add_argument("--mapping", type=Path, default=DEFAULT_MAPPING_PATH)
    sync.add_argument("--sandbox", type=Path, metavar="STATE", help="run against a local sandbox kept in STATE")
    sync.add_argument("--force", action="store_true", help="sync even when most of what the CRM holds would be cleared")
    sync.add_argument(
        "--max-change-share", type=float, default=None, help="refuse when more than this share of records changes"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    with contextlib.ExitStack() as stack:
        env = dict(os.environ)  # the CLI is an entry point: the library itself never reads the environment
        conn = stack.enter_context(duckdb.connect(str(args.warehouse)))
        if args.sandbox:
            from activation.sandbox import run_sandbox
            from activation.sandbox.seed import seed_from_warehouse

            sandbox = stack.enter_context(run_sandbox(state_path=args.sandbox))
            seed_from_warehouse(sandbox.app, conn)
            env.update(sandbox.env())
        try:
            options = SyncOptions(force=args.force, max_change_fraction=args.max_change_share)
            reports = run_sync(
                conn,
                args.destination,
                mapping=args.mapping,
                objects=args.objects,
                dry_run=args.dry_run,
                env=env,
                options=options,
            )
        except ActivationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    for report in reports:
        print(json.dumps(report.as_dict(), default=str, indent=2))
    return 0 if all(r.status in {"complete", "partial", "disabled"} for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
