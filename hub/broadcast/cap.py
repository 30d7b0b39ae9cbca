"""OASIS Common Alerting Protocol 1.2 (CAP): the parts of an <alert> a loudspeaker needs.

Reads like the spec (CAP-v1.2, section 3.2): an <alert> message with its required identifier, sender, sent,
status, msgType and scope, optional references, and <info> blocks each with category, event, urgency,
severity, certainty, texts, times and <area>s. Elements this box has no use for (resources, parameters,
polygons, signatures) are accepted and skipped.

The XML comes from outside, so it is parsed with defusedxml with DTDs forbidden: CAP needs none, and a DTD is
how billion-laughs and XXE documents attack a parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree

NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"
_NS = "{" + NAMESPACE + "}"
_OTHER_VERSIONS = {
    "urn:oasis:names:tc:emergency:cap:1.1": "1.1",
    "urn:oasis:names:tc:emergency:cap:1.0": "1.0",
    "http://www.incident.com/cap/1.0": "1.0",
}
MAX_BYTES = 1_000_000  # a CAP message is a few KB; this bounds the work a hostile one can cause

STATUS = ("Actual", "Exercise", "System", "Test", "Draft")
MSG_TYPE = ("Alert", "Update", "Cancel", "Ack", "Error")
SCOPE = ("Public", "Restricted", "Private")
CATEGORY = (
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
)
URGENCY = ("Immediate", "Expected", "Future", "Past", "Unknown")
SEVERITY = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
CERTAINTY = ("Observed", "Likely", "Possible", "Unlikely", "Unknown")
DEFAULT_LANGUAGE = "en-US"  # CAP 1.2: "If not present, an implicit default value of 'en-US' SHALL be assumed"

# CAP 1.2, 3.3.2: "2002-05-24T16:49:00-07:00"; UTC as "-00:00". "Z" is forbidden by the spec but some senders
# use it; an emergency alert is not refused over that.
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)")


class CapError(ValueError):
    """The document is not a CAP 1.2 alert this box can act on; the message names the element at fault."""


@dataclass(frozen=True)
class CapArea:
    desc: str


@dataclass(frozen=True)
class CapInfo:
    language: str
    category: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str | None
    description: str | None
    instruction: str | None
    effective: datetime | None
    onset: datetime | None
    expires: datetime | None
    areas: tuple[CapArea, ...]

    def spoken_text(self) -> str | None:
        """Headline, description and instruction as sentences to read aloud; None if there is no text."""
        parts = [part for part in (self.headline, self.description, self.instruction) if part]
        if not parts:
            return None
        return " ".join(part if part[-1] in ".!?…:;" else part + "." for part in parts)


@dataclass(frozen=True)
class CapReference:
    sender: str
    identifier: str
    sent: str


@dataclass(frozen=True)
class CapMessage:
    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str  # "Alert" | "Update" | "Cancel" | "Ack" | "Error"
    scope: str
    references: tuple[CapReference, ...]
    infos: tuple[CapInfo, ...]

    def best_info(self, language: str = "vi") -> CapInfo | None:
        """The <info> in `language` ("vi" matches "vi-VN" and the reverse), else the first one."""
        wanted = language.lower()
        primary = wanted.split("-")[0]
        exact = [info for info in self.infos if info.language.lower() == wanted]
        same_language = [info for info in self.infos if info.language.lower().split("-")[0] == primary]
        return next(iter(exact + same_language + list(self.infos)), None)

    def spoken_text(self, language: str = "vi") -> str | None:
        info = self.best_info(language)
        return info.spoken_text() if info else None

    def expires(self) -> datetime | None:
        """The latest expiry across the <info>s; None when none has one."""
        times = [info.expires for info in self.infos if info.expires is not None]
        return max(times) if times else None


def parse_cap(data: bytes | str) -> CapMessage:
    """A CAP 1.2 <alert>, checked against the spec's required elements and enumerations."""
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    if size > MAX_BYTES:
        raise CapError(f"CAP message too large: {size} bytes, at most {MAX_BYTES}")
    try:
        root = defusedxml.ElementTree.fromstring(data, forbid_dtd=True)
    except defusedxml.DTDForbidden:
        raise CapError(
            "refused: the XML has a DTD (<!DOCTYPE>); CAP needs none and it can hide entity attacks"
        ) from None
    except defusedxml.DefusedXmlException as exc:
        raise CapError(f"refused: unsafe XML ({exc})") from None
    except ParseError as exc:
        raise CapError(f"not XML: {exc}") from None
    _check_root(root)
    alert = _Element(root, "alert")
    msg_type = alert.enum("msgType")
    scope = alert.enum("scope")
    if scope == "Restricted" and alert.optional("restriction") is None:
        raise CapError("CAP <alert>: <restriction> is required when <scope> is Restricted")
    if scope == "Private" and alert.optional("addresses") is None:
        raise CapError("CAP <alert>: <addresses> is required when <scope> is Private")
    references = _references(alert.optional("references"))
    if msg_type in ("Update", "Cancel", "Ack", "Error") and not references:
        # The spec makes <references> optional; without it an Update or Cancel cannot say what it changes.
        raise CapError(f"CAP <alert>: a {msg_type} needs <references> naming the message it refers to")
    return CapMessage(
        identifier=alert.identifier("identifier"),
        sender=alert.identifier("sender"),
        sent=alert.date_time("sent"),
        status=alert.enum("status"),
        msg_type=msg_type,
        scope=scope,
        references=references,
        infos=tuple(_info(_Element(el, "info")) for el in root.findall(_NS + "info")),
    )


