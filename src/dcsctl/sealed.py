"""Authenticated encryption of a stream in chunks: what leaves the control machine.

A snapshot holds every user's password hash and all Patroni state, so what goes to an
S3 store is sealed here first and the store's operator reads nothing. The format is the
STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár 2015) over AES-256-GCM:

    header   MAGIC (8) | key id (8) | salt (32) | chunk size (4, big endian)
    chunk i  AES-GCM(object key, nonce = i (11 bytes, big endian) | last (1), plaintext,
                     associated data = header)

Every object gets its own key, HKDF-SHA256(master key, salt): nonces never repeat across
objects. The counter in the nonce refuses reordered or dropped chunks, the last-chunk flag
refuses a truncated stream (cut at a chunk boundary) and bytes appended after it, the
header as associated data refuses an edited header. Chunks are independent, so a
multi-gigabyte snapshot streams through in constant memory.

Pure: bytes in, bytes out; the callers read and write.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dcsctl.errors import DcsctlError

MAGIC = b"DCSSEAL1"
KEY_BYTES = 32
SALT_BYTES = 32
TAG_BYTES = 16
HEADER = struct.Struct(">8s8s32sI")
CHUNK_BYTES = 4 << 20  # 4 MiB: few AES-GCM calls per snapshot, small enough to stream
_MAX_CHUNK = 64 << 20
_KEY_ID_LABEL = b"dcsctl sealed key id"
_OBJECT_KEY_INFO = b"dcsctl sealed object v1"
_COUNTER_LIMIT = 1 << 88  # 11 bytes of counter


class SealedInvalid(DcsctlError):
    """Sealed bytes that must not be used: tampered, truncated, reordered or foreign."""


def key_id(master: bytes) -> bytes:
    """Names a master key without revealing it (and tells one cluster's objects apart)."""
    return hmac.new(master, _KEY_ID_LABEL, hashlib.sha256).digest()[:8]


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def _object_key(master: bytes, salt: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt,
                   info=_OBJECT_KEY_INFO).derive(master)
    return AESGCM(derived)


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def sealed_size(plain_size: int, chunk: int = CHUNK_BYTES) -> int:
    """The size of the sealed form of `plain_size` bytes (the final chunk may be empty)."""
    full, rest = divmod(plain_size, chunk)
    return HEADER.size + full * (chunk + TAG_BYTES) + rest + TAG_BYTES


class Sealer:
    """Seals a stream: `header` first, then `seal(chunk)` for each full chunk of exactly
    `chunk_bytes`, then `finish(rest)` with what remains (0 to chunk_bytes - 1 bytes)."""

    def __init__(self, master: bytes, *, chunk_bytes: int = CHUNK_BYTES,
                 salt: bytes | None = None) -> None:
        self.chunk_bytes = chunk_bytes
        salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
        self.header = HEADER.pack(MAGIC, key_id(master), salt, chunk_bytes)
        self._master, self._salt = master, salt
        self._aead = _object_key(master, salt)
        self._index = 0
        self._finished = False

    def cipher(self) -> AESGCM:
        """A cipher of this stream's object key for one thread: with `seal_at`, workers
        seal chunks of one stream in parallel, each its own range of indexes."""
        return _object_key(self._master, self._salt)

    def seal_at(self, cipher: AESGCM, index: int, chunk: bytes, *, last: bool) -> bytes:
        """Chunk `index` of the stream: exactly chunk_bytes unless it is the last one,
        which is shorter (possibly empty)."""
        if (len(chunk) >= self.chunk_bytes) if last else (len(chunk) != self.chunk_bytes):
            raise ValueError("only the final chunk may be (and must be) shorter")
        if index >= _COUNTER_LIMIT:
            raise ValueError("too many chunks for one stream")
        return cipher.encrypt(_nonce(index, last), chunk, self.header)

    def _seal(self, data: bytes, *, last: bool) -> bytes:
        if self._finished:
            raise ValueError("the stream is already finished")
        if self._index >= _COUNTER_LIMIT:
            raise ValueError("too many chunks for one stream")
        sealed = self._aead.encrypt(_nonce(self._index, last), data, self.header)
        self._index += 1
        self._finished = last
        return sealed

    def seal(self, chunk: bytes) -> bytes:
        if len(chunk) != self.chunk_bytes:
            raise ValueError("only the final chunk may be shorter than chunk_bytes")
        return self._seal(chunk, last=False)

    def finish(self, rest: bytes) -> bytes:
        if len(rest) >= self.chunk_bytes:
            raise ValueError("the final chunk must be shorter than chunk_bytes")
        return self._seal(rest, last=True)


def seal_bytes(master: bytes, data: bytes, *, chunk_bytes: int = CHUNK_BYTES) -> bytes:
    """A small value (a manifest, an escrow) sealed in one go."""
    sealer = Sealer(master, chunk_bytes=chunk_bytes)
    parts = [sealer.header]
    full = len(data) - len(data) % chunk_bytes
    parts += [sealer.seal(data[i:i + chunk_bytes]) for i in range(0, full, chunk_bytes)]
    parts.append(sealer.finish(data[full:]))
    return b"".join(parts)


@dataclass(frozen=True)
class Header:
    key_id: bytes
    salt: bytes
    chunk_bytes: int


def parse_header(data: bytes, *, what: str) -> Header:
    if len(data) < HEADER.size:
        raise SealedInvalid(f"{what} is too short to be sealed by dcsctl ({len(data)} bytes)",
                            fix="it is truncated or not a dcsctl object: use another one")
    magic, ident, salt, chunk = HEADER.unpack(data[:HEADER.size])
    if magic != MAGIC or not 0 < chunk <= _MAX_CHUNK:
        raise SealedInvalid(f"{what} is not sealed by dcsctl (unknown header)",
                            fix="use another backup or escrow file")
    return Header(ident, salt, chunk)


class Opener:
    """Opens a sealed stream fed in pieces of any size; yields plaintext chunk by chunk,
    each only after its tag checked. `close()` refuses a stream that never reached its
    final chunk. A caller that must not act on unverified data keeps what it gets until
    `close()` returns (restore writes it to a private temporary file first)."""

    def __init__(self, master: bytes, *, what: str) -> None:
        self._master = master
        self._what = what
        self._buffer = bytearray()
        self._header: bytes | None = None
        self._aead: AESGCM | None = None
        self._chunk = 0
        self._index = 0
        self._done = False

    def _start(self) -> None:
        header = parse_header(bytes(self._buffer[:HEADER.size]), what=self._what)
        if not hmac.compare_digest(header.key_id, key_id(self._master)):
            raise SealedInvalid(
                f"{self._what} was sealed with another key (another cluster's, or a state "
                "dir that was replaced)",
                fix="open it on the control machine (or escrow) of the cluster that wrote it",
            )
        self._header = bytes(self._buffer[:HEADER.size])
        self._aead = _object_key(self._master, header.salt)
        self._chunk = header.chunk_bytes + TAG_BYTES
        del self._buffer[:HEADER.size]

    def _open(self, sealed: bytes, *, last: bool) -> bytes:
        assert self._aead is not None and self._header is not None
        try:
            plain = self._aead.decrypt(_nonce(self._index, last), sealed, self._header)
        except InvalidTag as exc:
            raise SealedInvalid(
                f"{self._what} fails authentication at chunk {self._index}: it was altered, "
                "reordered or cut short",
                fix="never use it; restore another backup and find out who can write there",
            ) from exc
        self._index += 1
        return plain

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._done and data:
            raise SealedInvalid(f"{self._what} has bytes after its final chunk",
                                fix="never use it; restore another backup")
        self._buffer += data
        if self._aead is None:
            if len(self._buffer) < HEADER.size:
                return
            self._start()
        # Hold back one full chunk: only the end of the stream says whether it is the last.
        while len(self._buffer) > self._chunk:
            piece = bytes(self._buffer[:self._chunk])
            del self._buffer[:self._chunk]
            yield self._open(piece, last=False)

    def close(self) -> bytes:
        """The final chunk's plaintext; refuses a stream cut short."""
        if self._aead is None:
            parse_header(bytes(self._buffer), what=self._what)  # raises: too short
            self._start()
        if len(self._buffer) == self._chunk:
            # A full chunk at the very end is not the final one (that is always shorter).
            self._open(bytes(self._buffer), last=False)
            raise SealedInvalid(f"{self._what} is truncated: its final chunk is missing",
                                fix="never use it; restore another backup")
        if len(self._buffer) < TAG_BYTES:
            raise SealedInvalid(f"{self._what} is truncated inside a chunk",
                                fix="never use it; restore another backup")
        plain = self._open(bytes(self._buffer), last=True)
        self._buffer.clear()
        self._done = True
        return plain


def open_bytes(master: bytes, data: bytes, *, what: str) -> bytes:
    opener = Opener(master, what=what)
    parts = list(opener.feed(data))
    parts.append(opener.close())
    return b"".join(parts)
