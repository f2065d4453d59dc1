"""The worker's /health check against the embedded stack."""

from __future__ import annotations

import pytest

from pipelines import metrics
from pipelines.settings import Settings

pytestmark = pytest.mark.integration


def test_health_is_true_when_the_three_services_answer(stack: Settings) -> None:
    healthy, report = metrics.health_report(stack)
    assert healthy is True, report
    assert all(s["healthy"] for s in report["services"].values())
