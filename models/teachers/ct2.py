"""Reader for CTranslate2's ``model.bin`` (binary version 6): named tensors, no code executed.

The format, as ``ctranslate2.specs.model_spec.ModelSpec._serialize`` writes it (little-endian):
``u32 version, str spec_name, u32 revision, u32 n_vars, n_vars x (str name, u8 rank, rank x u32 dim,
u8 dtype, u32 n_bytes, bytes), u32 n_aliases, n_aliases x (str alias, str target)``; ``str`` is a u16
length (including a trailing NUL) then the bytes. A model file may be split into parts that are
concatenated (e.g. a package too large for one PyPI upload), so the reader takes a list of paths.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from edge_ser.errors import EdgeSERError

# Order of ctranslate2's DataType enum (include/ctranslate2/types.h).
DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # bfloat16 has no numpy dtype
SUPPORTED_VERSIONS = (5, 6)
MAX_RANK = 8


class TeacherError(EdgeSERError):
    """A teacher's weights cannot be used: package missing, file incomplete, wrong hash or bad format."""


class _Chain(io.RawIOBase):
    """The concatenation of several files, read as one stream."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._files = [open(p, "rb") for p in paths]  # noqa: SIM115 - closed in close()
        self._i = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while self._i < len(self._files):
            n = self._files[self._i].readinto(buffer)
            if n:
                return n
            self._i += 1
        return 0

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def read_ct2(
    paths: str | os.PathLike | Sequence[str | os.PathLike], keep: Callable[[str], bool] = lambda name: True
) -> tuple[str, dict[str, np.ndarray]]:
    """``(spec name, {variable: array})`` of a CTranslate2 model file (or its parts, in order).

    Only variables for which ``keep(name)`` is true are materialized; the others are skipped unread.
    Aliases are resolved to the array they name. A short or malformed file raises :class:`TeacherError`.
    """
    parts = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    total = sum(p.stat().st_size for p in parts)
    with io.BufferedReader(_Chain(parts), buffer_size=1 << 20) as f:
        pos = 0

        def take(n: int) -> bytes:
            nonlocal pos
            if n < 0 or pos + n > total:
                raise TeacherError(f"{parts[-1].name}: truncated CTranslate2 file (need {pos + n} of {total} bytes)")
            data = f.read(n)
            pos += n
            return data

        def u(fmt: str) -> int:
            return struct.unpack("<" + fmt, take(struct.calcsize(fmt)))[0]

        def string() -> str:
            raw = take(u("H"))
            if not raw.endswith(b"\0"):
                raise TeacherError(f"{parts[0].name}: malformed string in CTranslate2 file")
            return raw[:-1].decode("utf-8", errors="replace")

        version = u("I")
        if version not in SUPPORTED_VERSIONS:
            raise TeacherError(f"{parts[0].name}: unsupported CTranslate2 binary version {version}")
        spec = string()
        u("I")  # spec revision
        arrays: dict[str, np.ndarray] = {}
        for _ in range(u("I")):
            name = string()
            rank = u("B")
            if rank > MAX_RANK:
                raise TeacherError(f"{parts[0].name}: variable {name!r} has rank {rank}")
            shape = tuple(u("I") for _ in range(rank))
            dtype_id, n_bytes = u("B"), u("I")
            dtype = DTYPES[dtype_id] if dtype_id < len(DTYPES) else None
            if not keep(name):
                take(n_bytes)
                continue
            if dtype is None or n_bytes != int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize:
                raise TeacherError(f"{parts[0].name}: variable {name!r} has an unsupported type or size")
            arrays[name] = np.frombuffer(take(n_bytes), dtype=dtype).reshape(shape)
        for _ in range(u("I")):
            alias, target = string(), string()
            if keep(alias) and target in arrays:
                arrays[alias] = arrays[target]
    return spec, arrays
