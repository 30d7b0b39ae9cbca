"""`python -m ota.publish` / `hub-release`: build a slot of the hub and publish it into a TUF repository.

init REPO --keys KEYDIR                 new repository; ed25519 keys in KEYDIR/offline (root, targets) and
                                        KEYDIR/online (snapshot, timestamp); prints the root to ship
build-slot DIR [--source SRC] [--deps copy|pip|pth]
                                        a relocatable venv-like tree: bin/python3, pyvenv.cfg,
                                        lib/python3.X/site-packages with the hub and its runtime dependencies
                                        (copy: the installed distributions of this environment; pip: `pip
                                        install --target` with constraints.txt; pth: a .pth to this
                                        environment's site-packages — small, for tests only)
release REPO --keys KEYDIR --slot-dir DIR --version V --arch A [--min-config-version N]
timestamp REPO --keys KEYDIR            re-sign the short-lived timestamp (or let `hub-cloud serve --ota-repo
                                        REPO --ota-keys KEYDIR` do it once half its lifetime is gone)
resign REPO --keys KEYDIR               re-sign targets (offline key), snapshot, timestamp: before targets expire;
                                        renews root too (offline root key) when it expires within 90 days
rotate-key REPO --keys KEYDIR --role R  a new key for role R (root, targets, snapshot, timestamp): a new root
                                        names it, the role is re-signed with it, the old one is retired
list REPO --keys KEYDIR                 published releases
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

from ota.repository import ROLES, ExpiryPolicy, Repository

ROOT_RENEW_BEFORE = timedelta(days=90)  # a box whose newest root has expired refuses every update

HUB_PACKAGES = ("hub", "drivers", "ml", "ota")
PROJECT = "village-hub"


def _python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _base_python() -> str:
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def _site_packages(slot: Path) -> Path:
    return slot / "lib" / f"python{_python_tag()}" / "site-packages"


def _ignore(_: str, names: list[str]) -> set[str]:
    return {n for n in names if n == "__pycache__" or n.endswith(".pyc")}


def runtime_requirements(project: str = PROJECT) -> list[str]:
    """Names of the distributions the project needs at run time on this machine (transitively)."""
    from packaging.requirements import Requirement

    seen: dict[str, str] = {}
    todo = [project]
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[key] = dist.metadata["Name"]
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(req.name)
    return sorted(v for k, v in seen.items() if k != project)


def _copy_distribution(name: str, site: Path) -> int:
    dist = metadata.distribution(name)
    copied = 0
    for file in dist.files or []:
        src = Path(str(dist.locate_file(file)))
        rel = Path(str(file))
        if rel.is_absolute() or rel.parts[:1] == ("..",) or "__pycache__" in rel.parts or rel.suffix == ".pyc":
            continue  # console scripts in bin/ hold absolute shebangs: slots run `python -m`
        if not src.is_file():
            continue
        dest = site / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
        copied += 1
    return copied


def build_slot(slot: Path, source: Path, deps: str = "copy", constraints: Path | None = None) -> Path:
    """A relocatable slot tree (see module doc); started as `<slot>/bin/python3 -P -m hub run`."""
    if slot.exists() and any(slot.iterdir()):
        raise FileExistsError(f"{slot} is not empty")
    site = _site_packages(slot)
    site.mkdir(parents=True)
    (slot / "bin").mkdir()
    (slot / "bin" / "python3").symlink_to(_base_python())
    (slot / "pyvenv.cfg").write_text(
        f"home = {Path(_base_python()).parent}\ninclude-system-site-packages = false\n"
        f"version = {platform.python_version()}\n"
    )
    for package in HUB_PACKAGES:
        if (source / package).is_dir():
            shutil.copytree(source / package, site / package, ignore=_ignore)
    if deps == "pth":
        (site / "_village_hub_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elif deps == "copy":
        for name in runtime_requirements():
            _copy_distribution(name, site)
    elif deps == "pip":
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(site)]
        if constraints is not None:
            cmd += ["-c", str(constraints)]
        subprocess.run([*cmd, *runtime_requirements_spec(source)], check=True)
    else:
        raise ValueError(f"--deps {deps!r}: expected copy, pip or pth")
    return slot


def runtime_requirements_spec(source: Path) -> list[str]:
    import tomllib

    data = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8"))
    return [str(d) for d in data["project"]["dependencies"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hub-release", description="publish signed hub releases (TUF)")
    sub = parser.add_subparsers(dest="command", required=True)
    init = sub.add_parser("init", help="create a repository and its keys")
    init.add_argument("repo", type=Path)
    init.add_argument("--keys", type=Path, required=True)
    slot = sub.add_parser("build-slot", help="build a slot tree of the hub")
    slot.add_argument("dir", type=Path)
    slot.add_argument("--source", type=Path, default=Path.cwd(), help="source tree of the hub (default: .)")
    slot.add_argument("--deps", choices=("copy", "pip", "pth"), default="copy")
    slot.add_argument("--constraints", type=Path, help="pip constraints (with --deps pip)")
    rel = sub.add_parser("release", help="publish a slot as a release")
    rel.add_argument("repo", type=Path)
    rel.add_argument("--keys", type=Path, required=True)
    rel.add_argument("--slot-dir", type=Path, required=True)
    rel.add_argument("--version", required=True)
    rel.add_argument("--arch", required=True, choices=("aarch64", "x86_64"))
    rel.add_argument("--python", default=_python_tag())
    rel.add_argument("--min-config-version", type=int, default=1)
    ts = sub.add_parser("timestamp", help="re-sign the timestamp (online key)")
    ts.add_argument("repo", type=Path)
    ts.add_argument("--keys", type=Path, required=True)
    resign = sub.add_parser("resign", help="re-sign targets, snapshot and timestamp (offline targets key)")
    resign.add_argument("repo", type=Path)
    resign.add_argument("--keys", type=Path, required=True)
    rot = sub.add_parser("rotate-key", help="replace a role's key (e.g. the online keys after a server breach)")
    rot.add_argument("repo", type=Path)
    rot.add_argument("--keys", type=Path, required=True)
    rot.add_argument("--role", required=True, choices=ROLES)
    ls = sub.add_parser("list", help="list published releases")
    ls.add_argument("repo", type=Path)
    ls.add_argument("--keys", type=Path, required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == "init":
            repo = Repository.init(args.repo, args.keys, ExpiryPolicy())
            print(f"repository at {args.repo}; ship {repo.metadata_dir / 'root.json'} in the image as the trusted root")
        elif args.command == "build-slot":
            build_slot(args.dir, args.source, args.deps, args.constraints)
            print(f"slot at {args.dir}")
        elif args.command == "release":
            manifest = Repository(args.repo, args.keys).add_release(
                args.slot_dir, args.version, args.arch, args.python, args.min_config_version
            )
            total = sum(e["size"] for e in manifest["files"].values())
            print(f"published {args.version} for {args.arch}: {len(manifest['files'])} files, {total} bytes")
        elif args.command == "timestamp":
            Repository(args.repo, args.keys).bump_timestamp()
            print("timestamp re-signed")
        elif args.command == "resign":
            repository = Repository(args.repo, args.keys)
            root_expires = repository.load("root").signed.expires
            if root_expires - datetime.now(UTC) < ROOT_RENEW_BEFORE:
                repository.bump_root()
                print(f"root re-signed, valid until {repository.load('root').signed.expires:%Y-%m-%d}")
            repository.bump_targets()
            repository.bump_snapshot()
            repository.bump_timestamp()
            print(f"targets re-signed, valid until {repository.load('targets').signed.expires:%Y-%m-%d}")
        elif args.command == "rotate-key":
            keyid = Repository(args.repo, args.keys).rotate_key(args.role)
            print(f"{args.role} key replaced by {keyid[:16]}…; boxes take the new root at their next check")
        elif args.command == "list":
            for arch, version in sorted(Repository(args.repo, args.keys).releases()):
                print(f"{arch} {version}")
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        print(f"hub-release: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
