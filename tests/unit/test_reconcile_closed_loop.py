"""``reconcile.closed_loop_problems``: each way what the analyst reads differs from the
manifest's closed loop is one line, the hotspot alerts included (issue 19). The analyst's
reads are replaced by the figures under test (pure logic; the real reads are covered by
tests/integration/test_repeat_hotspot_views.py, test_hotspot_alerts.py and ``make demo``)."""

from __future__ import annotations

from typing import Any

import pytest

from pipelines import closedloop, reconcile

pytestmark = pytest.mark.unit

HOT = {"grid_id": "G-1", "category_code": "E0101", "reports": 5, "baseline_reports": 0}
ALERT = "govstream-hotspot-G-1-E0101-20261130"


def _manifest(**loop: Any) -> dict[str, Any]:
    base = {
        "kpi_by_department": {"城管": {"received": 3}},
        "supervision": {"no_response": 1},
        "repeat_of": {"R-2": "R-1"},
        "today": "2026-11-30",
        "hotspots": [HOT],
        "hotspot_alerts": [ALERT],
    }
    return {"closed_loop": {**base, **loop}}


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the analyst reads; a test changes one figure."""
    figures: dict[str, Any] = {
        "department_rates": {"城管": {"received": 3}},
        "supervision": {"no_response": 1},
        "repeats": {"R-2": "R-1"},
        "hotspots": [{**HOT, "township_code": "430102001"}],
        "hotspot_alerts": [ALERT],
    }
    for name in figures:
        monkeypatch.setattr(closedloop, name, lambda *_a, _n=name: figures[_n])
    return figures


def test_nothing_to_say_when_every_figure_agrees(reads: dict[str, Any]) -> None:
    assert reconcile.closed_loop_problems(None, "gov", _manifest()) == []


def test_a_missing_or_an_extra_hotspot_alert_is_a_problem(reads: dict[str, Any]) -> None:
    reads["hotspot_alerts"] = []
    (problem,) = reconcile.closed_loop_problems(None, "gov", _manifest())
    assert "hotspot alerts" in problem and ALERT in problem
    reads["hotspot_alerts"] = [ALERT, "govstream-hotspot-G-9-E0101-20261130"]
    (problem,) = reconcile.closed_loop_problems(None, "gov", _manifest())
    assert "G-9" in problem


def test_a_manifest_without_hotspot_alerts_does_not_ask_for_them(reads: dict[str, Any]) -> None:
    """Manifests written before the hotspot alert (no ``hotspot_alerts``) still reconcile."""
    manifest = _manifest()
    del manifest["closed_loop"]["hotspot_alerts"]
    reads["hotspot_alerts"] = [ALERT]
    assert reconcile.closed_loop_problems(None, "gov", manifest) == []


def test_each_other_figure_that_differs_is_one_line(reads: dict[str, Any]) -> None:
    reads["department_rates"] = {"城管": {"received": 2}}
    reads["supervision"] = {"no_response": 0}
    reads["repeats"] = {}
    reads["hotspots"] = []
    problems = reconcile.closed_loop_problems(None, "gov", _manifest())
    assert len(problems) == 4, problems
    assert any("received: 2 in kpi_by_department, 3 expected" in p for p in problems)
    assert any(p.startswith("督办 no_response: 0 orders, 1 expected") for p in problems)
    assert any("repeat complaints: 1 expected not found" in p for p in problems)
    assert any(p.startswith("hotspots of 2026-11-30") for p in problems)
