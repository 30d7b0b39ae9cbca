"""The media library: audio files uploaded for broadcasting, checked, loudness-normalised and kept on disk.

An upload is written to `<root>/.incoming/`, decoded through to prove it is whole audio of a sensible length
(drivers/audio/probe.py), measured and normalised to the target loudness (drivers/audio/loudness.py) into a
FLAC file, and only then renamed into `<root>/<id>.flac` and recorded in the store (state `media.<id>`, the
list of ids in `media.index`, and an outbox record "media.added") in one transaction. A bad upload therefore
never touches what is stored. Files are stored under a generated id, never under the name the user gave:
that name (NFC, Vietnamese diacritics kept) is only shown.

After a crash: a file in root with no store record (renamed, not yet recorded) and anything in .incoming are
removed when the library opens; a record whose file is missing is kept and reported (`missing()`).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import secrets
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from drivers.audio import loudness
from drivers.audio.probe import AudioProbe, ProbeError, probe_audio
from hub import clock
from hub.store.records import RecordClass
from hub.store.store import Store, Transaction

log = logging.getLogger(__name__)

STATE_PREFIX = "media."
INDEX_KEY = "media.index"
STORED_SUFFIX = ".flac"  # lossless at about half the size of WAV, and decoded by the player like any file
INCOMING = ".incoming"
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024  # the whole library on the box's SD card
DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_DURATION_S = 3600.0
MIN_DURATION_S = 0.5  # loudness is measured over 400 ms blocks: shorter has no integrated loudness
MAX_NAME_CHARS = 200
MAX_NAME_BYTES = 255  # what most file systems allow, so a name can be offered back as a download name
_WRITE_CHUNK = 1024 * 1024


class UploadError(ValueError):
    """An upload was refused; the message names the file and what is wrong with it."""


class UnknownMediaError(LookupError):
    """No media with that id in the library."""


@dataclass(frozen=True, slots=True)
class MediaInfo:
    id: str
    name: str  # as the user gave it (NFC), for display only
    path: Path  # the normalised file
    duration_s: float
    size_bytes: int  # of the stored file
    added_at: float  # wall-clock seconds
    source_format: str  # FFmpeg's name of the uploaded container, e.g. "mp3"
    source_codec: str
    source_bytes: int
    source_lufs: float  # loudness of the upload before normalisation
    gain_db: float  # what normalisation applied

    def to_state(self) -> dict[str, Any]:
        state = asdict(self)
        del state["path"]  # derived from root and id, so a moved data directory still works
        return state

    @classmethod
    def from_state(cls, root: Path, state: dict[str, Any]) -> MediaInfo:
        return cls(path=root / f"{state['id']}{STORED_SUFFIX}", **state)


def check_name(filename: str) -> str:
    """The name to show (NFC, trimmed), or UploadError saying why it cannot be used."""
    if not isinstance(filename, str):
        raise UploadError("file name must be text")
    name = unicodedata.normalize("NFC", filename).strip()
    if not name:
        raise UploadError("file name is empty")
    for ch in name:
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co"):
            what = "a NUL character" if ch == "\0" else f"a control character (U+{ord(ch):04X})"
            raise UploadError(f"file name {name!r} contains {what}")
    if "/" in name or "\\" in name:
        raise UploadError(f"file name {name!r} contains a path separator ('/' or '\\'); give the file's name only")
    if ".." in name:
        raise UploadError(f"file name {name!r} contains '..'")
    if len(name) > MAX_NAME_CHARS or len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise UploadError(f"file name is too long: {len(name)} characters, at most {MAX_NAME_CHARS}")
    return name


class MediaLibrary:
    def __init__(
        self,
        root: Path,
        store: Store,
        max_bytes: int = DEFAULT_MAX_BYTES,
        target_lufs: float = loudness.TARGET_LUFS,
        *,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_duration_s: float = DEFAULT_MAX_DURATION_S,
    ) -> None:
        self.root = Path(root)
        self.store = store
        self.max_bytes = max_bytes
        self.target_lufs = target_lufs
        self.max_upload_bytes = max_upload_bytes
        self.max_duration_s = max_duration_s
        self._lock = asyncio.Lock()
        self._incoming = self.root / INCOMING
        self._incoming.mkdir(parents=True, exist_ok=True)
        self._items = self._load()
        self._clean_up()

    # ---- reading -------------------------------------------------------------------------------------------

    def get(self, media_id: str) -> MediaInfo:
        try:
            return self._items[media_id]
        except (KeyError, TypeError):
            raise UnknownMediaError(f"no media with id {media_id!r} in the library") from None

    def list(self) -> builtins.list[MediaInfo]:
        """Oldest first."""
        return sorted(self._items.values(), key=lambda info: (info.added_at, info.id))

    def used_bytes(self) -> int:
        return sum(info.size_bytes for info in self._items.values())

    def missing(self) -> builtins.list[MediaInfo]:
        """Recorded media whose file is gone (a damaged card, a hand-edited directory)."""
        return [info for info in self._items.values() if not info.path.is_file()]

    # ---- changing ------------------------------------------------------------------------------------------

    async def add(self, filename: str, data: bytes) -> MediaInfo:
        if len(data) > self.max_upload_bytes:
            raise UploadError(self._too_large(check_name(filename), len(data)))
        return await self.add_stream(filename, _single(data))

    async def add_stream(
        self, filename: str, chunks: AsyncIterable[bytes], declared_size: int | None = None
    ) -> MediaInfo:
        """An upload read as it arrives (an HTTP body): refused as soon as it passes the size limit, or before
        reading when its declared size (Content-Length) already does."""
        name = check_name(filename)
        if declared_size is not None and declared_size > self.max_upload_bytes:
            raise UploadError(self._too_large(name, declared_size))
        async with self._lock:
            media_id = secrets.token_hex(8)
            upload = self._incoming / f"{media_id}.upload"
            stored = self._incoming / f"{media_id}{STORED_SUFFIX}"
            try:
                size = await self._receive(name, chunks, upload)
                probe = await self._probe(name, upload)
                result = await self._normalise(name, upload, stored)
                final_size = stored.stat().st_size
                used = self.used_bytes()
                if used + final_size > self.max_bytes:
                    raise UploadError(
                        f"{name}: the media library is full ({_mb(used)} of {_mb(self.max_bytes)} used, this file "
                        f"needs {_mb(final_size)}); remove something first"
                    )
                info = MediaInfo(
                    id=media_id,
                    name=name,
                    path=self.root / f"{media_id}{STORED_SUFFIX}",
                    duration_s=round(probe.duration_s, 3),
                    size_bytes=final_size,
                    added_at=clock.wall(),
                    source_format=probe.container,
                    source_codec=probe.codec,
                    source_bytes=size,
                    source_lufs=result.before.integrated_lufs,
                    gain_db=round(result.gain_db, 2),
                )
                await asyncio.to_thread(_durable_rename, stored, info.path)
                try:
                    await self.store.write(lambda tx: self._record_added(tx, info))
                except BaseException:
                    with contextlib.suppress(OSError):
                        info.path.unlink()
                    raise
            finally:
                for leftover in (upload, stored):
                    with contextlib.suppress(OSError):
                        leftover.unlink()
            self._items[media_id] = info
        log.info("media added: %s %r (%.1f s, %+.1f dB)", media_id, name, info.duration_s, info.gain_db)
        return info

    async def remove(self, media_id: str) -> None:
        async with self._lock:
            info = self.get(media_id)
            await self.store.write(lambda tx: self._record_removed(tx, info))
            del self._items[media_id]
            with contextlib.suppress(FileNotFoundError):
                info.path.unlink()
        log.info("media removed: %s %r", media_id, info.name)

    # ---- the steps of an upload ------------------------------------------------------------------------------

    async def _receive(self, name: str, chunks: AsyncIterable[bytes], upload: Path) -> int:
        size = 0
        with upload.open("wb") as out:  # small writes to a local file; the big ones go to a thread
            async for chunk in chunks:
                size += len(chunk)
                if size > self.max_upload_bytes:
                    raise UploadError(self._too_large(name, None))
                if len(chunk) >= _WRITE_CHUNK:
                    await asyncio.to_thread(out.write, chunk)
                else:
                    out.write(chunk)
        if size == 0:
            raise UploadError(f"{name}: the file is empty")
        return size

    async def _probe(self, name: str, upload: Path) -> AudioProbe:
        try:
            probe = await asyncio.to_thread(probe_audio, upload, max_duration_s=self.max_duration_s)
        except ProbeError as exc:
            raise UploadError(f"{name}: {exc}") from None
        if probe.duration_s < MIN_DURATION_S:
            raise UploadError(f"{name}: too short: {probe.duration_s:.2f} s, at least {MIN_DURATION_S:g} s")
        return probe

    async def _normalise(self, name: str, upload: Path, stored: Path) -> loudness.Normalised:
        try:
            measured = await loudness.measure(upload, target_lufs=self.target_lufs)
            if measured.silent:
                raise UploadError(f"{name}: it is silent")
            return await loudness.normalise(upload, stored, target_lufs=self.target_lufs, measured=measured)
        except loudness.LoudnessError as exc:
            raise UploadError(f"{name}: cannot be processed: {exc}") from None

    def _too_large(self, name: str, size: int | None) -> str:
        if size is None:  # stopped reading at the limit: the real size is unknown
            return f"{name}: too large: more than {_mb(self.max_upload_bytes)} (the limit)"
        return f"{name}: too large: {_mb(size)}, at most {_mb(self.max_upload_bytes)}"

    # ---- the store -----------------------------------------------------------------------------------------

    def _record_added(self, tx: Transaction, info: MediaInfo) -> None:
        tx.set_state(STATE_PREFIX + info.id, info.to_state())
        tx.set_state(INDEX_KEY, sorted([*self._items, info.id]))
        tx.append(RecordClass.OPERATIONS, "media.added", info.to_state())

    def _record_removed(self, tx: Transaction, info: MediaInfo) -> None:
        # The store has no delete of state; Transaction.conn is the same transaction.
        tx.conn.execute("DELETE FROM state WHERE key = ?", (STATE_PREFIX + info.id,))
        tx.set_state(INDEX_KEY, sorted(media_id for media_id in self._items if media_id != info.id))
        tx.append(RecordClass.OPERATIONS, "media.removed", {"id": info.id, "name": info.name})

    def _load(self) -> dict[str, MediaInfo]:
        items = {}
        for media_id in self.store.get_state(INDEX_KEY, []):
            state = self.store.get_state(STATE_PREFIX + media_id)
            if state is None:
                log.warning("media index names %s but it has no record; ignored", media_id)
                continue
            items[media_id] = MediaInfo.from_state(self.root, state)
        return items

    def _clean_up(self) -> None:
        for leftover in self._incoming.iterdir():
            with contextlib.suppress(OSError):
                leftover.unlink()
        known = {info.path.name for info in self._items.values()}
        for path in self.root.glob(f"*{STORED_SUFFIX}"):
            if path.name not in known:
                log.warning("media file %s has no record (an upload cut short); removed", path.name)
                with contextlib.suppress(OSError):
                    path.unlink()
        for info in self.missing():
            log.warning("media %s %r: its file %s is missing", info.id, info.name, info.path)


async def _single(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), _WRITE_CHUNK):
        yield data[start : start + _WRITE_CHUNK]


def _durable_rename(src: Path, dst: Path) -> None:
    """The file's bytes are on disk before its name is, and the name before the store records it."""
    with src.open("rb") as f:
        os.fsync(f.fileno())
    src.replace(dst)
    dir_fd = os.open(dst.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"
