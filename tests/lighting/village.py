"""A village in Thanh Hóa (Quảng Lưu, about 19.66 N, 105.78 E) with four circuits, as hub.toml would give them."""

from __future__ import annotations

import datetime as dt
import tomllib
from zoneinfo import ZoneInfo

from astral import Observer
from astral.sun import sunrise, sunset

from hub.lighting.schedule import Place
from hub.lighting.settings import LightingSection

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
PLACE = Place(19.66, 105.78, TZ)
OBSERVER = Observer(19.66, 105.78)
SATURDAY = dt.date(2025, 6, 21)

STREET = "đèn đường thôn"
HALF = "đèn đường thôn (nửa đêm)"
HALL = "đèn nhà văn hóa"
SOCKETS = "ổ cắm đài và tivi"

RELAYS = ["đèn đường 1", "đèn đường 2", "đèn đường 3", "đèn đường 4", "đèn hội trường", "ổ cắm đài", "ổ cắm tivi"]

LIGHTING_TOML = """
[lighting]
recheck_s = 600
jump_check_s = 60

[[lighting.circuit]]
name = "đèn đường thôn"
relays = ["đèn đường 1", "đèn đường 3"]

[[lighting.circuit.rule]]
kind = "dusk_dawn"
on_offset_min = 10
off_offset_min = 15

[[lighting.circuit]]
name = "đèn đường thôn (nửa đêm)"
relays = ["đèn đường 2", "đèn đường 4"]

[[lighting.circuit.rule]]
kind = "dusk_dawn"
on_offset_min = 10
off_offset_min = 15

[[lighting.circuit.rule]]
kind = "half_night"
name = "nửa đêm"
off = "23:00"
on = "04:30"

[[lighting.circuit]]
name = "đèn nhà văn hóa"
relays = ["đèn hội trường"]

[[lighting.circuit.rule]]
kind = "fixed"
name = "sinh hoạt cuối tuần"
on = "18:30"
off = "21:30"
days = ["sat", "cn"]

[[lighting.circuit]]
name = "ổ cắm đài và tivi"
relays = ["ổ cắm đài", "ổ cắm tivi"]

[[lighting.circuit.rule]]
kind = "fixed"
name = "đài và tivi"
on = 05:00:00
off = "22:00"
"""


def lighting(toml: str = LIGHTING_TOML, **changes: object) -> LightingSection:
    section = LightingSection.model_validate(tomllib.loads(toml)["lighting"])
    return section.model_copy(update=changes) if changes else section


def local(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=TZ)


def street_on(day: dt.date) -> dt.datetime:
    """Astral's sunset + 10 min, the moment the street lights must come on."""
    return sunset(OBSERVER, day, tzinfo=TZ) + dt.timedelta(minutes=10)


def street_off(day: dt.date) -> dt.datetime:
    """Astral's sunrise of the morning after `day` − 15 min."""
    return sunrise(OBSERVER, day + dt.timedelta(days=1), tzinfo=TZ) - dt.timedelta(minutes=15)
