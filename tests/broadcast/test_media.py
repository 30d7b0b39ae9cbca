import json
import os
import unicodedata
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from drivers.audio.probe import probe_audio
from hub.broadcast.media import MediaInfo, MediaLibrary, UnknownMediaError, UploadError, check_name
from hub.store.store import Store, StoreClosedError
from tests.broadcast.audio_fixtures import at_loudness, convert, ebur128, pink_noise, tone, with_cover_art, write_wav

VIETNAMESE_NAME = "Thông báo lịch tiêm chủng tháng 10 – thôn Đông.mp3"


@pytest.fixture(scope="module")
def audio(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Uploads as a phone or a PC would send them, good and bad."""
    folder = tmp_path_factory.mktemp("uploads")
    wav = at_loudness(folder / "quiet.wav", pink_noise(2.0, seed=7), -28)
    mp3 = convert(wav, folder / "quiet.mp3", "-b:a", "128k")
    m4a = convert(wav, folder / "quiet.m4a", "-c:a", "aac")
    loud = at_loudness(folder / "loud.wav", tone(330, 2.0), -9)
    data = {
        "wav": wav.read_bytes(),
        "mp3": mp3.read_bytes(),
        "m4a": m4a.read_bytes(),
        "mp3_with_cover": with_cover_art(wav, folder / "cover.mp3").read_bytes(),
        "loud_wav": loud.read_bytes(),
        "silent_wav": write_wav(folder / "silent.wav", tone(440, 2.0, amplitude=0.0)).read_bytes(),
        "blip_wav": write_wav(folder / "blip.wav", tone(440, 0.1)).read_bytes(),
        "long_wav": write_wav(folder / "long.wav", tone(440, 3.0)).read_bytes(),
    }
    data["truncated_mp3"] = data["mp3"][: len(data["mp3"]) // 3]
    data["truncated_wav"] = data["wav"][: len(data["wav"]) // 3]
    data["header_only_wav"] = data["wav"][:44]
    data["jpeg"] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + os.urandom(4000)
    data["text"] = "Kính thưa bà con, đây là một tệp văn bản.\n".encode() * 20
    data["hls_playlist"] = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
    return data


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "data")
    yield s
    s.close()


@pytest.fixture
def library(tmp_path: Path, store: Store) -> MediaLibrary:
    return MediaLibrary(tmp_path / "media", store, max_upload_bytes=2 * 1024 * 1024, max_duration_s=60)


def records(store: Store, kind: str) -> list[dict[str, object]]:
    return [json.loads(r.payload_json) for r in store.pending(1000) if r.kind == kind]


def assert_playable(info: MediaInfo) -> None:
    probe = probe_audio(info.path, max_duration_s=3600)
    assert probe.duration_s == pytest.approx(info.duration_s, abs=0.1)


@pytest.mark.parametrize("kind", ["wav", "mp3", "m4a", "mp3_with_cover", "loud_wav"])
async def test_upload_is_stored_normalised_under_an_id(library, store, audio, kind: str) -> None:
    info = await library.add(f"bản tin.{kind}", audio[kind])

    assert info.name == f"bản tin.{kind}"
    assert info.path == library.root / f"{info.id}.flac"
    assert sorted(os.listdir(library.root)) == [".incoming", f"{info.id}.flac"]
    assert info.duration_s == pytest.approx(2.0, abs=0.1)
    assert info.size_bytes == info.path.stat().st_size
    assert info.source_bytes == len(audio[kind])
    integrated, peak = ebur128(info.path)
    assert integrated == pytest.approx(-16.0, abs=1.0)
    assert peak <= -1.0
    assert library.get(info.id) == info
    assert library.list() == [info]
    [added] = records(store, "media.added")
    assert added["id"] == info.id
    assert added["name"] == info.name
    assert store.get_state(f"media.{info.id}")["duration_s"] == info.duration_s
    assert_playable(info)


async def test_vietnamese_name_is_kept_in_nfc_and_survives_a_restart(tmp_path, library, store, audio) -> None:
    decomposed = unicodedata.normalize("NFD", VIETNAMESE_NAME)
    info = await library.add(decomposed, audio["mp3"])

    assert info.name == VIETNAMESE_NAME
    assert unicodedata.is_normalized("NFC", info.name)
    assert [i.name for i in library.list()] == [VIETNAMESE_NAME]
    assert not any("Thông" in name for name in os.listdir(library.root))  # never the user's name on disk
    reopened = MediaLibrary(library.root, store)
    assert reopened.list() == [info]


BAD_NAMES = [
    ("tin/tuc.mp3", "contains a path separator"),
    ("..\\..\\boot.ini", "contains a path separator"),
    ("../thong-bao.mp3", "contains a path separator"),
    ("..", "contains '..'"),
    ("tin\x00.mp3", "contains a NUL character"),
    ("tin\n.mp3", r"contains a control character \(U\+000A\)"),
    ("tin\u202egpj.mp3", r"contains a control character \(U\+202E\)"),
    ("   ", "file name is empty"),
    ("thông báo " * 30 + ".mp3", "file name is too long"),
]


@pytest.mark.parametrize(("name", "message"), BAD_NAMES)
def test_bad_file_names_are_named_in_the_error(name: str, message: str) -> None:
    with pytest.raises(UploadError, match=message):
        check_name(name)


async def test_bad_file_names_break_nothing(library, store, audio) -> None:
    kept = await library.add("trước.wav", audio["wav"])
    for name, message in BAD_NAMES:
        with pytest.raises(UploadError, match=message):
            await library.add(name, audio["mp3"])
    assert library.list() == [kept]
    assert sorted(os.listdir(library.root)) == [".incoming", f"{kept.id}.flac"]
    assert len(records(store, "media.added")) == 1


BAD_CONTENT = [
    ("text", "not audio"),
    ("jpeg", "not audio"),
    ("hls_playlist", "not audio"),
    ("truncated_mp3", r"truncated: it declares 2\.0 s but holds only 0\.\d s"),
    ("truncated_wav", r"truncated: it declares 2\.0 s but holds only 0\.7 s"),
    ("header_only_wav", "no sound in it: zero duration"),
    ("silent_wav", "it is silent"),
    ("blip_wav", r"too short: 0\.10 s"),
]


async def test_bad_content_is_refused_and_breaks_nothing(library, store, audio) -> None:
    kept = await library.add("trước.wav", audio["wav"])

    for kind, message in BAD_CONTENT:
        with pytest.raises(UploadError, match=f"^bad upload.mp3: {message}"):
            await library.add("bad upload.mp3", audio[kind])

        assert library.list() == [kept], kind
        assert sorted(os.listdir(library.root)) == [".incoming", f"{kept.id}.flac"], kind
        assert os.listdir(library.root / ".incoming") == [], kind
        assert len(records(store, "media.added")) == 1, kind
        assert_playable(kept)


async def test_empty_upload(library, audio) -> None:
    with pytest.raises(UploadError, match=r"^empty\.mp3: the file is empty$"):
        await library.add("empty.mp3", b"")
    assert library.list() == []


async def test_too_long(library, audio) -> None:
    short_limit = MediaLibrary(library.root, library.store, max_duration_s=2.5)
    with pytest.raises(UploadError, match=r"too long: more than 2\.5 s"):
        await short_limit.add("dài.wav", audio["long_wav"])


async def test_huge_upload_is_refused_before_it_is_read_whole(library, audio) -> None:
    with pytest.raises(UploadError, match=r"^huge.mp3: too large: 3\.0 MB, at most 2\.0 MB$"):
        await library.add("huge.mp3", audio["mp3"] + bytes(3 * 1024 * 1024 - len(audio["mp3"])))

    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += 1
            yield b"\0" * 65536

    with pytest.raises(UploadError, match=r"^stream\.mp3: too large: more than 2\.0 MB \(the limit\)$"):
        await library.add_stream("stream.mp3", endless())
    assert sent == 2 * 16 + 1  # stopped at the first chunk over the limit

    sent = 0
    with pytest.raises(UploadError, match=r"too large: 50\.0 MB"):
        await library.add_stream("declared.mp3", endless(), declared_size=50 * 1024 * 1024)
    assert sent == 0
    assert library.list() == []
    assert os.listdir(library.root / ".incoming") == []


async def test_full_library_refuses_more(library, audio) -> None:
    first = await library.add("một.wav", audio["wav"])
    small = MediaLibrary(library.root, library.store, max_bytes=first.size_bytes + 1000)
    with pytest.raises(UploadError, match="the media library is full"):
        await small.add("hai.wav", audio["wav"])
    assert small.list() == [first]
    assert_playable(first)


async def test_remove(library, store, audio) -> None:
    first = await library.add("một.wav", audio["wav"])
    second = await library.add("hai.mp3", audio["mp3"])

    await library.remove(first.id)

    assert library.list() == [second]
    assert not first.path.exists()
    with pytest.raises(UnknownMediaError, match=f"no media with id '{first.id}'"):
        library.get(first.id)
    with pytest.raises(UnknownMediaError):
        await library.remove(first.id)
    assert records(store, "media.removed") == [{"id": first.id, "name": "một.wav"}]
    assert store.get_state(f"media.{first.id}") is None
    assert MediaLibrary(library.root, store).list() == [second]


async def test_leftovers_of_a_crash_are_cleared_on_open(library, store, audio) -> None:
    kept = await library.add("một.wav", audio["wav"])
    (library.root / "0123456789abcdef.flac").write_bytes(b"renamed but never recorded")
    (library.root / ".incoming" / "fedcba9876543210.upload").write_bytes(b"half an upload")

    reopened = MediaLibrary(library.root, store)

    assert reopened.list() == [kept]
    assert sorted(os.listdir(library.root)) == [".incoming", f"{kept.id}.flac"]
    assert os.listdir(library.root / ".incoming") == []


async def test_missing_file_is_reported(library, store, audio) -> None:
    kept = await library.add("một.wav", audio["wav"])
    kept.path.unlink()
    assert MediaLibrary(library.root, store).missing() == [kept]


async def test_store_that_refuses_the_record_leaves_no_file(library, store, audio) -> None:
    store.close()
    with pytest.raises(StoreClosedError):
        await library.add("một.wav", audio["wav"])
    assert os.listdir(library.root) == [".incoming"]
    assert library.list() == []
