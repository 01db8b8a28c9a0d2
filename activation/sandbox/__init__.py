"""A local HTTP server that speaks the HubSpot and Salesforce contracts (see crm-api-contracts.md).

Start it from Python with :func:`run_sandbox` (ephemeral port on 127.0.0.1) or from the shell with
``python -m activation.sandbox --port 8765 --state data/crm_sandbox.sqlite``.
"""

from activation.sandbox.config import HUBSPOT_TIERS, FaultConfig, SandboxConfig
from activation.sandbox.server import CrmSandbox, SandboxAdmin, SandboxHandle, run_sandbox, start_server

__all__ = [
    "HUBSPOT_TIERS",
    "CrmSandbox",
    "FaultConfig",
    "SandboxAdmin",
    "SandboxConfig",
    "SandboxHandle",
    "run_sandbox",
    "start_server",
]
