"""Enrollment with a one-time code, between real processes: `hub-cloud add-enrollment`, `hub enroll CODE`, and a
hub that picks the new token up while it runs; a used, unknown or mistyped code is refused with a clear message;
the install wizard's code enrolls the box by itself."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hub.enroll import read_token, write_token
from hub.store import Store, Transaction
from tests.support.processes import HUB, HUB_CLOUD, CloudProcess, HubProcess, wait_until, write_hub_config

HUB_ID = "thon-moi-1"


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[CloudProcess]:
    c = CloudProcess(tmp_path / "cloud").start()
    yield c
    c.stop()


def add_enrollment(cloud: CloudProcess, hub_id: str) -> str:
    out = subprocess.run(
        [HUB_CLOUD, "--db", str(cloud.db), "add-enrollment", hub_id], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out
    code = out.stdout.strip()
    assert re.fullmatch(r"[A-Z0-9]{4}(-[A-Z0-9]{4}){3}", code), code
    return code


def enroll(config: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUB, "--config", str(config), "enroll", code], capture_output=True, text=True, timeout=60)


def test_a_hub_enrolled_while_running_uses_its_new_token_at_once(cloud: CloudProcess, tmp_path: Path) -> None:
    config = write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=cloud.url, token=None)
    hub = HubProcess(config).start()
    try:
        problems = hub.health()["services"]["commands"]["problems"]
        assert any(p.startswith("not enrolled") for p in problems), problems
        code = add_enrollment(cloud, HUB_ID)
        # typed by a technician: lower case, spaces instead of dashes
        done = enroll(config, code.lower().replace("-", " "))
        assert done.returncode == 0, done
        assert f"enrolled {HUB_ID}" in done.stdout
        token_file = hub.data_dir / "cloud-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        wait_until(lambda: cloud.hub(HUB_ID)["records"] >= 1, 30, what="records with the enrolled token")
        wait_until(lambda: hub.health()["services"]["commands"]["details"]["link"] == "connected", 30, what="the inbox")
        assert not hub.health()["services"]["commands"]["problems"]
        again = enroll(config, code)
        assert again.returncode == 1
        assert "already used" in again.stderr
        assert "HTTP 410" in again.stderr
        unknown = enroll(config, "AAAA-BBBB-CCCC-DDDD")
        assert unknown.returncode == 1
        assert "unknown enrollment code" in unknown.stderr
    finally:
        hub.terminate()
    # the token never appears in the hub's log
    assert token_file.read_text().strip() not in hub.read_log()


def test_a_code_for_another_hub_is_refused_and_stays_usable(cloud: CloudProcess, tmp_path: Path) -> None:
    config = write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=cloud.url, token=None)
    code = add_enrollment(cloud, "thon-khac")
    wrong = enroll(config, code)
    assert wrong.returncode == 1
    assert "this code is for hub 'thon-khac'" in wrong.stderr
    other = write_hub_config(tmp_path / "other", "thon-khac", cloud_url=cloud.url, token=None)
    assert enroll(other, code).returncode == 0


def test_enroll_without_a_cloud_url_says_so(tmp_path: Path) -> None:
    config = write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=None, token=None)
    out = enroll(config, "AAAA-BBBB-CCCC-DDDD")
    assert out.returncode == 1
    assert "no sync.cloud_url configured" in out.stderr


def _wizard_code(code: str) -> Callable[[Transaction], None]:
    def op(tx: Transaction) -> None:
        tx.set_state("install.enrollment", {"code": code, "at": 0})

    return op


def test_the_install_wizards_code_enrolls_the_box(cloud: CloudProcess, tmp_path: Path) -> None:
    config = write_hub_config(tmp_path / "hub", HUB_ID, cloud_url=cloud.url, token=None)
    data = tmp_path / "hub" / "data"
    store = Store.open(data)
    try:
        store.write_blocking(_wizard_code(add_enrollment(cloud, HUB_ID)))
    finally:
        store.close()
    hub = HubProcess(config).start()
    try:
        wait_until(lambda: (data / "cloud-token").exists(), 30, what="the token file")
        wait_until(lambda: cloud.hub(HUB_ID)["records"] >= 1, 30, what="records")
        assert hub.health()["services"]["commands"]["details"]["enroll_error"] is None
    finally:
        hub.terminate()
    kinds = [r["kind"] for r in cloud.all_records(HUB_ID)]
    assert "hub.enrolled" in kinds
    store = Store.open(data)
    try:
        assert store.get_state("install.enrollment") is None  # a one-time code is not kept
    finally:
        store.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as `sudo hub enroll` on a box")
def test_a_token_written_by_root_belongs_to_the_data_dirs_owner(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o750)
    os.chown(data_dir, 4321, 4321)  # what tmpfiles made for the village-hub user
    old = write_token(data_dir, "the-first-token")
    os.chown(old, 0, 0)  # a token left by an earlier version that wrote it as root
    path = write_token(data_dir, "tok-đổi-mới")
    info = path.stat()
    assert (info.st_uid, info.st_gid) == (4321, 4321)  # the service can read it
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert read_token(data_dir) == "tok-đổi-mới"
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".cloud-token.")]  # no temporary file left
