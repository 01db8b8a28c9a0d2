"""A local HTTP server that speaks the HubSpot and Salesforce contracts (see crm-api-contracts.md).

Start it from Python with :func:`run_sandbox` (ephemeral port on 127.0.0.1) or from the shell with
``python -m activation.sandbox --port 8765 --state data/crm_sandbox.sqlite``. It starts as a copy of the
company's CRM: :func:`activation.sandbox.seed.seed_from_warehouse` (or ``--seed-from``) loads the records.
"""

from activation.sandbox.config import HUBSPOT_TIERS, FaultConfig, SandboxConfig
from activation.sandbox.seed import seed_from_warehouse
from activation.sandbox.server import CrmSandbox, SandboxAdmin, SandboxHandle, run_sandbox, start_server

__all__ = [
    "HUBSPOT_TIERS",
    "CrmSandbox",
    "FaultConfig",
    "SandboxAdmin",
    "SandboxConfig",
    "SandboxHandle",
    "run_sandbox",
    "seed_from_warehouse",
    "start_server",
]
