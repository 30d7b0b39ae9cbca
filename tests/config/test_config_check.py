"""`hub config check`: each kind of mistake gives a message naming file, key and expectation, and exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hub.config import ConfigError, load_secrets, load_settings
from tests.support.processes import HUB

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
[hub]
id = "thon-dong-1"
data_dir = "/var/lib/village-hub"

[village]
name = "Thôn Đông"
latitude = 19.69

[sync]
cloud_url = "https://cloud.example.vn"
batch_size = 200
"""


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HUB, "config", "check", str(path)], capture_output=True, text=True, timeout=30)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hub.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_good_config_passes(tmp_path: Path) -> None:
    result = check(write(tmp_path, GOOD))
    assert result.returncode == 0, result.stderr
    assert "thon-dong-1" in result.stdout


def test_example_config_is_valid() -> None:
    result = check(ROOT / "hub.example.toml")
    assert result.returncode == 0, result.stderr
    settings = load_settings(ROOT / "hub.example.toml")
    assert settings.village.name.startswith("Thôn")


@pytest.mark.parametrize(
    ("text", "line", "key", "expect"),
    [
        pytest.param(GOOD.replace('id = "thon-dong-1"\n', ""), 1, "hub.id", "missing required key", id="missing"),
        pytest.param(
            GOOD.replace("batch_size = 200", 'batch_size = "200"'),
            11,
            "sync.batch_size",
            "wrong type: expected an integer",
            id="wrong-type",
        ),
        pytest.param(
            GOOD.replace("latitude = 19.69", "latitud = 19.69"),
            7,
            "village.latitud",
            "did you mean 'latitude'",
            id="unknown-key",
        ),
        pytest.param(
            GOOD.replace("batch_size = 200", "batch_size = 0"),
            11,
            "sync.batch_size",
            "out of range: expected an integer ≥ 1, ≤ 1000",
            id="out-of-range",
        ),
        pytest.param(
            GOOD.replace("latitude = 19.69", "latitude = 119.69"), 7, "village.latitude", "≤ 90", id="latitude-range"
        ),
        pytest.param(GOOD.replace('id = "thon-dong-1"', 'id = "Thôn Đông"'), 2, "hub.id", "matching", id="bad-pattern"),
        pytest.param(GOOD + "[management]\nport = 70000\n", 13, "management.port", "≤ 65535", id="port-range"),
        pytest.param(
            GOOD.replace('id = "thon-dong-1"', 'id = "thon-dong-1"\ntimezone = "Asia/Hanoi"'),
            3,
            "hub.timezone",
            "unknown IANA time zone 'Asia/Hanoi'",
            id="unknown-timezone",
        ),
        pytest.param(GOOD + '[hub2]\nid = "x"\n', 12, "hub2", "unknown key (did you mean 'hub'?)", id="unknown-table"),
    ],
)
def test_bad_config_names_file_key_and_expectation(tmp_path: Path, text: str, line: int, key: str, expect: str) -> None:
    path = write(tmp_path, text)
    result = check(path)
    assert result.returncode == 2
    message = result.stderr
    assert f"{path}:{line}: key '{key}'" in message, message
    assert expect in message, message


def test_malformed_toml_gives_line_number(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('name = "Thôn Đông"', 'name = "Thôn Đông'))
    result = check(path)
    assert result.returncode == 2
    assert f"{path}:6: malformed TOML" in result.stderr, result.stderr


def test_several_mistakes_are_all_reported(tmp_path: Path) -> None:
    text = GOOD.replace("batch_size = 200", "batch_size = -1").replace("latitude = 19.69", "latitude = true")
    result = check(write(tmp_path, text))
    assert result.returncode == 2
    assert "sync.batch_size" in result.stderr
    assert "village.latitude" in result.stderr
    assert "got boolean true" in result.stderr


def test_missing_file(tmp_path: Path) -> None:
    result = check(tmp_path / "nope.toml")
    assert result.returncode == 2
    assert f"{tmp_path / 'nope.toml'}: file not found" in result.stderr


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_bytes(GOOD.encode("utf-8").replace("Thôn Đông".encode(), "Thôn Đông".encode("cp1258")))
    result = check(path)
    assert result.returncode == 2
    assert "not valid UTF-8" in result.stderr


def test_secrets_file_must_be_private(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('cloud_token = "0123456789abcdef0123"\n')
    secrets.chmod(0o644)
    path = write(tmp_path, GOOD.replace("[village]", f'secrets_file = "{secrets}"\n\n[village]'))
    result = check(path)
    assert result.returncode == 2
    assert f"{secrets}: secrets file is readable by others" in result.stderr
    assert "0600" in result.stderr
    secrets.chmod(0o600)
    assert check(path).returncode == 0
    assert load_secrets(secrets).cloud_token == "0123456789abcdef0123"


def test_secret_with_wrong_key_is_named(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('cloud_tokn = "0123456789abcdef0123"\n')
    secrets.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        load_secrets(secrets)
    assert "key 'cloud_tokn': unknown key (did you mean 'cloud_token'?)" in str(info.value)


def test_run_refuses_bad_config_with_the_same_message(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("batch_size = 200", "batch_size = 5000"))
    result = subprocess.run([HUB, "--config", str(path), "run"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert f"{path}:11: key 'sync.batch_size': out of range" in result.stderr


def test_environment_variable_selects_config(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    result = subprocess.run(
        [HUB, "config", "check"], capture_output=True, text=True, timeout=30, env={"VILLAGE_HUB_CONFIG": str(path)}
    )
    assert result.returncode == 0, result.stderr


def test_errors_inside_arrays_of_tables_point_at_the_item(tmp_path: Path) -> None:
    text = GOOD + (
        '\n[[relays.gpio]]\nname = "ampli"\npin = 17\nactive_high = false\n'
        '\n[[relays.gpio]]\nname = "loa khu 1"\npin = 99\nactive_high = false\n'
    )
    path = write(tmp_path, text)
    result = check(path)
    assert result.returncode == 2
    line = text.splitlines().index("pin = 99") + 1
    assert f"{path}:{line}: key 'relays.gpio.1.pin': out of range: expected an integer ≥ 0, ≤ 27" in result.stderr
