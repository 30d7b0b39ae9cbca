"""The demo's updates: the hub runs from update slot a, and the demo cloud serves a TUF repository holding one
newer release (the same source with a bumped version), which waits for the maintenance window or the
technician page's "Install now".

Small slots for a demo: the hub's own packages copied, dependencies through a .pth to this environment
(`ota.publish build-slot --deps pth`); a box gets full slots (`--deps pip`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ota import slots
from ota.installer import adopt
from ota.publish import build_slot
from ota.repository import Repository

ARCH = os.uname().machine
PY = f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class DemoOta:
    root: Path
    repo: Path
    trusted_root: Path
    current_version: str
    newer_version: str

    @property
    def python(self) -> Path:
        return self.root / "current" / "bin" / "python3"

    def config(self, repo_url: str) -> str:
        """The [ota] table for the demo's hub.toml (the demo cloud speaks plain HTTP on loopback, so there is no
        TLS Date to trust and no NTP flag in a container: the demo trusts the system clock)."""
        return (
            f'\n[ota]\nroot = "{self.root}"\nrepo_url = "{repo_url}"\ntrusted_root = "{self.trusted_root}"\n'
            "check_interval_s = 30.0\ntrust_system_clock = true\n"
        )

    def guard(self) -> None:
        """What the unit's ExecStartPre does before each start."""
        base = getattr(sys, "_base_executable", sys.executable)
        guard = self.root / "guard" / "guard.py"
        subprocess.run([base, "-E", "-s", str(guard), "--root", str(self.root)], check=False, timeout=60)


def _slot(path: Path, source: Path, version: str) -> None:
    build_slot(path, source, deps="pth")
    init = path / "lib" / f"python{PY}" / "site-packages" / "hub" / "__init__.py"
    init.write_text(re.sub(r"^__version__ = .*$", f'__version__ = "{version}"', init.read_text(), flags=re.M))


def prepare(directory: Path, source: Path, version: str) -> DemoOta:
    """Slot a at `version` (once), and a repository with `version`.1 published (once)."""
    root = directory / "ota"
    newer = f"{version}.1"
    layout = slots.Layout(root)
    if layout.active() is None:
        _slot(layout.slot("a"), source, version)
        adopt(root, version, ARCH, PY)
    repo_dir, keys = directory / "ota-repo", directory / "ota-keys"
    if not (repo_dir / "metadata" / "root.json").exists():
        repo = Repository.init(repo_dir, keys)
        build = directory / "ota-build"
        _slot(build, source, newer)
        repo.add_release(build, newer, ARCH, PY)
    else:
        repo = Repository(repo_dir, keys)
        repo.bump_timestamp()  # the timestamp is short-lived: a demo started again a day later still checks
    trusted = directory / "ota-root.json"
    trusted.write_bytes(repo.root_bytes())
    return DemoOta(root, repo_dir, trusted, version, newer)
