"""The embedded schema registry, served in-process on a free port, driven by the real
confluent-kafka ``SchemaRegistryClient``, ``AvroSerializer`` and ``AvroDeserializer``
(plus raw HTTP for what the client does not expose)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from pipelines.settings import Settings, settings_env
from pipelines.stack.registry import RegistryServer, RegistryStore, make_server
from tests.unit.test_registry_compat import nested_arrays, reordered

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

V1 = {
    "type": "record",
    "name": "Report",
    "namespace": "gov.test",
    "fields": [{"name": "id", "type": "string"}, {"name": "level", "type": "int"}],
}
V2 = {  # BACKWARD compatible: a new field with a default, level promoted to long
    **V1,
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "level", "type": "long"},
        {"name": "region", "type": "string", "default": "unknown"},
    ],
}
V_BAD = {  # not BACKWARD compatible: a new field without a default
    **V1,
    "fields": [*V1["fields"], {"name": "owner", "type": "string"}],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def registry_settings(home: Path, port: int | None = None) -> Settings:
    return Settings(
        schema_registry_url=f"http://127.0.0.1:{port or free_port()}",
        home=home,
    )


class Running:
    """A registry server running in a thread of this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server: RegistryServer = make_server(settings)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        self.url = settings.schema_registry_url

    def client(self) -> SchemaRegistryClient:
        return SchemaRegistryClient({"url": self.url, "max.retries": 0})

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Running]:
    running = Running(registry_settings(tmp_path))
    try:
        yield running
    finally:
        running.stop()


