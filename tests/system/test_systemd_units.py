"""The systemd unit, sysusers.d and tmpfiles.d files in systemd/: valid for systemd, and what the hub needs.

Nothing here touches the real system: systemd-analyze reads a copy of the unit, systemd-sysusers runs
with --dry-run inside an empty scratch root, systemd-tmpfiles creates its paths inside a scratch root.
Without the systemd tools the files are still parsed and checked here, only less strictly.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD_DIR = REPO / "systemd"
UNIT = SYSTEMD_DIR / "village-hub.service"
SYSUSERS = SYSTEMD_DIR / "village-hub.sysusers.conf"
TMPFILES = SYSTEMD_DIR / "village-hub.tmpfiles.conf"

SERVICE_USER = "village-hub"
DATA_DIR = "/var/lib/village-hub"
CONFIG_DIR = "/etc/village-hub"
EXEC_START = "/opt/village-hub/current/bin/python3 -P -m hub run"
OTA_ROOT = "/opt/village-hub"  # A/B slots and the update state (ota/slots.py)
CAPABILITIES = {"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"}
HARDWARE_GROUPS = {"gpio", "i2c", "dialout", "audio", "video"}
# Groups every Debian bookworm system has (base-passwd; systemd's basic.conf), so a sysusers `m` line
# may name them without a `g` line of ours.
DEBIAN_STATIC_GROUPS = {"dialout", "audio", "video", "tty", "plugdev", "users"}
# systemd-analyze security's overall exposure, in tenths (0 safest, 100 worst); 5.1 when written.
# Raise it only together with a reason in the unit.
MAX_EXPOSURE = 55

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SYSUSERS_BIN = shutil.which("systemd-sysusers")
TMPFILES_BIN = shutil.which("systemd-tmpfiles")
TOOL_TIMEOUT = 30


def run_tool(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A systemd tool run for its output: never raises on a non-zero exit, the caller reads what it said."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=TOOL_TIMEOUT,
        env=env,
        check=False,
    )


Unit = dict[str, list[tuple[int, str, str]]]


# ---------------------------------------------------------------------------------------------------
# Reading the files
# ---------------------------------------------------------------------------------------------------


def parse_unit(text: str) -> Unit:
    """Sections of a unit file, each a list of (line number, key, value) in file order.

    Like systemd's own parser: '#' and ';' start comment lines, a trailing backslash continues a line,
    keys may repeat (DeviceAllow=) and an empty assignment resets a list.
    """
    sections: Unit = {}
    current: str | None = None
    pending = ""
    pending_line = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending_line = pending_line or number
            pending += line[:-1] + " "
            continue
        if pending:
            line, number, pending, pending_line = pending + line, pending_line, "", 0
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            assert current not in sections, f"line {number}: section [{current}] appears twice"
            sections[current] = []
            continue
        key, sep, value = line.partition("=")
        assert sep, f"line {number}: not a KEY=VALUE line: {raw!r}"
        assert current is not None, f"line {number}: {key.strip()}= before any [Section]"
        sections[current].append((number, key.strip(), value.strip()))
    return sections


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [value for _, k, value in unit.get(section, []) if k == key]


def last(unit: Unit, section: str, key: str) -> str | None:
    found = values(unit, section, key)
    return found[-1] if found else None


def list_setting(unit: Unit, section: str, key: str) -> list[str]:
    """A space-separated list setting after systemd's merge rules (an empty assignment resets it)."""
    items: list[str] = []
    for value in values(unit, section, key):
        items = [] if not value else items + value.split()
    return items


def capability_set(unit: Unit, key: str) -> set[str]:
    caps: set[str] = set()
    for value in values(unit, "Service", key):
        assert not value.startswith("~"), f"{key}= must list what is allowed, not what is denied: {value}"
        caps = set() if not value else caps | set(value.split())
    return caps


def config_lines(path: Path) -> list[tuple[int, list[str]]]:
    """Non-comment lines of a sysusers.d/tmpfiles.d file, split into fields with shell-like quoting."""
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if raw.strip() and not raw.lstrip().startswith("#"):
            lines.append((number, shlex.split(raw)))
    return lines


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------
# The unit: systemd-analyze verify
# ---------------------------------------------------------------------------------------------------

