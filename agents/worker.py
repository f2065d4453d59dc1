"""The worker's app with every agent registered: what ``govstream worker`` runs.

Importing an agent module registers its agents, tables, timers and pages on
:data:`agents.app.app`; this module is the one place that imports them all, so ``agents.app``
imports none and the agent modules import only ``agents.app`` and ``agents.common``.
"""

from __future__ import annotations

from agents import alerts, forms, hotspots, reports, web
from agents.app import app

__all__ = ["alerts", "app", "forms", "hotspots", "reports", "web"]
