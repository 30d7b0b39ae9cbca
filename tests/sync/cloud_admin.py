"""The admin side of the reference cloud's command API, as the commune's operator uses it (over real HTTP(S))."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tests.support.processes import CloudProcess


def admin_request(
    cloud: CloudProcess,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 40.0,
) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body, ensure_ascii=False).encode())
    request = urllib.request.Request(cloud.url + path, data=data, method=method, headers=headers or {})
    request.add_header("Authorization", f"Bearer {cloud.admin_token}")
    if data is not None and raw is None:
        request.add_header("Content-Type", "application/json")
    handlers: list[Any] = [urllib.request.ProxyHandler({})]
    if cloud.context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=cloud.context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            payload = response.read()
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        payload, status = exc.read(), int(exc.code)
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, payload


def queue(cloud: CloudProcess, hub_id: str, kind: str, args: dict[str, Any] | None = None, **extra: Any) -> int:
    status, answer = admin_request(
        cloud, "POST", f"/api/v1/hubs/{hub_id}/commands", {"kind": kind, "args": args or {}, **extra}
    )
    assert status == 201, (status, answer)
    return int(answer["id"])


def commands(cloud: CloudProcess, hub_id: str) -> list[dict[str, Any]]:
    status, answer = admin_request(cloud, "GET", f"/api/v1/hubs/{hub_id}/commands?limit=1000")
    assert status == 200, (status, answer)
    rows: list[dict[str, Any]] = answer["commands"]
    return rows


def command(cloud: CloudProcess, hub_id: str, command_id: int, wait: float = 0.0) -> dict[str, Any]:
    status, answer = admin_request(cloud, "GET", f"/api/v1/hubs/{hub_id}/commands/{command_id}?wait={wait:g}")
    assert status == 200, (status, answer)
    assert isinstance(answer, dict)
    return answer


def enrollment_code(cloud: CloudProcess, hub_id: str, ttl_s: float | None = None) -> str:
    body: dict[str, Any] = {"hub_id": hub_id}
    if ttl_s is not None:
        body["ttl_s"] = ttl_s
    status, answer = admin_request(cloud, "POST", "/api/v1/enrollments", body)
    assert status == 201, (status, answer)
    return str(answer["code"])


def upload_media(cloud: CloudProcess, data: bytes, name: str) -> dict[str, Any]:
    status, answer = admin_request(
        cloud,
        "POST",
        "/api/v1/media",
        raw=data,
        headers={"X-File-Name": urllib.parse.quote(name), "Content-Type": "application/octet-stream"},
    )
    assert status == 201, (status, answer)
    assert isinstance(answer, dict)
    return answer


FINAL = ("applied", "rejected", "expired", "failed")
