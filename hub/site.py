"""The site details the install wizard sets on the box (village, coordinates, commune cloud URL).

They are kept in the store and laid over hub.toml's values at start: the image's hub.toml is the same for every
village, /etc is read-only under systemd's hardening, and a technician on site has a phone, not an editor.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field, HttpUrl, ValidationError

from hub.config.settings import Settings
from hub.section import Section

log = logging.getLogger(__name__)

SITE_KEY = "install.site"
ZONES_KEY = "install.zones"  # {zone name: relay name}, set by the install wizard's wiring step


class SiteSettings(Section):
    village_name: str = Field(min_length=1, max_length=80, title="Village name")
    village_code: str = Field(default="", max_length=20, pattern=r"^[0-9A-Za-z._-]*$", title="Village code")
    latitude: float = Field(ge=-90.0, le=90.0, title="Latitude")
    longitude: float = Field(ge=-180.0, le=180.0, title="Longitude")
    cloud_url: HttpUrl | None = Field(default=None, title="Commune cloud URL")


def apply_site(settings: Settings, stored: Any) -> tuple[Settings, SiteSettings | None]:
    """hub.toml's settings with the wizard's site details over them; a stored value that no longer validates (a
    newer rule) is ignored with a log line rather than stopping the box."""
    if not stored:
        return settings, None
    try:
        site = SiteSettings.model_validate(stored)
    except ValidationError as exc:
        log.error("ignoring the install wizard's site details (%s); using hub.toml", exc)
        return settings, None
    village = settings.village.model_copy(
        update={
            "name": site.village_name,
            "code": site.village_code,
            "latitude": site.latitude,
            "longitude": site.longitude,
        }
    )
    update: dict[str, Any] = {"village": village}
    if site.cloud_url is not None:
        update["sync"] = settings.sync.model_copy(update={"cloud_url": site.cloud_url})
    return settings.model_copy(update=update), site


def apply_zones(settings: Settings, stored: Any) -> Settings:
    """The loudspeaker zones as the technician wired them (zone -> relay), over hub.toml's [broadcast.zones]. A
    mapping that no longer validates against the rest of [broadcast] (a programme names a zone it dropped) is
    ignored with a log line: the box keeps hub.toml's zones rather than refusing to start."""
    if not isinstance(stored, dict) or not stored:
        return settings
    from hub.broadcast.settings import BroadcastSettings  # only boxes with zones pay for the import

    try:
        broadcast = BroadcastSettings.model_validate({**settings.broadcast.model_dump(mode="json"), "zones": stored})
    except ValidationError as exc:
        log.error("ignoring the install wizard's zone wiring (%s); using hub.toml's", exc)
        return settings
    return settings.model_copy(update={"broadcast": broadcast})
