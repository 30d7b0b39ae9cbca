"""`hub doctor`'s update check reads the slots as the boot guard does, with or without a running hub."""

from __future__ import annotations

from pathlib import Path

from hub.config.settings import Settings
from hub.doctor import _updates
from ota import slots
from tests.ota.slotkit import small_tree


def settings(root: Path, trusted_root: Path) -> Settings:
    return Settings.model_validate(
        {
            "hub": {"id": "thon-doctor", "data_dir": str(root / "data")},
            "ota": {"root": str(root / "opt"), "trusted_root": str(trusted_root)},
        }
    )


def test_the_update_check_follows_the_slots_through_a_trial_and_a_rollback(tmp_path: Path) -> None:
    trusted = tmp_path / "ota-root.json"
    s = settings(tmp_path, trusted)
    check = _updates(s)
    assert (check.level, check.name) == ("warn", "updates")
    assert "not installed" in check.message

    layout = slots.Layout(tmp_path / "opt")
    for name, version in (("a", "1.0.0"), ("b", "1.1.0")):
        (layout.slot(name) / slots.RELEASE_NAME).write_bytes(small_tree(layout.slot(name), version))
    slots.switch(layout, "a")
    check = _updates(s)
    assert check.level == "fail"  # nothing to verify a release against
    assert str(trusted) in check.message

    trusted.write_text("{}", encoding="utf-8")
    check = _updates(s)
    assert (check.level, check.message) == ("ok", "slot a runs 1.0.0")

    slots.begin_trial(layout, "b")
    check = _updates(s)
    assert check.level == "warn"
    assert "1.1.0 on trial" in check.message
    assert "slot a (1.0.0) is the fallback" in check.message

    with slots.locked(layout) as state:
        slots.rollback(layout, state, "web failed within 120 s")
    check = _updates(s)
    assert check.level == "warn"
    assert check.message == "slot a runs 1.0.0; 1.1.0 was rolled back: web failed within 120 s"


def test_updates_turned_off_is_a_warning(tmp_path: Path) -> None:
    s = Settings.model_validate({"hub": {"id": "thon-doctor", "data_dir": str(tmp_path)}, "ota": {"enabled": False}})
    check = _updates(s)
    assert check.level == "warn"
    assert "ota.enabled = false" in check.message