# Warnings that depend on the machine the test runs on, not on the unit (the service user exists only
# on a box after systemd-sysusers; systemd 252's verify does not check users, later ones might).
BENIGN = re.compile(r"(user|group) .*(does not exist|not found|failed to resolve)", re.IGNORECASE)


def runnable_copy(text: str) -> str:
    """The unit with ExecStart='s binary swapped for one that exists here; every other line identical.

    verify fails on a missing ExecStart binary, and /opt/village-hub/venv exists only on a box.
    """
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("ExecStart=")]
    assert len(starts) == 1, "expected exactly one ExecStart= line"
    prefix, _, command = lines[starts[0]].partition("=")
    binary, _, args = command.strip().partition(" ")
    assert binary.startswith("/"), f"ExecStart= binary must be an absolute path: {binary}"
    lines[starts[0]] = f"{prefix}={sys.executable} {args}\n"
    return "".join(lines)


def verify_problems(text: str, directory: Path) -> list[str]:
    """What `systemd-analyze verify` reports about this unit text, as lines; [] when it is clean.

    verify exits 0 even for an unknown key or a value it cannot parse ("..., ignoring."): systemd
    ignores such lines at runtime too, silently dropping hardening. So every line that names the unit
    counts as a problem, not only the exit status.
    """
    assert SYSTEMD_ANALYZE is not None
    copy = directory / UNIT.name
    copy.write_text(runnable_copy(text), encoding="utf-8")
    proc = run_tool(
        # --man=no: a Documentation=man:… would otherwise need man pages installed (a container has none).
        # --recursive-errors=no: a broken unit elsewhere on this machine is not our failure.
        [SYSTEMD_ANALYZE, "verify", "--man=no", "--recursive-errors=no", str(copy)],
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_LOG_LEVEL": "info"},
    )
    output = (proc.stdout + proc.stderr).splitlines()
    problems = [
        line for line in output if (str(copy) in line or line.startswith(f"{UNIT.name}:")) and not BENIGN.search(line)
    ]
    if proc.returncode != 0 and not problems:
        problems = [f"systemd-analyze verify exited {proc.returncode}", *output]
    return [line.replace(str(copy), str(UNIT.relative_to(REPO))) for line in problems]


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    problems = verify_problems(UNIT.read_text(encoding="utf-8"), tmp_path)
    assert not problems, "systemd-analyze verify:\n" + "\n".join(problems)


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("NoNewPrivileges=yes\n", "NoNewPrivileges=yes\nProtectEverything=yes\n", "Unknown key"),
        ("ProtectSystem=strict\n", "ProtectSystem=strcit\n", "strcit"),
        ("[Install]\n", "[Instal]\n", "Unknown section"),
    ],
    ids=["unknown-key", "bad-value", "unknown-section"],
)
def test_verify_check_catches_mistakes(tmp_path: Path, old: str, new: str, expected: str) -> None:
    """The check above would fail on these; otherwise a clean verify would prove nothing."""
    text = UNIT.read_text(encoding="utf-8")
    assert old in text
    problems = verify_problems(text.replace(old, new, 1), tmp_path)
    assert any(expected.lower() in line.lower() for line in problems), problems


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
def test_unit_exposure_stays_low(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    copy = tmp_path / UNIT.name
    copy.write_text(runnable_copy(UNIT.read_text(encoding="utf-8")), encoding="utf-8")
    proc = run_tool(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", f"--threshold={MAX_EXPOSURE}", str(copy)]
    )
    overall = re.search(r"Overall exposure level for \S+: ([\d.]+)", proc.stdout)
    assert overall is not None, proc.stdout + proc.stderr
    assert proc.returncode == 0, (
        f"exposure {overall.group(1)} is over {MAX_EXPOSURE / 10}: hardening was lost\n{proc.stdout}"
    )


# ---------------------------------------------------------------------------------------------------
# The unit: what the hub needs (checked by parsing, with or without systemd)
# ---------------------------------------------------------------------------------------------------


def test_unit_has_only_known_sections(unit: Unit) -> None:
    assert set(unit) == {"Unit", "Service", "Install"}


def test_unit_keys_are_not_repeated_by_mistake(unit: Unit) -> None:
    repeatable = {"DeviceAllow", "Environment", "ReadWritePaths", "After", "Wants", "Requires"}
    for section, entries in unit.items():
        keys = [key for _, key, _ in entries if key not in repeatable]
        duplicates = {key for key in keys if keys.count(key) > 1}
        assert not duplicates, f"[{section}] sets {sorted(duplicates)} more than once (the last one wins)"


def test_unit_is_a_notify_service_with_watchdog(unit: Unit) -> None:
    assert last(unit, "Service", "Type") == "notify"
    assert last(unit, "Service", "NotifyAccess") == "main"
    watchdog = last(unit, "Service", "WatchdogSec")
    assert watchdog is not None
    assert re.fullmatch(r"\d+s?", watchdog), watchdog
    assert int(watchdog.rstrip("s")) > 0
    assert last(unit, "Service", "ExecStart") == EXEC_START
    # The boot guard runs before every start, from its stable copy, and never blocks the start ("-").
    guard = last(unit, "Service", "ExecStartPre")
    assert guard is not None
    assert guard.startswith("-/usr/bin/python3 ")
    assert f"{OTA_ROOT}/guard/guard.py --root {OTA_ROOT}" in guard


def test_unit_restarts_forever(unit: Unit) -> None:
    assert last(unit, "Service", "Restart") == "always"
    assert last(unit, "Service", "RestartSec") is not None
    # Start rate limiting lives in [Unit]; 0 turns it off, so systemd never gives up on the box.
    assert last(unit, "Unit", "StartLimitIntervalSec") == "0"
    assert last(unit, "Service", "StartLimitIntervalSec") is None, "belongs in [Unit]"
    assert last(unit, "Service", "TimeoutStopSec") is not None


def test_unit_runs_as_service_user(unit: Unit) -> None:
    assert last(unit, "Service", "User") == SERVICE_USER
    assert last(unit, "Service", "Group") == SERVICE_USER
    assert last(unit, "Service", "DynamicUser") in (None, "no")


def test_unit_is_hardened(unit: Unit) -> None:
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "RestrictRealtime": "yes",
        "SystemCallArchitectures": "native",
    }
    actual = {key: last(unit, "Service", key) for key in expected}
    assert actual == expected


