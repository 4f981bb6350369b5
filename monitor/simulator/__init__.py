"""OpenAI-compatible provider farm with an OpenRouter-like front, for demos and tests.

Pure parts: `profiles` (what a provider is like), `plan` (what one response will be),
`farm` (state and ground truth), `catalog` (models/endpoints JSON), `scenarios` (ready farms).
I/O: `server` (aiohttp.web). See DESIGN.md section 7.
"""

from __future__ import annotations

from monitor.simulator.farm import Farm, TruthRecord
from monitor.simulator.plan import Intent, Plan, PlanRequest, Step, plan_response
from monitor.simulator.profiles import ProviderProfile, ServedModel
from monitor.simulator.scenarios import DEMO_MODEL, QUIRKS, demo_farm, quirks_farm
from monitor.simulator.server import Simulator, run_simulator, serve

__all__ = [
    "DEMO_MODEL",
    "QUIRKS",
    "Farm",
    "Intent",
    "Plan",
    "PlanRequest",
    "ProviderProfile",
    "ServedModel",
    "Simulator",
    "Step",
    "TruthRecord",
    "demo_farm",
    "plan_response",
    "quirks_farm",
    "run_simulator",
    "serve",
]
