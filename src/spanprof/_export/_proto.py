"""A minimal protobuf writer: just what the Pyroscope PushRequest needs (varints and
length-delimited fields). The agent must not depend on the protobuf package."""

from __future__ import annotations

from typing import Iterable

_VARINT = 0
_LEN = 2


def varint(n: int) -> bytes:
    if n < 0:
        n &= (1 << 64) - 1  # int64 two's complement, as protobuf encodes negative varints
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(number: int, value: int) -> bytes:
    return varint(number << 3 | _VARINT) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | _LEN) + varint(len(value)) + value


def field_str(number: int, value: str) -> bytes:
    return field_bytes(number, value.encode("utf-8"))


def message(parts: Iterable[bytes]) -> bytes:
    return b"".join(parts)
