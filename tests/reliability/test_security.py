"""Security: loopback by default, row filters that run on the real tables, injection attempts
through the analyst's parameterised paths."""

from __future__ import annotations

import pytest

from pipelines import clickhouse, rowpolicy
from pipelines.probes import services
from pipelines.settings import Settings

pytestmark = pytest.mark.integration


def test_every_service_binds_to_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"GOVSTREAM_{name.upper()}", raising=False)
    defaults = Settings()
    for service in services(defaults):
        assert service.address[0] == "127.0.0.1", service


def test_city_row_filters_run_on_the_real_tables(stack: Settings, unique: str) -> None:
    client = clickhouse.get_client(stack)
    with clickhouse.temporary_database(client, f"policy_{unique}") as db:
        clickhouse.migrate(client, db)
        for table, expr in rowpolicy.filters("430600").items():
            # raises (unknown column, type mismatch) if a filter does not fit its table
            assert client.command(f"SELECT count() FROM {db}.{table} WHERE {expr}") == 0


@pytest.mark.parametrize(
    "hostile",
    ["430600000000' OR '1'='1", "x'); DROP TABLE reports; --", "\\' OR 1=1 --", "' UNION SELECT 1"],
)
def test_injection_attempts_through_parameters_match_nothing(
    stack: Settings, unique: str, hostile: str
) -> None:
    writer = clickhouse.get_client(stack)
    with clickhouse.temporary_database(writer, f"inj_{unique}") as db:
        clickhouse.migrate(writer, db)
        analyst = clickhouse.get_client(stack, analyst=True)
        found = analyst.query(
            f"SELECT count() FROM {db}.reports WHERE city_code = {{c:String}}", {"c": hostile}
        ).result_rows
        assert found == [(0,)]
        assert writer.command(f"EXISTS TABLE {db}.reports") == 1
