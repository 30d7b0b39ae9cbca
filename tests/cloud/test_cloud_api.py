"""The reference commune cloud (`hub-cloud serve`) as a real server over HTTP, against docs/protocol.md and
cloud/openapi.yaml."""

from __future__ import annotations

import json
import re
import signal
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from cloud.server import STORE_KEY, build_app
from tests.cloud.conftest import CloudServer, new_server

MAX_BODY = 4 * 1024 * 1024
FLOOD = "Thông báo: mưa lũ ở thôn Đông"
CLASSES = ("safety", "security", "operations", "telemetry")
BOOT_ID = str(uuid.uuid4())

# Every route `hub-cloud serve` registers for hubs and admins; "/" (the dashboard) and "/openapi.yaml" (this
# document) are pages, not API operations.
API_ROUTES = {
    ("GET", "/healthz"),
    ("POST", "/api/v1/ingest"),
    ("GET", "/api/v1/ingest/state"),
    ("GET", "/api/v1/hubs"),
    ("POST", "/api/v1/hubs"),
    ("GET", "/api/v1/hubs/{hub_id}/records"),
    # the command inbox (issue #8): enrollment, commands, media, diagnostics
    ("POST", "/api/v1/enrollments"),
    ("POST", "/api/v1/enroll"),
    ("POST", "/api/v1/hubs/{hub_id}/commands"),
    ("GET", "/api/v1/hubs/{hub_id}/commands"),
    ("GET", "/api/v1/hubs/{hub_id}/commands/{id}"),
    ("GET", "/api/v1/hubs/{hub_id}/diagnostics/{command_id}"),
    ("GET", "/api/v1/commands"),
    ("POST", "/api/v1/commands/{id}/result"),
    ("POST", "/api/v1/media"),
    ("GET", "/api/v1/media/{sha256}"),
    ("PUT", "/api/v1/diagnostics/{command_id}"),
    ("GET", "/api/v1/metrics"),  # requests per second (the fleet test)
}
NOT_API = {"/", "/openapi.yaml"}
CONSOLE = "/operator"  # the operator console: HTML pages and forms behind a login cookie (tests/cloud/test_operator.py)
OTA = "/ota/"  # signed releases, static and unauthenticated, served only with --ota-repo (tests/ota/)


# --- helpers -------------------------------------------------------------------------------------------------


def record(seq: int, cls: str = "operations", kind: str = "hub.started", payload: Any = None) -> dict[str, Any]:
    return {
        "seq": seq,
        "class": cls,
        "kind": kind,
        "created_at": 1795000000.25 + seq,
        "boot_id": BOOT_ID,
        "uptime": 12.5 + seq,
        "payload": {"n": seq, "note": FLOOD} if payload is None else payload,
    }


def batch(hub_id: str, records: list[dict[str, Any]], dropped: dict[str, int] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"hub_id": hub_id, "records": records}
    if dropped is not None:
        body["dropped"] = dropped
    return body


def ack(resp: Any) -> dict[str, Any]:
    assert resp.status == 200, (resp.status, resp.body[:500])
    assert resp.headers.get("Content-Type", "").startswith("application/json")
    data = resp.json()
    assert isinstance(data, dict)
    return data


def sent_fields(row: dict[str, Any]) -> dict[str, Any]:
    """A stored record as the hub sent it (the admin API adds received_at)."""
    return {k: row[k] for k in ("seq", "class", "kind", "created_at", "boot_id", "uptime", "payload")}


def names_field(error: str, field: str) -> bool:
    """The message names exactly this field: `records` must not match `records[1].seq`."""
    return re.search(re.escape(field) + r"(?![\[.\w])", error) is not None


def hub_summary(cloud: CloudServer, hub_id: str) -> dict[str, Any]:
    resp = cloud.request("GET", "/api/v1/hubs", token=cloud.admin_token)
    assert resp.status == 200, resp
    hubs = {h["hub_id"]: h for h in resp.json()["hubs"]}
    assert hub_id in hubs, sorted(hubs)
    summary = hubs[hub_id]
    assert isinstance(summary, dict)
    return summary


SPEC_URI = "urn:village-hub:cloud-openapi"


