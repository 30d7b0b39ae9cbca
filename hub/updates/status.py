"""`hub ota status`: the slots, versions, trial and last result, read from the update state on disk.

Works whether or not the hub runs (the state file and the `current` link are the truth the guard uses too).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from hub import __version__
from ota import balena, slots


def status(root: Path) -> dict[str, Any]:
    layout = slots.Layout(root)
    state = slots.load_state(layout) if layout.state_path.exists() else slots.empty_state()
    active = layout.active()
    previous = state.get("previous")
    return {
        "root": str(root),
        "installed": active is not None,
        "balena": balena.detect() is not None,
        "slot": active,
        "version": layout.version(active) if active else __version__,
        "previous_slot": previous,
        "previous_version": layout.version(previous),
        "trial": state.get("trial"),
        "last_result": state.get("last_result"),
        "failed_versions": state.get("failed_versions", []),
        "history": state.get("history", [])[-5:],
    }


def _when(at: Any) -> str:
    if not isinstance(at, int | float):
        return "?"
    return dt.datetime.fromtimestamp(at).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def render(info: dict[str, Any]) -> str:
    if not info["installed"]:
        mode = "balenaOS: the supervisor installs updates" if info["balena"] else "not installed in A/B slots"
        return f"version   {info['version']}\nupdates   {mode} ({info['root']})"
    lines = [
        f"version   {info['version']} (slot {info['slot']})",
        f"previous  {info['previous_version'] or '-'} (slot {info['previous_slot'] or '-'})",
    ]
    trial = info["trial"]
    if trial:
        lines.append(
            f"trial     {trial.get('version')} in slot {trial.get('slot')}, started {_when(trial.get('started_at'))}, "
            f"{trial.get('boots', 0)} start(s); not committed yet"
        )
    else:
        lines.append("trial     none (committed)")
    last = info["last_result"]
    if last:
        detail = {k: v for k, v in last.items() if k not in ("result", "at")}
        lines.append(
            f"last      {last.get('result')} at {_when(last.get('at'))}: {json.dumps(detail, ensure_ascii=False)}"
        )
    else:
        lines.append("last      no update installed yet")
    if info["failed_versions"]:
        lines.append(f"refused   {', '.join(map(str, info['failed_versions']))} (rolled back; skipped until newer)")
    return "\n".join(lines)


def restart_command(root: Path, argv: list[str]) -> list[str]:
    """The command a hub outside systemd (a container, the demo) re-executes itself with on a restart request.
    From an update slot that is what the unit does: the boot guard, then whichever slot `current` now points
    at (an install or a rollback may just have switched it), never the interpreter of the slot it ran from."""
    import subprocess
    import sys

    layout = slots.Layout(root)
    if layout.running_from_slot(sys.prefix) is None:
        return [sys.executable, "-m", "hub", *argv]
    guard = layout.guard_dir / "guard.py"
    if guard.exists():
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-E", "-s", str(guard), "--root", str(root)], check=False, timeout=60)
    return [str(layout.current / "bin" / "python3"), "-P", "-m", "hub", *argv]
