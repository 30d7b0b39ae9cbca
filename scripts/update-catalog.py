#!/usr/bin/env python3
"""Extract the technician page's strings (and the cloud's operator console's) and merge them into the Vietnamese
catalogs.

    .venv/bin/python scripts/update-catalog.py [hub] [cloud]     (both without an argument)

New strings appear in hub/web/locale/vi/LC_MESSAGES/messages.po with an empty msgstr (unless another catalog of
that folder, e.g. ota.po, already translates them); tests/web/test_i18n.py fails until each is translated.
The operator console's go to cloud/locale/vi/LC_MESSAGES/operator.po (tests/cloud/test_operator_i18n.py).
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
CLOUD = ROOT / "cloud"
TARGETS = {  # name: (source folder, extraction methods, the catalog it updates)
    "hub": (WEB, METHODS, PO),
    "cloud": (
        CLOUD,
        [("operator.py", "python"), ("templates/operator/**.html", "jinja2")],
        CLOUD / "locale" / "vi" / "LC_MESSAGES" / "operator.po",
    ),
}


def extracted(source: Path = WEB, methods: list[tuple[str, str]] = METHODS) -> Catalog:
    template = Catalog(project="village-hub", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(str(source), methods):
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def main() -> int:
    for name in sys.argv[1:] or list(TARGETS):
        if name not in TARGETS:
            print(f"{name}: not one of {', '.join(TARGETS)}", file=sys.stderr)
            return 2
        update(*TARGETS[name])
    return 0


def update(source: Path, methods: list[tuple[str, str]], po: Path) -> None:
    template = extracted(source, methods)
    elsewhere: set[str] = set()
    for other in sorted(po.parent.glob("*.po")):
        if other != po:
            with other.open("rb") as f:
                elsewhere.update(str(m.id) for m in read_po(f, locale="vi") if m.id)
    for message_id in elsewhere:
        if message_id in template:
            del template[message_id]
    if po.exists():
        with po.open("rb") as f:
            catalog = read_po(f, locale="vi")
    else:
        catalog = Catalog(locale="vi", project="village-hub", charset="utf-8")
    catalog.update(template, no_fuzzy_matching=True)
    po.parent.mkdir(parents=True, exist_ok=True)
    with po.open("wb") as f:
        write_po(f, catalog, width=120, omit_header=False, ignore_obsolete=True)
    missing = [m.id for m in catalog if m.id and not m.string]
    print(f"{po.relative_to(ROOT)}: {len(catalog)} messages, {len(missing)} untranslated")


if __name__ == "__main__":
    sys.exit(main())
