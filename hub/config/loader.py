"""Reading `hub.toml` and the secrets file into typed settings, with errors a technician can act on.

Every problem names the file, the key (dotted, as written in the file), the line where it can be found,
and what was expected: the technician fixing a box over the phone has only the message to go on.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from hub.config.settings import DEFAULT_CONFIG_PATH, Secrets, Settings

CONFIG_ENV = "VILLAGE_HUB_CONFIG"
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ConfigProblem:
    file: Path
    key: str | None
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else f"{self.file}"
        if self.key:
            return f"{where}: key '{self.key}': {self.message}"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def default_config_path() -> Path:
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def load_settings(path: Path) -> Settings:
    data, text = _read_toml(path)
    return _validate(Settings, data, path, text)


def load_secrets(path: Path, *, check_mode: bool = True) -> Secrets:
    """The secrets file is optional (an unenrolled box has none); when present it must be private."""
    if not path.exists():
        return Secrets()
    if check_mode:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                [
                    ConfigProblem(
                        path,
                        None,
                        f"secrets file is readable by others (mode {stat.filemode(mode)}); "
                        f"expected mode 0600, owned by the service user (chmod 600 {path})",
                    )
                ]
            )
    data, text = _read_toml(path)
    return _validate(Secrets, data, path, text)


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(path, None, "file not found")]) from None
    except PermissionError:
        raise ConfigError([ConfigProblem(path, None, "permission denied: cannot read the file")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError([ConfigProblem(path, None, "not valid UTF-8 text", line)]) from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        at_line = int(match.group(1)) if match else None
        raise ConfigError([ConfigProblem(path, None, f"malformed TOML: {exc}", at_line)]) from None


def _validate(model: type[M], data: dict[str, Any], path: Path, text: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        locator = _KeyLocator(text)
        problems = [_problem(model, err, path, locator) for err in exc.errors(include_url=False)]
        raise ConfigError(problems) from None


def _problem(model: type[BaseModel], err: ErrorDetails, path: Path, locator: _KeyLocator) -> ConfigProblem:
    loc = [str(part) for part in err["loc"] if not str(part).startswith(("function-", "union["))]
    key = ".".join(loc)
    kind = err["type"]
    field = _field_info(model, loc)
    expected = _expected(field)
    line = locator.line_of(loc)
    if kind == "missing":
        return ConfigProblem(path, key, f"missing required key; expected {expected}", locator.line_of(loc[:-1]))
    if kind == "extra_forbidden":
        known = _known_keys(model, loc[:-1])
        guess = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"known keys here: {', '.join(sorted(known))}"
        return ConfigProblem(path, key, f"unknown key ({hint})", line)
    got = _describe(err.get("input"))
    if kind.endswith("_type") or kind in {"is_instance_of", "model_type", "url_type"}:
        return ConfigProblem(path, key, f"wrong type: expected {expected}, got {got}", line)
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return ConfigProblem(path, key, f"out of range: expected {expected}, got {got}", line)
    if kind == "value_error":  # our own validators already say what is expected
        return ConfigProblem(path, key, err["msg"].removeprefix("Value error, "), line)
    return ConfigProblem(path, key, f"{err['msg'].rstrip('.')}; expected {expected}, got {got}", line)


def _field_info(model: type[BaseModel], loc: list[str]) -> Any:
    current: Any = model
    info: Any = None
    for part in loc:
        if part.isdigit():  # an item of a list (an array of tables): step into the item's type
            items = [a for a in getattr(current, "__args__", ()) if a is not type(None)]
            current = items[0] if items else current
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return info
        info = fields[part]
        current = info.annotation
        inner = [a for a in getattr(current, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        if inner and getattr(current, "__origin__", None) is not list:
            current = inner[0]
    return info


def _known_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", {})
        if part not in fields:
            return []
        current = fields[part].annotation
    return list(getattr(current, "model_fields", {}))


_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "Path": "a file path (string)",
    "HttpUrl": "an http(s) URL (string)",
}


def _expected(field: Any) -> str:
    if field is None:
        return "a value"
    annotation = field.annotation
    title = f" ({field.title})" if field.title else ""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"a table [{title.strip(' ()') or annotation.__name__}]"
    text = _annotation_words(annotation)
    bounds = []
    for meta in field.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(meta, attr, None)
            if value is not None:
                bounds.append(f"{sign} {value}")
        for attr, word in (("min_length", "at least {} characters"), ("max_length", "at most {} characters")):
            value = getattr(meta, attr, None)
            if value is not None:
                bounds.append(word.format(value))
        pattern = getattr(meta, "pattern", None)
        if pattern:
            bounds.append(f"matching {pattern}")
    if bounds:
        text += " " + ", ".join(bounds)
    return text + title


def _annotation_words(annotation: Any) -> str:
    literal_values = getattr(annotation, "__args__", None)
    if getattr(annotation, "__origin__", None) is not None and repr(annotation).startswith("typing.Literal"):
        return "one of " + ", ".join(repr(v) for v in literal_values or ())
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    if args and getattr(annotation, "__origin__", None) is None and not isinstance(annotation, type):
        # X | None
        return " or ".join(_annotation_words(a) for a in args)
    origin_args = getattr(annotation, "__metadata__", None)
    if origin_args is not None:
        return _annotation_words(annotation.__origin__)
    name = getattr(annotation, "__name__", str(annotation))
    return _TYPE_WORDS.get(name, name)


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


class _KeyLocator:
    """Finds the line of a dotted key in TOML text (tomllib keeps no positions). Best effort: None if unsure.

    Arrays of tables (`[[relays.gpio]]`) are numbered as pydantic numbers list items, so a problem in the
    third relay (`relays.gpio.2.pin`) points at that relay's `pin` line.
    """

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\s\"]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")

    def __init__(self, text: str) -> None:
        self._positions: dict[tuple[str, ...], int] = {}
        arrays: dict[tuple[str, ...], int] = {}  # path of an array of tables -> index of its last item

        def resolve(parts: list[str]) -> tuple[str, ...]:
            out: list[str] = []
            for part in parts:
                out.append(part)
                if tuple(out) in arrays:
                    out.append(str(arrays[tuple(out)]))
            return tuple(out)

        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._HEADER.match(line)
            if header:
                parts = [p.strip().strip('"') for p in header.group(2).split(".")]
                if header.group(1) == "[[":
                    path = (*resolve(parts[:-1]), parts[-1])
                    arrays[path] = arrays.get(path, -1) + 1
                    self._positions.setdefault(path, number)
                    table = (*path, str(arrays[path]))
                else:
                    table = resolve(parts)
                self._positions.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key:
                self._positions.setdefault((*table, key.group(1)), number)

    def line_of(self, loc: Sequence[str]) -> int | None:
        return self._positions.get(tuple(str(part) for part in loc)) if loc else None
