"""The operator console in Vietnamese and English: every string of cloud/operator.py and its templates is in
cloud/locale/vi/LC_MESSAGES/operator.po; a real `hub-cloud serve` answers in Vietnamese unless the browser asks
for English (or the toggle's cookie says so); the toggle returns only inside /operator/; form errors, login
errors and the live view's messages come in the operator's language."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from pathlib import Path

from cloud.operator import FormError, _age, _catalogs
from hub.web.i18n import read_catalog
from tests.cloud.conftest import CloudServer
from tests.cloud.operator_client import OperatorClient, Page
from tests.support.catalogs import assert_catalog_complete

CLOUD = Path(__file__).resolve().parents[2] / "cloud"
FLOOD = "Nước lũ dâng cao ở thôn Đông"


def hub_path(hub_id: str, rest: str = "") -> str:
    return f"/operator/hubs/{urllib.parse.quote(hub_id, safe='')}{rest}"


def html_lang(page: Page) -> str:
    match = re.search(r'<html lang="(\w+)">', page.text)
    assert match, page.text[:300]
    return match.group(1)


def toggle_href(page: Page) -> str:
    match = re.search(r'id="lang-toggle" href="([^"]+)"', page.text)
    assert match, "no language toggle on the page"
    return match.group(1).replace("&amp;", "&")


def logged_in(cloud: CloudServer, language: str | None) -> OperatorClient:
    client = OperatorClient(cloud, language)
    assert client.login().status == 303
    return client


# --- the catalog -------------------------------------------------------------------------------------------------


def test_every_console_string_has_a_vietnamese_translation_with_the_same_placeholders() -> None:
    assert_catalog_complete(
        "cloud",
        CLOUD,
        [("operator.py", "python"), ("templates/operator/**.html", "jinja2")],
        "scripts/update-catalog.py cloud",
    )
    catalog = read_catalog("vi", package="cloud")
    # the technician page's catalog stays its own: nothing of the console leaks into it, nor the other way round
    assert read_catalog("vi").get("Emergency alert") is None
    assert catalog.get("Village Hub") is None


def test_ages_and_field_errors_read_naturally_in_both_languages() -> None:
    catalogs = _catalogs()
    vi, en = catalogs.gettext("vi"), catalogs.gettext("en")
    now = time.time()
    assert _age(vi, now - 30) == "30 giây trước"
    assert _age(en, now - 30) == "30 s ago"
    assert _age(vi, now - 3 * 3600) == "3 giờ trước"
    assert _age(vi, now - 5 * 86_400) == "5 ngày trước"
    assert _age(en, now - 5 * 86_400) == "5 days ago"
    assert _age(vi, None) == "chưa bao giờ"
    error = FormError("level", "expected one of {choices}", choices="normal, priority, emergency")
    assert str(error) == "level: expected one of normal, priority, emergency"
    assert error.translated(vi) == "level: phải là một trong: normal, priority, emergency"  # the field name as sent


def test_every_message_of_the_live_script_is_rendered_into_the_page() -> None:
    """operator-live.js reads its texts from data-t-* attributes: each key it asks for exists in live.html."""
    script = (CLOUD / "static" / "operator-live.js").read_text(encoding="utf-8")
    template = (CLOUD / "templates" / "operator" / "live.html").read_text(encoding="utf-8")
    keys = set(re.findall(r'"(t[A-Z]\w*)"', script))  # every key is a string literal, passed to t() or chosen for it
    assert len(keys) >= 10, keys
    attributes = {
        "t" + "".join(part.capitalize() for part in name.split("-"))
        for name in re.findall(r"data-t-([\w-]+)=", template)
    }
    assert keys <= attributes, keys - attributes
    # the script writes no English sentence of its own any more
    assert not re.search(r'say\(\s*[`"][A-Z]', script)


# --- the console served by a real `hub-cloud serve` ------------------------------------------------------------


def test_vietnamese_by_default_english_when_the_browser_asks_for_it(cloud: CloudServer, hub: tuple[str, str]) -> None:
    hub_id, _ = hub
    plain = OperatorClient(cloud, None).get("/operator/login")
    assert plain.status == 200
    assert html_lang(plain) == "vi"
    assert "<h1>Đăng nhập</h1>" in plain.text
    assert "Mã quản trị" in plain.text
    assert 'lang="en">English</a>' in plain.text  # the toggle names the other language in that language

    assert html_lang(OperatorClient(cloud, "vi-VN,vi;q=0.9,en;q=0.8").get("/operator/login")) == "vi"
    english = OperatorClient(cloud, "en-GB,en;q=0.9").get("/operator/login")
    assert html_lang(english) == "en"
    assert "<h1>Log in</h1>" in english.text
    assert 'lang="vi">Tiếng Việt</a>' in english.text

    operator = logged_in(cloud, None)
    hubs = operator.get("/operator/hubs")
    assert html_lang(hubs) == "vi"
    assert "<h1>Các hub</h1>" in hubs.text
    assert "Tồn đọng trên thiết bị" in hubs.text
    page = operator.get(hub_path(hub_id))
    assert html_lang(page) == "vi"
    for heading in ("Thông báo", "Cảnh báo khẩn cấp", "Điều khiển đèn đường", "Sự kiện và số liệu đo"):
        assert f"<h2>{heading}</h2>" in page.text, heading
    assert '<option value="Extreme">Cực kỳ nghiêm trọng</option>' in page.text  # the label translated, not the value
    assert "Chưa có lệnh nào." in page.text
    live = operator.get(hub_path(hub_id, "/live"))
    assert html_lang(live) == "vi"
    assert 'data-t-failed="Không thành công: {error}"' in live.text
    assert 'data-state-rejected="bị từ chối"' in live.text


def test_the_toggle_sets_a_cookie_and_returns_only_inside_the_console(cloud: CloudServer, hub: tuple[str, str]) -> None:
    hub_id, _ = hub
    operator = logged_in(cloud, None)
    page = operator.get(hub_path(hub_id) + "?class=safety")
    href = toggle_href(page)
    assert href == "/operator/lang/en?next=" + urllib.parse.quote(hub_path(hub_id) + "?class=safety", safe="")
    switched = operator.get(href)
    assert switched.status == 303
    assert switched.location == hub_path(hub_id) + "?class=safety"  # the same page, its filter kept
    cookie = next(c for c in switched.set_cookies if c.startswith("vh_operator_lang=en"))
    assert "Path=/operator" in cookie
    assert "HttpOnly" in cookie
    english = operator.get(switched.location)
    assert html_lang(english) == "en"  # the cookie wins over a browser that asked for nothing
    assert "<h2>Emergency alert</h2>" in english.text
    assert html_lang(operator.get("/operator/hubs")) == "en"

    back = operator.get(toggle_href(english))
    assert back.status == 303
    assert html_lang(operator.get(back.location)) == "vi"

    for target in ("https://evil.example/", "//evil.example/x", "/elsewhere", "/operator\\..\\x", ""):
        resp = operator.get("/operator/lang/en?" + urllib.parse.urlencode({"next": target}))
        assert resp.status == 303, target
        assert resp.location == "/operator/hubs", target
    assert operator.get("/operator/lang/fr?next=/operator/hubs").status == 404
    # before a login too: the toggle of the login page keeps where the login leads
    anonymous = OperatorClient(cloud, None)
    login = anonymous.get("/operator/login?next=" + urllib.parse.quote(hub_path(hub_id)))
    switched = anonymous.get(toggle_href(login))
    assert switched.status == 303
    after = anonymous.get(switched.location)
    assert html_lang(after) == "en"
    assert after.hidden("next") == hub_path(hub_id)


def test_form_errors_are_translated_and_keep_the_field_name(cloud: CloudServer, hub: tuple[str, str]) -> None:
    hub_id, _ = hub
    vi = logged_in(cloud, None)
    csrf = vi.csrf(hub_id)
    volume = vi.post_multipart(hub_path(hub_id, "/announce"), [("csrf", csrf), ("text", FLOOD), ("volume", "300")])
    assert volume.status == 400
    assert html_lang(volume) == "vi"
    assert "volume: phải là một số từ 0 đến 100" in volume.text
    # answering the POST, the page's toggle goes back to the hub's page (a GET), not to the form's action
    assert toggle_href(volume) == "/operator/lang/en?next=" + urllib.parse.quote(hub_path(hub_id), safe="")
    both = vi.post_multipart(
        hub_path(hub_id, "/announce"), [("csrf", csrf), ("text", FLOOD)], [("audio", "a.wav", b"RIFF")]
    )
    assert both.status == 400
    assert "chỉ một trong hai" in both.text
    no_area = vi.post_multipart(
        hub_path(hub_id, "/emergency"), [("csrf", csrf), ("event", "Lũ"), ("severity", "Severe"), ("text", FLOOD)]
    )
    assert "area: bắt buộc phải nhập" in no_area.text
    ttl = vi.post_form(hub_path(hub_id, "/lighting"), {"csrf": csrf, "circuit": "c1", "state": "on", "ttl_min": "x"})
    assert ttl.status == 400
    assert "Hết hạn sau: hãy nhập số phút." in ttl.text

    en = logged_in(cloud, "en")
    english = en.post_multipart(
        hub_path(hub_id, "/announce"), [("csrf", en.csrf(hub_id)), ("text", FLOOD), ("volume", "300")]
    )
    assert "volume: expected a number from 0 to 100" in english.text

    queued = vi.post_multipart(hub_path(hub_id, "/announce"), [("csrf", csrf), ("text", FLOOD)])
    assert queued.status == 303
    notice = vi.get(queued.location)
    assert re.search(r"Đã xếp hàng lệnh \d+: lệnh được gửi đi khi hub kết nối lần tới\.", notice.text)
    queue = notice.text.split('id="commands"')[1].split("</table>")[0]
    assert "<td>đang chờ gửi</td>" in queue
    assert "broadcast.announce" in queue  # kinds are the protocol's names, in both languages


def test_login_csrf_and_live_refusals_in_the_operators_language(cloud: CloudServer, hub: tuple[str, str]) -> None:
    hub_id, _ = hub
    wrong = OperatorClient(cloud, None).login("not-the-token")
    assert wrong.status == 401
    assert "Mã quản trị không đúng." in wrong.text
    assert "Wrong admin token." in OperatorClient(cloud, "en").login("not-the-token").text

    operator = logged_in(cloud, None)
    forged = operator.post_form(hub_path(hub_id, "/announce"), {"csrf": "forged", "text": FLOOD})
    assert forged.status == 403
    assert "Mã bảo mật của biểu mẫu" in forged.text
    headers = {"Content-Type": "application/json", "X-CSRF-Token": operator.csrf(hub_id)}
    offer = {"sdp": "v=0\r\n", "type": "offer"}
    body = json.dumps({"offer": offer, "session": "có dấu cách"}).encode()
    refused = operator.request("POST", hub_path(hub_id, "/live/start"), body, headers)
    assert refused.status == 400
    assert json.loads(refused.text)["error"] == "session: từ 1 đến 80 ký tự gồm chữ, số và . _ : -"
    no_csrf = operator.request(
        "POST", hub_path(hub_id, "/live/stop"), b'{"session": "s"}', headers | {"X-CSRF-Token": ""}
    )
    assert no_csrf.status == 403
    assert json.loads(no_csrf.text)["error"] == "X-CSRF-Token: thiếu hoặc không đúng"
    anonymous = OperatorClient(cloud, None).get(hub_path(hub_id, "/commands/1"))
    assert anonymous.status == 401
    assert json.loads(anonymous.text)["error"] == "Hãy đăng nhập trước."