def schema_validator(spec: dict[str, Any], *pointer: str) -> Any:
    """A JSON Schema 2020-12 validator for the schema at pointer inside the OpenAPI document, its `$ref`s resolved
    against the document itself."""
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(spec))
    escaped = "/".join(p.replace("~", "~0").replace("/", "~1") for p in pointer)
    ref = f"{SPEC_URI}#/{urllib.parse.quote(escaped, safe='/~')}"
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=registry)


def response_validator(spec: dict[str, Any], path: str, method: str, status: int) -> Any:
    pointer = ["paths", path, method.lower(), "responses", str(status)]
    response = spec["paths"][path][method.lower()]["responses"][str(status)]
    if "$ref" in response:  # an OpenAPI reference object, e.g. #/components/responses/Error
        pointer = response["$ref"].removeprefix("#/").split("/")
    return schema_validator(spec, *pointer, "content", "application/json", "schema")


@pytest.fixture(scope="module")
def spec(cloud: CloudServer) -> dict[str, Any]:
    resp = cloud.request("GET", "/openapi.yaml")
    assert resp.status == 200, resp
    assert "yaml" in resp.headers.get("Content-Type", "")
    document = yaml.safe_load(resp.body.decode("utf-8"))
    assert isinstance(document, dict)
    return document


# --- 1. a valid batch is stored ----------------------------------------------------------------------------------


def test_valid_batch_is_stored_with_payloads_intact(cloud: CloudServer, hub: tuple[str, str]) -> None:
    hub_id, token = hub
    records = [
        record(1, "safety", "alert.flood", {"message": FLOOD, "level": 3, "zones": ["Đông", "Tây"], "x": None}),
        record(2, "security", "camera.motion", {"camera": "cổng chính", "score": 0.875, "ok": True}),
        record(3, "operations", "hub.started", {"version": "0.1.0", "nested": {"deep": [1, {"ở": "đây"}]}}),
        record(7, "telemetry", "telemetry.vitals", {"cpu_temp": 61.5, "load": [0.5, 0.25, 0.125]}),
    ]
    dropped = {"telemetry": 120, "operations": 0, "security": 0, "safety": 0}

    answer = ack(cloud.ingest(token, batch(hub_id, records, dropped)))  # raw UTF-8 on the wire
    assert answer == {"hub_id": hub_id, "ack_seq": 7, "accepted": 4, "duplicates": 0}

    # The same text sent as JSON \u escapes is stored as the same text.
    escaped = json.dumps(batch(hub_id, [record(8, payload={"message": FLOOD})]), ensure_ascii=True).encode()
    assert FLOOD.encode("utf-8") not in escaped
    assert ack(cloud.ingest(token, escaped)) == {"hub_id": hub_id, "ack_seq": 8, "accepted": 1, "duplicates": 0}

    rows = cloud.records(hub_id)
    assert [sent_fields(r) for r in rows] == [*records, record(8, payload={"message": FLOOD})]
    assert all(isinstance(r["received_at"], float) for r in rows)
    assert rows[0]["payload"]["message"] == FLOOD

    # Paging of the admin API.
    assert [r["seq"] for r in cloud.records(hub_id, after=2)] == [3, 7, 8]
    assert [r["seq"] for r in cloud.records(hub_id, after=1, limit=2)] == [2, 3]

    summary = hub_summary(cloud, hub_id)
    assert summary["ack_seq"] == 8
    assert summary["records"] == 5
    assert summary["duplicates"] == 0
    assert summary["batches"] == 2


def test_dropped_counts_are_recorded(cloud: CloudServer, hub: tuple[str, str]) -> None:
    hub_id, token = hub
    dropped = {"telemetry": 120, "operations": 3, "security": 0, "safety": 0}
    ack(cloud.ingest(token, batch(hub_id, [record(1)], dropped)))
    assert hub_summary(cloud, hub_id)["dropped"] == dropped


# --- 2. resent and overlapping batches -----------------------------------------------------------------------------


