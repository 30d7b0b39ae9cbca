"""Transport security against a real TLS server (`hub-cloud serve --tls-cert/--tls-key`) with a trustme test CA:
the right CA works; a wrong CA, an expired certificate or a key that is not the pinned one is refused with an
error that says so; plain HTTP off the box is refused by the configuration; and nothing is ever sent in clear
text (no fallback from https)."""

from __future__ import annotations

import base64
import datetime as dt
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web

from hub.config.settings import SyncSection
from hub.sync.pins import spki_sha256
from hub.sync.transport import CloudTransport, describe_error
from tests.support.processes import HUB, CloudProcess, HubProcess, free_port, wait_until, write_hub_config


@dataclass
class Pki:
    ca: Path
    other_ca: Path
    cert: Path
    key: Path
    expired_cert: Path
    expired_key: Path
    pin: str  # base64 SPKI SHA-256 of the server certificate


def _write_leaf(leaf: trustme.LeafCert, cert: Path, key: Path) -> None:
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    other.cert_pem.write_to_path(str(d / "other-ca.pem"))
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    _write_leaf(leaf, d / "cert.pem", d / "key.pem")
    expired = ca.issue_cert(
        "127.0.0.1", not_before=dt.datetime(2019, 1, 1, tzinfo=dt.UTC), not_after=dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    )
    _write_leaf(expired, d / "expired.pem", d / "expired-key.pem")
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    pin = base64.b64encode(spki_sha256(der)).decode()
    return Pki(
        d / "ca.pem", d / "other-ca.pem", d / "cert.pem", d / "key.pem", d / "expired.pem", d / "expired-key.pem", pin
    )


