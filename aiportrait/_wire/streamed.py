"""Reading a large answer: its image string cut out of the body, or decoded as it arrives.

:func:`lift_string` cuts the first ``"name": "<value>"`` string out of a whole body without
copying it; :class:`StreamedString` reads an answer chunk by chunk and base64-decodes that
string as it arrives, so a large portrait costs its decoded size once
(:meth:`aiportrait._wire.transport.Transport.call` picks one or the other).
"""

from __future__ import annotations

import binascii
import io
from typing import Final

__all__ = ["StreamedString", "lift_string"]


def lift_string(raw: bytes | bytearray, name: str) -> tuple[bytes | bytearray, memoryview | None]:
    """Cut the first ``"name": "<value>"`` string out of a JSON body without copying it.

    Returns the body with the value emptied, and a view of the value's bytes; or the body
    unchanged and ``None`` when the value holds escapes or the key is not found as a key.
    A large base64 image then costs its encoded size once, not three times over (body, parsed
    string, ASCII copy for decoding).
    """
    key = b'"' + name.encode() + b'"'
    at = raw.find(key)
    if at < 0 or (at > 0 and raw[at - 1] == 0x5C):  # absent, or inside an escaped string
        return raw, None
    pos = at + len(key)
    while pos < len(raw) and raw[pos] in b" \t\r\n":
        pos += 1
    if raw[pos : pos + 1] != b":":
        return raw, None
    pos += 1
    while pos < len(raw) and raw[pos] in b" \t\r\n":
        pos += 1
    if raw[pos : pos + 1] != b'"':
        return raw, None
    start = pos + 1
    end = raw.find(b'"', start)
    if end < 0 or raw.find(b"\\", start, end) >= 0:
        return raw, None
    return raw[:start] + raw[end:], memoryview(raw)[start:end]


_B64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_WHITE: Final = b" \t\r\n"
_SNIPPET: Final = 120
"""Bytes of an unreadable answer quoted in its error."""
_PREFIX: Final = 256
"""Bytes at the start of the image string where a ``data:...,`` prefix is looked for."""