def http(
    url: str,
    method: str = "GET",
    body: Any = None,
    content_type: str = "application/vnd.schemaregistry.v1+json",
) -> tuple[int, dict[str, str], Any]:
    """A raw request: (status, headers, decoded JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def avro(schema: dict[str, Any]) -> Schema:
    return Schema(json.dumps(schema), "AVRO")


def sr_error(excinfo: pytest.ExceptionInfo[SchemaRegistryError]) -> tuple[int, int]:
    return excinfo.value.http_status_code, excinfo.value.error_code


# --- serializer round trip -----------------------------------------------------------------


def test_serializer_deserializer_round_trip(registry: Running) -> None:
    client = registry.client()
    ctx = SerializationContext("report", MessageField.VALUE)
    serializer = AvroSerializer(client, json.dumps(V1))
    payload = serializer({"id": "r-1", "level": 3}, ctx)
    assert payload is not None
    schema_id = client.get_latest_version("report-value").schema_id
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == schema_id

    # a fresh client, as a consumer process would have, fetches the schema by id
    assert AvroDeserializer(registry.client())(payload, ctx) == {"id": "r-1", "level": 3}


def test_deserializer_resolves_old_data_with_the_new_schema(registry: Running) -> None:
    client = registry.client()
    ctx = SerializationContext("report", MessageField.VALUE)
    old_bytes = AvroSerializer(client, json.dumps(V1))({"id": "r-1", "level": 3}, ctx)
    assert client.register_schema("report-value", avro(V2)) > 0
    reader = AvroDeserializer(registry.client(), json.dumps(V2))
    assert reader(old_bytes, ctx) == {"id": "r-1", "level": 3, "region": "unknown"}


# --- register and lookup -------------------------------------------------------------------


def test_register_is_idempotent_and_ids_are_global(registry: Running) -> None:
    client = registry.client()
    first = client.register_schema("a-value", avro(V1))
    # same text with other whitespace, from another client (no client cache): same id
    other = registry.client()
    assert other.register_schema("a-value", Schema(json.dumps(V1, indent=2))) == first
    assert other.get_versions("a-value") == [1]
    # the same schema in another subject reuses the global id, as version 1 there
    assert other.register_schema("b-value", avro(V1)) == first
    assert other.get_version("b-value", 1).schema_id == first
    assert sorted(other.get_subjects()) == ["a-value", "b-value"]
    pairs = {(sv.subject, sv.version) for sv in other.get_schema_versions(first)}
    assert pairs == {("a-value", 1), ("b-value", 1)}

    second = other.register_schema("a-value", avro(V2))
    assert second != first
    latest = registry.client().get_latest_version("a-value")
    assert (latest.version, latest.schema_id) == (2, second)
    assert json.loads(latest.schema.schema_str or "null") == V2


def test_lookup(registry: Running) -> None:
    client = registry.client()
    schema_id = client.register_schema("a-value", avro(V1))
    found = registry.client().lookup_schema("a-value", avro(V1))
    assert (found.subject, found.version, found.schema_id) == ("a-value", 1, schema_id)

    status, _, body = http(f"{registry.url}/subjects/a-value", "POST", {"schema": json.dumps(V1)})
    assert status == 200
    assert body["id"] == schema_id and body["version"] == 1 and body["subject"] == "a-value"
    assert json.loads(body["schema"]) == V1

    with pytest.raises(SchemaRegistryError) as excinfo:
        registry.client().lookup_schema("a-value", avro(V2))
    assert sr_error(excinfo) == (404, 40403)
    with pytest.raises(SchemaRegistryError) as excinfo:
        registry.client().lookup_schema("nope-value", avro(V1))
    assert sr_error(excinfo) == (404, 40401)


def test_incompatible_schema_is_refused_with_409(registry: Running) -> None:
    client = registry.client()
    client.register_schema("a-value", avro(V1))
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.register_schema("a-value", avro(V_BAD))
    assert sr_error(excinfo) == (409, 409)
    assert "owner" in excinfo.value.error_message
    assert client.get_versions("a-value") == [1]

    assert client.test_compatibility("a-value", avro(V2)) is True
    assert client.test_compatibility("a-value", avro(V_BAD), version=1) is False
    status, _, body = http(
        f"{registry.url}/compatibility/subjects/a-value/versions/latest?verbose=true",
        "POST",
        {"schema": json.dumps(V_BAD)},
    )
    assert status == 200 and body["is_compatible"] is False
    assert any("READER_FIELD_MISSING_DEFAULT_VALUE" in m for m in body["messages"])


# --- config --------------------------------------------------------------------------------


def test_config(registry: Running) -> None:
    client = registry.client()
    assert client.get_compatibility() == "BACKWARD"
    client.register_schema("a-value", avro(V1))

    with pytest.raises(SchemaRegistryError) as excinfo:
        client.get_compatibility("a-value")
    assert sr_error(excinfo) == (404, 40408)
    status, _, body = http(f"{registry.url}/config/a-value?defaultToGlobal=true")
    assert (status, body) == (200, {"compatibilityLevel": "BACKWARD"})

    # a subject-level NONE lets the incompatible schema in; other subjects keep the global
    assert client.set_compatibility("a-value", "none") == {"compatibility": "NONE"}
    assert client.get_compatibility("a-value") == "NONE"
    assert client.register_schema("a-value", avro(V_BAD)) > 0

    client.register_schema("b-value", avro(V1))
    client.set_compatibility(level="FORWARD")
    assert client.get_compatibility() == "FORWARD"
    # FORWARD: the latest (V1) must read V2's data, but V2's long cannot be read as int
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.register_schema("b-value", avro(V2))
    assert sr_error(excinfo) == (409, 409)

    status, _, body = http(f"{registry.url}/config", "PUT", {"compatibility": "SIDEWAYS"})
    assert (status, body["error_code"]) == (422, 42203)
    status, _, body = http(f"{registry.url}/config/a-value", "DELETE")
    assert (status, body) == (200, {"compatibilityLevel": "NONE"})
    status, _, body = http(f"{registry.url}/config/a-value")
    assert (status, body["error_code"]) == (404, 40408)


# --- deletes -------------------------------------------------------------------------------


def test_soft_and_permanent_deletes(registry: Running) -> None:
    client = registry.client()
    id1 = client.register_schema("a-value", avro(V1))
    id2 = client.register_schema("a-value", avro(V2))

    with pytest.raises(SchemaRegistryError) as excinfo:
        client.delete_version("a-value", 2, permanent=True)
    assert sr_error(excinfo) == (404, 40407)

    assert client.delete_version("a-value", 2) == 2
    assert client.get_versions("a-value") == [1]
    assert client.get_versions("a-value", deleted=True) == [1, 2]
    with pytest.raises(SchemaRegistryError) as excinfo:
        registry.client().get_version("a-value", 2)
    assert sr_error(excinfo) == (404, 40402)
    assert registry.client().get_version("a-value", 2, deleted=True).schema_id == id2
    # a soft-deleted schema is still readable by id (old messages stay decodable)
    assert json.loads(registry.client().get_schema(id2).schema_str or "null") == V2
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.delete_version("a-value", 2)
    assert sr_error(excinfo) == (404, 40406)

    with pytest.raises(SchemaRegistryError) as excinfo:
        client.delete_subject("a-value", permanent=True)
    assert sr_error(excinfo) == (404, 40405)
    assert client.delete_subject("a-value") == [1]
    assert client.get_subjects() == []
    assert client.get_subjects(deleted=True) == ["a-value"]
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.delete_subject("a-value")
    assert sr_error(excinfo) == (404, 40404)

    assert sorted(client.delete_subject("a-value", permanent=True)) == [1, 2]
    assert client.get_subjects(deleted=True) == []
    for schema_id in (id1, id2):
        with pytest.raises(SchemaRegistryError) as excinfo:
            registry.client().get_schema(schema_id)
        assert sr_error(excinfo) == (404, 40403)

    # after a permanent delete the subject starts again at version 1, ids are not reused
    assert client.register_schema("a-value", avro(V1)) == id1
    assert client.get_versions("a-value") == [1]


# --- errors --------------------------------------------------------------------------------


def test_error_codes(registry: Running) -> None:
    client = registry.client()
    client.register_schema("a-value", avro(V1))
    cases: list[tuple[str, str, Any, int, int]] = [
        ("GET", "/subjects/nope/versions", None, 404, 40401),
        ("GET", "/subjects/nope/versions/latest", None, 404, 40401),
        ("GET", "/subjects/a-value/versions/9", None, 404, 40402),
        ("GET", "/subjects/a-value/versions/0", None, 422, 42202),
        ("GET", "/subjects/a-value/versions/abc", None, 422, 42202),
        ("GET", "/schemas/ids/9999", None, 404, 40403),
        ("POST", "/subjects/a-value/versions", {"schema": "{not json"}, 422, 42201),
        ("POST", "/subjects/a-value/versions", {"schema": '{"type":"nosuch"}'}, 422, 42201),
        ("POST", "/subjects/a-value/versions", {"nothing": 1}, 422, 42201),
        (
            "POST",
            "/subjects/a-value/versions",
            {"schema": '{"type":"object"}', "schemaType": "JSON"},
            422,
            42201,
        ),
        ("PUT", "/config/a-value", {"compatibility": "MOSTLY"}, 422, 42203),
        ("DELETE", "/subjects/nope", None, 404, 40401),
        ("GET", "/no/such/path", None, 404, 404),
        ("DELETE", "/schemas/ids/1", None, 405, 405),
    ]
    for method, path, body, status, code in cases:
        got_status, headers, got = http(registry.url + path, method, body)
        assert (got_status, got["error_code"]) == (status, code), (method, path, got)
        assert isinstance(got["message"], str) and got["message"]
        assert headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
    _, _, body = http(registry.url + "/subjects/nope/versions")
    assert body["message"] == "Subject 'nope' not found."

    with pytest.raises(SchemaRegistryError) as excinfo:
        client.get_schema(4242)
    assert sr_error(excinfo) == (404, 40403)
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.register_schema("a-value", Schema('{"type":"object"}', "JSON"))
    assert sr_error(excinfo) == (422, 42201)
    # Confluent's answer when no provider is loaded for the type (Avro-only registry)
    assert excinfo.value.error_message == "Invalid schema type JSON"


def test_content_types_and_schema_endpoints(registry: Running) -> None:
    status, headers, body = http(
        f"{registry.url}/subjects/a-value/versions",
        "POST",
        {"schema": json.dumps(V1)},
        content_type="application/json",
    )
    assert status == 200 and isinstance(body["id"], int)
    assert headers["Content-Type"] == "application/vnd.schemaregistry.v1+json"
    schema_id = body["id"]

    status, _, body = http(
        f"{registry.url}/subjects/b-value/versions",
        "POST",
        {"schema": json.dumps(V1)},
        content_type="text/plain",
    )
    assert (status, body["error_code"]) == (415, 415)

    assert http(f"{registry.url}/subjects/a-value/versions/1/schema")[2] == V1
    assert http(f"{registry.url}/schemas/ids/{schema_id}/versions")[2] == [
        {"subject": "a-value", "version": 1}
    ]
    assert http(f"{registry.url}/schemas/ids/{schema_id}/subjects")[2] == ["a-value"]
    assert http(f"{registry.url}/schemas/types")[2] == ["AVRO"]
    status, _, body = http(f"{registry.url}/schemas/ids/{schema_id}?subject=a-value")
    assert status == 200 and json.loads(body["schema"]) == V1


# --- persistence and concurrency -----------------------------------------------------------


def test_restart_keeps_ids_versions_and_config(tmp_path: Path) -> None:
    first = Running(registry_settings(tmp_path))
    try:
        client = first.client()
        id1 = client.register_schema("a-value", avro(V1))
        id2 = client.register_schema("a-value", avro(V2))
        id3 = client.register_schema("b-value", avro({"type": "string"}))
        client.set_compatibility("b-value", "FULL_TRANSITIVE")
        client.delete_version("a-value", 1)
    finally:
        first.stop()
    assert (tmp_path / "data" / "registry" / "registry.json").is_file()

    second = Running(registry_settings(tmp_path))  # same data dir, another port
    try:
        client = second.client()
        assert client.get_versions("a-value") == [2]
        assert client.get_versions("a-value", deleted=True) == [1, 2]
        assert client.get_latest_version("a-value").schema_id == id2
        assert client.get_version("b-value", 1).schema_id == id3
        assert json.loads(client.get_schema(id1).schema_str or "null") == V1
        assert client.get_compatibility("b-value") == "FULL_TRANSITIVE"
        assert client.register_schema("a-value", avro(V2)) == id2  # no new version
        new_id = client.register_schema("c-value", avro({"type": "long"}))
        assert new_id not in (id1, id2, id3)
        assert client.get_latest_version("a-value").version == 2
    finally:
        second.stop()


def test_concurrent_clients(registry: Running) -> None:
    schemas = [
        {"type": "record", "name": f"R{i}", "fields": [{"name": "a", "type": "int"}]}
        for i in range(6)
    ]

    def register(job: int) -> tuple[str, int]:
        client = registry.client()
        subject = f"s{job % 3}-value"
        return json.dumps(schemas[job % 6]), client.register_schema(subject, avro(schemas[job % 6]))

    registry.client().set_compatibility(level="NONE")  # unrelated records share subjects
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(register, range(48)))
    ids_by_schema: dict[str, set[int]] = {}
    for text, schema_id in results:
        ids_by_schema.setdefault(text, set()).add(schema_id)
    # one id per distinct schema text, distinct texts distinct ids
    assert all(len(ids) == 1 for ids in ids_by_schema.values())
    assert len({next(iter(ids)) for ids in ids_by_schema.values()}) == len(schemas)
    client = registry.client()
    for subject in ("s0-value", "s1-value", "s2-value"):
        # each subject got exactly the two schemas routed to it, no duplicate versions
        assert client.get_versions(subject) == [1, 2]


# --- the process ---------------------------------------------------------------------------


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSTREAM_")}
    env.update(settings_env(settings))
    env["PYTHONPATH"] = str(REPO)
    return env


def _wait_up(url: str, proc: subprocess.Popen[str], deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            with urllib.request.urlopen(url + "/subjects", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("registry did not come up")


def test_main_serves_logs_and_stops_on_sigterm(tmp_path: Path) -> None:
    settings = registry_settings(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.stack.registry"],
        env=_env(settings),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_up(settings.schema_registry_url, proc)
        SchemaRegistryClient({"url": settings.schema_registry_url}).register_schema(
            "a-value", avro(V1)
        )
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "POST /subjects/a-value/versions?normalize=False 200" in stderr
    assert (tmp_path / "data" / "registry" / "registry.json").is_file()


def test_main_exits_2_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = registry_settings(tmp_path, port)
        result = subprocess.run(
            [sys.executable, "-m", "pipelines.stack.registry"],
            env=_env(settings),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(port) in lines[0] and "GOVSTREAM_SCHEMA_REGISTRY_URL" in lines[0]


# --- schema identity (issue 13, item 8) ------------------------------------------------------

REPORT_AVSC = REPO / "schemas" / "avro" / "report.avsc"


def test_report_schema_with_its_keys_reordered_is_the_registered_schema(registry: Running) -> None:
    text = REPORT_AVSC.read_text(encoding="utf-8")
    schema_id = registry.client().register_schema("report-value", Schema(text, "AVRO"))
    other = json.dumps(reordered(json.loads(text)))

    found = registry.client().lookup_schema("report-value", Schema(other, "AVRO"))
    assert (found.schema_id, found.version) == (schema_id, 1)
    status, _, body = http(f"{registry.url}/subjects/report-value", "POST", {"schema": other})
    assert (status, body["id"], body["version"]) == (200, schema_id, 1)
    assert registry.client().register_schema("report-value", Schema(other, "AVRO")) == schema_id
    assert registry.client().get_versions("report-value") == [1]
    # the stored text is Confluent's canonical one: the schema, in Avro's key order
    stored = registry.client().get_schema(schema_id).schema_str or ""
    assert json.loads(stored) == json.loads(text) and list(json.loads(stored))[:3] == [
        "type",
        "name",
        "namespace",
    ]


def test_a_schema_differing_in_a_doc_is_a_new_version_as_in_confluent(registry: Running) -> None:
    client = registry.client()
    first = client.register_schema("a-value", avro(V1))
    documented = {**V1, "doc": "a report"}
    with pytest.raises(SchemaRegistryError) as excinfo:
        client.lookup_schema("a-value", avro(documented))
    assert sr_error(excinfo) == (404, 40403)
    assert client.register_schema("a-value", avro(documented)) != first
    assert client.get_versions("a-value") == [1, 2]


# --- robustness (issue 15, item 8) -----------------------------------------------------------


def raw_request(url: str, head: str, body: bytes = b"", timeout: float = 10) -> tuple[int, Any]:
    """Send ``head`` (request line and headers, without the blank line) and ``body`` on a
    raw socket; (status, decoded JSON body) of the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.encode() + b"\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
            header, sep, rest = data.partition(b"\r\n\r\n")
            if sep and b"content-length:" in header.lower():
                length = int(header.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(rest) >= length:
                    break
    header, _, rest = data.partition(b"\r\n\r\n")
    return int(header.split()[1]), json.loads(rest)


def post_raw(url: str, path: str, body: bytes) -> tuple[int, Any]:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}"
    )
    return raw_request(url, head, body)


