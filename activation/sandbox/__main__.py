"""``python -m activation.sandbox``: run the CRM sandbox in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from activation.sandbox.config import (
    DEFAULT_MY_DOMAIN,
    HUBSPOT_TIERS,
    FaultConfig,
    SandboxConfig,
)
from activation.sandbox.server import SandboxHandle, start_server

FAULT_PROBABILITIES = (
    "p_429",
    "p_5xx",
    "p_timeout",
    "p_record_error",
    "p_conflict",
    "p_empty_2xx",
    "p_concurrent_limit",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Local HubSpot + Salesforce sandbox (binds 127.0.0.1 only).")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 = any free port)")
    parser.add_argument("--state", type=Path, default=Path("data/crm_sandbox.sqlite"), help="SQLite state file")
    parser.add_argument("--seed-from", type=Path, default=None, help="DuckDB warehouse to copy the CRM's records from")
    parser.add_argument("--tier", choices=sorted(HUBSPOT_TIERS), default="professional", help="HubSpot tier")
    parser.add_argument("--window-seconds", type=float, default=10.0, help="HubSpot rolling window length")
    parser.add_argument("--hubspot-daily-limit", type=int, default=None, help="override the tier's daily limit")
    parser.add_argument("--portal-id", type=int, default=None, help="HubSpot portal id (default: the state's own)")
    parser.add_argument("--org-id", default=None, help="Salesforce org id 00D... (default: the state's own)")
    parser.add_argument("--my-domain", default=DEFAULT_MY_DOMAIN, help="served under {url}/my/{my-domain}")
    parser.add_argument("--salesforce-daily-limit", type=int, default=100_000)
    parser.add_argument("--salesforce-per-app-limit", type=int, default=None, help="the connected app's allocation")
    parser.add_argument("--salesforce-token-lifetime", type=float, default=7200.0, help="seconds")
    parser.add_argument("--no-salesforce-fields", action="store_true", help="start without leadscore's fields")
    parser.add_argument(
        "--no-required-on-create", action="store_true", help="let Salesforce creates omit LastName/Company/Name"
    )
    parser.add_argument("--jwt-public-key", type=Path, default=None, help="PEM key/cert to verify JWT signatures")
    faults = parser.add_argument_group("fault injection (probabilities 0..1)")
    for name in FAULT_PROBABILITIES:
        faults.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=0.0)
    faults.add_argument("--timeout-delay", type=float, default=1.0, help="seconds an injected timeout holds")
    faults.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    faults.add_argument("--bulk-fail-after", type=int, default=None, help="Bulk jobs fail after this many rows")
    faults.add_argument("--seed", type=int, default=0, help="seed of the fault decisions")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    faults = FaultConfig(
        seed=args.seed,
        timeout_delay=args.timeout_delay,
        latency=args.latency,
        bulk_fail_after=args.bulk_fail_after,
        **{name: getattr(args, name) for name in FAULT_PROBABILITIES},
    )
    return SandboxConfig(
        hubspot_tier=args.tier,
        hubspot_window_seconds=args.window_seconds,
        hubspot_daily_limit=args.hubspot_daily_limit,
        hubspot_portal_id=args.portal_id,
        salesforce_org_id=args.org_id,
        salesforce_my_domain=args.my_domain,
        salesforce_daily_limit=args.salesforce_daily_limit,
        salesforce_per_app_limit=args.salesforce_per_app_limit,
        salesforce_token_lifetime=args.salesforce_token_lifetime,
        salesforce_deploy_leadscore_fields=not args.no_salesforce_fields,
        salesforce_required_on_create=not args.no_required_on_create,
        salesforce_jwt_public_key_pem=args.jwt_public_key.read_text() if args.jwt_public_key else None,
        faults=faults,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    server, app, url = start_server(config_from_args(args), args.state, args.port)
    handle = SandboxHandle(url=url, app=app, state_path=args.state)
    print(f"CRM sandbox on {url} (state: {args.state}); admin API under {url}/_admin/stats", flush=True)
    if args.seed_from:
        import duckdb

        from activation.sandbox.seed import seed_from_warehouse

        with duckdb.connect(str(args.seed_from), read_only=True) as conn:
            print(f"seeded from {args.seed_from}: {seed_from_warehouse(app, conn)}", flush=True)
    print(
        f"HubSpot portal {handle.portal_id}, Salesforce org {handle.org_id} (My Domain {handle.salesforce_login_url})"
    )
    print("Point leadscore at it with:")
    for name, value in handle.env().items():
        print(f"  export {name}={value}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.close()


if __name__ == "__main__":
    main()
