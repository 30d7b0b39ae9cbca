"""The operator console (cloud/operator.py) over HTTP against a real `hub-cloud serve`: login, CSRF, forms that
queue commands, the live view's JSON calls, record browsing, the hubs list."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
import uuid
from typing import Any

import pytest

from tests.cloud.conftest import CloudServer
from tests.cloud.operator_client import OperatorClient

FLOOD = "Thông báo: nước lũ dâng cao ở thôn Đông, bà con di chuyển lên chỗ cao"


def hub_path(hub_id: str, rest: str = "") -> str:
    return f"/operator/hubs/{urllib.parse.quote(hub_id, safe='')}{rest}"


def commands(cloud: CloudServer, hub_id: str) -> list[dict[str, Any]]:
    resp = cloud.request("GET", f"/api/v1/hubs/{hub_id}/commands", token=cloud.admin_token)
    assert resp.status == 200, resp
    rows = resp.json()["commands"]
    assert isinstance(rows, list)
    return rows


def record(seq: int, cls: str, kind: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "seq": seq,
        "class": cls,
        "kind": kind,
        "created_at": 1_795_000_000.0 + seq,
        "boot_id": "boot-1",
        "uptime": float(seq),
        "payload": payload or {"n": seq},
    }


@pytest.fixture
def operator(cloud: CloudServer) -> OperatorClient:
    client = OperatorClient(cloud)
    assert client.login().status == 303
    return client


# --- login -----------------------------------------------------------------------------------------------------


def test_pages_and_calls_need_a_login(cloud: CloudServer, hub: tuple[str, str]) -> None:
    hub_id, _ = hub
    anonymous = OperatorClient(cloud)
    for path in ("/operator/hubs", hub_path(hub_id), hub_path(hub_id, "/live")):
        page = anonymous.get(path)
        assert page.status == 303, (path, page.status)
        target = urllib.parse.urlsplit(page.location)
        assert target.path == "/operator/login"
        assert urllib.parse.parse_qs(target.query)["next"] == [path]
    posted = anonymous.post_form(hub_path(hub_id, "/announce"), {"text": FLOOD})
    assert posted.status == 303
    assert posted.location.startswith("/operator/login")
    live = anonymous.request("POST", hub_path(hub_id, "/live/start"), b"{}", {"Content-Type": "application/json"})
    assert live.status == 401
    assert anonymous.get(hub_path(hub_id, "/commands/1")).status == 401
    assert commands(cloud, hub_id) == []


def test_login_sets_a_strict_httponly_cookie_and_refuses_a_wrong_token(cloud: CloudServer) -> None:
    client = OperatorClient(cloud)
    wrong = client.login("not-the-admin-token")
    assert wrong.status == 401
    assert "Wrong admin token" in wrong.text
    assert client.cookie("vh_operator") is None

    form = client.get("/operator/login")
    no_nonce = client.post_form("/operator/login", {"nonce": "forged", "token": cloud.admin_token})
    assert no_nonce.status == 403
    assert client.cookie("vh_operator") is None
    assert form.status == 200

    ok = client.login()
    assert ok.status == 303
    assert ok.location == "/operator/hubs"
    set_cookie = next(c for c in ok.set_cookies if c.startswith("vh_operator="))
    assert "vh_operator=" in set_cookie
    assert "HttpOnly" in set_cookie
    assert "SameSite=Strict" in set_cookie
    assert client.get("/operator/hubs").status == 200

    # A tampered cookie (a later expiry with the old signature) is not a session.
    cookie = client.cookie("vh_operator")
    assert cookie is not None
    assert cookie.value is not None
    expiry, _, mac = cookie.value.partition(".")
    cookie.value = f"{int(expiry) + 3600}.{mac}"
    assert client.get("/operator/hubs").status == 303


def test_login_redirects_only_inside_the_console(cloud: CloudServer) -> None:
    client = OperatorClient(cloud)
    form = client.get("/operator/login?next=//evil.example/x")
    assert form.hidden("next") == "/operator/hubs"
    resp = client.post_form(
        "/operator/login", {"nonce": form.hidden("nonce"), "token": cloud.admin_token, "next": "https://evil.example/"}
    )
    assert resp.status == 303
    assert resp.location == "/operator/hubs"


def test_pages_carry_a_csp_without_inline_script(operator: OperatorClient, hub: tuple[str, str]) -> None:
    hub_id, _ = hub
    for path in ("/operator/hubs", hub_path(hub_id), hub_path(hub_id, "/live"), "/operator/login"):
        page = operator.get(path)
        assert page.status == 200, path
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), path  # every script is an external file
    script = operator.get("/operator/static/operator-live.js")
    assert script.status == 200
    assert "RTCPeerConnection" in script.text
    assert "recvonly" in script.text


# --- CSRF ------------------------------------------------------------------------------------------------------


def test_forms_without_the_csrf_token_are_refused(operator: OperatorClient, hub: tuple[str, str]) -> None:
    hub_id, _ = hub
    cloud = operator.cloud
    assert operator.post_form(hub_path(hub_id, "/announce"), {"text": FLOOD}).status == 403
    assert operator.post_form(hub_path(hub_id, "/announce"), {"csrf": "wrong", "text": FLOOD}).status == 403
    missing = operator.post_multipart(hub_path(hub_id, "/lighting"), [("circuit", "street-1"), ("state", "on")])
    assert missing.status == 403
    # a file before the token: refused before the file is stored
    early = operator.post_multipart(hub_path(hub_id, "/announce"), [], [("audio", "a.wav", b"RIFF....")])
    assert early.status == 403
    live = operator.request(
        "POST",
        hub_path(hub_id, "/live/start"),
        b'{"offer": {"sdp": "v=0", "type": "offer"}}',
        {"Content-Type": "application/json"},
    )
    assert live.status == 403
    assert commands(cloud, hub_id) == []
    # the token of another session does not pass either
    other = OperatorClient(cloud)
    other.login()
    foreign = other.csrf(hub_id)
    mine = operator.csrf(hub_id)
    assert foreign != mine or operator.cookie("vh_operator").value == other.cookie("vh_operator").value  # type: ignore[union-attr]
    assert operator.post_form("/operator/logout", {}).status == 403
    assert operator.get("/operator/hubs").status == 200  # still logged in


def test_logout_ends_the_session(operator: OperatorClient, hub: tuple[str, str]) -> None:
    hub_id, _ = hub
    resp = operator.post_form("/operator/logout", {"csrf": operator.csrf(hub_id)})
    assert resp.status == 303
    assert resp.location == "/operator/login"
    assert operator.get("/operator/hubs").status == 303


# --- forms queue commands ----------------------------------------------------------------------------------------


def test_an_announcement_from_the_form_appears_in_the_queue(operator: OperatorClient, hub: tuple[str, str]) -> None:
    hub_id, _ = hub
    csrf = operator.csrf(hub_id)
    fields = [("csrf", csrf), ("text", FLOOD), ("zones", "loa-1, loa-2"), ("level", "priority"), ("volume", "80")]
    resp = operator.post_multipart(hub_path(hub_id, "/announce"), [*fields, ("ttl_min", "30")], [("audio", "", b"")])
    assert resp.status == 303, resp.text
    queued = commands(operator.cloud, hub_id)
    assert len(queued) == 1
    command = queued[0]
    assert resp.location == hub_path(hub_id) + f"?queued={command['id']}"
    assert command["kind"] == "broadcast.announce"
    assert command["status"] == "queued"
    assert command["args"] == {"text": FLOOD, "zones": ["loa-1", "loa-2"], "level": "priority", "volume": 80}
    assert 29 * 60 < command["expires_at"] - command["created_at"] <= 30 * 60

    page = operator.get(resp.location)
    assert f"Command {command['id']} queued" in page.text
    queue = page.text.split('id="commands"')[1].split("</table>")[0]
    assert "broadcast.announce" in queue
    assert "queued" in queue
    assert FLOOD in queue


def test_an_audio_file_becomes_cloud_media_the_hub_can_fetch(operator: OperatorClient, hub: tuple[str, str]) -> None:
    hub_id, token = hub
    audio = b"RIFF" + uuid.uuid4().bytes * 4096
    resp = operator.post_multipart(
        hub_path(hub_id, "/announce"),
        [("csrf", operator.csrf(hub_id)), ("text", ""), ("level", "normal")],
        [("audio", "thông báo.wav", audio)],
    )
    assert resp.status == 303, resp.text
    (command,) = commands(operator.cloud, hub_id)
    media = command["args"]["media"]
    sha = hashlib.sha256(audio).hexdigest()
    assert media == {"url": f"/api/v1/media/{sha}", "sha256": sha, "size": len(audio), "name": "thông báo.wav"}
    fetched = operator.cloud.request("GET", media["url"], token=token)
    assert fetched.status == 200
    assert fetched.body == audio


def test_a_form_error_names_the_field_and_queues_nothing(operator: OperatorClient, hub: tuple[str, str]) -> None:
    hub_id, _ = hub
    csrf = operator.csrf(hub_id)
    both = operator.post_multipart(
        hub_path(hub_id, "/announce"), [("csrf", csrf), ("text", FLOOD)], [("audio", "a.wav", b"RIFF")]
    )
    assert both.status == 400
    assert "not both" in both.text
    bad_volume = operator.post_multipart(
        hub_path(hub_id, "/announce"), [("csrf", csrf), ("text", "x"), ("volume", "300")]
    )
    assert bad_volume.status == 400
    assert "volume" in bad_volume.text
    no_area = operator.post_multipart(
        hub_path(hub_id, "/emergency"), [("csrf", csrf), ("event", "Flood"), ("severity", "Severe"), ("text", FLOOD)]
    )
    assert no_area.status == 400
    assert "area: required" in no_area.text
    assert commands(operator.cloud, hub_id) == []


def test_emergency_and_lighting_forms(operator: OperatorClient, hub: tuple[str, str]) -> None:
    hub_id, _ = hub
    csrf = operator.csrf(hub_id)
    alert = [("csrf", csrf), ("event", "Lũ quét"), ("severity", "Extreme"), ("urgency", "Immediate")]
    alert += [("area", "Thôn Đông"), ("headline", "Lũ"), ("text", FLOOD), ("valid_min", "90")]
    assert operator.post_multipart(hub_path(hub_id, "/emergency"), alert).status == 303
    on = {"csrf": csrf, "circuit": "street-1", "state": "on", "until": "2026-11-25T05:30", "ttl_min": "10"}
    assert operator.post_form(hub_path(hub_id, "/lighting"), on).status == 303
    assert operator.post_form(hub_path(hub_id, "/lighting"), {**on, "state": "cancel"}).status == 303
    assert operator.post_form(hub_path(hub_id, "/stop"), {"csrf": csrf}).status == 303

    emergency, override, cancel, stop = commands(operator.cloud, hub_id)
    assert emergency["kind"] == "broadcast.emergency"
    args = emergency["args"]
    assert {k: args[k] for k in ("event", "severity", "urgency", "area", "text")} == {
        "event": "Lũ quét",
        "severity": "Extreme",
        "urgency": "Immediate",
        "area": "Thôn Đông",
        "text": FLOOD,
    }
    assert args["expires"].endswith("+00:00")
    assert override["kind"] == "lighting.override"
    assert override["args"] == {"circuit": "street-1", "state": "on", "until": "2026-11-25T05:30"}
    assert cancel["kind"] == "lighting.cancel_override"
    assert cancel["args"] == {"circuit": "street-1"}
    assert stop["kind"] == "broadcast.stop_all"


# --- the live view's signalling -----------------------------------------------------------------------------------


def test_live_view_queues_the_offer_and_long_polls_the_answer(operator: OperatorClient, hub: tuple[str, str]) -> None:
    hub_id, token = hub
    cloud = operator.cloud
    csrf = operator.csrf(hub_id)
    headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf}
    offer = {"sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n", "type": "offer"}
    body = json.dumps({"mode": "camera", "session": "s-1", "offer": offer, "camera": "cong-xa"}).encode()
    started = operator.request("POST", hub_path(hub_id, "/live/start"), body, headers)
    assert started.status == 201, started.text
    reply = json.loads(started.text)
    assert reply["session"] == "s-1"
    (command,) = commands(cloud, hub_id)
    assert command["id"] == reply["id"]
    assert command["kind"] == "live.start"
    assert command["args"] == {
        "session": "s-1",
        "mode": "camera",
        "offer": offer,
        "camera": "cong-xa",
        "who": "operator console",
    }
    assert command["expires_at"] - command["created_at"] <= 60

    pending = operator.get(hub_path(hub_id, f"/commands/{reply['id']}?wait=0"))
    assert pending.status == 200
    assert json.loads(pending.text)["status"] == "queued"

    # The hub answers (as hub/sync does: the direct result POST); the long poll returns it.
    answer = {"answer": {"sdp": "v=0\r\n", "type": "answer"}, "session": "s-1"}
    posted = cloud.request(
        "POST",
        f"/api/v1/commands/{reply['id']}/result",
        body=json.dumps({"status": "applied", "result": answer}).encode(),
        token=token,
    )
    assert posted.status == 200, posted
    done = json.loads(operator.get(hub_path(hub_id, f"/commands/{reply['id']}?wait=5")).text)
    assert done["status"] == "applied"
    assert done["result"] == answer

    stop = operator.request("POST", hub_path(hub_id, "/live/stop"), b'{"session": "s-1"}', headers)
    assert stop.status == 201
    assert commands(cloud, hub_id)[-1]["kind"] == "live.stop"
    bad = operator.request("POST", hub_path(hub_id, "/live/start"), b'{"offer": {"type": "answer"}}', headers)
    assert bad.status == 400
    assert "offer" in json.loads(bad.text)["error"]
    spaced = json.dumps({"offer": offer, "session": "a session with spaces"}).encode()
    refused = operator.request("POST", hub_path(hub_id, "/live/start"), spaced, headers)
    assert refused.status == 400
    assert json.loads(refused.text)["error"].startswith("session:")
    assert len(commands(cloud, hub_id)) == 2  # nothing queued by the refusals


# --- browsing records and hubs ----------------------------------------------------------------------------------


def test_records_browse_filters_by_class_and_kind_and_pages(operator: OperatorClient, hub: tuple[str, str]) -> None:
    hub_id, token = hub
    rows = []
    for seq in range(1, 131):
        if seq % 10 == 0:
            rows.append(record(seq, "safety", "broadcast.emergency", {"text": FLOOD}))
        elif seq % 3 == 0:
            rows.append(record(seq, "operations", "lighting.changed"))
        else:
            rows.append(record(seq, "telemetry", "telemetry.vitals"))
    resp = operator.cloud.ingest(token, {"hub_id": hub_id, "records": rows})
    assert resp.status == 200

    def seqs(page_text: str) -> list[int]:
        table = page_text.split('id="records"')[1].split("</table>")[0]
        return [int(s) for s in re.findall(r"<tr class=\"class-\w+\">\s*<td>(\d+)</td>", table)]

    safety = operator.get(hub_path(hub_id, "?class=safety"))
    assert seqs(safety.text) == list(range(130, 0, -10))
    assert FLOOD in safety.text
    lighting = operator.get(hub_path(hub_id, "?kind=lighting."))
    assert seqs(lighting.text) == [s for s in range(130, 0, -1) if s % 3 == 0 and s % 10]

    first = operator.get(hub_path(hub_id))
    assert seqs(first.text) == list(range(130, 80, -1))
    older = re.search(r'href="\?([^"]+)" id="older"', first.text)
    assert older
    second = operator.get(hub_path(hub_id, "?" + older.group(1).replace("&amp;", "&")))
    assert seqs(second.text) == list(range(80, 30, -1))
    telemetry = operator.get(hub_path(hub_id, "?class=telemetry&kind=telemetry.vitals"))
    assert all(r["class"] == "telemetry" for r in rows if r["seq"] in seqs(telemetry.text))
    assert operator.get(hub_path(hub_id, "?class=urgent")).status == 400
    assert operator.get(hub_path("no-such-hub")).status == 404


def test_hubs_list_shows_last_seen_ack_and_the_backlog_the_hub_reported(
    operator: OperatorClient, hub: tuple[str, str]
) -> None:
    hub_id, token = hub
    batch = {"hub_id": hub_id, "records": [record(1, "operations", "hub.started"), record(2, "telemetry", "x.y")]}
    resp = operator.cloud.request(
        "POST", "/api/v1/ingest", body=json.dumps(batch).encode(), token=token, headers={"X-Hub-Pending": "4321"}
    )
    assert resp.status == 200
    page = operator.get("/operator/hubs")
    row = page.text.split(f">{hub_id}</a>")[1].split("</tr>")[0]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells[0].endswith("s ago")  # last seen
    assert cells[1:4] == ["2", "2", "4321"]  # ack seq, records, backlog
    listed = operator.cloud.request("GET", "/api/v1/hubs", token=operator.cloud.admin_token).json()["hubs"]
    assert next(h for h in listed if h["hub_id"] == hub_id)["pending"] == 4321
    # a batch without the header keeps the last figure; a malformed one is ignored
    again = {"hub_id": hub_id, "records": [record(3, "telemetry", "x.y")]}
    operator.cloud.request(
        "POST", "/api/v1/ingest", body=json.dumps(again).encode(), token=token, headers={"X-Hub-Pending": "-5"}
    )
    listed = operator.cloud.request("GET", "/api/v1/hubs", token=operator.cloud.admin_token).json()["hubs"]
    assert next(h for h in listed if h["hub_id"] == hub_id)["pending"] == 4321


# --- metrics ------------------------------------------------------------------------------------------------------


def test_metrics_count_hub_requests_per_second(cloud: CloudServer, hub: tuple[str, str]) -> None:
    _, token = hub
    assert cloud.request("GET", "/api/v1/metrics").status == 401
    before = cloud.request("GET", "/api/v1/metrics?scope=hub", token=cloud.admin_token).json()
    for _ in range(7):
        cloud.state(token)
    after = cloud.request("GET", "/api/v1/metrics?scope=hub", token=cloud.admin_token).json()
    assert after["totals"]["hub"] - before["totals"].get("hub", 0) == 7
    assert sum(s["requests"] for s in after["seconds"]) >= 7
    assert after["peak_per_s"] >= 1
    assert after["p99_per_s"] <= after["peak_per_s"]
    seconds = [s["t"] for s in after["seconds"]]
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))  # idle seconds are listed as 0
    assert cloud.request("GET", "/api/v1/metrics?scope=x", token=cloud.admin_token).status == 400