@pytest.fixture(scope="module")
def tls_cloud(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[CloudProcess]:
    cloud = CloudProcess(tmp_path_factory.mktemp("tls-cloud"), tls=(pki.cert, pki.key, pki.ca)).start()
    yield cloud
    cloud.stop()


def sync_settings(url: str, **more: object) -> SyncSection:
    return SyncSection.model_validate({"cloud_url": url, **more})


async def _state(settings: SyncSection, token: str | None = "x" * 20) -> int:
    transport = CloudTransport(settings, token)
    try:
        async with transport.request("GET", "/api/v1/ingest/state") as response:
            return int(response.status)
    finally:
        await transport.close()


async def _refusal(settings: SyncSection) -> str:
    with pytest.raises(aiohttp.ClientError) as caught:
        await _state(settings)
    return describe_error(caught.value, settings)


async def test_the_right_ca_is_trusted(tls_cloud: CloudProcess, pki: Pki) -> None:
    assert tls_cloud.url.startswith("https://")
    settings = sync_settings(tls_cloud.url, ca_bundle=pki.ca)
    assert await _state(settings) == 401  # the TLS session works; the token is just unknown


async def test_a_wrong_ca_is_refused_naming_certificate_verification(tls_cloud: CloudProcess, pki: Pki) -> None:
    error = await _refusal(sync_settings(tls_cloud.url, ca_bundle=pki.other_ca))
    assert error.startswith("TLS certificate verification failed")
    assert "unable to get local issuer certificate" in error
    assert str(pki.other_ca) in error


async def test_the_system_cas_do_not_trust_a_private_ca(tls_cloud: CloudProcess) -> None:
    error = await _refusal(sync_settings(tls_cloud.url))
    assert error.startswith("TLS certificate verification failed")
    assert "the system's CAs" in error


async def test_a_pin_that_matches_passes_and_one_that_does_not_is_refused(tls_cloud: CloudProcess, pki: Pki) -> None:
    hex_pin = base64.b64decode(pki.pin).hex()
    assert await _state(sync_settings(tls_cloud.url, ca_bundle=pki.ca, pin_sha256=[pki.pin])) == 401
    assert await _state(sync_settings(tls_cloud.url, ca_bundle=pki.ca, pin_sha256=["0" * 64, hex_pin])) == 401
    error = await _refusal(sync_settings(tls_cloud.url, ca_bundle=pki.ca, pin_sha256=["A" * 43 + "="]))
    assert error.startswith("TLS certificate verification failed: cloud certificate key does not match sync.pin_sha256")
    assert pki.pin in error  # the message shows the key's real pin, so the technician can compare


class _TlsServer:
    """An in-process HTTPS server with a given certificate (the expired one)."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> _TlsServer:
        app = web.Application()

        async def state(request: web.Request) -> web.Response:
            return web.json_response({"ack_seq": 0})

        app.router.add_get("/api/v1/ingest/state", state)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.context).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def test_an_expired_certificate_is_refused(pki: Pki) -> None:
    async with _TlsServer(pki.expired_cert, pki.expired_key) as server:
        error = await _refusal(sync_settings(f"https://127.0.0.1:{server.port}", ca_bundle=pki.ca))
    assert error.startswith("TLS certificate verification failed")
    assert "certificate has expired" in error


def test_plain_http_off_the_box_is_refused_by_config_check(tmp_path: Path) -> None:
    config = write_hub_config(tmp_path, "thon-tls", cloud_url="http://cloud.xa-quangluu.vn", token=None)
    out = subprocess.run([HUB, "config", "check", str(config)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out
    assert "sync" in out.stderr
    assert "plain HTTP to cloud.xa-quangluu.vn" in out.stderr
    assert "allow_insecure_http" in out.stderr
    loopback = write_hub_config(tmp_path / "lo", "thon-tls", cloud_url="http://127.0.0.1:8800", token=None)
    assert subprocess.run([HUB, "config", "check", str(loopback)], capture_output=True, timeout=60).returncode == 0


class _Recorder:
    """A TCP listener that records every byte a client sends and answers nothing useful."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2.0)
                data = b""
                try:
                    while chunk := conn.recv(65536):
                        data += chunk
                        if len(data) > 200:
                            break
                except OSError:
                    pass
                self.received.append(data)

    def close(self) -> None:
        self.sock.close()


def test_the_hub_sends_nothing_in_clear_text_and_never_falls_back(tmp_path: Path, pki: Pki) -> None:
    """A real hub against a listener that is not a TLS server: every connection it opens starts with a TLS
    handshake record, and neither the token nor an HTTP request line ever appears."""
    recorder = _Recorder()
    token = "secret-token-" + "x" * 20
    config = write_hub_config(tmp_path, "thon-tls", cloud_url=f"https://127.0.0.1:{recorder.port}", token=token)
    text = config.read_text().replace("[sync]\n", f'[sync]\nca_bundle = "{pki.ca}"\n', 1)
    config.write_text(text)
    hub = HubProcess(config).start()
    try:
        wait_until(lambda: len(recorder.received) >= 4, 30, what="several connection attempts")
        health = hub.health()["services"]
        assert health["sync"]["details"]["link"] == "failing"
        assert health["commands"]["details"]["link"] == "failing"
    finally:
        hub.terminate()
        recorder.close()
    for data in recorder.received:
        assert data[:1] == b"\x16", data[:40]  # a TLS handshake record (ClientHello)
        assert token.encode() not in data
        assert b"HTTP/1." not in data
        assert b"Authorization" not in data


def test_a_hub_with_the_test_ca_delivers_over_tls_and_one_with_a_wrong_ca_says_why(
    tmp_path: Path, tls_cloud: CloudProcess, pki: Pki
) -> None:
    good_token = tls_cloud.add_hub("thon-tls-tot")
    bad_token = tls_cloud.add_hub("thon-tls-sai")
    hubs = []
    for hub_id, token, ca in (("thon-tls-tot", good_token, pki.ca), ("thon-tls-sai", bad_token, pki.other_ca)):
        config = write_hub_config(tmp_path / hub_id, hub_id, cloud_url=tls_cloud.url, token=token)
        config.write_text(config.read_text().replace("[sync]\n", f'[sync]\nca_bundle = "{ca}"\n', 1))
        hubs.append(HubProcess(config).start())
    good, bad = hubs
    try:
        wait_until(lambda: tls_cloud.hub("thon-tls-tot")["records"] >= 1, 30, what="records over TLS")
        wait_until(
            lambda: good.health()["services"]["commands"]["details"]["link"] == "connected", 30, what="the inbox"
        )
        wait_until(lambda: bad.health()["services"]["sync"]["details"]["consecutive_failures"] >= 1, 30, what="a try")
        details = bad.health()["services"]
        for service in ("sync", "commands"):
            error = details[service]["details"]["last_error"]
            assert error.startswith("TLS certificate verification failed"), error
            assert any("certificate verification failed" in p for p in details[service]["problems"])
        assert tls_cloud.hub("thon-tls-sai")["records"] == 0
    finally:
        for hub in hubs:
            hub.terminate()


def test_doctor_checks_the_cloud_with_the_hubs_tls_rules_and_token(
    tmp_path: Path, tls_cloud: CloudProcess, pki: Pki
) -> None:
    token = tls_cloud.add_hub("thon-bac-si")
    lines = {}
    cases = (
        ("good", pki.ca, token, pki.pin),
        ("wrong-ca", pki.other_ca, token, None),
        ("bad-token", pki.ca, "z" * 20, None),
        ("wrong-pin", pki.ca, token, "B" * 43 + "="),
    )
    for name, ca, tok, pin in cases:
        config = write_hub_config(tmp_path / name, "thon-bac-si", cloud_url=tls_cloud.url, token=tok)
        pins = f'pin_sha256 = ["{pin}"]\n' if pin else ""
        config.write_text(config.read_text().replace("[sync]\n", f'[sync]\nca_bundle = "{ca}"\n{pins}', 1))
        out = subprocess.run([HUB, "--config", str(config), "doctor"], capture_output=True, text=True, timeout=60)
        lines[name] = next(line for line in out.stdout.splitlines() if line.split()[1:2] == ["cloud"])
    assert lines["good"].startswith("ok")
    assert "TLS verified and pinned" in lines["good"]
    assert "token of the secrets file accepted" in lines["good"]
    assert lines["wrong-ca"].startswith("fail")
    assert "TLS certificate verification failed" in lines["wrong-ca"]
    assert lines["bad-token"].startswith("fail")
    assert "refuses this box's token" in lines["bad-token"]
    assert lines["wrong-pin"].startswith("fail")
    assert "does not match sync.pin_sha256" in lines["wrong-pin"]
