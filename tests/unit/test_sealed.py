"""Sealed streams: what comes back is exactly what went in, and nothing else opens."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcsctl import sealed
from dcsctl.sealed import HEADER, TAG_BYTES, SealedInvalid

KEY = bytes(range(32))
CHUNK = 64


def _seal(data: bytes, key: bytes = KEY) -> bytes:
    return sealed.seal_bytes(key, data, chunk_bytes=CHUNK)


def _open(blob: bytes, key: bytes = KEY) -> bytes:
    return sealed.open_bytes(key, blob, what="test object")


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=5 * CHUNK), feed=st.integers(1, 3 * CHUNK))
def test_round_trip_in_any_feed_size(data: bytes, feed: int) -> None:
    blob = _seal(data)
    assert len(blob) == sealed.sealed_size(len(data), CHUNK)
    opener = sealed.Opener(KEY, what="test object")
    out = b"".join(piece for i in range(0, len(blob), feed)
                   for piece in opener.feed(blob[i:i + feed]))
    assert out + opener.close() == data


def _chunks(blob: bytes) -> tuple[bytes, list[bytes]]:
    body = blob[HEADER.size:]
    size = CHUNK + TAG_BYTES
    return blob[:HEADER.size], [body[i:i + size] for i in range(0, len(body), size)]


def _rechunked(blob: bytes, order: list[int]) -> bytes:
    header, chunks = _chunks(blob)
    return header + b"".join(chunks[i] for i in order)


DATA = os.urandom(3 * CHUNK + 10)  # three full chunks and a short final one


def test_positive_control_the_untouched_blob_opens() -> None:
    assert _open(_seal(DATA)) == DATA


@pytest.mark.parametrize(("damage", "message"), [
    (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "fails authentication"),
    (lambda b: b[:10] + bytes([b[10] ^ 1]) + b[11:], "another key"),  # the key id
    (lambda b: b[:30] + bytes([b[30] ^ 1]) + b[31:], "fails authentication"),  # the salt
    (lambda b: _rechunked(b, [1, 0, 2, 3]), "fails authentication"),  # reordered
    (lambda b: _rechunked(b, [0, 1, 2]), "final chunk is missing"),  # cut at a boundary
    (lambda b: _rechunked(b, [0, 1, 3]), "fails authentication"),  # one dropped
    (lambda b: _rechunked(b, [0, 1, 2, 2, 3]), "fails authentication"),  # one replayed
    (lambda b: b[:-5], "fails authentication"),  # cut inside the final chunk
    (lambda b: b + b"more", "fails authentication"),  # appended to the final chunk
    (lambda b: b[:HEADER.size - 1], "too short"),
    (lambda b: b"NOTSEAL1" + b[8:], "not sealed by dcsctl"),
])
def test_damaged_blobs_are_refused(damage, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SealedInvalid, match=message):
        _open(damage(_seal(DATA)))


def test_another_key_is_refused_before_any_decryption() -> None:
    with pytest.raises(SealedInvalid, match="another key"):
        _open(_seal(DATA), key=bytes(32))


def test_each_object_gets_its_own_key_and_nonces() -> None:
    assert _seal(DATA)[HEADER.size:] != _seal(DATA)[HEADER.size:]


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, 2 * CHUNK, 4 * CHUNK, 5 * CHUNK + 7])
def test_parts_sealed_in_parallel_open_as_one_stream(tmp_path, size: int) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    from dcsctl.ops.offsite import sealed_parts

    path = tmp_path / "snapshot.db"
    data = os.urandom(size)
    path.write_bytes(data)
    parts = sealed_parts(path, sealed.Sealer(KEY, chunk_bytes=CHUNK), chunks_per_part=2)
    with ThreadPoolExecutor(4) as pool:
        blob = b"".join(pool.map(lambda make: make(), parts))
    assert len(blob) == sealed.sealed_size(size, CHUNK)
    assert _open(blob) == data
