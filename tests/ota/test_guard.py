"""The boot guard: counts starts of a trial slot and rolls back after too many; runs from a stable copy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ota import guard, slots
from tests.ota.slotkit import REPO, small_tree


def _trial(root: Path) -> slots.Layout:
    layout = slots.Layout(root)
    for name, version in (("a", "1.0.0"), ("b", "1.1.0")):
        manifest = small_tree(layout.slot(name), version)
        (layout.slot(name) / slots.RELEASE_NAME).write_bytes(manifest)
    slots.switch(layout, "a")
    slots.begin_trial(layout, "b")
    return layout


def test_rolls_back_after_max_boots(tmp_path: Path) -> None:
    layout = _trial(tmp_path)
    for boot in (1, 2, 3):
        said = guard.guard(tmp_path, max_boots=3)
        assert f"start {boot}/3" in said[-1]
        assert layout.active() == "b"
    said = guard.guard(tmp_path, max_boots=3)
    assert "rolled back 1.1.0" in said[-1]
    assert layout.active() == "a"
    state = slots.load_state(layout)
    assert state["last_result"]["result"] == "rolled-back"
    assert state["last_result"]["failed_version"] == "1.1.0"
    assert state["trial"] is None
    assert guard.guard(tmp_path, max_boots=3) == []  # nothing on trial any more


def test_max_boots_comes_from_the_state_the_hub_wrote(tmp_path: Path) -> None:
    layout = _trial(tmp_path)
    with slots.locked(layout) as state:
        state["max_boots"] = 1
    guard.guard(tmp_path)
    guard.guard(tmp_path)
    assert layout.active() == "a"


def test_the_stable_copy_runs_with_the_bare_system_interpreter(tmp_path: Path) -> None:
    """As the unit runs it: the copy in <root>/guard/, no venv, no PYTHON* variables, no hub installed."""
    layout = _trial(tmp_path / "root")
    layout.guard_dir.mkdir()
    for name in ("guard.py", "slots.py"):
        (layout.guard_dir / name).write_bytes((REPO / "ota" / name).read_bytes())
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    env = {"PATH": "/usr/bin:/bin"}
    for _ in range(3):
        out = subprocess.run(
            [base, "-E", "-s", str(layout.guard_dir / "guard.py"), "--root", str(layout.root), "--max-boots", "2"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            check=True,
            timeout=30,
        )
    assert "rolled back 1.1.0" in out.stderr
    assert layout.active() == "a"


def test_a_guard_failure_never_blocks_the_start(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / slots.STATE_NAME).mkdir()  # a state "file" that cannot be read or replaced
    assert guard.main(["--root", str(root)]) == 0


def test_no_root_is_nothing_to_guard(tmp_path: Path) -> None:
    assert "nothing to guard" in guard.guard(tmp_path / "absent")[0]