def test_unit_writes_only_to_the_data_dir(unit: Unit) -> None:
    writable = [path.lstrip("-+") for path in list_setting(unit, "Service", "ReadWritePaths")]
    assert DATA_DIR in writable
    assert set(writable) <= {DATA_DIR, OTA_ROOT}, f"more writable paths than the data dir and OTA root: {writable}"
    assert last(unit, "Service", "StateDirectory") == Path(DATA_DIR).name


def test_unit_has_exactly_the_capabilities_the_portal_needs(unit: Unit) -> None:
    assert capability_set(unit, "CapabilityBoundingSet") == CAPABILITIES
    assert capability_set(unit, "AmbientCapabilities") == CAPABILITIES


def test_unit_can_reach_the_hardware(unit: Unit) -> None:
    # PrivateDevices=yes would hide /dev/gpiochip*, /dev/ttyAMA*, /dev/snd/*, /dev/video*.
    assert last(unit, "Service", "PrivateDevices") in (None, "no")
    assert last(unit, "Service", "DevicePolicy") in (None, "auto", "closed")
    allowed = {value.split()[0] for value in values(unit, "Service", "DeviceAllow")}
    for device_class in ("char-gpiochip", "char-ttyAMA", "char-ttyUSB", "char-alsa", "char-video4linux"):
        assert device_class in allowed, f"DeviceAllow= misses {device_class}"
    for value in values(unit, "Service", "DeviceAllow"):
        parts = value.split()
        access = parts[1] if len(parts) > 1 else "rwm"  # systemd's default when omitted
        assert "m" not in access, f"the hub never creates device nodes: DeviceAllow={value}"
    # Supplementary groups come from sysusers memberships, see the unit's comment.
    assert last(unit, "Service", "SupplementaryGroups") is None


