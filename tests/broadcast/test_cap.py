from datetime import UTC, datetime, timedelta, timezone

import pytest

from hub.broadcast.cap import CapArea, CapError, CapMessage, CapReference, parse_cap

NS = "urn:oasis:names:tc:emergency:cap:1.2"
ICT = timezone(timedelta(hours=7))

VI_INFO = """
  <info>
    <language>vi-VN</language>
    <category>Met</category>
    <category>Safety</category>
    <event>Lũ quét</event>
    <responseType>Evacuate</responseType>
    <urgency>Immediate</urgency>
    <severity>Extreme</severity>
    <certainty>Observed</certainty>
    <effective>2025-10-07T08:30:00+07:00</effective>
    <onset>2025-10-07T09:00:00+07:00</onset>
    <expires>2025-10-07T14:30:00+07:00</expires>
    <senderName>Ban Chỉ huy PCTT xã Đông Sơn</senderName>
    <headline>Cảnh báo lũ quét khẩn cấp</headline>
    <description>Mưa lớn kéo dài, nước suối Nậm Khắt dâng nhanh</description>
    <instruction>Bà con thôn Đông di chuyển ngay lên nhà văn hóa!</instruction>
    <parameter><valueName>level</valueName><value>3</value></parameter>
    <area>
      <areaDesc>Thôn Đông, xã Đông Sơn</areaDesc>
      <polygon>21.0,105.8 21.1,105.8 21.1,105.9 21.0,105.8</polygon>
    </area>
    <area><areaDesc>Thôn Bắc</areaDesc></area>
  </info>"""

EN_INFO = """
  <info>
    <category>Met</category>
    <event>Flash flood</event>
    <urgency>Immediate</urgency>
    <severity>Extreme</severity>
    <certainty>Observed</certainty>
    <expires>2025-10-07T16:00:00+07:00</expires>
    <headline>Flash flood warning</headline>
  </info>"""


def alert(
    body: str = "", msg_type: str = "Alert", references: str | None = None, namespace: str = NS, **fields: str
) -> str:
    values = {
        "identifier": "VN-DS-2025-0042",
        "sender": "pctt@dongson.gov.vn",
        "sent": "2025-10-07T08:25:00+07:00",
        "status": "Actual",
        "msgType": msg_type,
        "scope": "Public",
    } | fields
    elements = "".join(f"<{name}>{value}</{name}>" for name, value in values.items() if value is not None)
    if references is not None:
        elements += f"<references>{references}</references>"
    xmlns = f' xmlns="{namespace}"' if namespace else ""
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<alert{xmlns}>{elements}{body}</alert>'


def test_vietnamese_alert_parses_every_field() -> None:
    message = parse_cap(alert(EN_INFO + VI_INFO).encode("utf-8"))

    assert isinstance(message, CapMessage)
    assert message.identifier == "VN-DS-2025-0042"
    assert message.sender == "pctt@dongson.gov.vn"
    assert message.sent == datetime(2025, 10, 7, 8, 25, tzinfo=ICT)
    assert (message.status, message.msg_type, message.scope) == ("Actual", "Alert", "Public")
    assert message.references == ()
    english, vietnamese = message.infos
    assert english.language == "en-US"  # the spec's default when <language> is absent
    assert vietnamese.language == "vi-VN"
    assert vietnamese.category == ("Met", "Safety")
    assert vietnamese.event == "Lũ quét"
    assert (vietnamese.urgency, vietnamese.severity, vietnamese.certainty) == ("Immediate", "Extreme", "Observed")
    assert vietnamese.headline == "Cảnh báo lũ quét khẩn cấp"
    assert vietnamese.description == "Mưa lớn kéo dài, nước suối Nậm Khắt dâng nhanh"
    assert vietnamese.instruction == "Bà con thôn Đông di chuyển ngay lên nhà văn hóa!"
    assert vietnamese.effective == datetime(2025, 10, 7, 8, 30, tzinfo=ICT)
    assert vietnamese.onset == datetime(2025, 10, 7, 9, 0, tzinfo=ICT)
    assert vietnamese.expires == datetime(2025, 10, 7, 14, 30, tzinfo=ICT)
    assert vietnamese.areas == (CapArea("Thôn Đông, xã Đông Sơn"), CapArea("Thôn Bắc"))