def tmp_files(home: Path) -> list[Path]:
    return [p for p in (home / "data" / "registry").iterdir() if p.name.endswith(".tmp")]


def test_oversized_bodies_and_schemas_are_refused(registry: Running) -> None:
    def big(size: int) -> dict[str, Any]:
        return {**V1, "doc": "x" * size}

    # 5 MB schema: the body is refused before it is read
    with pytest.raises(SchemaRegistryError) as excinfo:
        registry.client().register_schema("a-value", avro(big(5_000_000)))
    assert sr_error(excinfo) == (413, 413)
    # 1.5 MB schema in a body under the limit: too large to store, as Confluent's 42209
    with pytest.raises(SchemaRegistryError) as excinfo:
        registry.client().register_schema("a-value", avro(big(1_500_000)))
    assert sr_error(excinfo) == (422, 42209)
    # 256 MiB announced and never sent: answered at once from the headers alone
    started = time.monotonic()
    status, body = raw_request(
        registry.url,
        "POST /subjects/a-value/versions HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 268435456",
    )
    assert (status, body["error_code"]) == (413, 413) and time.monotonic() - started < 5
    status, body = raw_request(
        registry.url,
        "POST /subjects/a-value/versions HTTP/1.1\r\nHost: x\r\nContent-Length: -1",
    )
    assert (status, body["error_code"]) == (400, 400)
    assert registry.client().register_schema("a-value", avro(V1)) > 0  # still serving


