"""The check both Vietnamese catalogs pass (technician page, operator console): every string the sources mark
for translation is translated, with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir

from hub.web.i18n import read_catalog

PLACEHOLDER = re.compile(r"\{(\w*)\}|%\((\w+)\)s")  # str.format, and {% trans %} blocks


def assert_catalog_complete(package: str, sources: Path, methods: list[tuple[str, str]], update: str) -> None:
    """`update`: the command that adds new strings to the catalog (said in the failure)."""
    catalog = read_catalog("vi", package=package)
    extracted = {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(str(sources), methods)
        if isinstance(message, str)
    }
    assert len(extracted) > 100
    missing = sorted(m for m in extracted if not (catalog.get(m) and catalog.get(m).string))  # type: ignore[union-attr]
    assert not missing, f"untranslated (run {update}, then translate): {missing}"
    for message in extracted:
        translated = str(catalog.get(message).string)  # type: ignore[union-attr]
        assert sorted(PLACEHOLDER.findall(message)) == sorted(PLACEHOLDER.findall(translated)), message
