"""The owners routing assigned, as the CRM fields that would record them (``activation.owner_writes``).

Routing (``activation/routing.py``) gives hot leads without an active CRM owner a rep, in
``activation.lead_owners`` (``owner_source = 'routed'``). The ``lead_owners`` mapping object can write that
rep back as the record's owner — HubSpot ``hubspot_owner_id`` on the contact, Salesforce ``OwnerId`` on the
Lead or Contact — and is disabled by default: reassigning records is a decision a sales team makes, not a
side effect of installing leadscore. This module only defines the relation that object reads.
"""

from __future__ import annotations

import duckdb

VIEW = "activation.owner_writes"


def build_owner_writes(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)create the view of routed owners with their CRM ids; returns how many leads it holds now.

    A view, not a table: it follows ``activation.lead_owners`` whenever routing runs again. A routed rep
    missing from ``main.crm_users`` has no CRM ids, so the row is kept with empty ids and the sync rejects it
    (``owner_not_in_crm``) instead of clearing the owner.
    """
    con.execute("CREATE SCHEMA IF NOT EXISTS activation")
    con.execute(
        f"""
        CREATE OR REPLACE VIEW {VIEW} AS
        SELECT o.lead_id, o.owner_user_id, u.hubspot_owner_id, u.salesforce_user_id
        FROM activation.lead_owners o
        LEFT JOIN main.crm_users u ON u.user_id = o.owner_user_id
        WHERE o.owner_source = 'routed' AND o.owner_user_id IS NOT NULL
        """
    )
    return int(con.execute(f"SELECT count(*) FROM {VIEW}").fetchone()[0])