def test_spoken_text_is_the_vietnamese_info() -> None:
    message = parse_cap(alert(EN_INFO + VI_INFO))
    assert message.spoken_text("vi") == (
        "Cảnh báo lũ quét khẩn cấp. Mưa lớn kéo dài, nước suối Nậm Khắt dâng nhanh. "
        "Bà con thôn Đông di chuyển ngay lên nhà văn hóa!"
    )
    assert message.spoken_text("vi-VN") == message.spoken_text("vi")
    assert message.spoken_text("en") == "Flash flood warning."
    assert parse_cap(alert(EN_INFO)).spoken_text("vi") == "Flash flood warning."  # no Vietnamese: the first
    assert parse_cap(alert()).spoken_text() is None


def test_expires_is_the_latest_across_infos_and_aware() -> None:
    message = parse_cap(alert(EN_INFO + VI_INFO))
    expires = message.expires()
    assert expires == datetime(2025, 10, 7, 16, 0, tzinfo=ICT)
    assert expires is not None
    assert expires.tzinfo is not None
    assert expires < datetime.now(UTC)  # an alert from the past: the engine's "expired, do not play"
    assert parse_cap(alert()).expires() is None


def test_utc_is_written_minus_zero() -> None:
    message = parse_cap(alert(sent="2025-10-07T01:25:00-00:00"))
    assert message.sent == datetime(2025, 10, 7, 8, 25, tzinfo=ICT)
    assert message.sent.utcoffset() == timedelta(0)


def test_update_and_cancel_carry_their_references() -> None:
    first = "pctt@dongson.gov.vn,VN-DS-2025-0042,2025-10-07T08:25:00+07:00"
    second = "pctt@dongson.gov.vn,VN-DS-2025-0043,2025-10-07T09:00:00+07:00"
    update = parse_cap(alert(VI_INFO, msg_type="Update", identifier="VN-DS-2025-0043", references=first))
    assert update.msg_type == "Update"
    assert update.references == (CapReference("pctt@dongson.gov.vn", "VN-DS-2025-0042", "2025-10-07T08:25:00+07:00"),)

    cancel = parse_cap(alert(msg_type="Cancel", identifier="VN-DS-2025-0044", references=f"\n  {first}\t{second}  "))
    assert cancel.msg_type == "Cancel"
    assert [ref.identifier for ref in cancel.references] == ["VN-DS-2025-0042", "VN-DS-2025-0043"]
    assert cancel.infos == ()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("<alert><identifier>x</identifier>", "not XML: "),
        ("", "not XML: "),
        ("Cảnh báo lũ", "not XML: "),
        (f'<feed xmlns="{NS}"/>', "the root element is <feed>, expected <alert>"),
        (alert(namespace=""), f'<alert> has no namespace; expected xmlns="{NS}"'),
        (alert(namespace="urn:oasis:names:tc:emergency:cap:1.1"), "CAP version 1.1 .* is not supported"),
        (alert(namespace="urn:example:alerts"), "is in namespace 'urn:example:alerts'"),
    ],
)
def test_not_a_cap_12_document(document: str, message: str) -> None:
    with pytest.raises(CapError, match=message):
        parse_cap(document)


@pytest.mark.parametrize("name", ["identifier", "sender", "sent", "status", "msgType", "scope"])
def test_missing_alert_element_is_named(name: str) -> None:
    with pytest.raises(CapError, match=f"^CAP <alert>: missing <{name}>$"):
        parse_cap(alert(**{name: None}))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["category", "event", "urgency", "severity", "certainty"])
