"""The boot guard: run before every start of the hub (systemd ExecStartPre), counts the starts of a slot on
trial and rolls back to the previous slot after too many.

    /usr/bin/python3 -E -s /opt/village-hub/guard/guard.py --root /opt/village-hub      (what the unit runs)
    python -m ota.guard --root R                                                       (the same, from a tree)

Why it runs from `<root>/guard/` with the system interpreter and the standard library only: a release whose
hub cannot even be imported (a broken dependency, a syntax error) must still be rolled back, so the guard may
depend on nothing inside a slot. The hub copies guard.py and slots.py there only from a committed slot (see
hub/updates/service.py), so a trial release never replaces the guard that judges it.

It also repairs the layout after a power cut (a `current` link to an incomplete slot, a trial whose switch never
happened), and takes a snapshot of the store before a trial version first opens it. It always exits 0: a guard
failure must not keep the hub from starting.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__:
    from ota import slots
else:  # run as a file from <root>/guard/, next to its copy of slots.py
    import slots  # type: ignore[no-redef,import-not-found,unused-ignore]

DEFAULT_MAX_BOOTS = 3


def guard(root: Path, max_boots: int | None = None) -> list[str]:
    """One start: returns what it did (also written to stderr, which the journal keeps)."""
    layout = slots.Layout(root)
    said: list[str] = []
    if not layout.root.exists():
        return [f"no OTA root at {root}: nothing to guard"]
    with slots.locked(layout) as state:
        said += slots.reconcile(layout, state)
        trial = state.get("trial")
        if not trial:
            return said
        limit = max_boots or int(state.get("max_boots") or DEFAULT_MAX_BOOTS)
        trial["boots"] = int(trial.get("boots", 0)) + 1
        if trial["boots"] == 1:
            try:
                said.append(f"store snapshot: {slots.snapshot_store(layout, state, str(trial['version']))}")
            except Exception as exc:  # a snapshot failure must not stop the start
                said.append(f"store snapshot failed: {exc}")
        if trial["boots"] > limit:
            reason = f"did not stay up: started {trial['boots'] - 1} times without becoming healthy"
            result = slots.rollback(layout, state, reason)
            said.append(f"rolled back {trial.get('version')}: {reason} ({result})")
        else:
            said.append(f"trial of {trial.get('version')} in slot {trial.get('slot')}: start {trial['boots']}/{limit}")
            slots.record(state, "ota.trial_boot", version=trial.get("version"), boots=trial["boots"], limit=limit)
    return said


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ota.guard", description="count trial starts; roll back after too many")
    parser.add_argument("--root", type=Path, required=True, help="OTA root (holds slots/, current, ota-state.json)")
    parser.add_argument("--max-boots", type=int, default=None, help="starts allowed (default: from the state, 3)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        for line in guard(args.root, args.max_boots):
            print(f"ota guard: {line}", file=sys.stderr)
    except Exception as exc:  # see the module docstring: never block the start
        print(f"ota guard: failed ({exc.__class__.__name__}: {exc}); starting anyway", file=sys.stderr)
    print(f"ota guard: done in {time.monotonic() - started:.3f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
