"""OTA on loopback with a full-size slot of the hub: publish → staged → installed → committed, resume, increments.

  .venv/bin/python -m bench.ota_update [--quick] [--rebuild] [--keep]

The slot is a real one: the hub's packages plus every runtime distribution of this environment
(`python -m ota.publish build-slot --deps copy`), cached in bench/.cache/ota-slot (--rebuild to redo it).
--quick uses a small `--deps pth` slot instead (a smoke run, figures not representative).
The reference cloud runs as `hub-cloud serve --ota-repo` (a real process); the box side uses ota.client
and, when present, helper B's ota.installer / ota.slots to build the inactive slot and commit it.

Figures:
  1. first install of a box (nothing to reuse): bytes and time from "published" to staged / installed /
     committed ("committed" after a smoke check: the new slot's interpreter imports hub.app).
  2. the same download interrupted at 50% (a progress callback aborts), then resumed by a new client:
     bytes of each part, and the overhead over one full download (target 0).
  3. a one-module change (hub/app.py gets a line): bytes fetched as a fraction of the full bundle
     (target < 10%), and time from publish to committed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._harness import free_port, http_get
from ota.client import UpdateClient
from ota.publish import build_slot
from ota.repository import Repository

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache" / "ota-slot"
ARCH = "x86_64" if sys.platform.startswith("linux") and "x86_64" in __import__("platform").machine() else "aarch64"


class Interrupted(Exception):
    pass


def _mib(n: float) -> str:
    return f"{n / 1048576:8.2f} MiB"


def _slot(quick: bool, rebuild: bool, tmp: Path) -> Path:
    if quick:
        return build_slot(tmp / "quick-slot", ROOT, deps="pth")
    if rebuild and CACHE.exists():
        shutil.rmtree(CACHE)
    if not CACHE.exists():
        print("building a full-size slot into bench/.cache/ota-slot …", flush=True)
        partial = CACHE.with_name("ota-slot.tmp")
        shutil.rmtree(partial, ignore_errors=True)
        build_slot(partial, ROOT, deps="copy")
        partial.rename(CACHE)
    return CACHE


def _cloud(tmp: Path, repo: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (tmp / "cloud.log").open("ab")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "hub-cloud"),
            "--db",
            str(tmp / "cloud.sqlite3"),
            "serve",
            "--port",
            str(port),
            "--admin-token",
            "bench",
            "--ota-repo",
            str(repo),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while http_get(url + "/healthz")[0] != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("hub-cloud did not start")
        time.sleep(0.1)
    return proc, url


def _installer() -> Any:
    try:
        from ota import installer, slots
    except ImportError:
        return None
    return installer, slots


def _install_and_commit(box: Path, manifest_bytes: bytes, staging: Path) -> dict[str, float]:
    """Build the inactive slot (helper B's installer), switch on trial, smoke-check, commit."""
    found = _installer()
    if found is None:
        return {}
    installer, slots = found
    layout = slots.Layout(box)
    t0 = time.monotonic()
    built = installer.build_slot(layout, manifest_bytes, staging / "blobs")
    t_built = time.monotonic()
    if layout.active() is None and not (box / "current").exists():
        slots.switch(layout, built.slot)  # first install of a box: nothing to try against, like the factory image
    else:
        slots.begin_trial(layout, built.slot)
    slot_python = layout.slot(built.slot) / "bin" / "python3"
    subprocess.run([str(slot_python), "-c", "import hub.app"], check=True, cwd=box, timeout=120)
    if layout.active() == built.slot:
        slots.commit(layout, health="bench: hub.app imports")
    return {"install_s": t_built - t0, "commit_s": time.monotonic() - t_built, "reused": built.reused}


def _have(box: Path) -> Any:
    found = _installer()
    if found is None:
        return lambda _sha: None
    installer, slots = found
    return installer.have_blob(slots.Layout(box))


def run(quick: bool, rebuild: bool, keep: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ota-bench-"))
    proc = None
    try:
        slot = _slot(quick, rebuild, tmp)
        repo = Repository.init(tmp / "repo", tmp / "keys")
        t0 = time.monotonic()
        manifest = repo.add_release(slot, "0.1.0", ARCH, f"{sys.version_info.major}.{sys.version_info.minor}")
        publish_s = time.monotonic() - t0
        total = sum(e["size"] for e in manifest["files"].values())
        blob_total = sum(p.stat().st_size for p in repo.blobs_dir.iterdir())
        print(f"slot: {len(manifest['files'])} files, {_mib(total)} ({_mib(blob_total)} of distinct blobs)")
        print(f"publish 0.1.0 (hash, copy blobs, sign): {publish_s:6.2f} s")
        proc, url = _cloud(tmp, repo.root)
        root = repo.root_bytes()

        # 1. first install
        box = tmp / "box"
        t_pub = time.monotonic()
        client = UpdateClient(box / "tuf", url, root, ARCH)
        release = client.check("0.0.0")
        assert release is not None
        plan = client.plan(release, _have(box))
        client.fetch(plan, box / "staging")
        staged_s = time.monotonic() - t_pub
        print("\n1. first install (nothing to reuse)")
        print(f"   bytes fetched: {_mib(client.stats.bytes_transferred)} in {len(plan.missing)} blobs")
        print(f"   published → staged: {staged_s:6.2f} s ({client.stats.bytes_transferred / staged_s / 1e6:.0f} MB/s)")
        result = _install_and_commit(box, release.manifest_bytes, box / "staging")
        if result:
            print(f"   staged → slot built: {result['install_s']:6.2f} s; → committed: {result['commit_s']:6.2f} s")
            print(f"   published → committed: {time.monotonic() - t_pub:6.2f} s")
        else:
            print("   (ota.installer not present: install/commit not measured)")

        # 2. interrupted at 50%, resumed by a new client
        fresh = tmp / "fresh"
        first = UpdateClient(fresh / "tuf", url, root, ARCH)
        release = first.check("0.0.0")
        assert release is not None
        plan = first.plan(release, lambda _sha: None)
        done = 0

        def abort_at_half(n: int) -> None:
            nonlocal done
            done += n
            if done >= plan.fetch_bytes // 2:
                raise Interrupted

        with contextlib.suppress(Interrupted):
            first.fetch(plan, fresh / "staging", abort_at_half)
        second = UpdateClient(fresh / "tuf", url, root, ARCH)
        t1 = time.monotonic()
        second.fetch(second.plan(release, lambda _sha: None), fresh / "staging")
        resume_s = time.monotonic() - t1
        a, b = first.stats.bytes_transferred, second.stats.bytes_transferred
        print("\n2. download interrupted at 50%, resumed")
        print(
            f"   before the cut: {_mib(a)}; after: {_mib(b)} in {resume_s:.2f} s "
            f"(resumed parts: {second.stats.resumed})"
        )
        print(f"   total {_mib(a + b)} for {_mib(plan.fetch_bytes)}: overhead {a + b - plan.fetch_bytes} bytes")

        # 3. one-module change
        build = tmp / "build-0.1.1"
        shutil.copytree(slot, build, symlinks=True, copy_function=_link_or_copy)
        app = build / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages/hub/app.py"
        text = app.read_text(encoding="utf-8") + "\n# 0.1.1: one module changed\n"
        app.unlink()  # break the hard link to the cache before writing
        app.write_text(text, encoding="utf-8")
        t_pub = time.monotonic()
        repo.add_release(build, "0.1.1", ARCH, f"{sys.version_info.major}.{sys.version_info.minor}")
        publish2_s = time.monotonic() - t_pub
        installed = "0.1.0" if result else "0.0.0"
        client = UpdateClient(box / "tuf", url, root, ARCH)
        release = client.check(installed)
        assert release is not None
        assert release.version == "0.1.1"
        plan = client.plan(release, _have(box))
        client.fetch(plan, box / "staging")
        staged_s = time.monotonic() - t_pub
        fraction = client.stats.bytes_transferred / total
        print("\n3. one-module change (hub/app.py)")
        print(f"   publish 0.1.1: {publish2_s:.2f} s; published → staged: {staged_s:.2f} s")
        print(
            f"   bytes fetched: {client.stats.bytes_transferred} of {total} = {fraction:.4%} of the bundle "
            f"(target < 10%) — reused {len(plan.reused)} blobs"
        )
        result = _install_and_commit(box, release.manifest_bytes, box / "staging") if result else {}
        if result:
            print(f"   published → committed: {time.monotonic() - t_pub:6.2f} s (files reused: {result['reused']})")
        state = box / "ota-state.json"
        if state.exists():
            print(f"   box state: active={json.loads(state.read_bytes()).get('active')}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        Path(dst).hardlink_to(src)
    except OSError:
        shutil.copy2(src, dst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small slot (smoke run)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached full-size slot")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = parser.parse_args()
    run(args.quick, args.rebuild, args.keep)


if __name__ == "__main__":
    main()
