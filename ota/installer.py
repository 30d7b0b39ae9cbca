"""Build the inactive slot from a release manifest: every file from a verified blob or from the active slot.

Resumable and power-cut safe: the slot's `release.json` is removed first and written last, so a slot is either
complete (every file hashed, fsynced) or has no manifest and is never switched to. A file already in place
with the right hash and size is kept, so an interrupted build resumes where it stopped. Files the manifest
does not list are removed (what an older release left behind).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ota.slots import RELEASE_NAME, Layout, SlotError, fsync_dir, other, switch, write_atomic

CHUNK = 1024 * 1024


class InstallError(RuntimeError):
    """The slot could not be built; the message names the file and what was wrong."""


@dataclass(frozen=True)
class Built:
    slot: str
    version: str
    files: int
    reused: int  # files already in place, linked or copied from the active slot
    from_blobs: int
    resumed: bool


def _manifest(manifest_bytes: bytes) -> dict[str, Any]:
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as exc:
        raise InstallError(f"release manifest is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise InstallError("release manifest has no 'files' table")
    if not manifest.get("version"):
        raise InstallError("release manifest has no 'version'")
    return manifest


def safe_relative(name: str) -> PurePosixPath:
    """A manifest path, refused if it could land outside the slot (absolute, '..', empty parts)."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or any(part in ("", ".", "..") for part in name.split("/")):
        raise InstallError(f"release manifest names an unsafe path {name!r}")
    if path.name == RELEASE_NAME and len(path.parts) == 1:
        raise InstallError(f"release manifest lists {RELEASE_NAME} itself")
    return path


def file_sha256(path: Path, limit: int | None = None) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            size += len(chunk)
            if limit is not None and size > limit:
                return "", size  # longer than declared: not the file, and not read further
            digest.update(chunk)
    return digest.hexdigest(), size


def _matches(path: Path, entry: dict[str, Any]) -> bool:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return False
    if "link" in entry:
        return stat.S_ISLNK(st.st_mode) and str(path.readlink()) == str(entry["link"])
    if not stat.S_ISREG(st.st_mode) or st.st_size != int(entry["size"]):
        return False
    return file_sha256(path, int(entry["size"]))[0] == str(entry["sha256"])


def _copy_verified(source: Path, dest: Path, entry: dict[str, Any]) -> None:
    """Copy into a temporary name, hashing as it goes; rename into place only if hash and size agree."""
    tmp = dest.with_name(f".{dest.name}.part")
    digest = hashlib.sha256()
    size, limit = 0, int(entry["size"])
    with source.open("rb") as src, tmp.open("wb") as dst:
        while chunk := src.read(CHUNK):
            size += len(chunk)
            if size > limit:
                break
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    if size != limit or digest.hexdigest() != entry["sha256"]:
        tmp.unlink(missing_ok=True)
        raise InstallError(f"{source} does not match the manifest's sha256/size for {dest.name}")
    tmp.chmod(int(entry.get("mode", 0o644)) & 0o777)
    tmp.replace(dest)


def _link_or_copy(source: Path, dest: Path, entry: dict[str, Any]) -> None:
    """A file the active slot already has: hard-link it (slots never modify a file in place, they replace it),
    after checking it still has the manifest's hash; copy when linking is not possible."""
    mode = int(entry.get("mode", 0o644)) & 0o777
    if (source.stat().st_mode & 0o777) == mode and _matches(source, entry):
        tmp = dest.with_name(f".{dest.name}.part")
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            pass
        else:
            tmp.replace(dest)
            return
    _copy_verified(source, dest, entry)


