"""Fast JSON (msgspec, which Airflow already installs) with the standard library as fallback."""

from __future__ import annotations

try:
    import msgspec

    _encoder = msgspec.json.Encoder()
    _decoder = msgspec.json.Decoder()

    def dumps(value) -> bytes:
        return _encoder.encode(value)

    def loads(data: bytes | str):
        return _decoder.decode(data)

    DecodeError: type[Exception] = msgspec.DecodeError
except ImportError:  # pragma: no cover - msgspec ships with Airflow
    import json

    def dumps(value) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

    def loads(data: bytes | str):
        return json.loads(data)

    DecodeError = ValueError
