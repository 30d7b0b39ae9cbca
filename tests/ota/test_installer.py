"""Building the inactive slot from a manifest: verified, incremental, resumable, never half-switched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ota import slots
from ota.installer import InstallError, build_slot, have_blob
from tests.ota.slotkit import blobs_of, small_tree


def _active(root: Path, version: str = "1.0.0") -> slots.Layout:
    layout = slots.Layout(root)
    manifest = small_tree(layout.slot("a"), version)
    (layout.slot("a") / slots.RELEASE_NAME).write_bytes(manifest)
    slots.switch(layout, "a")
    return layout


def test_builds_the_inactive_slot_reusing_the_active_slots_files(tmp_path: Path) -> None:
    layout = _active(tmp_path / "root")
    src = tmp_path / "src"
    manifest = small_tree(src, "1.1.0", extra={"lib/new.py": b"NEW = 1\n"})
    wanted = set(json.loads(manifest)["files"])
    blobs = tmp_path / "staging" / "blobs"
    # Only what the active slot lacks is downloaded: the changed version file and the new one.
    have = have_blob(layout)
    missing = {
        e["sha256"] for e in json.loads(manifest)["files"].values() if "link" not in e and have(e["sha256"]) is None
    }
    assert len(missing) == 3  # run.sh (echoes the version), version.py, new.py; common.py is reused
    staged = blobs_of(src, manifest, blobs)
    for blob in staged.iterdir():
        if blob.name not in missing:
            blob.unlink()
    built = build_slot(layout, manifest, blobs)
    assert (built.slot, built.version, built.from_blobs) == ("b", "1.1.0", 3)
    slot = layout.slot("b")
    assert (slot / slots.RELEASE_NAME).read_bytes() == manifest
    assert (slot / "lib/new.py").read_bytes() == b"NEW = 1\n"
    assert (slot / "bin/python3").readlink() == Path("/usr/bin/python3")
    assert (slot / "bin/run.sh").stat().st_mode & 0o777 == 0o755
    on_disk = {p.relative_to(slot).as_posix() for p in slot.rglob("*") if p.is_file() or p.is_symlink()}
    assert on_disk == wanted | {slots.RELEASE_NAME}
    assert layout.active() == "a"  # building never switches


def test_a_corrupt_blob_is_refused_and_the_slot_stays_incomplete(tmp_path: Path) -> None:
    layout = _active(tmp_path / "root")
    src = tmp_path / "src"
    manifest = small_tree(src, "1.1.0")
    blobs = blobs_of(src, manifest, tmp_path / "blobs")
    entry = json.loads(manifest)["files"]["lib/version.py"]
    (blobs / entry["sha256"]).write_bytes(b"VERSION = 'evil'\n")
    with pytest.raises(InstallError, match="does not match"):
        build_slot(layout, manifest, blobs)
    assert layout.release("b") is None
    assert not (layout.slot("b") / "lib" / "version.py").exists()


def test_a_missing_blob_names_the_file(tmp_path: Path) -> None:
    layout = _active(tmp_path / "root")
    src = tmp_path / "src"
    manifest = small_tree(src, "1.1.0")
    with pytest.raises(InstallError, match=r"bin/run\.sh: blob .* neither downloaded"):
        build_slot(layout, manifest, tmp_path / "empty")


@pytest.mark.parametrize("bad", ["../escape.py", "/etc/passwd", "a/../../b", "release.json"])
def test_unsafe_paths_in_a_manifest_are_refused(tmp_path: Path, bad: str) -> None:
    layout = _active(tmp_path / "root")
    manifest = json.dumps({"version": "2.0.0", "files": {bad: {"sha256": "0" * 64, "size": 1, "mode": 0o644}}})
    with pytest.raises(InstallError, match=r"unsafe path|lists release\.json"):
        build_slot(layout, manifest.encode(), tmp_path)
    assert not (tmp_path / "escape.py").exists()


def test_an_interrupted_build_resumes_and_stale_files_go(tmp_path: Path) -> None:
    layout = _active(tmp_path / "root")
    src = tmp_path / "src"
    manifest = small_tree(src, "1.1.0")
    blobs = blobs_of(src, manifest, tmp_path / "blobs")
    slot_b = layout.slot("b")
    # What a power cut mid-unpack leaves: some files written, a .part, a leftover of an older release.
    (slot_b / "lib").mkdir(parents=True)
    (slot_b / "lib/version.py").write_bytes((src / "lib/version.py").read_bytes())
    (slot_b / "lib/.common.py.part").write_bytes(b"COMMON")
    (slot_b / "lib/old_module.py").write_bytes(b"OLD = 1\n")
    built = build_slot(layout, manifest, blobs)
    assert built.resumed
    assert not (slot_b / "lib/old_module.py").exists()
    assert not (slot_b / "lib/.common.py.part").exists()
    assert layout.release("b") is not None
    again = build_slot(layout, manifest, blobs)  # already complete: nothing to do
    assert again.resumed
    assert again.reused == again.files


def test_refuses_to_build_into_the_active_slot(tmp_path: Path) -> None:
    layout = _active(tmp_path / "root")
    manifest = small_tree(tmp_path / "src", "1.1.0")
    with pytest.raises(slots.SlotError, match="active slot"):
        build_slot(layout, manifest, tmp_path, target="a")


def test_a_path_that_was_a_file_in_the_old_release_may_be_a_folder_in_the_new_one(tmp_path: Path) -> None:
    layout = _active(tmp_path / "root")
    first = tmp_path / "first"
    manifest = small_tree(first, "1.1.0", extra={"lib/plugin": b"A FILE in 1.1.0\n"})
    build_slot(layout, manifest, blobs_of(first, manifest, tmp_path / "blobs-1"))
    assert (layout.slot("b") / "lib/plugin").is_file()
    # 1.2.0 is staged into the same inactive slot (a newer release replaced 1.1.0 before the window came):
    # lib/plugin is now a package, and the old lib/plugin file stands where its folder must go.
    second = tmp_path / "second"
    manifest = small_tree(second, "1.2.0", extra={"lib/plugin/__init__.py": b"PLUGIN = 2\n"})
    built = build_slot(layout, manifest, blobs_of(second, manifest, tmp_path / "blobs-2"))
    assert built.version == "1.2.0"
    assert (layout.slot("b") / "lib/plugin/__init__.py").read_bytes() == b"PLUGIN = 2\n"
    assert layout.release("b") is not None