def test_resent_and_overlapping_batches_store_nothing_twice(cloud: CloudServer, hub: tuple[str, str]) -> None:
    hub_id, token = hub
    first = [record(s) for s in range(1, 6)]
    assert ack(cloud.ingest(token, batch(hub_id, first))) == {
        "hub_id": hub_id,
        "ack_seq": 5,
        "accepted": 5,
        "duplicates": 0,
    }
    stored = cloud.records(hub_id)
    assert [sent_fields(r) for r in stored] == first

    # The very same batch again (the ack was lost): all duplicates, nothing rewritten.
    again = ack(cloud.ingest(token, batch(hub_id, first)))
    assert (again["ack_seq"], again["accepted"], again["duplicates"]) == (5, 0, 5)
    assert cloud.records(hub_id) == stored
    assert cloud.state(token) == 5

    # Overlapping: 4 and 5 are held (the resent copies differ, the stored ones win), 6..8 are new.
    overlap = [record(s, payload={"changed": True}) for s in (4, 5)] + [record(s) for s in (6, 7, 8)]
    answer = ack(cloud.ingest(token, batch(hub_id, overlap)))
    assert (answer["ack_seq"], answer["accepted"], answer["duplicates"]) == (8, 3, 2)
    rows = cloud.records(hub_id)
    assert [r["seq"] for r in rows] == list(range(1, 9))
    assert rows[:5] == stored
    assert [sent_fields(r) for r in rows[5:]] == overlap[2:]

    # An old batch after a higher ack: duplicates, and ack_seq is not lowered.
    old = ack(cloud.ingest(token, batch(hub_id, first[:3])))
    assert (old["ack_seq"], old["accepted"], old["duplicates"]) == (8, 0, 3)

    # A gap filled late: the record is stored, ack_seq stays the highest held.
    assert ack(cloud.ingest(token, batch(hub_id, [record(10)])))["ack_seq"] == 10
    late = ack(cloud.ingest(token, batch(hub_id, [record(9)])))
    assert (late["ack_seq"], late["accepted"], late["duplicates"]) == (10, 1, 0)

    rows = cloud.records(hub_id)
    assert [r["seq"] for r in rows] == list(range(1, 11))
    summary = hub_summary(cloud, hub_id)
    assert (summary["records"], summary["duplicates"], summary["ack_seq"]) == (10, 5 + 2 + 3, 10)
    assert cloud.state(token) == 10


# --- 3. authentication ---------------------------------------------------------------------------------------------


def test_ingest_refuses_missing_unknown_and_foreign_tokens(cloud: CloudServer) -> None:
    hub_a = f"a-{uuid.uuid4().hex[:10]}"
    hub_b = f"b-{uuid.uuid4().hex[:10]}"
    token_a = cloud.add_hub(hub_a)
    token_b = cloud.add_hub(hub_b)
    assert token_a != token_b
    ack(cloud.ingest(token_a, batch(hub_a, [record(1)])))
    stored_a = cloud.records(hub_a)

    body = json.dumps(batch(hub_a, [record(2)])).encode()
    for headers in (
        {},  # no Authorization at all
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": f"Basic {token_a}"},  # the right secret under the wrong scheme
        {"Authorization": token_a},
        {"Authorization": "Bearer not-a-token-of-any-hub"},
        {"Authorization": f"Bearer {token_a}x"},
        {"Authorization": f"Bearer {cloud.admin_token}"},  # the admin token is not a hub token
    ):
        resp = cloud.request("POST", "/api/v1/ingest", body=body, headers=headers)
        assert resp.status == 401, (headers, resp)
        assert resp.error
        state = cloud.request("GET", "/api/v1/ingest/state", headers=headers)
        assert state.status == 401, (headers, state)

    # Token of hub A, body naming hub B: refused, stored for neither.
    resp = cloud.ingest(token_a, batch(hub_b, [record(5)]))
    assert resp.status == 403, resp
    assert names_field(resp.error, "hub_id")
    assert cloud.records(hub_b) == []
    assert cloud.state(token_b) == 0
    assert cloud.records(hub_a) == stored_a
    assert cloud.state(token_a) == 1

    # And the right token still works.
    assert ack(cloud.ingest(token_a, batch(hub_a, [record(2)])))["ack_seq"] == 2


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/hubs", None),
        ("POST", "/api/v1/hubs", "new"),
        ("GET", "/api/v1/hubs/{hub}/records", None),
    ],
)
def test_admin_endpoints_need_the_admin_token(
    cloud: CloudServer, hub: tuple[str, str], method: str, path: str, body: str | None
) -> None:
    hub_id, token = hub
    ack(cloud.ingest(token, batch(hub_id, [record(1)])))
    new_hub = f"new-{uuid.uuid4().hex[:10]}"
    raw = json.dumps({"hub_id": new_hub}).encode() if body else None
    url = path.format(hub=hub_id)
    for headers in (
        {},
        {"Authorization": "Bearer wrong-admin-token"},
        {"Authorization": f"Bearer {cloud.admin_token}x"},
        {"Authorization": f"Basic {cloud.admin_token}"},
        {"Authorization": f"Bearer {token}"},  # a hub's token is not the admin token
    ):
        resp = cloud.request(method, url, body=raw, headers=headers)
        assert resp.status == 401, (headers, resp)
        assert resp.error
        assert FLOOD not in resp.body.decode("utf-8", errors="replace")
    hubs = cloud.request("GET", "/api/v1/hubs", token=cloud.admin_token)
    assert hubs.status == 200
    assert new_hub not in {h["hub_id"] for h in hubs.json()["hubs"]}

    ok = cloud.request(method, url, body=raw, token=cloud.admin_token)
    assert ok.status == (201 if method == "POST" else 200), ok


