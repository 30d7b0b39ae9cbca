"""Slots for the OTA tests: small trees with a real manifest, and real hub slots (`python -m hub run` works).

A real slot is built with helper A's `ota.publish.build_slot(..., deps="pth")`: its own copy of the hub source
(so a test can give it another __version__, or break it) and this venv's site-packages for the dependencies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ota import slots
from ota.manifest import build_manifest, canonical_json

REPO = Path(__file__).resolve().parents[2]
PY_TAG = f"python{sys.version_info.major}.{sys.version_info.minor}"


def manifest_of(tree: Path, version: str) -> bytes:
    return canonical_json(build_manifest(tree, version, "x86_64", PY_TAG.removeprefix("python")))


def small_tree(path: Path, version: str, extra: dict[str, bytes] | None = None) -> bytes:
    """A tiny slot-like tree; returns its manifest bytes."""
    files = {
        "bin/run.sh": b"#!/bin/sh\necho " + version.encode() + b"\n",
        "lib/common.py": b"COMMON = 1\n" * 100,
        "lib/version.py": f"VERSION = {version!r}\n".encode(),
        **(extra or {}),
    }
    for name, data in files.items():
        dest = path / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    (path / "bin/run.sh").chmod(0o755)
    (path / "bin/python3").symlink_to("/usr/bin/python3")
    return manifest_of(path, version)


def blobs_of(tree: Path, manifest: bytes, into: Path) -> Path:
    """Stage every regular file of a tree as blobs/<sha256> (what the client's fetch leaves)."""
    import json

    into.mkdir(parents=True, exist_ok=True)
    for name, entry in json.loads(manifest)["files"].items():
        if "link" not in entry:
            (into / entry["sha256"]).write_bytes((tree / name).read_bytes())
    return into


def site_packages(slot: Path) -> Path:
    return slot / "lib" / PY_TAG / "site-packages"


def hub_slot(path: Path, version: str, *, break_import: bool = False, break_web: bool = False) -> bytes:
    """A real hub slot with its own source copy at `version`; returns its manifest (also written as release.json
    by `install_initial` for the first slot)."""
    from ota.publish import build_slot

    build_slot(path, REPO, deps="pth")
    site = site_packages(path)
    init = site / "hub" / "__init__.py"
    text = init.read_text()
    lines = [line for line in text.splitlines() if not line.startswith("__version__")]
    lines.append(f'__version__ = "{version}"')
    if break_import:
        lines.append("import village_hub_missing_dependency  # noqa")
    init.write_text("\n".join(lines) + "\n")
    if break_web:
        server = site / "hub" / "web" / "server.py"
        source = server.read_text()
        anchor = "    async def start(self) -> None:\n"
        assert source.count(anchor) >= 1, "hub/web/server.py changed: update the bad-release patch"
        server.write_text(source.replace(anchor, anchor + '        raise OSError("release bug: no listener")\n', 1))
    return manifest_of(path, version)


def install_initial(root: Path, version: str, **kw: Any) -> slots.Layout:
    """What the factory image holds: slot a built, described and current, the guard copied out (`adopt`)."""
    from ota.installer import adopt

    layout = slots.Layout(root)
    hub_slot(layout.slot("a"), version, **kw)
    adopt(root, version, "x86_64", PY_TAG.removeprefix("python"))
    return layout


class Runner:
    """systemd for one unit, as the shipped unit declares it: ExecStartPre=the guard (from its stable copy, by
    the base interpreter, no PYTHON* environment), ExecStart=`current/bin/python3 -P -m hub run`, Restart=always.
    NOTIFY_SOCKET is set (to a path nobody listens on) so that the hub exits on a restart request instead of
    re-executing its own interpreter, exactly as under systemd."""

    def __init__(self, root: Path, config: Path, log: Path, *, systemd: bool = True) -> None:
        self.systemd = systemd  # False: no NOTIFY_SOCKET, the hub re-executes itself (a container, the demo)
        self.root = root
        self.config = config
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.cwd = root
        self.isolated = True  # False: without -P, as a technician typing `python3 -m hub run` in a source tree

    def guard(self) -> None:
        base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        with self.log.open("ab") as log:
            subprocess.run(
                [base, "-E", "-s", str(self.root / "guard" / "guard.py"), "--root", str(self.root)],
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=30,
                check=False,
            )

    def start(self) -> None:
        self.guard()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        if self.systemd:
            env["NOTIFY_SOCKET"] = str(self.root / "no-systemd.sock")
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        with self.log.open("ab") as log:
            python = [str(self.root / "current" / "bin" / "python3"), *(["-P"] if self.isolated else [])]
            self.proc = subprocess.Popen(
                [*python, "-m", "hub", "--config", str(self.config), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(self.cwd),
            )
        self.starts += 1

    def keep_running(self) -> None:
        """Restart=always: call often; starts the unit again when the process has exited."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def wait_until(self, predicate: Any, timeout: float, what: str, interval: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.keep_running()
            if predicate():
                return
            time.sleep(interval)
        tail = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n--- log tail ---\n{tail}")