def test_lone_surrogates_and_deep_nesting_answer_4xx_and_leave_no_file(
    registry: Running,
) -> None:
    home = registry.settings.home
    schema_with_surrogate = json.dumps({**V1, "doc": "\ud800"})  # escaped: "\\ud800"
    cases: list[tuple[bytes, int, int]] = [
        (json.dumps({"schema": schema_with_surrogate}).encode(), 422, 42201),
        (b'{"schema": "\\ud800"}', 422, 42201),
        (
            b'{"schema": "{\\"type\\": \\"record\\", \\"name\\": \\"R\\", '
            b'\\"doc\\": \\"\\ud800\\", \\"fields\\": []}"}',
            422,
            42201,
        ),
        (b"[" * 100_000 + b"]" * 100_000, 400, 400),
        (json.dumps({"schema": "[" * 100_000 + "]" * 100_000}).encode(), 422, 42201),
        (json.dumps({"schema": json.dumps(nested_arrays(150))}).encode(), 422, 42201),
    ]
    for path in ("/subjects/a-value/versions", "/subjects/a-value"):
        for body, status, code in cases:
            got_status, got = post_raw(registry.url, path, body)
            assert (got_status, got["error_code"]) == (status, code), (path, body[:60], got)
    assert tmp_files(home) == []
    assert registry.client().register_schema("a-value", avro(V1)) > 0


