"""Throughput bench: write N changed lead scores onto N existing HubSpot contacts at Professional limits.

``uv run python -m activation.bench [--records N]`` seeds the sandbox with N contacts (the company's CRM),
syncs N scored leads onto them by record id (``batch/update``), and prints records/s against the 1,900/s
ceiling (190 requests per 10 s x 100 records), batch calls against the minimum ceil(N/100), the 429s
received, and then re-syncs with nothing changed (records sent must be 0). Exits 1 when a target is missed:
>= 90 % of the ceiling, calls = minimum, zero 429s, nothing resent, and the CRM holds exactly the N contacts
it held before (none created), each with its score.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import duckdb

from activation.hubspot import TIER_LIMITS, HubSpotDestination, HubSpotSettings
from activation.mapping import load_mapping
from activation.sandbox import run_sandbox
from activation.sync import SyncOptions, sync_object

BATCH = 100


def make_lead_scores(conn: duckdb.DuckDBPyConnection, records: int, seed: float = 0.42) -> None:
    """A ``lead_scores`` table with ``records`` leads on the latest as-of date (and stale older rows)."""
    conn.execute(f"SELECT setseed({seed})")
    conn.execute(
        """
        CREATE OR REPLACE TABLE lead_scores AS
        SELECT printf('L-%07d', i) AS lead_id, d AS as_of,
               round(random() * 100, 3) AS score, round(random() * 100, 3) AS fit_score,
               round(random() * 100, 3) AS engagement_score,
               ['A', 'B', 'C', 'D'][1 + (i % 4)] || (1 + (i % 4))::VARCHAR AS tier,
               ['Visited the pricing page', 'Senior title', 'No product usage'] AS reasons,
               round(random() * 20 - 10, 2) AS score_change_7d, 'lead_scoring/7' AS model_version
        FROM range(?) t(i), (VALUES (DATE '2026-11-01'), (DATE '2026-11-02')) v(d)
        """,
        [records],
    )
    conn.execute(
        """
        CREATE OR REPLACE TABLE lead_crm_ids AS
        SELECT printf('L-%07d', i) AS lead_id, printf('lead%d@example.com', i) AS email,
               (51000000000 + i)::VARCHAR AS hubspot_contact_id, NULL::VARCHAR AS salesforce_lead_id,
               NULL::VARCHAR AS salesforce_contact_id
        FROM range(?) t(i)
        """,
        [records],
    )


def crm_contacts(records: int) -> list[dict[str, object]]:
    """The contacts the CRM already holds, with the ids lead_crm_ids exports."""
    return [
        {"id": str(51_000_000_000 + i), "properties": {"email": f"lead{i}@example.com", "lastname": f"Lead {i}"}}
        for i in range(records)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--tier", default="professional", choices=sorted(TIER_LIMITS))
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)

    per_window, _ = TIER_LIMITS[args.tier]
    window = 10.0
    ceiling = per_window * BATCH / window
    leads = load_mapping().object("leads")
    with tempfile.TemporaryDirectory(prefix="leadscore-bench-") as tmp:
        conn = duckdb.connect(str(Path(tmp) / "warehouse.duckdb"))
        make_lead_scores(conn, args.records)
        with run_sandbox(state_path=Path(tmp) / "crm.sqlite", hubspot_tier=args.tier) as sandbox:
            sandbox.app.seed_hubspot("contacts", crm_contacts(args.records))
            env = sandbox.env()
            client = HubSpotDestination(
                env["HUBSPOT_ACCESS_TOKEN"], HubSpotSettings(base_url=sandbox.url, tier=args.tier)
            )
            client.identify()  # which portal, and the property setup, are one-offs: measure the steady state
            client.prepare(leads)
            setup_calls = sandbox.admin.stats()["requests"]
            sandbox.admin.reset_stats()
            options = SyncOptions(workers=args.workers)
            first = sync_object(conn, client, leads, options=options)
            stats = sandbox.admin.stats()
            second = sync_object(conn, client, leads, options=options)
            contacts = sandbox.admin.hubspot_objects("contacts")

    rate = first.sent / first.duration_s if first.duration_s else float("inf")
    minimum = math.ceil(args.records / BATCH)
    batch_calls = stats["by_route"].get("hubspot.batch.update", 0)
    received_429 = stats["rate_limited"]
    scored = sum(1 for c in contacts if c["properties"].get("leadscore_score") not in (None, ""))
    checks = {
        f">= 90% of ceiling ({rate / ceiling:.1%})": rate >= 0.9 * ceiling,
        f"batch calls = minimum ({batch_calls} vs {minimum})": batch_calls == minimum,
        f"zero 429s ({received_429})": received_429 == 0,
        f"no-change resync sends 0 ({second.sent})": second.sent == 0,
        f"no record created ({len(contacts)} contacts, {first.created} created)": (
            len(contacts) == args.records and first.created == 0
        ),
        f"every contact carries its score ({scored} of {args.records})": scored == args.records,
    }
    print(f"HubSpot {args.tier}: {per_window} requests / {window:.0f}s -> ceiling {ceiling:,.0f} records/s")
    print(f"sync 1: {first.sent:,} updates of existing contacts in {first.duration_s:.1f}s = {rate:,.0f} records/s")
    calls = f"API calls {first.api_calls} (batch updates {batch_calls}, minimum {minimum})"
    print(f"        {calls}; one-off property setup calls {setup_calls}")
    print(f"        429s received {received_429}, failed {first.failed}, status {first.status}")
    print(f"sync 2: sent {second.sent}, unchanged {second.unchanged:,}, API calls {second.api_calls}")
    for label, ok in checks.items():
        print(f"  [{'ok' if ok else 'MISSED'}] {label}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
