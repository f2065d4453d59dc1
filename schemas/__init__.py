"""Installed as the package ``pipelines.schemas`` (pyproject: ``package-dir``), so the Avro
contract (``avro/``) and the ClickHouse migrations (``clickhouse/``) travel inside the wheel;
read them through :mod:`pipelines.resources`, never by a path relative to the checkout."""
