"""The base of every hub.toml section: strict, closed, immutable.

A leaf module (it imports nothing of the hub), so that service settings (hub/<service>/settings.py) and the
gathering model in hub/config/settings.py can both import it without a cycle.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    # strict: TOML already carries types, so "5" for an integer is a mistake to report, not to coerce.
    # forbid: an unknown key is nearly always a typo of a known one.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
