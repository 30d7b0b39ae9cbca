"""The reference cloud's enrollment, command inbox, media and diagnostics endpoints, over real HTTP against
`hub-cloud serve`, checked against cloud/openapi.yaml."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.command_store import CommandStore, EnrollError
from tests.cloud.conftest import CloudServer, Response
from tests.cloud.test_cloud_api import record, response_validator, schema_validator


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    text = (Path(__file__).resolve().parents[2] / "cloud" / "openapi.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def admin(cloud: CloudServer, method: str, path: str, body: Any = None) -> Response:
    raw = None if body is None else json.dumps(body, ensure_ascii=False).encode()
    return cloud.request(method, path, body=raw, token=cloud.admin_token)


def queue(cloud: CloudServer, hub_id: str, kind: str, args: Any = None, **extra: Any) -> Response:
    return admin(cloud, "POST", f"/api/v1/hubs/{hub_id}/commands", {"kind": kind, "args": args or {}, **extra})


def new_hub_id() -> str:
    return f"thon-{uuid.uuid4().hex[:10]}"


# ---- enrollment ---------------------------------------------------------------------------------------------------


def test_a_code_enrolls_once_and_the_token_it_gives_works(cloud: CloudServer, spec: dict[str, Any]) -> None:
    hub_id = new_hub_id()
    issued = admin(cloud, "POST", "/api/v1/enrollments", {"hub_id": hub_id})
    assert issued.status == 201
    response_validator(spec, "/api/v1/enrollments", "POST", 201).validate(issued.json())
    code = issued.json()["code"]
    enrolled = cloud.request("POST", "/api/v1/enroll", body=json.dumps({"code": code, "hub_id": hub_id}).encode())
    assert enrolled.status == 200, enrolled
    response_validator(spec, "/api/v1/enroll", "POST", 200).validate(enrolled.json())
    assert cloud.state(enrolled.json()["token"]) == 0
    again = cloud.request("POST", "/api/v1/enroll", body=json.dumps({"code": code}).encode())
    assert again.status == 410
    assert "already used" in again.error
    unknown = cloud.request("POST", "/api/v1/enroll", body=b'{"code": "AAAA-BBBB-CCCC-DDDD"}')
    assert unknown.status == 401
    assert unknown.error.startswith("code: unknown enrollment code")


def test_racing_uses_of_one_code_enroll_exactly_once(cloud: CloudServer) -> None:
    hub_id = new_hub_id()
    code = admin(cloud, "POST", "/api/v1/enrollments", {"hub_id": hub_id}).json()["code"]
    statuses: list[int] = []

    def use() -> None:
        statuses.append(cloud.request("POST", "/api/v1/enroll", body=json.dumps({"code": code}).encode()).status)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [200] + [410] * 7


def test_an_expired_code_is_refused(tmp_path: Path) -> None:
    store = CommandStore(tmp_path / "c.sqlite3")
    try:
        code = store.add_enrollment("thon-cu", ttl_s=-1).code
        with pytest.raises(EnrollError, match="expired") as refused:
            store.consume_enrollment(code, "thon-cu", "a-token-that-is-never-given")
        assert refused.value.status == 410
    finally:
        store.close()


# ---- commands -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "Broadcast announce"}, "kind"),
        ({"kind": "broadcast.announce", "args": [1]}, "args"),
        ({"kind": "broadcast.announce", "ttl_s": 0}, "ttl_s"),
        ({"kind": "broadcast.announce", "expires_at": "soon"}, "expires_at"),
    ],
)
def test_a_bad_command_is_refused_naming_the_field(cloud: CloudServer, body: dict[str, Any], field: str) -> None:
    resp = admin(cloud, "POST", f"/api/v1/hubs/{new_hub_id()}/commands", body)
    assert resp.status == 400
    assert resp.error.startswith(field + ":"), resp.error


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("after=two", "after: expected an integer"),
        ("after=-1", "after: expected an integer from 0 to"),
        ("limit=0", "limit: expected an integer from 1 to 1000"),
        ("wait=soon", "wait: expected a number"),
        ("wait=nan", "wait: expected a number from 0.0 to 30.0"),
        ("wait=31", "wait: expected a number from 0.0 to 30.0"),
    ],
)
def test_a_bad_poll_parameter_is_refused_naming_it(
    cloud: CloudServer, hub: tuple[str, str], query: str, error: str
) -> None:
    _, token = hub
    resp = cloud.request("GET", f"/api/v1/commands?{query}", token=token)
    assert resp.status == 400
    assert resp.error.startswith(error), resp.error


def test_the_long_poll_answers_when_a_command_is_queued(
    cloud: CloudServer, hub: tuple[str, str], spec: dict[str, Any]
) -> None:
    hub_id, token = hub
    first = queue(cloud, hub_id, "broadcast.announce", {"text": "Xin chào"}, ttl_s=600)
    assert first.status == 201
    schema_validator(spec, "components", "schemas", "Command").validate(first.json())
    assert first.json()["id"] == 1
    assert first.json()["status"] == "queued"
    fetched = cloud.request("GET", "/api/v1/commands?after=0&wait=0", token=token)
    response_validator(spec, "/api/v1/commands", "GET", 200).validate(fetched.json())
    assert [c["id"] for c in fetched.json()["commands"]] == [1]
    assert abs(fetched.json()["server_time"] - time.time()) < 5
    got: list[Response] = []
    started = time.monotonic()
    poller = threading.Thread(
        target=lambda: got.append(cloud.request("GET", "/api/v1/commands?after=1&wait=20", token=token))
    )
    poller.start()
    time.sleep(0.5)
    second = queue(cloud, hub_id, "broadcast.stop_all")
    poller.join(30)
    took = time.monotonic() - started
    assert [c["id"] for c in got[0].json()["commands"]] == [second.json()["id"]] == [2]
    assert took < 15, took  # woken by the queueing, not by the 20 s wait running out
    empty = cloud.request("GET", "/api/v1/commands?after=2&wait=0", token=token)
    assert empty.json()["commands"] == []
    listed = admin(cloud, "GET", f"/api/v1/hubs/{hub_id}/commands")
    response_validator(spec, "/api/v1/hubs/{hub_id}/commands", "GET", 200).validate(listed.json())
    assert [c["status"] for c in listed.json()["commands"]] == ["delivered", "delivered"]


def test_a_final_result_is_never_overwritten_and_the_waiting_operator_is_woken(
    cloud: CloudServer, hub: tuple[str, str], spec: dict[str, Any]
) -> None:
    hub_id, token = hub
    command_id = queue(cloud, hub_id, "live.start", {"session": "s1"}).json()["id"]
    got: list[Response] = []
    waiter = threading.Thread(
        target=lambda: got.append(admin(cloud, "GET", f"/api/v1/hubs/{hub_id}/commands/{command_id}?wait=20"))
    )
    started = time.monotonic()
    waiter.start()
    time.sleep(0.5)
    body = {"status": "applied", "result": {"answer": {"sdp": "v=0", "type": "answer"}}}
    posted = cloud.request("POST", f"/api/v1/commands/{command_id}/result", body=json.dumps(body).encode(), token=token)
    assert posted.status == 200
    response_validator(spec, "/api/v1/commands/{id}/result", "POST", 200).validate(posted.json())
    assert posted.json()["changed"] is True
    waiter.join(30)
    assert time.monotonic() - started < 15
    assert got[0].json()["status"] == "applied"
    assert got[0].json()["result"]["answer"]["type"] == "answer"
    late = cloud.request(
        "POST", f"/api/v1/commands/{command_id}/result", body=b'{"status": "failed", "error": "x"}', token=token
    )
    assert late.json() == {"id": command_id, "status": "applied", "changed": False}
    # A hub that lost its store asks from 0: what it already applied is not handed out again.
    again = cloud.request("GET", "/api/v1/commands?after=0&wait=0", token=token)
    assert command_id not in [c["id"] for c in again.json()["commands"]]
    bad = cloud.request("POST", f"/api/v1/commands/{command_id}/result", body=b'{"status": "done"}', token=token)
    assert bad.status == 400
    assert bad.error.startswith("status:")
    other_hub = cloud.add_hub(new_hub_id())
    stranger = cloud.request(
        "POST", f"/api/v1/commands/{command_id}/result", body=b'{"status": "failed"}', token=other_hub
    )
    assert stranger.status == 404  # another hub's token cannot touch this hub's commands


def test_results_arriving_by_ingest_are_applied(cloud: CloudServer, hub: tuple[str, str]) -> None:
    hub_id, token = hub
    command_id = queue(cloud, hub_id, "irrigation.run", {"seconds": 30}).json()["id"]
    payload = {"id": command_id, "kind": "irrigation.run", "status": "rejected", "error": "args.seconds: too long"}
    batch = {"hub_id": hub_id, "records": [record(1, "operations", "command.result", payload)]}
    assert cloud.ingest(token, batch).status == 200
    answer = admin(cloud, "GET", f"/api/v1/hubs/{hub_id}/commands/{command_id}").json()
    assert answer["status"] == "rejected"
    assert answer["error"] == "args.seconds: too long"


# ---- media and diagnostics ----------------------------------------------------------------------------------------


def test_media_is_served_with_range_to_hubs_only(cloud: CloudServer, hub: tuple[str, str]) -> None:
    _, token = hub
    data = os.urandom(50_000)
    up = cloud.request(
        "POST",
        "/api/v1/media",
        body=data,
        token=cloud.admin_token,
        headers={"X-File-Name": "b%E1%BA%A3n%20tin.mp3", "Content-Type": "application/octet-stream"},
    )
    assert up.status == 201
    assert up.json()["name"] == "bản tin.mp3"
    assert up.json()["sha256"] == hashlib.sha256(data).hexdigest()
    url = up.json()["url"]
    part = cloud.request("GET", url, token=token, headers={"Range": "bytes=40000-"})
    assert part.status == 206
    assert part.body == data[40000:]
    assert part.headers["Content-Range"] == f"bytes 40000-49999/{len(data)}"
    assert cloud.request("GET", url).status == 401
    assert cloud.request("GET", "/api/v1/media/" + "0" * 64, token=token).status == 404


def test_a_diagnostics_bundle_is_taken_only_for_a_diagnostics_request(cloud: CloudServer, hub: tuple[str, str]) -> None:
    hub_id, token = hub
    other = queue(cloud, hub_id, "broadcast.stop_all").json()["id"]
    wanted = queue(cloud, hub_id, "diagnostics.request").json()["id"]
    bundle = os.urandom(2000)
    headers = {"Content-Type": "application/gzip"}
    refused = cloud.request("PUT", f"/api/v1/diagnostics/{other}", body=bundle, token=token, headers=headers)
    assert refused.status == 404
    taken = cloud.request("PUT", f"/api/v1/diagnostics/{wanted}", body=bundle, token=token, headers=headers)
    assert taken.json() == {"bytes": 2000, "sha256": hashlib.sha256(bundle).hexdigest()}
    fetched = cloud.request("GET", f"/api/v1/hubs/{hub_id}/diagnostics/{wanted}", token=cloud.admin_token)
    assert fetched.body == bundle