class StreamedString:
    """An answer read chunk by chunk, its first ``"name": "<value>"`` string base64-decoded as
    it arrives: the rest of the envelope is kept as bytes, the value never is.

    It reads exactly what :func:`lift_string` followed by the codec's decoding of the lifted
    text read, in one pass and without holding the text: a large portrait then costs its
    decoded size (in a buffer of the final size when the length is known), not its text plus
    its bytes. Whenever the value is not plain base64 (an escape such as ``\\/``, white space,
    a ``data:`` prefix without a comma in its first 256 bytes, padding in the middle, a bad
    length) or the key is not found as a key, it falls back: the body read so far is rebuilt
    byte for byte (the decoded groups re-encoded, which gives back exactly the plain base64
    they came from) and the rest is kept as it comes, for the whole-body path.
    """

    __slots__ = (
        "_carry",
        "_first",
        "_head",
        "_hint",
        "_key",
        "_out",
        "_pad",
        "_plain",
        "_plain_size",
        "_prefix",
        "_searched",
        "_skipped",
        "_state",
        "_tail",
        "_written",
    )

    def __init__(self, name: str, size_hint: int | None = None) -> None:
        self._key = b'"' + name.encode() + b'"'
        self._state = 0  # 0: before the value, 1: its first bytes, 2: decoding, 3: after it
        self._head = bytearray()  # the body up to the value's opening quote, included
        self._searched = 0
        self._prefix = bytearray()  # the value's first bytes, raw, until a data: prefix is read
        self._skipped = b""  # the data:...; prefix
        self._carry = b""  # base64 characters short of a group of four
        self._pad = b""  # '=' read at the end of the value so far
        self._tail = bytearray()  # the body from the value's closing quote on
        self._plain: bytearray | None = None  # after a fallback: the whole body, raw
        self._plain_size = 0  # bytes of it in use (it is allocated at the size announced)
        self._hint = size_hint or 0
        self._first = bytearray()  # the body's first bytes, raw (quoted in errors)
        self._out = io.BytesIO()
        self._written = 0
        if size_hint:
            # One buffer of (at least) the final size: base64 is 4/3 of what it decodes to.
            self._out.seek(size_hint * 3 // 4)
            self._out.write(b"\0")
            self._out.seek(0)

    @property
    def fell_back(self) -> bool:
        """True when the body is kept whole (the value could not be decoded on the way)."""
        return self._plain is not None

    def feed(self, chunk: bytes) -> None:
        """Read the next bytes of the body."""
        if len(self._first) < _SNIPPET:
            self._first += chunk[: _SNIPPET - len(self._first)]
        plain = self._plain
        if plain is not None:
            start = self._plain_size
            self._plain_size = end = start + len(chunk)
            if end <= len(plain):
                plain[start:end] = chunk
            else:
                del plain[start:]
                plain += chunk
        elif self._state == 3:
            self._tail += chunk
        elif self._state == 0:
            self._head += chunk
            self._find_value()
        else:
            self._value(chunk)

    def finish(self) -> tuple[bytes | bytearray, bytes | None, bytes]:
        """``(body, image, first bytes)``: the envelope with the value emptied and the decoded
        value; or, after a fallback (or when the value never ended), the whole body and
        ``None``."""
        if self._plain is None and self._state != 3:
            self._fall_back(b"")
        if self._plain is not None:
            del self._plain[self._plain_size :]
            return self._plain, None, bytes(self._first)
        out = self._out
        out.truncate(self._written)
        image = out.getvalue()  # the buffer itself, trimmed to size: no copy
        out.close()
        return self._head + self._tail, image, bytes(self._first)

    def _find_value(self) -> None:
        head, key = self._head, self._key
        at = head.find(key, self._searched)
        if at < 0:
            self._searched = max(0, len(head) - len(key) + 1)
            return
        self._searched = at  # the first occurrence stays the first one
        if at > 0 and head[at - 1] == 0x5C:  # inside an escaped string: not a key
            self._fall_back(b"")
            return
        pos = at + len(key)
        for expected in (0x3A, 0x22):  # ':' then '"', white space around them
            while pos < len(head) and head[pos] in _WHITE:
                pos += 1
            if pos == len(head):
                return  # wait for more
            if head[pos] != expected:
                self._fall_back(b"")
                return
            pos += 1
        rest = bytes(head[pos:])
        del head[pos:]
        self._state = 1
        if rest:
            self._value(rest)

    def _value(self, piece: bytes) -> None:
        end = piece.find(b'"')
        text = piece if end < 0 else piece[:end]
        if b"\\" in text:  # an escape: the whole-body path reads it
            self._fall_back(piece)
            return
        if self._state == 1:
            self._prefix += text
            if end < 0 and len(self._prefix) < _PREFIX:
                return
            raw = bytes(self._prefix)
            start = raw[:_PREFIX]
            skip = 0
            if start.startswith(b"data:"):
                if b"," not in start:
                    self._fall_back(piece[len(text) :])
                    return
                skip = start.index(b",") + 1
            self._prefix = bytearray()
            self._state = 2
            self._skipped = raw[:skip]
            if not self._decode(raw[skip:]):
                self._fall_back(raw[skip:] + piece[len(text) :])
                return
        elif not self._decode(text):
            self._fall_back(piece)
            return
        if end < 0:
            return
        last = self._carry + self._pad
        if last:
            try:
                self._write(binascii.a2b_base64(last))
            except (binascii.Error, ValueError):
                self._fall_back(piece[end:])
                return
            self._carry = self._pad = b""
        self._state = 3
        self._tail += piece[end:]

    def _decode(self, text: bytes) -> bool:
        """Decode the complete groups of ``text``; False (and nothing read) when it is not
        plain base64 with at most a trailing run of '='."""
        if not text:
            return True
        if self._pad:  # after '=' only more '=' may follow
            if text.strip(b"="):
                return False
            self._pad += text
            return True
        pad = b""
        if text.translate(None, _B64_ALPHABET):
            body = text.rstrip(b"=")
            if body.translate(None, _B64_ALPHABET):
                return False
            text, pad = body, text[len(body) :]
        data = self._carry + text if self._carry else text
        whole = len(data) - len(data) % 4
        if whole:
            self._write(binascii.a2b_base64(memoryview(data)[:whole]))
        self._carry = data[whole:]
        self._pad = pad
        return True

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._written += len(data)

    def _fall_back(self, rest: bytes) -> None:
        """Keep the body whole from here on: what was read, rebuilt, then ``rest``."""
        parts: list[bytes | bytearray] = [self._head]
        if self._state == 1:
            parts.append(self._prefix)
        elif self._state == 2:
            with self._out.getbuffer() as decoded:
                text = binascii.b2a_base64(decoded[: self._written], newline=False)
            parts += (self._skipped, text, self._carry, self._pad)
        parts.append(rest)
        self._out.close()
        size = sum(map(len, parts))
        plain = bytearray(max(size, self._hint))  # the whole body in one buffer, as announced
        at = 0
        for part in parts:
            plain[at : at + len(part)] = part
            at += len(part)
        self._head = self._prefix = self._tail = bytearray()
        self._plain, self._plain_size = plain, at
