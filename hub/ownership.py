"""Who owns what root writes into the data directory: the service user, not root.

A technician runs `sudo hub provision …` or `sudo hub enroll …` on a box; a root-owned file (or data directory,
before the first start) there would be unreadable by the hub, which runs as village-hub.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from pathlib import Path

SERVICE_USER = "village-hub"  # systemd/village-hub.sysusers.conf


def service_owner(data_dir: Path) -> tuple[int, int] | None:
    """Who must own what root writes into the data dir: its owner, or else the service user (if it exists);
    None when we are not root (what we create is ours already)."""
    if os.geteuid() != 0:
        return None  # not root: whatever we create is ours, and we are the service (or a test)
    with contextlib.suppress(FileNotFoundError):
        st = data_dir.stat()
        if st.st_uid != 0:
            return st.st_uid, st.st_gid
    try:
        user = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None  # a development box without the service user: root runs the hub too
    return user.pw_uid, user.pw_gid


def hand_over(data_dir: Path, *paths: Path, created: bool = False) -> None:
    """Give `paths` (and the data dir itself when this run `created` it) to the service's owner, if we are root."""
    owner = service_owner(data_dir)
    if owner is None:
        return
    for path in (data_dir, *paths) if created else paths:
        os.chown(path, *owner)