def test_missing_info_element_is_named(name: str) -> None:
    info = "".join(line for line in VI_INFO.splitlines() if f"<{name}>" not in line)
    with pytest.raises(CapError, match=f"^CAP <info>: missing <{name}>$"):
        parse_cap(alert(info))


def test_missing_area_description_is_named() -> None:
    with pytest.raises(CapError, match=r"^CAP <info><area>: missing <areaDesc>$"):
        parse_cap(alert(VI_INFO.replace("<areaDesc>Thôn Bắc</areaDesc>", "")))


def test_empty_element_is_named() -> None:
    with pytest.raises(CapError, match=r"^CAP <alert>: empty <sender>$"):
        parse_cap(alert(sender=""))


def test_bad_enumeration_lists_the_allowed_values() -> None:
    with pytest.raises(CapError) as caught:
        parse_cap(alert(VI_INFO.replace("<urgency>Immediate</urgency>", "<urgency>Soon</urgency>")))
    assert str(caught.value) == "CAP <info><urgency>: 'Soon' is not one of Immediate, Expected, Future, Past, Unknown"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "Real"}, "CAP <alert><status>: 'Real' is not one of Actual, Exercise"),
        ({"msgType": "Revoke"}, "CAP <alert><msgType>: 'Revoke' is not one of Alert, Update, Cancel, Ack, Error"),
        ({"scope": "Restricted"}, "<restriction> is required when <scope> is Restricted"),
        ({"sent": "2025-10-07T08:25:00"}, r"CAP <alert><sent>: '2025-10-07T08:25:00' is not a CAP date-time"),
        ({"sent": "07/10/2025 08:25"}, "is not a CAP date-time"),
        ({"sent": "2025-13-07T08:25:00+07:00"}, "is not a valid date-time"),
        ({"identifier": "VN DS 42"}, r"CAP <alert><identifier>: 'VN DS 42' contains ' ', not allowed"),
        ({"msgType": "Cancel"}, "a Cancel needs <references>"),
    ],
)
def test_bad_alert_values(fields: dict[str, str], message: str) -> None:
    with pytest.raises(CapError, match=message):
        parse_cap(alert(**fields))


def test_bad_category_and_duplicate_element() -> None:
    with pytest.raises(CapError, match="CAP <info><category>: 'Flood' is not one of Geo, Met"):
        parse_cap(alert(VI_INFO.replace("<category>Safety</category>", "<category>Flood</category>")))
    with pytest.raises(CapError, match="CAP <info>: more than one <event>"):
        parse_cap(alert(VI_INFO.replace("<event>Lũ quét</event>", "<event>Lũ</event><event>Mưa</event>")))


def test_malformed_references() -> None:
    with pytest.raises(CapError, match=r"<references>: 'sender,VN-1' is not \"sender,identifier,sent\""):
        parse_cap(alert(msg_type="Update", references="sender,VN-1"))
    with pytest.raises(CapError, match="<alert><references>: 'yesterday' is not a CAP date-time"):
        parse_cap(alert(msg_type="Update", references="s,VN-1,yesterday"))


BILLION_LAUGHS = f"""<?xml version="1.0"?>
<!DOCTYPE alert [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<alert xmlns="{NS}"><identifier>&lol9;</identifier></alert>"""

XXE = f"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<alert xmlns="{NS}"><identifier>x</identifier><sender>&secret;</sender></alert>"""

EXTERNAL_DTD = f"""<?xml version="1.0"?>
<!DOCTYPE x SYSTEM "http://attacker.example/cap.dtd">
<alert xmlns="{NS}"/>"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, XXE, EXTERNAL_DTD])
def test_entity_attacks_are_refused(document: str) -> None:
    with pytest.raises(CapError, match=r"^refused: the XML has a DTD"):
        parse_cap(document)


def test_oversized_document_is_refused() -> None:
    with pytest.raises(CapError, match="too large"):
        parse_cap(alert(f"<note>{'x' * 1_100_000}</note>"))
