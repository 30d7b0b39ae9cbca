"""Run inside a phone's network namespace by bench/portal_admission.py: one person pressing "Kết nối".

Prints one JSON line: the milliseconds from sending the button's POST to its answer (the hub admitted the phone:
the firewall element is in and the store has it), and to the first request to the internet host that gets the
internet's page instead of the portal (traffic flowing).
"""

from __future__ import annotations

import http.client
import json
import sys
import time


def request(host: str, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, 80, timeout=5)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def main() -> None:
    portal, internet = sys.argv[1], sys.argv[2]
    status, page = request(portal, "GET", "/")
    assert status == 200, status
    token = page.decode().split('name="token" value="')[1].split('"')[0]
    status, _ = request(internet, "GET", "/")
    assert status == 302, f"the phone was not behind the portal ({status})"
    t0 = time.perf_counter()
    status, _ = request(portal, "POST", "/connect", f"token={token}&accept=1")
    answered = time.perf_counter() - t0
    assert status == 303, status
    tries = 0
    while True:
        tries += 1
        status, body = request(internet, "GET", "/")
        if status == 200 and b"internet is here" in body:
            break
        assert time.perf_counter() - t0 < 5, "traffic never flowed"
    flowing = time.perf_counter() - t0
    print(json.dumps({"answered_ms": answered * 1000, "flowing_ms": flowing * 1000, "tries": tries}))


if __name__ == "__main__":
    main()