# --- 4. validation -------------------------------------------------------------------------------------------------

MISSING = object()
Body = Callable[[str, int], Any]  # (hub_id, next free seq) -> body (object, or raw bytes)


def with_record(**changes: Any) -> Body:
    """A batch of two new records whose second one is changed (MISSING removes a field)."""

    def build(hub_id: str, seq: int) -> dict[str, Any]:
        bad = record(seq + 1)
        for key, value in changes.items():
            if value is MISSING:
                del bad[key]
            else:
                bad[key] = value
        return batch(hub_id, [record(seq), bad])

    return build


def with_body(**changes: Any) -> Body:
    def build(hub_id: str, seq: int) -> dict[str, Any]:
        body = batch(hub_id, [record(seq), record(seq + 1)], {"telemetry": 1})
        for key, value in changes.items():
            if value is MISSING:
                del body[key]
            else:
                body[key] = value
        return body

    return build


def raw_record_value(field: str, json_text: str) -> Body:
    """The second record's field set to JSON text that Python would not write itself."""

    def build(hub_id: str, seq: int) -> bytes:
        body = with_record(**{field: "@@RAW@@"})(hub_id, seq)
        return json.dumps(body).replace('"@@RAW@@"', json_text).encode()

    return build


def raw(data: bytes) -> Body:
    return lambda hub_id, seq: data


