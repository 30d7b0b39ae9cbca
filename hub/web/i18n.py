"""Vietnamese and English for the technician page: message catalogs (gettext .po, read with Babel) and one
Jinja2 environment per language.

The source strings are English; `locale/vi/LC_MESSAGES/*.po` translate them: `messages.po` for the page's core
and one catalog per later part (`ota.po`, `cloud.po`, …), so parts built side by side never edit the same file.
The catalogs are merged and compiled in memory at start, so there is no build step and no stale .mo file.
The reference cloud's operator console uses the same code with `package="cloud"` (its templates/ and locale/).
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Callable
from importlib import resources
from typing import Any

import jinja2
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
DOMAIN = "messages"


def read_catalog(language: str, package: str = "hub.web") -> Catalog:
    """messages.po, then every other .po of the language in name order; a msgid in two files keeps the first."""
    folder = resources.files(package).joinpath(f"locale/{language}/LC_MESSAGES")
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".po"))
    names.sort(key=lambda n: n != f"{DOMAIN}.po")
    merged = Catalog(locale=language, domain=DOMAIN, charset="utf-8")
    for name in names:
        with folder.joinpath(name).open("rb") as f:
            part = read_po(f, locale=language, domain=DOMAIN)
        for message in part:
            if message.id and message.id not in merged:
                merged[message.id] = message
    return merged


def load_translations(language: str, package: str = "hub.web") -> gettext.NullTranslations:
    if language == "en":
        return gettext.NullTranslations()
    catalog = read_catalog(language, package)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


class Catalogs:
    def __init__(self, filters: dict[str, Callable[..., Any]] | None = None, package: str = "hub.web") -> None:
        self.translations = {lang: load_translations(lang, package) for lang in LANGUAGES}
        self.environments: dict[str, jinja2.Environment] = {}
        for lang, translations in self.translations.items():
            env = jinja2.Environment(
                loader=jinja2.PackageLoader(package, "templates"),
                autoescape=True,
                extensions=["jinja2.ext.i18n"],
                undefined=jinja2.StrictUndefined,
                trim_blocks=True,
                lstrip_blocks=True,
            )
            env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
            env.globals["lang"] = lang
            env.filters.update(filters or {})
            self.environments[lang] = env

    def gettext(self, language: str) -> Callable[[str], str]:
        return self.translations.get(language, self.translations[DEFAULT_LANGUAGE]).gettext

    def render(self, language: str, template: str, **context: Any) -> str:
        env = self.environments.get(language) or self.environments[DEFAULT_LANGUAGE]
        return env.get_template(template).render(**context)


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The toggle's cookie first; otherwise Vietnamese, unless the browser asks for English and not Vietnamese."""
    if cookie in LANGUAGES:
        return str(cookie)
    if accept_language:
        wanted = [part.split(";")[0].strip().lower()[:2] for part in accept_language.split(",")]
        if "en" in wanted and "vi" not in wanted:
            return "en"
    return DEFAULT_LANGUAGE
