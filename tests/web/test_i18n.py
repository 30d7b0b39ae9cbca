"""Every string of the technician page is in the Vietnamese catalog, with the same placeholders."""

from __future__ import annotations

from pathlib import Path

from hub.web.i18n import Catalogs, pick_language
from tests.support.catalogs import assert_catalog_complete

WEB = Path(__file__).resolve().parents[2] / "hub" / "web"


def test_every_page_string_has_a_vietnamese_translation_with_the_same_placeholders() -> None:
    assert_catalog_complete(
        "hub.web", WEB, [("**.py", "python"), ("templates/**.html", "jinja2")], "scripts/update-catalog.py hub"
    )


def test_the_same_template_renders_in_both_languages() -> None:
    catalogs = Catalogs()
    common: dict[str, object] = {
        "request_path": "/login",
        "path_quoted": "%2Flogin",
        "session": None,
        "csrf": "t",
        "village": "Thôn Đông",
        "hub_id": "thon-dong",
        "flash": [],
        "error": None,
        "next": "/",
        "user": "",
    }
    vi = catalogs.render("vi", "login.html", **common)
    en = catalogs.render("en", "login.html", **common)
    assert "Đăng nhập" in vi
    assert "Tên đăng nhập" in vi
    assert 'lang="vi"' in vi
    assert "Log in" in en
    assert "User name" in en
    assert 'lang="en"' in en
    assert "Thôn Đông" in vi
    assert "Thôn Đông" in en


def test_language_choice() -> None:
    assert pick_language(None, None) == "vi"
    assert pick_language(None, "en-US,en;q=0.9") == "en"
    assert pick_language(None, "vi-VN,vi;q=0.9,en;q=0.8") == "vi"
    assert pick_language("en", "vi-VN") == "en"  # the toggle wins
    assert pick_language("fr", None) == "vi"