def _make_folder(slot_dir: Path, folder: Path) -> None:
    """mkdir -p inside the slot, replacing what an older release left there as a file or link (a module that
    became a package)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return
    except (FileExistsError, NotADirectoryError):
        pass
    here = slot_dir
    for part in folder.relative_to(slot_dir).parts:
        here = here / part
        if here.is_symlink() or (here.exists() and not here.is_dir()):
            here.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def build_slot(
    layout: Layout,
    manifest_bytes: bytes,
    blobs: Path,
    *,
    target: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Built:
    """Build the inactive slot (or `target`) for a release. `blobs` holds verified downloads as <sha256>."""
    manifest = _manifest(manifest_bytes)
    active = layout.active()
    slot = target or (other(active) if active else "a")
    if slot == active:
        raise SlotError(f"refusing to build into the active slot {slot}")
    slot_dir = layout.slot(slot)
    version = str(manifest["version"])
    existing = slot_dir / RELEASE_NAME
    if existing.exists() and existing.read_bytes() == manifest_bytes:
        count = len(manifest["files"])
        return Built(slot, version, count, count, 0, resumed=True)
    slot_dir.mkdir(parents=True, exist_ok=True)
    existing.unlink(missing_ok=True)  # from here on the slot is incomplete until the last step
    fsync_dir(slot_dir)

    have = _index_active(layout, active)
    files: dict[str, dict[str, Any]] = manifest["files"]
    reused = from_blobs = 0
    resumed = False
    dirs: set[Path] = {slot_dir}
    for n, (name, entry) in enumerate(sorted(files.items()), 1):
        rel = safe_relative(name)
        dest = slot_dir / rel
        _make_folder(slot_dir, dest.parent)
        dirs.add(dest.parent)
        if _matches(dest, entry):
            resumed = True
            reused += 1
        elif "link" in entry:
            tmp = dest.with_name(f".{dest.name}.part")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(entry["link"])
            tmp.replace(dest)
        else:
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            sha = str(entry["sha256"])
            blob = blobs / sha
            if sha in have:
                _link_or_copy(have[sha], dest, entry)
                reused += 1
            elif blob.exists():
                _copy_verified(blob, dest, entry)
                from_blobs += 1
            else:
                raise InstallError(f"{name}: blob {sha} is neither downloaded nor in the active slot")
        if progress is not None:
            progress(n, len(files))
    _remove_unlisted(slot_dir, {str(safe_relative(name)) for name in files})
    for directory in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(directory)
    write_atomic(existing, manifest_bytes)
    return Built(slot, version, len(files), reused, from_blobs, resumed)


def _index_active(layout: Layout, active: str | None) -> dict[str, Path]:
    """sha256 -> a file of the active slot with that content, from its manifest (checked again before use)."""
    if active is None:
        return {}
    release = layout.release(active)
    if not release:
        return {}
    out: dict[str, Path] = {}
    for name, entry in release.get("files", {}).items():
        if "link" in entry or "sha256" not in entry:
            continue
        with contextlib.suppress(InstallError):
            out.setdefault(str(entry["sha256"]), layout.slot(active) / safe_relative(name))
    return out


def _remove_unlisted(slot_dir: Path, listed: set[str]) -> None:
    for dirpath, dirnames, filenames in os.walk(slot_dir, topdown=False):
        base = Path(dirpath)
        for filename in filenames:
            path = base / filename
            rel = path.relative_to(slot_dir).as_posix()
            if rel != RELEASE_NAME and rel not in listed:
                path.unlink()
        for dirname in dirnames:
            path = base / dirname
            if path.is_symlink():
                if path.relative_to(slot_dir).as_posix() not in listed:
                    path.unlink()
            elif not any(path.iterdir()):
                path.rmdir()


def have_blob(layout: Layout) -> Callable[[str], Path | None]:
    """For the client's plan: a file with this sha256 already on the box (the active slot), if any."""
    index = _index_active(layout, layout.active())

    def have(sha256: str) -> Path | None:
        return index.get(sha256)

    return have


def adopt(root: Path, version: str, arch: str, python: str, slot: str = "a") -> Path:
    """First install (the factory image): describe an already built slot, point `current` at it and copy the
    boot guard out. Later releases arrive through the update service."""
    from ota.manifest import build_manifest, canonical_json

    layout = Layout(root)
    slot_dir = layout.slot(slot)
    if not (slot_dir / "bin" / "python3").exists():
        raise InstallError(
            f"{slot_dir} is not a slot (no bin/python3): build it with `python -m ota.publish build-slot`"
        )
    manifest = build_manifest(slot_dir, version, arch, python)
    write_atomic(slot_dir / RELEASE_NAME, canonical_json(manifest))
    switch(layout, slot)
    layout.guard_dir.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).parent
    for name in ("guard.py", "slots.py"):
        write_atomic(layout.guard_dir / name, (here / name).read_bytes())
    return slot_dir


def main(argv: list[str] | None = None) -> int:
    import argparse
    import platform
    import sys

    parser = argparse.ArgumentParser(prog="ota.installer", description="A/B slot installation")
    sub = parser.add_subparsers(dest="command", required=True)
    first = sub.add_parser("adopt", help="make an already built slot the running one (first install)")
    first.add_argument("--root", type=Path, default=Path("/opt/village-hub"))
    first.add_argument("--slot", choices=("a", "b"), default="a")
    first.add_argument("--version", required=True)
    first.add_argument("--arch", default=platform.machine())
    first.add_argument("--python", default=f"{sys.version_info.major}.{sys.version_info.minor}")
    args = parser.parse_args(argv)
    try:
        slot_dir = adopt(args.root, args.version, args.arch, args.python, args.slot)
    except (InstallError, SlotError, OSError) as exc:
        print(f"ota.installer: {exc}", file=sys.stderr)
        return 1
    print(f"{args.root / 'current'} -> {slot_dir} ({args.version}); guard in {args.root / 'guard'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