KILLED_WRITER = """
import json, sys
from pathlib import Path
from pipelines.stack.registry import RegistryStore, SchemaRequest
store = RegistryStore(Path(sys.argv[1]))
for i in range(100_000):
    schema = {"type": "record", "name": f"R{i}", "doc": "d" * 50_000,
              "fields": [{"name": "a", "type": "int"}]}
    answer = store.register(f"s{i}-value", SchemaRequest(json.dumps(schema)))
    print(i, answer["id"], flush=True)
"""


@pytest.mark.parametrize("after_s", [1.0, 2.0])
def test_a_registry_killed_while_writing_keeps_every_acknowledged_change(
    tmp_path: Path, after_s: float
) -> None:
    """SIGKILL a process registering as fast as it can (compactions included, as the journal
    outgrows its 1 MiB floor): every registration it reported is there after a restart and
    the state loads."""
    directory = tmp_path / "registry"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(directory)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(after_s)
    proc.kill()
    out, err = proc.communicate(timeout=10)
    acknowledged = [tuple(map(int, line.split())) for line in out.splitlines() if line.strip()]
    assert acknowledged, err
    store = RegistryStore(directory)
    for i, schema_id in acknowledged:
        assert store.get_version(f"s{i}-value", "1", deleted=False)["id"] == schema_id


