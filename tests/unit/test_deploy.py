"""The production twin (docker-compose.yml, deploy/) uses the embedded stack's settings."""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from pipelines import access, rowpolicy
from pipelines.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SETTING_NAMES = {f"GOVSTREAM_{name.upper()}" for name in Settings.model_fields}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


KAFKA_BROKERS = ("kafka-1", "kafka-2", "kafka-3")
CLICKHOUSE_REPLICAS = ("clickhouse-1", "clickhouse-2")
KEEPERS = ("keeper-1", "keeper-2", "keeper-3")


def test_compose_parses_and_has_every_service() -> None:
    services = compose()["services"]
    expected = {*KAFKA_BROKERS, "schema-registry", *CLICKHOUSE_REPLICAS, *KEEPERS, "worker"}
    assert expected <= set(services)
    assert services["worker"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (ROOT / services["worker"]["build"]["dockerfile"]).is_file()


def test_every_govstream_variable_in_compose_is_a_real_setting() -> None:
    seen: set[str] = set()
    for service in compose()["services"].values():
        env = service.get("environment") or {}
        seen |= {k for k in env if k.startswith("GOVSTREAM_")}
    assert "GOVSTREAM_KAFKA_BOOTSTRAP" in seen
    assert seen <= SETTING_NAMES, seen - SETTING_NAMES


def worker_settings() -> Settings:
    """The worker's settings from compose, every ``${VAR:?…}`` replaced by ``secret``."""
    env = compose()["services"]["worker"]["environment"]
    values = {
        k.removeprefix("GOVSTREAM_").lower(): re.sub(r"\$\{[^}]*\}", "secret", str(v))
        for k, v in env.items()
    }
    return Settings(**values)


def test_worker_env_configures_a_valid_settings_object_with_nothing_embedded() -> None:
    settings = worker_settings()
    assert settings.embedded == []
    assert settings.kafka_bootstrap == ",".join(f"{b}:9092" for b in KAFKA_BROKERS)
    assert settings.clickhouse_address == ("clickhouse-1", 8123)
    assert settings.clickhouse_cluster == "govstream"
    assert settings.topic_replication_factor == 3


def test_dockerfile_and_clickhouse_config_use_real_settings() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    names = set(re.findall(r"GOVSTREAM_[A-Z_]+", dockerfile))
    assert names and names <= SETTING_NAMES, names - SETTING_NAMES
    for xml in (ROOT / "deploy" / "clickhouse").rglob("*.xml"):
        tree = ElementTree.parse(xml)
        env_refs = {el.get("from_env") for el in tree.iter() if el.get("from_env")}
        # city analysts' passwords and the analysts' network are the ClickHouse server's own
        env_refs = {r for r in env_refs if not re.fullmatch(r"CITY_ANALYST_PASSWORD_\d{4}", r)}
        env_refs.discard(rowpolicy.ANALYST_NETWORK_ENV)
        env_refs -= CLUSTER_ENV  # the replicas' and keepers' own (docker-compose.yml)
        assert env_refs <= SETTING_NAMES, (xml, env_refs - SETTING_NAMES)


def test_analyst_profile_is_read_only_by_constraint() -> None:
    tree = ElementTree.parse(ROOT / "deploy" / "clickhouse" / "users.d" / "govstream.xml")
    profile = tree.find("./profiles/govstream_analyst")
    assert profile is not None
    assert profile.findtext("readonly") == "1"
    assert profile.find("./constraints/readonly/const") is not None


# --- issue 15, item 7: secrets required, networks limited, Kafka authenticated -------------

USERS_D = ROOT / "deploy" / "clickhouse" / "users.d"
#: environment the replicas and keepers read that are not pipeline settings (cluster.xml,
#: keeper_config.xml)
CLUSTER_ENV = {"CLICKHOUSE_REPLICA", "CLICKHOUSE_CLUSTER_SECRET", "CLICKHOUSE_INTERSERVER_PASSWORD",
               "KEEPER_SERVER_ID"}  # fmt: skip
KAFKA_INIT = ROOT / "deploy" / "kafka" / "init.sh"
RAW_TOPICS = ("report", "form-submission", "alert", "dead-letter")


def _required(value: object, name: str) -> bool:
    """Whether a compose value is ``${NAME:?message}``: compose refuses to start without it."""
    return bool(re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", str(value)))


def _users(xml: str) -> list[ElementTree.Element]:
    users = ElementTree.parse(USERS_D / xml).find("./users")
    assert users is not None
    return [user for user in users if user.get("remove") is None]  # <default remove="remove"/>


def test_every_clickhouse_password_is_passed_by_compose_and_required() -> None:
    needed = set()
    for xml in [
        *USERS_D.glob("*.xml"),
        ROOT / "deploy" / "clickhouse" / "config.d" / "cluster.xml",
    ]:
        needed |= {el.get("from_env") for el in ElementTree.parse(xml).iter() if el.get("from_env")}
    assert len([n for n in needed if n.startswith("CITY_ANALYST_PASSWORD_")]) >= 40
    needed.discard("CLICKHOUSE_REPLICA")  # not a secret: each replica's own name, checked below
    for replica in CLICKHOUSE_REPLICAS:
        env = compose()["services"][replica]["environment"]
        assert env["CLICKHOUSE_REPLICA"] == replica
        for name in needed:
            assert name in env, f"{name} is read by {replica} but not passed by docker-compose.yml"
            assert _required(env[name], name), (name, env[name])


def test_every_secret_of_the_worker_and_kafka_is_required() -> None:
    services = compose()["services"]
    worker = services["worker"]["environment"]
    for name in ("GOVSTREAM_CLICKHOUSE_PASSWORD", "GOVSTREAM_CLICKHOUSE_ANALYST_PASSWORD",
                 "GOVSTREAM_PII_SALT"):  # fmt: skip
        assert _required(worker[name], name), name
    assert _required(worker["GOVSTREAM_KAFKA_SASL_PASSWORD"], "KAFKA_WORKER_PASSWORD")
    init = services["kafka-init"]["environment"]
    for name, value in init.items():
        if name.endswith("_PASSWORD"):
            assert _required(value, name), name
    script = KAFKA_INIT.read_text()
    assert set(re.findall(r"\$\{?(KAFKA_\w+_PASSWORD)", script)) <= set(init)


def test_no_user_connects_from_anywhere() -> None:
    subnet = compose()["networks"]["backend"]["ipam"]["config"][0]["subnet"]
    for xml in ("govstream.xml", "city_analysts.xml"):
        for user in _users(xml):
            ips = user.findall("./networks/ip")
            assert ips, user.tag
            for ip in ips:
                assert ip.text not in ("::/0", "0.0.0.0/0", "::", "0.0.0.0"), user.tag
                if user.tag == "govstream":
                    assert ip.text == subnet  # the writer: the compose network only
                else:
                    assert ip.get("from_env") == rowpolicy.ANALYST_NETWORK_ENV, user.tag


def test_no_analyst_may_read_a_writer_only_table() -> None:
    wanted = access.analyst_grants("gov")
    assert any(q.startswith("REVOKE SELECT ON gov.dead_letter_payloads") for q in wanted)
    analysts = [u for u in _users("govstream.xml") if u.tag != "govstream"]
    analysts += _users("city_analysts.xml")
    assert len(analysts) > 40
    for user in analysts:
        assert user.find("./allow_databases") is None  # it cannot be combined with grants
        assert [q.text for q in user.findall("./grants/query")] == wanted, user.tag
        assert user.findtext("./profile") == "govstream_analyst"


def test_worker_env_speaks_sasl_scram_to_kafka() -> None:
    settings = worker_settings()
    conf = settings.kafka_config()
    assert conf["security.protocol"] == "SASL_PLAINTEXT"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "govstream-worker" and conf["sasl.password"] == "secret"
    credentials = settings.faust_broker_credentials()
    assert credentials.username == "govstream-worker"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert settings.aiokafka_config()["sasl_mechanism"] == "SCRAM-SHA-512"
    assert settings.worker_web_bind == "127.0.0.1"


def test_kafka_authenticates_every_listener_and_denies_without_an_acl() -> None:
    env = compose()["services"]["kafka-1"]["environment"]
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}
    listeners = dict(
        (part.split("://")[0], part.split("://")[1]) for part in env["KAFKA_LISTENERS"].split(",")
    )
    assert set(listeners) == set(protocols)
    # the brokers' and controllers' own listeners: SASL/PLAIN, the super user admin only
    for name in set(listeners) - {"SASL"}:
        assert env[f"KAFKA_LISTENER_NAME_{name}_SASL_ENABLED_MECHANISMS"] == "PLAIN"
        jaas = env[f"KAFKA_LISTENER_NAME_{name}_PLAIN_SASL_JAAS_CONFIG"]
        assert re.findall(r'user_(\w+)="', jaas) == ["admin"], jaas
        assert _required(re.search(r'user_admin="([^"]+)"', jaas)[1], "KAFKA_ADMIN_PASSWORD")
    assert env["KAFKA_LISTENER_NAME_SASL_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == "User:admin"
    registry = compose()["services"]["schema-registry"]["environment"]
    assert registry["SCHEMA_REGISTRY_KAFKASTORE_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"


def _acls() -> list[tuple[str, set[str], str]]:
    """(principal, operations, resource) of every ACL line of deploy/kafka/init.sh; a loop's
    ``"$topic"`` is expanded to the loop's topics."""
    text = KAFKA_INIT.read_text().replace("\\\n", " ")
    out = []
    loop: list[str] = []
    for line in text.splitlines():
        if m := re.match(r"\s*for topic in ([\w\- ]+); do", line):
            loop = m.group(1).split()
        if line.strip() == "done":
            loop = []
        if not line.strip().startswith("acl --allow-principal"):
            continue
        principal = re.search(r"--allow-principal User:([\w\-]+)", line).group(1)
        operations = set(re.findall(r"--operation (\w+)", line))
        prefixed = "--resource-pattern-type prefixed" in line
        if m := re.search(r"--topic (\S+)", line):
            names = loop if m.group(1) == '"$topic"' else [m.group(1)]
            out += [(principal, operations, f"topic:{n}{'*' if prefixed else ''}") for n in names]
        elif m := re.search(r"--group (\S+)", line):
            out.append((principal, operations, f"group:{m.group(1)}{'*' if prefixed else ''}"))
        elif "--cluster" in line:
            out.append((principal, operations, "cluster"))
    return out


def test_acls_producers_write_their_topic_and_only_the_worker_reads_raw_topics() -> None:
    acls = _acls()
    assert acls
    producers = {"producer-report": "report", "producer-form": "form-submission",
                 "producer-alert": "alert"}  # fmt: skip
    for principal, operations, resource in acls:
        if principal in producers:
            assert resource == f"topic:{producers[principal]}", (principal, resource)
            assert operations == {"Write", "Describe"}, (principal, operations)
        touches_raw = resource in {f"topic:{t}" for t in RAW_TOPICS}
        reads = operations & {"Read", "All"}
        if touches_raw and reads:
            assert principal == "govstream-worker", (principal, resource)
    worker_reads = {r for p, ops, r in acls if p == "govstream-worker" and "Read" in ops}
    assert {"topic:report", "topic:form-submission", "topic:alert"} <= worker_reads
    assert ("govstream-worker", {"Write", "Describe"}, "topic:dead-letter") in acls


def test_the_registry_authenticates_every_request_and_the_worker_sends_credentials() -> None:
    services = compose()["services"]
    registry = services["schema-registry"]
    env = registry["environment"]
    assert env["SCHEMA_REGISTRY_AUTHENTICATION_METHOD"] == "BASIC"
    assert env["SCHEMA_REGISTRY_AUTHENTICATION_REALM"] == "SchemaRegistry"
    for name in ("SCHEMA_REGISTRY_PASSWORD", "SCHEMA_REGISTRY_READER_PASSWORD"):
        assert _required(env[name], name), name
    script = ROOT / "deploy" / "schema-registry" / "start.sh"
    assert any(str(v).startswith("./deploy/schema-registry/start.sh:") for v in registry["volumes"])
    text = script.read_text()
    assert "PropertyFileLoginModule" in text and "SchemaRegistry {" in text
    worker = services["worker"]["environment"]
    assert worker["GOVSTREAM_SCHEMA_REGISTRY_USER"] == "govstream"
    assert _required(worker["GOVSTREAM_SCHEMA_REGISTRY_PASSWORD"], "SCHEMA_REGISTRY_PASSWORD")
    settings = Settings(schema_registry_user="govstream", schema_registry_password="x")
    assert settings.registry_config()["basic.auth.user.info"] == "govstream:x"


# --- issue 16, item 7: the production twin for a province ----------------------------------


def test_three_kafka_brokers_replicate_every_topic_three_times_with_min_isr_two() -> None:
    services = compose()["services"]
    voters = set()
    for n, broker in enumerate(KAFKA_BROKERS, start=1):
        env = services[broker]["environment"]
        assert env["KAFKA_NODE_ID"] == n
        assert env["KAFKA_ADVERTISED_LISTENERS"].startswith(f"SASL://{broker}:9092")
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        voters.add(env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
        assert services[broker]["volumes"][0].startswith(f"{broker}-data:")
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    init = services["kafka-init"]
    assert init["environment"]["KAFKA_REPLICATION_FACTOR"] == 3
    assert init["environment"]["KAFKA_MIN_INSYNC_REPLICAS"] == 2
    script = KAFKA_INIT.read_text()
    assert '--replication-factor "${KAFKA_REPLICATION_FACTOR:-3}"' in script
    assert '"min.insync.replicas=${KAFKA_MIN_INSYNC_REPLICAS:-2}"' in script
    registry = services["schema-registry"]["environment"]
    assert all(b in registry["SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"] for b in KAFKA_BROKERS)


def test_clickhouse_is_one_shard_of_two_replicas_on_a_three_node_keeper() -> None:
    services = compose()["services"]
    cluster = ElementTree.parse(ROOT / "deploy" / "clickhouse" / "config.d" / "cluster.xml")
    name = worker_settings().clickhouse_cluster
    shards = cluster.findall(f"./remote_servers/{name}/shard")
    assert len(shards) == 1
    assert [r.findtext("host") for r in shards[0].findall("replica")] == list(CLICKHOUSE_REPLICAS)
    assert shards[0].findtext("internal_replication") == "true"
    assert cluster.find("./macros/replica").get("from_env") == "CLICKHOUSE_REPLICA"
    assert cluster.findtext("./macros/shard")
    keeper_nodes = [n.findtext("host") for n in cluster.findall("./zookeeper/node")]
    assert keeper_nodes == list(KEEPERS)
    keeper = ElementTree.parse(ROOT / "deploy" / "clickhouse" / "keeper" / "keeper_config.xml")
    raft = [
        s.findtext("hostname") for s in keeper.findall("./keeper_server/raft_configuration/server")
    ]
    assert raft == list(KEEPERS)
    for n, node in enumerate(KEEPERS, start=1):
        assert services[node]["environment"]["KEEPER_SERVER_ID"] == n
    for replica in CLICKHOUSE_REPLICAS:
        mounts = services[replica]["volumes"]
        assert "./deploy/clickhouse/config.d:/etc/clickhouse-server/config.d:ro" in mounts
        assert set(KEEPERS) <= set(services[replica]["depends_on"])
    assert set(CLICKHOUSE_REPLICAS) <= set(services["worker"]["depends_on"])


def test_the_workers_tables_have_the_partitions_of_the_topics_init_creates() -> None:
    """Faust's tables (work orders, 并单 index, repeats) are co-partitioned with the topics
    they are keyed like: the worker's partitions must be those kafka-init creates."""
    services = compose()["services"]
    assert (
        worker_settings().topic_partitions
        == services["kafka-init"]["environment"]["KAFKA_NUM_PARTITIONS"]
    )
