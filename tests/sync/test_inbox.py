"""The inbox's rules on one command at a time, with a real store and bus (the serving side is a bus handler):
expiry judged on the cloud's time when the hub's clock is not trusted (a box booting in 1970), duplicates
ignored, every outcome recorded with its outbox record in one transaction, arguments checked naming the field."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.broadcast.cap import parse_cap
from hub.bus import CommandError, EventBus
from hub.config.settings import Settings
from hub.store import Store
from hub.sync.commands import EmergencyArgs, Rejected, build_cap, validate
from hub.sync.inbox import CommandInbox

NOW = time.time()


def settings(data: Path) -> Settings:
    return Settings.model_validate(
        {"hub": {"id": "thon-don-vi", "data_dir": str(data)}, "sync": {"cloud_url": "http://127.0.0.1:9"}}
    )


class Rig:
    def __init__(self, store: Store, bus: EventBus, inbox: CommandInbox) -> None:
        self.store, self.bus, self.inbox = store, bus, inbox
        self.calls: list[dict[str, Any]] = []

        async def stop_all(data: dict[str, Any]) -> dict[str, Any]:
            self.calls.append(data)
            if data.get("reason") == "từ chối":
                raise CommandError("the loudspeakers refuse")
            return {"stopped": []}

        bus.serve("broadcast.stop_all", stop_all)

    def rows(self) -> list[tuple[Any, ...]]:
        return self.store.query("SELECT id, status, error FROM commands ORDER BY id")

    def results(self) -> list[dict[str, Any]]:
        return [json.loads(p) for (p,) in self.store.query("SELECT payload FROM outbox WHERE kind = 'command.result'")]


async def make_rig(data: Path, *, trusted: bool, wall: float) -> Rig:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    store = Store.open(data)
    inbox = CommandInbox(store, settings(data), "token", bus, trusted=lambda: trusted, wall=lambda: wall)
    inbox.dispatcher.handler_wait_s = 0.2  # a service that is not configured: no long wait for it to start
    await inbox.start()
    return Rig(store, bus, inbox)


@pytest.fixture
async def box_in_1970(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = await make_rig(tmp_path, trusted=False, wall=3600.0)  # booted without RTC or NTP
    yield rig
    await rig.inbox.stop()
    rig.store.close()


def cmd(command_id: int, expires_at: float, reason: str = "") -> dict[str, Any]:
    return {"id": command_id, "kind": "broadcast.stop_all", "args": {"reason": reason}, "expires_at": expires_at}


async def test_a_box_in_1970_judges_expiry_on_the_clouds_time(box_in_1970: Rig) -> None:
    rig = box_in_1970
    received = time.monotonic()
    assert await rig.inbox.handle(cmd(1, NOW + 60), NOW, received) == "applied"  # fresh: not "expired" by 1970
    assert await rig.inbox.handle(cmd(2, NOW - 5), NOW, received) == "expired"  # stale: not "fresh" by 1970
    assert len(rig.calls) == 1
    assert [r[:2] for r in rig.rows()] == [(1, "applied"), (2, "expired")]
    assert [(r["id"], r["status"]) for r in rig.results()] == [(1, "applied"), (2, "expired")]


async def test_a_trusted_clock_is_used_when_there_is_one(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, trusted=True, wall=NOW + 120)  # NTP says the cloud's clock is behind
    try:
        assert await rig.inbox.handle(cmd(1, NOW + 60), NOW, time.monotonic()) == "expired"
    finally:
        await rig.inbox.stop()
        rig.store.close()


async def test_a_duplicate_delivery_is_applied_once(box_in_1970: Rig) -> None:
    rig = box_in_1970
    received = time.monotonic()
    assert await rig.inbox.handle(cmd(1, NOW + 60), NOW, received) == "applied"
    assert await rig.inbox.handle(cmd(1, NOW + 60), NOW, received) is None
    assert await rig.inbox.handle(cmd(1, NOW + 60), NOW, received) is None
    assert len(rig.calls) == 1
    assert rig.inbox.duplicates == 2
    assert len(rig.results()) == 1


async def test_a_service_refusal_is_rejected_with_its_words_and_nothing_is_left_applying(box_in_1970: Rig) -> None:
    rig = box_in_1970
    assert await rig.inbox.handle(cmd(1, NOW + 60, "từ chối"), NOW, time.monotonic()) == "rejected"
    assert rig.rows() == [(1, "rejected", "the loudspeakers refuse")]


async def test_nothing_serving_a_command_is_a_failure(box_in_1970: Rig) -> None:
    rig = box_in_1970
    raw = {"id": 1, "kind": "irrigation.run", "args": {"seconds": 30}, "expires_at": NOW + 60}
    assert await rig.inbox.handle(raw, NOW, time.monotonic()) == "failed"
    [(_, status, error)] = rig.rows()
    assert status == "failed"
    assert "nothing on this hub handles 'irrigation.run'" in error


async def test_the_cursor_survives_a_restart(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, trusted=False, wall=0.0)
    await rig.inbox.handle(cmd(7, NOW + 60), NOW, time.monotonic())
    await rig.inbox.stop()
    rig.store.close()
    again = await make_rig(tmp_path, trusted=False, wall=0.0)
    try:
        assert again.inbox.cursor == 7
        assert await again.inbox.handle(cmd(7, NOW + 60), NOW, time.monotonic()) is None
        assert again.calls == []
    finally:
        await again.inbox.stop()
        again.store.close()


@pytest.mark.parametrize(
    ("kind", "args", "names"),
    [
        ("lighting.override", {"circuit": "cong"}, "args.state: Field required"),
        ("lighting.override", {"circuit": "cong", "state": "dim"}, "args.state"),
        ("irrigation.run", {"seconds": 0}, "args.seconds: Input should be greater than or equal to 1"),
        ("irrigation.run", {"seconds": "60"}, "args.seconds"),
        ("broadcast.announce", {"text": "a", "media": {"url": "/m", "sha256": "0" * 64, "size": 1}}, "either 'text'"),
        ("broadcast.announce", {"text": "a", "volum": 3}, "args.volum: Extra inputs are not permitted"),
        ("broadcast.announce", {"media": {"url": "/m", "sha256": "xyz", "size": 1}}, "args.media.sha256"),
        ("broadcast.emergency", {"event": "Lũ"}, "missing severity, area, expires"),
        ("broadcast.schedule.replace", {"programmes": [], "schedules": {}}, "args.schedules"),
        ("settings.patch", {}, "give 'site' and/or 'zones'"),
        ("diagnostics.request", {"now": True}, "args.now"),
        ("reboot", {}, "kind: 'reboot' is not a command this hub takes"),
    ],
)
def test_bad_arguments_are_rejected_naming_the_field(kind: str, args: dict[str, Any], names: str) -> None:
    with pytest.raises(Rejected) as refused:
        validate(kind, args)
    assert names in str(refused.value)


def test_cap_fields_become_a_cap_document_the_broadcast_parser_accepts() -> None:
    args = validate(
        "broadcast.emergency",
        {
            "event": "Lũ quét",
            "severity": "Extreme",
            "area": "Thôn Đông & thôn Tây <bờ sông>",
            "expires": "2026-11-24T18:00:00+07:00",
            "text": "Bà con di chuyển lên chỗ cao ngay.",
        },
    )
    assert isinstance(args, EmergencyArgs)
    message = parse_cap(build_cap(42, "thon-don-vi", args, dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)))
    assert message.identifier == "thon-don-vi-command-42"
    assert message.msg_type == "Alert"
    [info] = message.infos
    assert info.severity == "Extreme"
    assert info.urgency == "Immediate"
    assert info.areas[0].desc == "Thôn Đông & thôn Tây <bờ sông>"
    assert info.description == "Bà con di chuyển lên chỗ cao ngay."
    assert info.language == "vi-VN"


def test_a_zone_patch_is_checked_against_the_relays_the_box_has(tmp_path: Path) -> None:
    from hub.config.settings import Secrets
    from hub.logbuffer import LogBuffer
    from hub.sync.hooks import hub_hooks

    store = Store.open(tmp_path)
    try:
        hooks = hub_hooks(
            settings=settings(tmp_path),
            secrets=Secrets(),
            store=store,
            health=dict,
            logs=LogBuffer(),
            config_path=tmp_path / "hub.toml",
            request_restart=None,
            relay_names=("loa khu 1", "loa khu 2"),
            token=lambda: None,
        )
        assert hooks.validate_zones is not None
        assert hooks.validate_zones({"khu 1": "loa khu 1"}) == {"khu 1": "loa khu 1"}
        with pytest.raises(ValueError, match="khu 3: relay 'loa khu 3' does not exist"):
            hooks.validate_zones({"khu 3": "loa khu 3"})
        with pytest.raises(ValueError, match="two zones cannot share one relay"):
            hooks.validate_zones({"khu 1": "loa khu 1", "khu 2": "loa khu 1"})
    finally:
        store.close()


async def test_an_update_command_reaches_the_update_service_which_explains_why_it_cannot_install(
    box_in_1970: Rig, tmp_path: Path
) -> None:
    """The real update service, on a box not running from an update slot (a developer's tree): the cloud's
    `ota.install_now` is rejected with the service's reason, and nothing is left 'applying'."""
    from hub.updates.service import UpdateService
    from hub.updates.settings import OtaSettings

    rig = box_in_1970
    service = UpdateService(
        OtaSettings.model_validate({"root": str(tmp_path / "opt")}, strict=False),
        rig.store,
        rig.bus,
        health=dict,
        request_restart=lambda why: None,
        data_dir=tmp_path,
        config_path=tmp_path / "hub.toml",
        prefix=str(tmp_path / "venv"),
        env={},
    )
    await service.start()
    task = asyncio.create_task(service.run())
    try:
        command = {"id": 7, "kind": "ota.install_now", "args": {}, "expires_at": NOW + 60}
        assert await rig.inbox.handle(command, NOW, time.monotonic()) == "rejected"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await service.stop()
    ((_, status, error),) = rig.rows()
    assert status == "rejected"
    assert "update slot" in error
    assert rig.results()[0]["kind"] == "ota.install_now"
