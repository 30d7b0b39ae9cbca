"""`hub doctor`: one line per check, ok/warn/fail, exit 1 when anything fails."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from hub.enroll import write_token
from tests.support.processes import HUB, CloudProcess, HubProcess, write_hub_config


def doctor(config: Path) -> tuple[int, dict[str, tuple[str, str]]]:
    result = subprocess.run([HUB, "--config", str(config), "doctor"], capture_output=True, text=True, timeout=60)
    lines: dict[str, tuple[str, str]] = {}
    for line in result.stdout.splitlines():
        if line[:1] == " ":
            continue  # continuation of a multi-line message
        level, name, message = line[:5].strip(), line[6:22].rstrip(), line[23:]
        lines[name] = (level, message)
    return result.returncode, lines


def test_doctor_with_running_hub_and_cloud(tmp_path: Path) -> None:
    cloud = CloudProcess(tmp_path / "cloud")
    cloud.directory.mkdir()
    token = cloud.add_hub("thon-doctor")
    cloud.start()
    config = write_hub_config(tmp_path / "hub", "thon-doctor", cloud_url=cloud.url, token=token)
    hub = HubProcess(config).start()
    try:
        code, lines = doctor(config)
        assert code == 0, lines
        assert lines["config"][0] == "ok"
        assert lines["secrets"] == (
            "ok",
            f"{tmp_path / 'hub' / 'secrets.toml'} is private (0600) and holds a cloud token",
        )
        assert lines["data dir"][0] == "ok"
        assert lines["store"][0] == "ok"
        assert "integrity ok" in lines["store"][1]
        assert lines["hardware"][0] == "warn"
        assert "simulated hardware" in lines["hardware"][1]
        assert lines["cloud"][0] == "ok"
        assert lines["hub"][0] == "ok"
        for service in ("store", "web", "sync", "telemetry"):
            assert lines[f"  {service}"] == ("ok", "running"), lines

        cloud.kill()
        code, lines = doctor(config)
        assert code == 1
        assert lines["cloud"][0] == "fail"
        assert "unreachable" in lines["cloud"][1]
    finally:
        hub.kill()
        cloud.kill()


def test_doctor_reports_a_corrupt_store_and_a_stopped_hub(tmp_path: Path) -> None:
    config = write_hub_config(tmp_path / "hub", "thon-doctor2", cloud_url=None, token=None)
    hub = HubProcess(config).start()
    hub.terminate()
    db = tmp_path / "hub" / "data" / "hub.sqlite3"
    raw = bytearray(db.read_bytes())
    raw[100:4096] = b"\xff" * (4096 - 100)
    db.write_bytes(bytes(raw))
    code, lines = doctor(config)
    assert code == 1
    assert lines["store"][0] == "fail"
    assert lines["hub"] == ("warn", f"not running (nothing answers at http://127.0.0.1:{hub.port}/api/health)")
    assert lines["cloud"][0] == "warn"
    assert db.read_bytes() == bytes(raw)  # doctor only looks; it never repairs or moves


def test_doctor_sees_an_enrolled_box_and_a_provisioned_data_dir(tmp_path: Path) -> None:
    config = write_hub_config(tmp_path / "hub", "thon-moi", cloud_url=None, token=None)
    data_dir = tmp_path / "hub" / "data"
    provisioned = subprocess.run(
        [HUB, "--config", str(config), "provision", "--user", "kythuat", "--password-stdin"],
        input="mật-khẩu-nhà-văn-hóa-2026\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert provisioned.returncode == 0, provisioned.stderr
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o750  # created by `hub provision`: village data, not others'
    _, lines = doctor(config)
    assert lines["data dir"][0] == "ok", lines["data dir"]
    assert lines["secrets"][0] == "warn"
    assert "hub enroll CODE" in lines["secrets"][1]
    token = write_token(data_dir, "token-from-the-enrollment")
    _, lines = doctor(config)
    assert lines["secrets"] == ("ok", f"enrolled: the cloud token is in {token} (0600)")
    token.chmod(0o644)
    code, lines = doctor(config)
    assert code == 1
    assert lines["secrets"] == ("fail", f"{token} is readable by others (0644); expected 0600")


def test_doctor_on_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[hub]\nid = "thon-x"\n[sync]\nbatch_size = 0\n')
    code, lines = doctor(config)
    assert code == 1
    assert lines["config"][0] == "fail"
    assert "sync.batch_size" in lines["config"][1]
    assert "hardware" in lines


@pytest.mark.inference  # needs the models scripts/bootstrap fetches (not fetched in the arm64 lane)
def test_doctor_checks_the_camera_model_only_when_there_are_cameras(tmp_path: Path) -> None:
    from hub.doctor import run_checks

    plain = write_hub_config(tmp_path / "plain", "thon-plain", cloud_url=None, token=None)
    assert not [c for c in run_checks(plain) if c.name == "camera model"]
    extra = '\n[[camera.cameras]]\nname = "cong"\nurl = "/nonexistent/clip.mp4"\n'
    with_camera = write_hub_config(tmp_path / "cam", "thon-cam", cloud_url=None, token=None, extra=extra)
    [check] = [c for c in run_checks(with_camera) if c.name == "camera model"]
    assert check.level == "ok", check  # scripts/bootstrap fetched and verified it
    assert "pose_detection.tflite present, hash ok" in check.message