# --- credentials (issue 15, item 7) ----------------------------------------------------------


def test_changes_need_credentials_when_they_are_set(tmp_path: Path) -> None:
    settings = Settings(
        schema_registry_url=f"http://127.0.0.1:{free_port()}",
        schema_registry_user="producer",
        schema_registry_password="s3cret",
        home=tmp_path,
    )
    running = Running(settings)
    try:
        anonymous = running.client()
        allowed = SchemaRegistryClient({**settings.registry_config(), "max.retries": 0})
        wrong = SchemaRegistryClient(
            {"url": running.url, "basic.auth.user.info": "producer:guess", "max.retries": 0}
        )
        for client in (anonymous, wrong):
            with pytest.raises(SchemaRegistryError) as excinfo:
                client.register_schema("a-value", avro(V1))
            assert sr_error(excinfo) == (401, 401)
        schema_id = allowed.register_schema("a-value", avro(V1))
        for client in (anonymous, wrong):
            for change in (
                lambda c: c.delete_subject("a-value"),
                lambda c: c.delete_version("a-value", 1),
                lambda c: c.set_compatibility("a-value", "NONE"),
            ):
                with pytest.raises(SchemaRegistryError) as excinfo:
                    change(client)
                assert sr_error(excinfo) == (401, 401)
        # reads and lookups stay open: a deserializer fetches schemas without credentials
        assert anonymous.get_schema(schema_id).schema_str
        assert anonymous.lookup_schema("a-value", avro(V1)).schema_id == schema_id
        status, headers, body = http(f"{running.url}/config", "PUT", {"compatibility": "NONE"})
        assert (status, body["error_code"]) == (401, 401)
        assert headers["WWW-Authenticate"].startswith("Basic")
        assert allowed.delete_subject("a-value") == [1]
    finally:
        running.stop()
