"""Over HTTPS (`hub-cloud serve --tls-cert --tls-key --ota-repo`, a trustme CA): the update check, and the
cloud's `Date` as trusted time only when the certificate verifies."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from ota.client import UpdateClient
from ota.errors import TransportError
from ota.repository import Repository
from ota.timetrust import ClockInputs, reference_time
from tests.ota.tuf_fixtures import make_slot, slot_files
from tests.support.processes import HUB_CLOUD, free_port, wait_until


@dataclass
class TlsRepo:
    url: str
    ca: Path
    other_ca: Path
    repo: Repository


@pytest.fixture(scope="module")
def tls_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRepo]:
    d = tmp_path_factory.mktemp("ota-tls")
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    other.cert_pem.write_to_path(str(d / "other.pem"))
    leaf = ca.issue_cert("127.0.0.1")
    (d / "cert.pem").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(d / "key.pem"))
    repo = Repository.init(d / "repo", d / "keys")
    repo.add_release(make_slot(d / "slot", slot_files("0.2.0")), "0.2.0", "x86_64", "3.11")
    port = free_port()
    with (d / "cloud.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                HUB_CLOUD,
                "--db",
                str(d / "cloud.sqlite3"),
                "serve",
                "--port",
                str(port),
                "--admin-token",
                "t",
                "--tls-cert",
                str(d / "cert.pem"),
                "--tls-key",
                str(d / "key.pem"),
                "--ota-repo",
                str(repo.root),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "serving on" in (d / "cloud.log").read_text(), 30, what="hub-cloud over TLS")
        yield TlsRepo(f"https://127.0.0.1:{port}", d / "ca.pem", d / "other.pem", repo)
    finally:
        proc.terminate()
        proc.wait(10)


def test_check_over_verified_https(tls_repo: TlsRepo, tmp_path: Path) -> None:
    client = UpdateClient(tmp_path / "md", tls_repo.url, tls_repo.repo.root_bytes(), "x86_64", ca_bundle=tls_repo.ca)
    release = client.check("0.1.0")
    assert release is not None
    assert release.version == "0.2.0"


def test_a_wrong_ca_is_a_transport_error(tls_repo: TlsRepo, tmp_path: Path) -> None:
    client = UpdateClient(
        tmp_path / "md", tls_repo.url, tls_repo.repo.root_bytes(), "x86_64", ca_bundle=tls_repo.other_ca
    )
    with pytest.raises(TransportError, match="cannot fetch metadata"):
        client.check("0.1.0")
    assert client.cloud_time() is None  # an unverified Date is never used as time


def test_cloud_date_over_verified_tls_unlocks_a_box_that_booted_in_1970(tls_repo: TlsRepo, tmp_path: Path) -> None:
    client = UpdateClient(tmp_path / "md", tls_repo.url, tls_repo.repo.root_bytes(), "x86_64", ca_bundle=tls_repo.ca)
    cloud = client.cloud_time()
    assert cloud is not None
    assert abs(cloud - datetime.now(UTC)) < timedelta(minutes=2)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    client.now = lambda: reference_time(ClockInputs(system_now=epoch, cloud_date=client.cloud_time())).now
    release = client.check("0.1.0")
    assert release is not None


def test_plain_http_date_is_not_trusted(tmp_path: Path) -> None:
    client = UpdateClient(tmp_path / "md", "http://127.0.0.1:9", b"{}", "x86_64")
    assert client.cloud_time() is None
