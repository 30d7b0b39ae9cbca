#!/usr/bin/env python3
"""Extract the technician page's strings and merge them into the Vietnamese catalog.

    .venv/bin/python scripts/update-catalog.py

New strings appear in hub/web/locale/vi/LC_MESSAGES/messages.po with an empty msgstr (unless another catalog of
that folder, e.g. ota.po, already translates them); tests/web/test_i18n.py fails until each is translated.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "hub" / "web"
PO = WEB / "locale" / "vi" / "LC_MESSAGES" / "messages.po"
METHODS = [("**.py", "python"), ("templates/**.html", "jinja2")]


def extracted() -> Catalog:
    template = Catalog(project="village-hub", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(str(WEB), METHODS):
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def main() -> int:
    template = extracted()
    elsewhere: set[str] = set()
    for other in sorted(PO.parent.glob("*.po")):
        if other != PO:
            with other.open("rb") as f:
                elsewhere.update(str(m.id) for m in read_po(f, locale="vi") if m.id)
    for message_id in elsewhere:
        if message_id in template:
            del template[message_id]
    if PO.exists():
        with PO.open("rb") as f:
            catalog = read_po(f, locale="vi")
    else:
        catalog = Catalog(locale="vi", project="village-hub", charset="utf-8")
    catalog.update(template, no_fuzzy_matching=True)
    PO.parent.mkdir(parents=True, exist_ok=True)
    with PO.open("wb") as f:
        write_po(f, catalog, width=120, omit_header=False, ignore_obsolete=True)
    missing = [m.id for m in catalog if m.id and not m.string]
    print(f"{PO.relative_to(ROOT)}: {len(catalog)} messages, {len(missing)} untranslated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