def test_unit_is_enabled_for_boot(unit: Unit) -> None:
    assert "multi-user.target" in list_setting(unit, "Install", "WantedBy")


# ---------------------------------------------------------------------------------------------------
# sysusers.d
# ---------------------------------------------------------------------------------------------------

# Fields: type name id gecos home shell. Per type, how many are required and how many may carry a value;
# the rest may be omitted or "-".
SYSUSERS_FIELDS = {"u": (2, 6), "g": (2, 3), "m": (3, 3), "r": (3, 3)}


def test_sysusers_syntax() -> None:
    lines = config_lines(SYSUSERS)
    assert lines
    for number, fields in lines:
        kind = fields[0]
        assert kind in SYSUSERS_FIELDS, f"{SYSUSERS.name}:{number}: unknown line type {kind!r}"
        required, meaningful = SYSUSERS_FIELDS[kind]
        assert required <= len(fields) <= 6, f"{SYSUSERS.name}:{number}: {len(fields)} fields"
        extra = [field for field in fields[meaningful:] if field != "-"]
        assert not extra, f"{SYSUSERS.name}:{number}: {kind!r} lines take no {extra}"
        if kind != "r":
            assert re.fullmatch(r"[a-z_][a-z0-9_-]*", fields[1]), f"{SYSUSERS.name}:{number}: bad name"


def test_sysusers_creates_the_service_user_with_hardware_groups() -> None:
    lines = [fields for _, fields in config_lines(SYSUSERS)]
    users = {fields[1]: fields for fields in lines if fields[0] == "u"}
    groups_created = {fields[1] for fields in lines if fields[0] == "g"}
    memberships = {fields[2] for fields in lines if fields[0] == "m" and fields[1] == SERVICE_USER}

    assert SERVICE_USER in users
    user = users[SERVICE_USER]
    assert user[2] in ("-", f"-:{SERVICE_USER}"), "system user with a dynamic uid"
    if len(user) > 4:
        assert user[4] == DATA_DIR, "home is the data dir"
    if len(user) > 5:
        assert user[5] in ("/usr/sbin/nologin", "/sbin/nologin", "-")
    assert SERVICE_USER in groups_created
    assert memberships == HARDWARE_GROUPS
    # `m` silently creates a missing group; every group must be one we create or one Debian always has.
    assert memberships <= groups_created | DEBIAN_STATIC_GROUPS


@pytest.mark.skipif(SYSUSERS_BIN is None, reason="systemd-sysusers not installed")
def test_sysusers_dry_run_in_scratch_root(tmp_path: Path) -> None:
    """systemd-sysusers itself reads the file; --dry-run and --root keep the real /etc untouched."""
    assert SYSUSERS_BIN is not None
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    # A stock bookworm /etc: Debian's static groups exist, the service user does not yet.
    for name in ("passwd", "group"):
        source = Path("/etc") / name
        if source.exists():
            shutil.copy(source, root / "etc" / name)
    before = sorted(p.name for p in (root / "etc").iterdir())
    proc = run_tool([SYSUSERS_BIN, f"--root={root}", "--dry-run", str(SYSUSERS)])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    complaints = [line for line in output.splitlines() if SYSUSERS.name in line or line.startswith("-:")]
    assert not complaints, output
    assert sorted(p.name for p in (root / "etc").iterdir()) == before, "dry run wrote files"
    if not _user_exists_on_host(SERVICE_USER):
        assert f"Creating user '{SERVICE_USER}'" in output, output


def _user_exists_on_host(name: str) -> bool:
    passwd = Path("/etc/passwd")
    return passwd.exists() and any(
        line.split(":", 1)[0] == name for line in passwd.read_text(encoding="utf-8").splitlines()
    )


# ---------------------------------------------------------------------------------------------------
# tmpfiles.d
# ---------------------------------------------------------------------------------------------------

TMPFILES_TYPES = set("fFwdDevqQpLcbCxXrRzZtThHaA")


