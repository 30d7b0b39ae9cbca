"""The firmware on MicroPython itself and against MicroPython's stubs (what scripts/check-micropython runs).

The self-test runs on the real MicroPython (the unix port from scripts/check-micropython's typings dir) when it
is installed, and under CPython always: the shared modules must pass on both. The type check must catch
planted mistakes that CPython's typeshed would let through, or it proves nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FIRMWARE = ROOT / "drivers" / "micropython"
CHECK = ROOT / "scripts" / "check-micropython"
UNIX_PORT = FIRMWARE / "typings" / "unix" / ".installed"


def test_selftest_passes_under_cpython() -> None:
    result = subprocess.run(
        [sys.executable, "selftest.py"], cwd=FIRMWARE, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "selftest: 5 passed, 0 failed" in result.stdout


@pytest.mark.firmware_tools
@pytest.mark.skipif(
    not UNIX_PORT.is_file(), reason="MicroPython's unix port not installed: run scripts/check-micropython"
)
def test_selftest_passes_on_micropython() -> None:
    result = subprocess.run(
        [sys.executable, str(FIRMWARE / "run_unix.py"), str(FIRMWARE / "selftest.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "selftest: 5 passed, 0 failed" in result.stdout


@pytest.mark.firmware_tools
def test_micropython_runs_a_failing_script_as_a_failure(tmp_path: Path) -> None:
    if not UNIX_PORT.is_file():
        pytest.skip("MicroPython's unix port not installed: run scripts/check-micropython")
    script = tmp_path / "fails.py"
    script.write_text("import sys\nfrom vhnode import protocol\nassert protocol.crc16(b'x') == 0, 'planted'\n")
    result = subprocess.run(
        [sys.executable, str(FIRMWARE / "run_unix.py"), str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "planted" in result.stdout + result.stderr


# One at a time: both run scripts/check-micropython, which may install the stubs on first use.
@pytest.mark.firmware_tools
@pytest.mark.xdist_group("check-micropython")
def test_type_check_catches_planted_mistakes(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import machine\n"
        "uart = machine.UART(1, baudrate=9600)\n"
        "uart.write_line(b'x')\n"  # no such method
        "pin = machine.Pin(2, machine.Pin.OUTPUT)\n"  # it is Pin.OUT
        "count: int = uart.read(4)\n"  # bytes | None
        "import dataclasses\n"  # MicroPython has none
    )
    result = subprocess.run([str(CHECK), str(planted)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    for port in ("esp32", "rp2"):
        assert f"mypy, port {port}" in out
    assert out.count('"UART" has no attribute "write_line"') == 2, out
    assert out.count('has no attribute "OUTPUT"') == 2, out
    assert out.count('Incompatible types in assignment (expression has type "bytes | None"') == 2, out
    assert out.count('module named "dataclasses"') == 2, out


@pytest.mark.firmware_tools
@pytest.mark.xdist_group("check-micropython")
def test_firmware_type_checks_clean() -> None:
    result = subprocess.run([str(CHECK)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("Success: no issues found") == 2
