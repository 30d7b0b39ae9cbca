"""The demo: the reference commune cloud plus one hub on simulated hardware, wired together on loopback.

Run through `scripts/demo`. Everything lives under .demo/ (or --dir); run it again and the same village
carries on where it stopped. Ctrl-C stops both processes cleanly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zoneinfo
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ota.demo import DemoOta

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HUB_ID = "thon-demo-1"


def a_minute_from_now() -> str:
    """Local time in the hub's zone (Asia/Ho_Chi_Minh, the default), as the demo's one-off programme wants it."""
    now = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh"))
    return (now + dt.timedelta(minutes=1)).replace(microsecond=0, tzinfo=None).isoformat()


def updates_summary(ota: DemoOta) -> str:
    """What the Updates line of the banner says: which release runs, and when the newer one installs (the window
    is in the hub's local time, so a demo started at 02:00 in Vietnam installs it within a minute)."""
    from hub.updates.settings import OtaSettings
    from ota import slots

    layout = slots.Layout(ota.root)
    active = layout.active() or "a"
    running = layout.version(active) or ota.current_version
    if running == ota.newer_version:
        return f"running {running} from slot {active} (the newest release, installed by an earlier run)"
    window = OtaSettings()
    now = dt.datetime.now(zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")).time()
    span = f"{window.window_start:%H:%M}-{window.window_end:%H:%M}"
    if window.window_start <= now < window.window_end:
        when = f"within a minute: it is {now:%H:%M} in Vietnam, inside the {span} window"
    else:
        when = f'in the {span} window ("Install now" installs it at once)'
    indent = " " * 28  # under the URL column of the banner
    return f"running {running} from slot {active}; release\n{indent}{ota.newer_version} installs {when}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(directory: Path, hub_port: int, cloud_port: int, portal_port: int | None = None) -> Path:
    config = directory / "hub.toml"
    config.write_text(
        f"""# Demo hub: simulated hardware, the reference cloud on loopback.
[hub]
id = "{HUB_ID}"
data_dir = "{directory / "data"}"
secrets_file = "{directory / "secrets.toml"}"
hardware = "simulated"

[village]
name = "Thôn Đông (demo)"
code = "DEMO-01"
latitude = 19.6925
longitude = 105.8306

[sync]
cloud_url = "http://127.0.0.1:{cloud_port}"
backoff_max_s = 10.0

[management]
host = "127.0.0.1"
port = {hub_port}

# The public Wi-Fi's captive portal, simulated: the files for hostapd and dnsmasq and the nftables table are
# written to data/portal/ but nothing is loaded (the dry firewall admits and expires clients in memory), and
# the portal listens on loopback instead of the Wi-Fi address. Open it in a browser, press "Kết nối".
[portal]
listen_host = "127.0.0.1"
port = {portal_port or free_port()}
ssid = "Wi-Fi Thôn Đông (miễn phí)"
session_s = 3600
max_clients = 50
daily_quota_mb = 500

[telemetry]
vitals_interval_s = 30

# The sensor node (soil moisture, cabinet door, valve, PMS5003) simulated on a pseudo-terminal.
[sensor_node]
port = "/dev/serial0"

[sensors]
interval_s = 15

[[sensors.soil.probes]]
name = "vuon-rau"
channel = 0
dry_raw = 42000
wet_raw = 18000

# Street lights by sunset and sunrise; the cultural house's lights on a fixed evening schedule.
[[lighting.circuit]]
name = "đèn đường"
relays = ["đèn đường thôn"]

[[lighting.circuit.rule]]
kind = "dusk_dawn"
on_offset_min = 10
off_offset_min = 15

[[lighting.circuit]]
name = "nhà văn hóa"
relays = ["đèn nhà văn hóa"]

[[lighting.circuit.rule]]
kind = "fixed"
name = "sinh hoạt buổi tối"
on = "18:30"
off = "21:30"

# A gate camera, simulated: a generated clip (a person crossing a still scene) played in a loop through the
# same decoder an RTSP camera goes through. Events and snapshots land in data/camera/ and go to the cloud.
[[camera.cameras]]
name = "cong-thon"
url = "{directory / "camera-demo.mp4"}"
loop = true
privacy_masks = [[[0.85, 0.0], [1.0, 0.0], [1.0, 0.4], [0.85, 0.4]]]
zones = {{ "cổng" = [[0.4, 0.5], [1.0, 0.5], [1.0, 1.0], [0.4, 1.0]] }}

[camera.detector]
threads = 1

# A UPS HAT (INA219) and a DS3231 clock on a simulated I2C bus. The shutdown command is harmless here.
[power]
shutdown_command = ["true"]

# Simulated relay HAT (active-low) and an RS-485 Modbus board on a pseudo-terminal.
[relays]
stagger_ms = 50

[[relays.gpio]]
name = "ampli"
pin = 17
active_high = false

[[relays.gpio]]
name = "loa khu 1"
pin = 27
active_high = false

[[relays.gpio]]
name = "loa khu 2"
pin = 22
active_high = false

[[relays.modbus.bus]]
port = "/dev/ttyUSB0"

[[relays.modbus.bus.module]]
device_id = 1
profile = "coils-4"

[[relays.modbus.bus.module.relay]]
channel = 1
name = "đèn đường thôn"

[[relays.modbus.bus.module.relay]]
channel = 2
name = "đèn nhà văn hóa"

# The loudspeakers: the amplifier and two zones on the relay HAT above (amplifier on, warm-up, zones on;
# zones off, amplifier off after the idle delay). The simulated loudspeaker writes what it plays to
# data/audio-sim/*.wav. Programmes: the 05:00 and 17:00 bulletin, and a greeting a minute after this start.
[broadcast]
amplifier_relay = "ampli"
warmup_s = 2.0
amplifier_idle_off_s = 30

[broadcast.zones]
"khu 1" = "loa khu 1"
"khu 2" = "loa khu 2"

[[broadcast.programmes]]
id = "ban-tin-sang-chieu"
name = "Bản tin sáng và chiều"
zones = ["khu 1", "khu 2"]
items = [
    {{ kind = "chime", chime = "start" }},
    {{ kind = "text", text = "Kính thưa bà con thôn Đông. Sau đây là bản tin của thôn." }},
    {{ kind = "chime", chime = "end" }},
]

[[broadcast.schedules]]
id = "sang-chieu"
programme_id = "ban-tin-sang-chieu"
kind = "daily"
times = ["05:00", "17:00"]

[[broadcast.programmes]]
id = "chao-mung"
name = "Chào mừng (demo)"
zones = ["khu 1"]
items = [
    {{ kind = "chime", chime = "start" }},
    {{ kind = "text", text = "Xin chào bà con. Hệ thống loa truyền thanh của thôn đã sẵn sàng." }},
]

[[broadcast.schedules]]
id = "chao-mung"
programme_id = "chao-mung"
kind = "once"
at = "{a_minute_from_now()}"
""",
        encoding="utf-8",
    )
    return config


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: {proc.args!r} exited with {proc.returncode}; see the log above")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback URL we built
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"demo: nothing answered at {url} within {timeout:.0f}s")


def queue_command(cloud_port: int, admin: str, body: dict[str, object]) -> int:
    """Queue a command for the demo hub as the commune's operator would (admin API)."""
    import json

    request = urllib.request.Request(
        f"http://127.0.0.1:{cloud_port}/api/v1/hubs/{HUB_ID}/commands",
        data=json.dumps(body, ensure_ascii=False).encode(),
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return int(json.loads(response.read())["id"])


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description="Village Hub demo on simulated hardware")
    parser.add_argument("--dir", type=Path, default=ROOT / ".demo")
    parser.add_argument("--hub-port", type=int, default=int(os.environ.get("DEMO_HUB_PORT", "8080")))
    parser.add_argument("--portal-port", type=int, default=int(os.environ.get("DEMO_PORTAL_PORT", "0")) or None)
    parser.add_argument("--cloud-port", type=int, default=int(os.environ.get("DEMO_CLOUD_PORT", "8800")))
    parser.add_argument("--duration", type=float, default=None, help="stop by itself after this many seconds")
    args = parser.parse_args()

    directory: Path = args.dir.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    cloud_db = directory / "cloud.sqlite3"
    admin_file = directory / "cloud-admin-token"
    if not admin_file.exists():
        admin_file.write_text(
            secrets.token_hex(16)
        )  # hex: never starts with "-", which argparse would take for an option
    admin = admin_file.read_text().strip()
    secrets_file = directory / "secrets.toml"
    if not secrets_file.exists():
        secrets_file.write_text("")  # no pre-shared token: the box enrolls with a one-time code below
    secrets_file.chmod(0o600)
    enrollment = None
    if not (directory / "data" / "cloud-token").exists():
        enrollment = subprocess.run(
            [BIN / "hub-cloud", "--db", cloud_db, "add-enrollment", HUB_ID], check=True, capture_output=True, text=True
        ).stdout.strip()
    portal_port = args.portal_port or free_port()
    config = write_config(directory, args.hub_port, args.cloud_port, portal_port)
    from hub import __version__
    from ota.demo import prepare  # the hub runs from update slot a; the cloud serves one newer release

    ota = prepare(directory, ROOT, __version__)
    with config.open("a", encoding="utf-8") as f:
        f.write(ota.config(f"http://127.0.0.1:{args.cloud_port}"))
    from drivers.camera.sim import demo_clip  # PyAV, numpy: only when the demo runs

    demo_clip(directory / "camera-demo.mp4")
    # The box ships without a password (the first visitor sets it); the demo sets one so it can print it.
    password_file = directory / "technician-password"
    if not (directory / "data" / "technician.json").exists():
        password_file.write_text(secrets.token_urlsafe(9) + "\n")
        subprocess.run(
            [BIN / "hub", "--config", config, "provision", "--user", "demo", "--password-stdin"],
            input=password_file.read_text(),
            check=True,
            text=True,
            stdout=subprocess.DEVNULL,
        )
    password = password_file.read_text().strip() if password_file.exists() else "(set earlier)"

    serve = ["serve", "--port", str(args.cloud_port), f"--admin-token={admin}", "--ota-repo", str(ota.repo)]
    cloud = subprocess.Popen([BIN / "hub-cloud", "--db", cloud_db, *serve])
    hub = None
    try:
        wait_http(f"http://127.0.0.1:{args.cloud_port}/healthz", 20, cloud)
        if enrollment is not None:
            # What a technician does on site: `hub enroll CODE` with the code the commune gave them.
            subprocess.run([BIN / "hub", "--config", config, "enroll", enrollment], check=True)
        ota.guard()  # as the unit's ExecStartPre, then the slot `current` points at
        hub = subprocess.Popen([ota.python, "-P", "-m", "hub", "--config", config, "run"])  # -P: the slot's code
        wait_http(f"http://127.0.0.1:{args.hub_port}/healthz", 20, hub)
        command = queue_command(
            args.cloud_port,
            admin,
            {
                "kind": "broadcast.announce",
                "args": {"text": "Xin chào bà con. Đây là thông báo từ xã, gửi qua đám mây.", "zones": ["khu 1"]},
                "ttl_s": 600,
            },
        )
        print(
            f"""
Village Hub demo is running (simulated hardware). Ctrl-C stops it.
  Technician page      http://127.0.0.1:{args.hub_port}/   user: demo  password: {password}
  Hub health (JSON)    curl -H "Authorization: Bearer $(cat {directory / "data" / "local-api.token"})" \\
                            http://127.0.0.1:{args.hub_port}/api/health
  Wi-Fi portal (simulated) http://127.0.0.1:{portal_port}/   (files: {directory / "data" / "portal"})
  Commune cloud        http://127.0.0.1:{args.cloud_port}/#token={admin}
  Operator console     http://127.0.0.1:{args.cloud_port}/operator/   admin token: {admin}
                       (hub {HUB_ID}: send an announcement, an alert, a light override; live view)
  Live view (WebRTC)   .venv/bin/hub-cloud live-view {HUB_ID} cong-thon --url http://127.0.0.1:{args.cloud_port} \\
                            --admin-token {admin} --seconds 10   (sessions: technician page, Live)
  Cloud API document   http://127.0.0.1:{args.cloud_port}/openapi.yaml
  Cloud command        announcement #{command} queued at the cloud; see the hub's Cloud link page and broadcast log
  Diagnose the box     .venv/bin/hub --config {config} doctor
  Updates              http://127.0.0.1:{args.hub_port}/updates   {updates_summary(ota)}
                       .venv/bin/hub --config {config} ota status
  Outbox               .venv/bin/hub --config {config} outbox stats
""",
            flush=True,
        )
        deadline = None if args.duration is None else time.monotonic() + args.duration
        signal.signal(signal.SIGTERM, _interrupt)
        while deadline is None or time.monotonic() < deadline:
            if hub.poll() is not None or cloud.poll() is not None:
                print("demo: a process exited; stopping", file=sys.stderr)
                return 1
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (hub, cloud):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (hub, cloud):
            if proc is not None:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
