"""Dockerfile.arm64 and .dockerignore, checked by reading them: no container engine runs here.

The image is built for real (with podman) elsewhere; these checks catch what would break that build or
the running container before anyone gets that far: a COPY of a file that is missing or ignored, a
package left out of the wheel, a root user, a health check that does not call `hub healthcheck`.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile.arm64"
DOCKERIGNORE = REPO / ".dockerignore"
UNIT = REPO / "systemd" / "village-hub.service"

VENV_HUB = "/opt/village-hub/venv/bin/hub"
DATA_DIR = "/var/lib/village-hub"


@dataclass(frozen=True)
class Instruction:
    line: int
    name: str  # upper case: FROM, RUN, COPY, …
    args: str


@dataclass
class Stage:
    line: int
    image: str
    platform: str | None
    alias: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, name: str) -> list[Instruction]:
        return [i for i in self.instructions if i.name == name]

    def last(self, name: str) -> Instruction | None:
        found = self.all(name)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined; comment lines (also inside continuations) dropped."""
    instructions: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        joined = " ".join(part for part in buffer if part)
        buffer = []
        name, _, args = joined.partition(" ")
        instructions.append(Instruction(start, name.upper(), args.strip()))
    assert not buffer, f"line {start}: continuation runs off the end of the file"
    return instructions


def split_stages(instructions: list[Instruction]) -> list[Stage]:
    stages: list[Stage] = []
    build_args: dict[str, str] = {}  # ARGs before the first FROM, with their defaults: what users build
    for instruction in instructions:
        if instruction.name == "ARG" and not stages:
            name, _, default = instruction.args.partition("=")
            build_args[name.strip()] = default.strip()
            continue
        if instruction.name == "FROM":
            words = re.sub(r"\$\{(\w+)\}", lambda m: build_args[m.group(1)], instruction.args).split()
            platform = None
            while words and words[0].startswith("--"):
                option = words.pop(0)
                if option.startswith("--platform="):
                    platform = option.split("=", 1)[1]
            assert words, f"line {instruction.line}: FROM without an image"
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            assert len(words) in (1, 3), f"line {instruction.line}: cannot read FROM {instruction.args}"
            stages.append(Stage(instruction.line, words[0], platform, alias))
        else:
            assert stages, f"line {instruction.line}: {instruction.name} before the first FROM"
            stages[-1].instructions.append(instruction)
    return stages


def options_and_rest(args: str) -> tuple[dict[str, str], str]:
    """Leading --flag=value options of an instruction, and what follows them."""
    options: dict[str, str] = {}
    rest = args
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        key, _, value = option[2:].partition("=")
        options[key] = value
        rest = rest.lstrip()
    return options, rest