# (id, body, the field the error must name, whether the OpenAPI Batch schema also rejects the body)
MALFORMED: list[tuple[str, Body, str, bool]] = [
    ("not-json", raw(b'{"hub_id": "x", "records": ['), "body", False),
    ("not-utf8", raw(b'{"hub_id": "\xc3\x28"}'), "body", False),
    ("empty-body", raw(b""), "body", False),
    ("array", lambda h, s: [batch(h, [record(s)])], "body", True),
    ("string", raw(b'"records"'), "body", True),
    ("null", raw(b"null"), "body", True),
    ("hub_id-missing", with_body(hub_id=MISSING), "hub_id", True),
    ("hub_id-empty", with_body(hub_id=""), "hub_id", True),
    ("hub_id-number", with_body(hub_id=7), "hub_id", True),
    ("records-missing", with_body(records=MISSING), "records", True),
    ("records-empty", with_body(records=[]), "records", True),
    ("records-object", with_body(records={"seq": 1}), "records", True),
    ("records-1001", lambda h, s: batch(h, [record(s + i) for i in range(1001)]), "records", True),
    ("record-not-object", lambda h, s: {"hub_id": h, "records": [record(s), 7]}, "records[1]", True),
    ("seq-0", with_record(seq=0), "records[1].seq", True),
    ("seq-negative", with_record(seq=-3), "records[1].seq", True),
    ("seq-string", lambda h, s: with_record(seq=str(s + 1))(h, s), "records[1].seq", True),
    ("seq-float", lambda h, s: with_record(seq=s + 1.5)(h, s), "records[1].seq", True),
    ("seq-bool", with_record(seq=True), "records[1].seq", True),
    ("seq-missing", with_record(seq=MISSING), "records[1].seq", True),
    ("seq-beyond-64-bits", with_record(seq=2**63), "records[1].seq", False),
    ("seqs-equal", lambda h, s: batch(h, [record(s), record(s)]), "records[1].seq", False),
    ("seqs-decreasing", lambda h, s: batch(h, [record(s + 1), record(s)]), "records[1].seq", False),
    ("class-unknown", with_record(**{"class": "urgent"}), "records[1].class", True),
    ("class-missing", with_record(**{"class": MISSING}), "records[1].class", True),
    ("kind-missing", with_record(kind=MISSING), "records[1].kind", True),
    ("kind-empty", with_record(kind=""), "records[1].kind", True),
    ("kind-number", with_record(kind=5), "records[1].kind", True),
    ("created_at-string", with_record(created_at="2026-11-24T08:00:00Z"), "records[1].created_at", True),
    ("created_at-null", with_record(created_at=None), "records[1].created_at", True),
    ("created_at-bool", with_record(created_at=True), "records[1].created_at", True),
    ("created_at-missing", with_record(created_at=MISSING), "records[1].created_at", True),
    ("created_at-overflows-float", raw_record_value("created_at", "1e999"), "records[1].created_at", False),
    ("created_at-huge-integer", raw_record_value("created_at", "9" * 400), "records[1].created_at", False),
    ("uptime-string", with_record(uptime="12.5"), "records[1].uptime", True),
    ("boot_id-missing", with_record(boot_id=MISSING), "records[1].boot_id", True),
    ("boot_id-number", with_record(boot_id=42), "records[1].boot_id", True),
    ("payload-array", with_record(payload=[FLOOD]), "records[1].payload", True),
    ("payload-string", with_record(payload=FLOOD), "records[1].payload", True),
    ("payload-null", with_record(payload=None), "records[1].payload", True),
    ("payload-missing", with_record(payload=MISSING), "records[1].payload", True),
    ("payload-lone-surrogate", raw_record_value("payload", '{"text": "m\\ud800a"}'), "records[1].payload", False),
    ("kind-lone-surrogate", raw_record_value("kind", '"alert.\\udfff"'), "records[1].kind", False),
    (
        "payload-nested-too-deep",
        raw_record_value("payload", '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        "body",
        False,
    ),
    ("dropped-negative", with_body(dropped={"telemetry": -1}), "dropped", True),
    ("dropped-string-count", with_body(dropped={"telemetry": "3"}), "dropped", True),
    ("dropped-bool-count", with_body(dropped={"telemetry": True}), "dropped", True),
    ("dropped-unknown-class", with_body(dropped={"urgent": 1}), "dropped", False),
    ("dropped-array", with_body(dropped=[1, 2]), "dropped", True),
]


@pytest.fixture
def seeded(cloud: CloudServer) -> tuple[str, str, list[dict[str, Any]]]:
    """A fresh hub that already delivered records 1..3; no rejected request may touch them. (Registered through the
    admin API, which is much faster than the CLI for these many cases.)"""
    hub_id = f"seeded-{uuid.uuid4().hex[:10]}"
    token = cloud.register(hub_id)
    ack(cloud.ingest(token, batch(hub_id, [record(1, "safety", payload={"message": FLOOD}), record(2), record(3)])))
    return hub_id, token, cloud.records(hub_id)


def test_valid_base_bodies_are_accepted(cloud: CloudServer, hub: tuple[str, str]) -> None:
    """The malformed bodies below differ from these by one field, so each 400 is down to that field."""
    hub_id, token = hub
    assert ack(cloud.ingest(token, with_record()(hub_id, 1)))["accepted"] == 2
    assert ack(cloud.ingest(token, with_body()(hub_id, 3)))["accepted"] == 2
    payload = {"x": [[[[[[[[[[[]]]]]]]]]]], "emoji": "🌧️", "ok": "mạng"}  # some nesting and any text are fine
    assert ack(cloud.ingest(token, with_record(payload=payload)(hub_id, 5)))["accepted"] == 2
    assert ack(cloud.ingest(token, batch(hub_id, [record(7 + i) for i in range(1000)])))["accepted"] == 1000
    assert cloud.state(token) == 1006


@pytest.mark.parametrize(
    ("build", "field", "schema_rejects"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_batch_is_refused_naming_the_field(
    cloud: CloudServer,
    seeded: tuple[str, str, list[dict[str, Any]]],
    spec: dict[str, Any],
    build: Body,
    field: str,
    schema_rejects: bool,
) -> None:
    hub_id, token, stored = seeded
    body = build(hub_id, 4)
    raw_body = body if isinstance(body, bytes) else json.dumps(body).encode()

    resp = cloud.ingest(token, raw_body)

    assert resp.status == 400, (resp.status, resp.body[:300])
    assert resp.headers.get("Content-Type", "").startswith("application/json")
    response_validator(spec, "/api/v1/ingest", "POST", 400).validate(resp.json())
    assert names_field(resp.error, field), f"{resp.error!r} does not name {field!r}"
    # Nothing stored (not even the valid first record of the batch), nothing lost.
    assert cloud.records(hub_id) == stored
    assert cloud.state(token) == 3
    if schema_rejects:  # the document describes the same rule
        assert not schema_validator(spec, "components", "schemas", "Batch").is_valid(json.loads(raw_body))


# --- 5. body size --------------------------------------------------------------------------------------------------


def test_body_over_4_mib_is_refused_with_413(cloud: CloudServer, hub: tuple[str, str]) -> None:
    hub_id, token = hub

    def padded(seq: int, size: int) -> bytes:
        body = batch(hub_id, [record(seq, payload={"pad": ""})])
        base = len(json.dumps(body).encode())
        body["records"][0]["payload"]["pad"] = "x" * (size - base)
        raw_body = json.dumps(body).encode()
        assert len(raw_body) == size
        return raw_body

    over = cloud.ingest(token, padded(1, MAX_BODY + 1))
    assert over.status == 413, (over.status, over.body[:200])
    assert cloud.records(hub_id) == []
    assert cloud.state(token) == 0

    # "At most 4 MiB": exactly 4 MiB is accepted, and the server still serves after refusing.
    exact = ack(cloud.ingest(token, padded(2, MAX_BODY)))
    assert (exact["ack_seq"], exact["accepted"]) == (2, 1)
    rows = cloud.records(hub_id)
    assert [r["seq"] for r in rows] == [2]
    assert len(rows[0]["payload"]["pad"]) > MAX_BODY - 1000


# --- 6. ingest state -----------------------------------------------------------------------------------------------


def test_ingest_state_is_the_highest_stored_seq(cloud: CloudServer, hub: tuple[str, str]) -> None:
    hub_id, token = hub
    resp = cloud.request("GET", "/api/v1/ingest/state", token=token)
    assert resp.status == 200
    assert resp.json() == {"hub_id": hub_id, "ack_seq": 0}

    ack(cloud.ingest(token, batch(hub_id, [record(1), record(2), record(3)])))
    assert cloud.state(token) == 3
    ack(cloud.ingest(token, batch(hub_id, [record(41)])))
    assert cloud.state(token) == 41
    ack(cloud.ingest(token, batch(hub_id, [record(1), record(2)])))  # resent, older
    assert cloud.state(token) == 41
    assert cloud.ingest(token, batch(hub_id, [record(99, cls="urgent")])).status == 400
    assert cloud.state(token) == 41

    other_id = f"other-{uuid.uuid4().hex[:10]}"
    assert cloud.state(cloud.add_hub(other_id)) == 0  # per hub


# --- 7. the OpenAPI document ---------------------------------------------------------------------------------------


def test_openapi_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert str(spec["openapi"]).startswith("3.1")
    validate_openapi(spec)


def spec_operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    return {(m.upper(), path) for path, item in spec["paths"].items() for m in item if m in methods}


def test_every_route_is_documented_and_every_documented_route_served(
    cloud: CloudServer, spec: dict[str, Any], tmp_path: Path
) -> None:
    documented = spec_operations(spec)
    assert documented >= API_ROUTES, API_ROUTES - documented

    # The routes the server really registers, so a route added later must be documented too.
    app = build_app(tmp_path / "routes.sqlite3", "unused")
    try:
        registered = {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }
    finally:
        app[STORE_KEY].close()
    assert {(m, p) for m, p in registered if p not in NOT_API and not p.startswith(CONSOLE)} == API_ROUTES
    assert {(m, p) for m, p in registered - documented if not p.startswith(CONSOLE)} == {("GET", p) for p in NOT_API}

    # And the running server answers every documented operation (anything but 404/405).
    for method, path in sorted(documented):
        if path.startswith(OTA):
            continue
        url = path.replace("{hub_id}", "some-hub").replace("{sha256}", "0" * 64)
        url = url.replace("{id}", "1").replace("{command_id}", "1")
        resp = cloud.request(method, url, body=b"{}" if method in ("POST", "PUT") else None)
        assert resp.status not in (404, 405), (method, path, resp.status)
        # every API operation needs a token (enroll's credential is the one-time code: none given, refused too)
        expected = 200 if path == "/healthz" else 401
        assert resp.status == expected, (method, path, resp.status)


def test_real_responses_match_the_documented_schemas(
    cloud: CloudServer, spec: dict[str, Any], hub: tuple[str, str]
) -> None:
    hub_id, token = hub
    ack_schema = response_validator(spec, "/api/v1/ingest", "POST", 200)
    assert not ack_schema.is_valid({"hub_id": hub_id})  # the schema is not vacuous
    assert not ack_schema.is_valid({"hub_id": hub_id, "ack_seq": "1", "accepted": 1, "duplicates": 0})

    sent = batch(hub_id, [record(1, "safety", payload={"message": FLOOD}), record(2, "telemetry")], {"telemetry": 4})
    schema_validator(spec, "components", "schemas", "Batch").validate(sent)
    resp = cloud.ingest(token, sent)
    assert resp.status == 200
    ack_schema.validate(resp.json())

    state = cloud.request("GET", "/api/v1/ingest/state", token=token)
    response_validator(spec, "/api/v1/ingest/state", "GET", 200).validate(state.json())

    records = cloud.request("GET", f"/api/v1/hubs/{hub_id}/records", token=cloud.admin_token)
    records_schema = response_validator(spec, "/api/v1/hubs/{hub_id}/records", "GET", 200)
    records_schema.validate(records.json())
    assert len(records.json()["records"]) == 2
    broken = records.json()
    broken["records"][0]["class"] = "urgent"
    assert not records_schema.is_valid(broken)

    hubs = cloud.request("GET", "/api/v1/hubs", token=cloud.admin_token)
    response_validator(spec, "/api/v1/hubs", "GET", 200).validate(hubs.json())

    new = f"spec-{uuid.uuid4().hex[:10]}"
    added = cloud.request("POST", "/api/v1/hubs", body=json.dumps({"hub_id": new}).encode(), token=cloud.admin_token)
    assert added.status == 201
    response_validator(spec, "/api/v1/hubs", "POST", 201).validate(added.json())

    # Error bodies: 400, 401, 403 of ingest; 400 and 401 of the admin API.
    refusals = [
        (400, cloud.ingest(token, b"[]")),
        (401, cloud.ingest(None, sent)),
        (403, cloud.ingest(token, batch(new, [record(1)]))),
    ]
    for status, resp in refusals:
        assert resp.status == status, resp
        response_validator(spec, "/api/v1/ingest", "POST", status).validate(resp.json())
    bad_add = cloud.request("POST", "/api/v1/hubs", body=b"{}", token=cloud.admin_token)
    assert bad_add.status == 400
    response_validator(spec, "/api/v1/hubs", "POST", 400).validate(bad_add.json())
    no_admin = cloud.request("GET", "/api/v1/hubs")
    assert no_admin.status == 401
    response_validator(spec, "/api/v1/hubs", "GET", 401).validate(no_admin.json())


# --- 8. durability -------------------------------------------------------------------------------------------------


@pytest.fixture
def own_cloud(tmp_path: Path) -> Iterator[CloudServer]:
    """A server of this test alone, which the test may kill and restart."""
    server = new_server(tmp_path / "own")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_acknowledged_records_survive_sigkill(own_cloud: CloudServer) -> None:
    cloud = own_cloud
    hub_id = "thon-dong-durable"
    token = cloud.add_hub(hub_id)
    sent: list[dict[str, Any]] = []
    acked = 0
    for first in range(1, 501, 100):
        records = [record(s, CLASSES[s % 4], payload={"message": FLOOD, "i": s}) for s in range(first, first + 100)]
        acked = ack(cloud.ingest(token, batch(hub_id, records)))["ack_seq"]
        sent += records
    assert acked == 500
    proc = cloud.proc
    assert proc is not None
    cloud.kill()  # right after the last 200: no graceful shutdown
    assert proc.returncode == -signal.SIGKILL

    cloud.start()  # same database, new process
    rows = cloud.records(hub_id)
    assert [sent_fields(r) for r in rows] == sent
    assert cloud.state(token) == acked
    again = ack(cloud.ingest(token, batch(hub_id, sent[-100:])))  # the token survived too
    assert (again["ack_seq"], again["accepted"], again["duplicates"]) == (500, 0, 100)


# --- 9. registering a hub through the admin API --------------------------------------------------------------------


def test_admin_registers_a_hub_whose_token_works(cloud: CloudServer) -> None:
    hub_id = f"thôn-đông-{uuid.uuid4().hex[:8]}"
    resp = cloud.request("POST", "/api/v1/hubs", body=json.dumps({"hub_id": hub_id}).encode(), token=cloud.admin_token)
    assert resp.status == 201, resp
    data = resp.json()
    assert data["hub_id"] == hub_id
    token = data["token"]
    assert isinstance(token, str)
    assert len(token) >= 32
    assert token != cloud.admin_token

    summary = hub_summary(cloud, hub_id)
    assert (summary["ack_seq"], summary["records"]) == (0, 0)
    assert cloud.state(token) == 0
    answer = ack(cloud.ingest(token, batch(hub_id, [record(1, "safety", payload={"message": FLOOD})])))
    assert answer == {"hub_id": hub_id, "ack_seq": 1, "accepted": 1, "duplicates": 0}
    assert [r["payload"]["message"] for r in cloud.records(hub_id)] == [FLOOD]

    other = cloud.request(
        "POST", "/api/v1/hubs", body=json.dumps({"hub_id": hub_id + "-2"}).encode(), token=cloud.admin_token
    )
    assert other.status == 201
    assert other.json()["token"] != token
    assert cloud.ingest(other.json()["token"], batch(hub_id, [record(2)])).status == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[]", "hub_id"),
        (b"{}", "hub_id"),
        (b'{"hub_id": ""}', "hub_id"),
        (b'{"hub_id": 5}', "hub_id"),
    ],
)
def test_admin_register_refuses_a_bad_body(cloud: CloudServer, body: bytes, field: str) -> None:
    before = cloud.request("GET", "/api/v1/hubs", token=cloud.admin_token).json()
    resp = cloud.request("POST", "/api/v1/hubs", body=body, token=cloud.admin_token)
    assert resp.status == 400, resp
    assert names_field(resp.error, field), resp.error
    after = cloud.request("GET", "/api/v1/hubs", token=cloud.admin_token).json()
    assert {h["hub_id"] for h in after["hubs"]} == {h["hub_id"] for h in before["hubs"]}


@pytest.mark.parametrize("query", ["limit=0", "limit=-1", "limit=abc", "after=x"])
def test_admin_records_refuses_a_bad_page(cloud: CloudServer, hub: tuple[str, str], query: str) -> None:
    hub_id, token = hub
    ack(cloud.ingest(token, batch(hub_id, [record(1), record(2)])))
    resp = cloud.request("GET", f"/api/v1/hubs/{hub_id}/records?{query}", token=cloud.admin_token)
    assert resp.status == 400, resp
    assert query.split("=")[0] in resp.error