def tmpfiles_entries() -> dict[str, list[str]]:
    """Path -> fields [type, path, mode, user, group, age, argument] with '-' filled in."""
    entries: dict[str, list[str]] = {}
    for number, fields in config_lines(TMPFILES):
        where = f"{TMPFILES.name}:{number}"
        kind = fields[0]
        assert kind[0] in TMPFILES_TYPES, f"{where}: unknown line type {kind!r}"
        assert set(kind[1:]) <= set("+!-=~^"), f"{where}: unknown modifier in {kind!r}"
        assert 2 <= len(fields) <= 7, f"{where}: {len(fields)} fields (type path mode user group age arg)"
        fields = fields + ["-"] * (7 - len(fields))
        path, mode = fields[1], fields[2]
        assert path.startswith("/"), f"{where}: path {path!r} is not absolute"
        assert mode == "-" or re.fullmatch(r"[~:]?[0-7]{3,4}", mode), f"{where}: bad mode {mode!r}"
        assert path not in entries, f"{where}: {path} listed twice"
        entries[path] = fields
    return entries


def test_tmpfiles_syntax_and_contents() -> None:
    entries = tmpfiles_entries()
    assert entries[DATA_DIR][:5] == ["d", DATA_DIR, "0750", SERVICE_USER, SERVICE_USER]
    assert entries[DATA_DIR][5] == "-", "the data dir must never be aged/cleaned"
    assert entries[CONFIG_DIR][:5] == ["d", CONFIG_DIR, "0750", "root", SERVICE_USER]
    secrets = entries[f"{CONFIG_DIR}/secrets.toml"]
    # `z` adjusts an existing file only; `f` would create an empty secrets file the hub then reads.
    assert secrets[:5] == ["z", f"{CONFIG_DIR}/secrets.toml", "0600", SERVICE_USER, SERVICE_USER]


def test_tmpfiles_agrees_with_unit(unit: Unit) -> None:
    entries = tmpfiles_entries()
    state_mode = last(unit, "Service", "StateDirectoryMode")
    config_mode = last(unit, "Service", "ConfigurationDirectoryMode")
    # Otherwise systemd re-chmods the data dir on every start, or warns about the config dir.
    assert state_mode == entries[DATA_DIR][2]
    assert config_mode in (None, entries[CONFIG_DIR][2])


@pytest.mark.skipif(TMPFILES_BIN is None, reason="systemd-tmpfiles not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="setting owners inside the scratch root needs root")
def test_tmpfiles_create_in_scratch_root(tmp_path: Path) -> None:
    """systemd-tmpfiles has no --dry-run in systemd 252: let it really work, inside a scratch --root."""
    assert TMPFILES_BIN is not None
    root = tmp_path / "root"
    etc = root / "etc"
    (etc / "village-hub").mkdir(parents=True)
    uid = gid = 64123  # an id nothing on this machine uses for anything that matters
    etc.joinpath("passwd").write_text(
        f"root:x:0:0:root:/root:/bin/sh\n{SERVICE_USER}:x:{uid}:{gid}::{DATA_DIR}:/usr/sbin/nologin\n",
        encoding="utf-8",
    )
    etc.joinpath("group").write_text(f"root:x:0:\n{SERVICE_USER}:x:{gid}:\n", encoding="utf-8")
    secrets = etc / "village-hub" / "secrets.toml"
    secrets.write_text('cloud_token = "x"\n', encoding="utf-8")
    secrets.chmod(0o644)

    proc = run_tool([TMPFILES_BIN, "--create", f"--root={root}", str(TMPFILES)])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert TMPFILES.name not in output, output  # a warning about one of our lines ("…, ignoring")

    def owner_mode(relative: str) -> tuple[int, int, int]:
        st = (root / relative.lstrip("/")).stat()
        return st.st_uid, st.st_gid, st.st_mode & 0o7777

    assert owner_mode(DATA_DIR) == (uid, gid, 0o750)
    assert owner_mode(CONFIG_DIR) == (0, gid, 0o750)
    assert owner_mode(f"{CONFIG_DIR}/secrets.toml") == (uid, gid, 0o600)
    assert not (root / CONFIG_DIR.lstrip("/") / "hub.toml").exists(), "must not create an empty config"