def copy_sources(instruction: Instruction) -> tuple[dict[str, str], list[str]]:
    options, rest = options_and_rest(instruction.args)
    words = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
    assert len(words) >= 2, f"line {instruction.line}: COPY needs a source and a destination"
    return options, words[:-1]


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON argv of CMD/ENTRYPOINT/HEALTHCHECK CMD; shell form fails (it would need /bin/sh as PID 1)."""
    _, rest = options_and_rest(instruction.args)
    if instruction.name == "HEALTHCHECK":
        assert rest.startswith("CMD "), f"line {instruction.line}: HEALTHCHECK without CMD"
        rest = rest[4:].lstrip()
    assert rest.startswith("["), f"line {instruction.line}: use the exec (JSON) form"
    argv = json.loads(rest)
    assert isinstance(argv, list)
    assert all(isinstance(arg, str) for arg in argv)
    return argv


def env_vars(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        for word in shlex.split(instruction.args):
            key, sep, value = word.partition("=")
            assert sep, f"line {instruction.line}: use ENV KEY=VALUE"
            env[key] = value
    return env


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore matching (Go filepath.Match plus '**'), for the patterns used here."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def ignored(path: str) -> bool:
    """Whether the build context leaves out this path (or a directory above it)."""
    parts = Path(path.strip("/")).parts
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for pattern in dockerignore_patterns():
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negate
    return excluded


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return split_stages(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


@pytest.fixture(scope="module")
def pyproject() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)


# ---------------------------------------------------------------------------------------------------


def test_multi_stage_on_slim_bookworm_arm64(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "a build stage and a final stage"
    for stage in stages:
        where = f"line {stage.line}"
        assert stage.platform == "linux/arm64", f"{where}: FROM --platform=linux/arm64"
        name, _, tag = stage.image.partition(":")
        assert tag, f"{where}: {stage.image} has no tag (it would float to whatever is latest)"
        assert "slim" in tag, f"{where}: {stage.image} is not a slim image"
        assert "bookworm" in tag, f"{where}: {stage.image} is not pinned to bookworm (the boxes' Debian)"
        assert name in ("python", "debian", "docker.io/library/python", "docker.io/library/debian")
    assert stages[0].alias == "build"


def test_stages_refer_only_to_earlier_stages(stages: list[Stage]) -> None:
    for index, stage in enumerate(stages):
        earlier = {s.alias for s in stages[:index] if s.alias} | {str(n) for n in range(index)}
        for instruction in stage.all("COPY"):
            options, _ = copy_sources(instruction)
            if "from" in options:
                assert options["from"] in earlier, f"line {instruction.line}: no earlier stage {options}"


def test_copy_sources_exist_and_are_in_the_build_context(stages: list[Stage]) -> None:
    for stage in stages:
        for instruction in stage.all("COPY") + stage.all("ADD"):
            options, sources = copy_sources(instruction)
            if "from" in options:
                continue
            for source in sources:
                where = f"line {instruction.line}: {instruction.name} {source}"
                assert not any(c in source for c in "*?["), f"{where}: name the files, no wildcards"
                assert (REPO / source).exists(), f"{where}: no such file in the repo"
                assert not ignored(source), f"{where}: excluded by .dockerignore"


def test_wheel_build_gets_everything_it_needs(stages: list[Stage], pyproject: dict[str, object]) -> None:
    build = stages[0]
    runs = build.all("RUN")
    wheels = [run for run in runs if "pip wheel" in run.args]
    assert wheels, "the build stage runs `pip wheel`"
    for run in wheels:
        assert re.search(r"(-c|--constraint)[ =]constraints\.txt\b", run.args), "pin with -c constraints.txt"
    # the wheel of the project itself (`pip wheel … .`) needs all of it copied first
    project_wheel = [run for run in wheels if re.search(r"\s\.$", run.args)]
    assert project_wheel, "the build stage builds the project's own wheel with `pip wheel … .`"

    copied: set[str] = set()
    for instruction in build.all("COPY"):
        if instruction.line > project_wheel[0].line:
            continue
        _, sources = copy_sources(instruction)
        copied |= {source.rstrip("/") for source in sources}

    project = pyproject["project"]
    assert isinstance(project, dict)
    tool = pyproject["tool"]
    assert isinstance(tool, dict)
    needed = {"pyproject.toml", "constraints.txt", project["readme"]}
    # Every top-level package setuptools is told to include: a new one must be copied too.
    needed |= {pattern.rstrip("*").rstrip(".") for pattern in tool["setuptools"]["packages"]["find"]["include"]}
    missing = needed - copied
    assert not missing, f"copy {sorted(missing)} before `pip wheel`"


def test_final_stage_runs_as_non_root_user(final: Stage) -> None:
    user = final.last("USER")
    assert user is not None, "the final stage sets USER"
    name = user.args.split(":")[0]
    assert name not in ("root", "0", ""), f"USER {user.args} is root"
    assert name == "village-hub"
    creates = [run for run in final.all("RUN") if "useradd" in run.args and name in run.args]
    assert creates, f"the final stage creates the user {name}"
    assert creates[0].line < user.line


def test_final_stage_has_the_hub_venv(final: Stage) -> None:
    venv_installed = any("/opt/village-hub/venv" in i.args for i in final.all("COPY") + final.all("RUN"))
    assert venv_installed, "the final stage puts the hub into /opt/village-hub/venv"


def test_healthcheck_calls_hub_healthcheck(final: Stage) -> None:
    checks = final.all("HEALTHCHECK")
    assert len(checks) == 1
    assert exec_form(checks[0]) == [VENV_HUB, "healthcheck"]
    options, _ = options_and_rest(checks[0].args)
    for option in ("interval", "timeout", "start-period"):
        assert re.fullmatch(r"\d+(ms|s|m|h)", options.get(option, "")), f"HEALTHCHECK --{option}=…"


def test_runs_the_hub_like_systemd_does(final: Stage) -> None:
    cmd = final.last("CMD")
    assert cmd is not None
    assert exec_form(cmd) == [VENV_HUB, "run"]
    assert final.last("ENTRYPOINT") is None
    exec_start = re.search(r"^ExecStart=(.*)$", UNIT.read_text(encoding="utf-8"), re.MULTILINE)
    assert exec_start is not None
    # The unit starts the hub from an A/B update slot (`current/bin/python3 -m hub run`); a container is updated by
    # replacing its image (under balenaOS the supervisor does it), so it runs the venv's `hub run` directly.
    assert exec_start.group(1).split()[-3:] == ["-m", "hub", "run"], "the unit runs `hub run` from a slot"
    assert exec_form(cmd)[-1] == "run"
    signal = final.last("STOPSIGNAL")
    assert signal is not None
    assert signal.args == "SIGTERM"


def test_environment_and_volume(final: Stage) -> None:
    assert env_vars(final).get("VILLAGE_HUB_CONFIG") == "/etc/village-hub/hub.toml"
    volumes: list[str] = []
    for volume in final.all("VOLUME"):
        args = volume.args
        volumes += json.loads(args) if args.startswith("[") else args.split()
    assert DATA_DIR in volumes


def test_dockerignore_keeps_local_clutter_out() -> None:
    for path in (".venv", ".git", ".demo", "bench/out", ".mypy_cache", ".pytest_cache", ".ruff_cache"):
        assert ignored(path), f".dockerignore does not exclude {path}"
    for path in ("hub/__pycache__/cli.cpython-311.pyc", "hub/store/__pycache__", "village_hub.egg-info"):
        assert ignored(path), f".dockerignore does not exclude {path}"
    for path in ("hub/cli.py", "pyproject.toml", "constraints.txt", "README.md"):
        assert not ignored(path), f".dockerignore excludes {path}, which the build needs"