def _check_root(root: Element) -> None:
    namespace, _, local = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
    if local != "alert":
        raise CapError(f"not a CAP alert: the root element is <{local}>, expected <alert>")
    if namespace == NAMESPACE:
        return
    if namespace in _OTHER_VERSIONS:
        raise CapError(f"CAP version {_OTHER_VERSIONS[namespace]} ({namespace}) is not supported; expected CAP 1.2")
    if not namespace:
        raise CapError(f'not CAP 1.2: <alert> has no namespace; expected xmlns="{NAMESPACE}"')
    raise CapError(f"not CAP 1.2: <alert> is in namespace {namespace!r}; expected {NAMESPACE!r}")


def _info(info: _Element) -> CapInfo:
    categories = tuple(info.check_enum("category", text) for text in info.all_texts("category"))
    if not categories:
        raise CapError("CAP <info>: missing <category>")
    return CapInfo(
        language=info.optional("language") or DEFAULT_LANGUAGE,
        category=categories,
        event=info.required("event"),
        urgency=info.enum("urgency"),
        severity=info.enum("severity"),
        certainty=info.enum("certainty"),
        headline=info.optional("headline"),
        description=info.optional("description"),
        instruction=info.optional("instruction"),
        effective=info.optional_datetime("effective"),
        onset=info.optional_datetime("onset"),
        expires=info.optional_datetime("expires"),
        areas=tuple(
            CapArea(desc=_Element(el, "info><area").required("areaDesc")) for el in info.element.findall(_NS + "area")
        ),
    )


def _references(text: str | None) -> tuple[CapReference, ...]:
    """CAP 1.2, 3.2.1: a space-separated list of "sender,identifier,sent" triples."""
    if text is None:
        return ()
    references = []
    for triple in text.split():
        parts = triple.split(",")
        if len(parts) != 3 or not all(parts):
            raise CapError(f'CAP <alert><references>: {triple!r} is not "sender,identifier,sent"')
        _parse_datetime(parts[2], "alert><references")
        references.append(CapReference(sender=parts[0], identifier=parts[1], sent=parts[2]))
    return tuple(references)


def _parse_datetime(text: str, where: str) -> datetime:
    if not _DATETIME.fullmatch(text):
        raise CapError(
            f"CAP <{where}>: {text!r} is not a CAP date-time with an explicit offset (e.g. 2025-10-07T08:30:00+07:00)"
        )
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise CapError(f"CAP <{where}>: {text!r} is not a valid date-time ({exc})") from None


class _Element:
    """Reading the CAP children of one element, with errors that name where in the document they are."""

    def __init__(self, element: Element, path: str) -> None:
        self.element = element
        self.path = path

    def all_texts(self, name: str) -> list[str]:
        return [(child.text or "").strip() for child in self.element.findall(_NS + name)]

    def optional(self, name: str) -> str | None:
        texts = self.all_texts(name)
        if len(texts) > 1:
            raise CapError(f"CAP <{self.path}>: more than one <{name}>")
        return (texts[0] or None) if texts else None

    def required(self, name: str) -> str:
        text = self.optional(name)
        if text is None:
            present = self.element.find(_NS + name) is not None
            raise CapError(f"CAP <{self.path}>: {'empty' if present else 'missing'} <{name}>")
        return text

    def identifier(self, name: str) -> str:
        text = self.required(name)
        # CAP 1.2: "MUST NOT include spaces, commas or restricted characters (< and &)"; references rely on it.
        bad = sorted({ch for ch in text if ch.isspace() or ch in ",<&"})
        if bad:
            raise CapError(f"CAP <{self.path}><{name}>: {text!r} contains {' '.join(map(repr, bad))}, not allowed")
        return text

    def enum(self, name: str) -> str:
        return self.check_enum(name, self.required(name))

    def check_enum(self, name: str, text: str) -> str:
        if text not in _ENUMS[name]:
            raise CapError(f"CAP <{self.path}><{name}>: {text!r} is not one of {', '.join(_ENUMS[name])}")
        return text

    def date_time(self, name: str) -> datetime:
        return _parse_datetime(self.required(name), f"{self.path}><{name}")

    def optional_datetime(self, name: str) -> datetime | None:
        text = self.optional(name)
        return None if text is None else _parse_datetime(text, f"{self.path}><{name}")


_ENUMS = {
    "status": STATUS,
    "msgType": MSG_TYPE,
    "scope": SCOPE,
    "category": CATEGORY,
    "urgency": URGENCY,
    "severity": SEVERITY,
    "certainty": CERTAINTY,
}
