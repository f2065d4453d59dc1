"""The production twin (docker-compose.yml, deploy/) uses the embedded stack's settings."""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from pipelines.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SETTING_NAMES = {f"GOVSTREAM_{name.upper()}" for name in Settings.model_fields}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_parses_and_has_the_four_services() -> None:
    services = compose()["services"]
    assert {"kafka", "schema-registry", "clickhouse", "worker"} <= set(services)
    assert services["worker"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / services["worker"]["build"]["dockerfile"]).is_file()


def test_every_govstream_variable_in_compose_is_a_real_setting() -> None:
    seen: set[str] = set()
    for service in compose()["services"].values():
        env = service.get("environment") or {}
        seen |= {k for k in env if k.startswith("GOVSTREAM_")}
    assert "GOVSTREAM_KAFKA_BOOTSTRAP" in seen
    assert seen <= SETTING_NAMES, seen - SETTING_NAMES


def test_worker_env_configures_a_valid_settings_object_with_nothing_embedded() -> None:
    env = compose()["services"]["worker"]["environment"]
    values = {
        k.removeprefix("GOVSTREAM_").lower(): re.sub(r"\$\{[^}]*\}", "secret", str(v))
        for k, v in env.items()
    }
    settings = Settings(**values)
    assert settings.embedded == []
    assert settings.kafka_address == ("kafka", 9092)
    assert settings.clickhouse_address == ("clickhouse", 8123)


def test_dockerfile_and_clickhouse_config_use_real_settings() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    names = set(re.findall(r"GOVSTREAM_[A-Z_]+", dockerfile))
    assert names and names <= SETTING_NAMES, names - SETTING_NAMES
    for xml in (ROOT / "deploy" / "clickhouse").rglob("*.xml"):
        tree = ElementTree.parse(xml)
        env_refs = {el.get("from_env") for el in tree.iter() if el.get("from_env")}
        # city analysts' passwords are the ClickHouse server's own secrets, one per city
        env_refs = {r for r in env_refs if not re.fullmatch(r"CITY_ANALYST_PASSWORD_\d{4}", r)}
        assert env_refs <= SETTING_NAMES, (xml, env_refs - SETTING_NAMES)


def test_analyst_profile_is_read_only_by_constraint() -> None:
    tree = ElementTree.parse(ROOT / "deploy" / "clickhouse" / "users.d" / "govstream.xml")
    profile = tree.find("./profiles/govstream_analyst")
    assert profile is not None
    assert profile.findtext("readonly") == "1"
    assert profile.find("./constraints/readonly/const") is not None
