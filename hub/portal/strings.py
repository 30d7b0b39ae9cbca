"""The portal's words, in Vietnamese (the default) and English. One dict per language, the same keys in both
(a test checks it). Placeholders are str.format fields."""

from __future__ import annotations

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"

STRINGS: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Wi-Fi miễn phí",
        "welcome": "Chào mừng bà con đến với Wi-Fi miễn phí của {village}",
        "welcome_plain": "Chào mừng bà con đến với Wi-Fi miễn phí",
        "notices": "Thông báo của thôn",
        "announcements": "Loa truyền thanh gần đây",
        "no_notices": "Hiện chưa có thông báo mới.",
        "terms_title": "Điều khoản sử dụng",
        "terms": (
            "Mạng Wi-Fi này do thôn cung cấp miễn phí cho bà con. Xin dùng đúng pháp luật, không phát tán nội dung "
            "xấu độc, không tải nặng làm ảnh hưởng người khác. Mỗi lần kết nối dùng được {hours} giờ, tốc độ có giới "
            "hạn để ai cũng dùng được. Thôn không thu thập thông tin cá nhân của bà con."
        ),
        "accept": "Tôi đồng ý với điều khoản sử dụng",
        "connect": "Kết nối",
        "renew": "Gia hạn thêm",
        "connected_title": "Đã kết nối",
        "connected": "Thiết bị của bạn đã được kết nối Internet.",
        "remaining": "Thời gian còn lại: {time}",
        "quota_left": "Dung lượng còn lại hôm nay: {mb} MB",
        "limits": "Tốc độ tối đa: tải xuống {down}, tải lên {up}.",
        "unlimited": "không giới hạn",
        "must_accept": "Xin đánh dấu ô đồng ý với điều khoản trước khi kết nối.",
        "refused_full": "Mạng đang quá đông ({max} thiết bị). Xin thử lại sau ít phút.",
        "refused_quota": "Thiết bị này đã dùng hết dung lượng miễn phí hôm nay. Mời bà con quay lại vào ngày mai.",
        "refused_unknown-device": "Không nhận ra thiết bị. Xin tắt Wi-Fi rồi bật lại và thử lần nữa.",
        "refused_not-wifi": "Trang này chỉ dùng được khi kết nối vào Wi-Fi của thôn.",
        "refused_firewall": "Hệ thống đang bận. Xin thử lại sau ít phút.",
        "expired_form": "Trang đã cũ, xin bấm Kết nối lần nữa.",
        "too_many": "Bạn thao tác quá nhanh. Xin đợi một chút rồi thử lại.",
        "language": "English",
        "hours_minutes": "{h} giờ {m} phút",
        "minutes": "{m} phút",
        "seconds": "{s} giây",
        "footer": "Wi-Fi công cộng của thôn — nhà văn hóa",
    },
    "en": {
        "title": "Free Wi-Fi",
        "welcome": "Welcome to the free Wi-Fi of {village}",
        "welcome_plain": "Welcome to the free village Wi-Fi",
        "notices": "Village notices",
        "announcements": "Recent loudspeaker announcements",
        "no_notices": "No new notices at the moment.",
        "terms_title": "Terms of use",
        "terms": (
            "This Wi-Fi is offered free of charge by the village. Use it lawfully, do not spread harmful content, and "
            "do not load it so heavily that others cannot use it. Each connection lasts {hours} hours and speed is "
            "limited so that everyone can use it. The village collects no personal information."
        ),
        "accept": "I accept the terms of use",
        "connect": "Connect",
        "renew": "Extend",
        "connected_title": "Connected",
        "connected": "Your device is connected to the internet.",
        "remaining": "Time left: {time}",
        "quota_left": "Data left today: {mb} MB",
        "limits": "Maximum speed: download {down}, upload {up}.",
        "unlimited": "unlimited",
        "must_accept": "Please tick the box to accept the terms before connecting.",
        "refused_full": "The network is full ({max} devices). Please try again in a few minutes.",
        "refused_quota": "This device has used up today's free data. Please come back tomorrow.",
        "refused_unknown-device": "Your device could not be recognised. Turn Wi-Fi off and on, then try again.",
        "refused_not-wifi": "This page only works when you are connected to the village Wi-Fi.",
        "refused_firewall": "The system is busy. Please try again in a few minutes.",
        "expired_form": "This page is out of date; please press Connect again.",
        "too_many": "Too many requests. Please wait a moment and try again.",
        "language": "Tiếng Việt",
        "hours_minutes": "{h} h {m} min",
        "minutes": "{m} min",
        "seconds": "{s} s",
        "footer": "Public Wi-Fi of the village cultural house",
    },
}


def strings(lang: str) -> dict[str, str]:
    return STRINGS.get(lang, STRINGS[DEFAULT_LANGUAGE])


def duration(seconds: float, lang: str) -> str:
    s = strings(lang)
    total = max(0, int(seconds))
    h, m = divmod(total // 60, 60)
    if h:
        return s["hours_minutes"].format(h=h, m=m)
    if m:
        return s["minutes"].format(m=m)
    return s["seconds"].format(s=total)


def speed(kbps: int, lang: str) -> str:
    if not kbps:
        return strings(lang)["unlimited"]
    if kbps < 1000:
        return f"{kbps} kbit/s"
    text = f"{round(kbps / 1000, 1):g} Mbit/s"
    return text.replace(".", ",") if lang == "vi" else text  # Vietnamese writes 1,5
