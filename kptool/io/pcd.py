"""Reading PCL ``.pcd`` point clouds (ASCII, binary and binary_compressed).

The format (PCL's "PCD v0.7") is a text header followed by the data::

    VERSION .7
    FIELDS x y z rgb          # any fields; x y z are required
    SIZE 4 4 4 4              # bytes per value
    TYPE F F F U              # F float, U unsigned, I signed
    COUNT 1 1 1 1             # values per field (optional, default 1)
    WIDTH 2048
    HEIGHT 1
    VIEWPOINT 0 0 0 1 0 0 0
    POINTS 2048               # must equal WIDTH * HEIGHT
    DATA ascii                # or binary, binary_compressed

``binary`` stores the points row by row as packed records; ``binary_compressed``
stores two little-endian uint32 (compressed and uncompressed size) and an LZF
stream whose decompressed bytes are laid out field by field (all ``x``, then all
``y``, ...). ``rgb`` (packed as a float or a uint32, ``0x00RRGGBB``) becomes
colours, ``normal_x/normal_y/normal_z`` become normals; other fields are read and
ignored. The viewpoint is not applied (PCL does not apply it on load either).

We read PCD ourselves rather than depend on a PCD package: the format is small,
and this way every malformed file gets a one-line :class:`InputError`.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from kptool.errors import InputError

_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8",
          ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8"}
_DATA_KINDS = ("ascii", "binary", "binary_compressed")


def read_pcd(path: str | os.PathLike, data: bytes) -> dict[str, np.ndarray]:
    """Parse the bytes of a ``.pcd`` file.

    Returns a dict with ``points`` ``(N, 3)`` float64 and, when the file has them,
    ``colors`` ``(N, 3)`` uint8 and ``normals`` ``(N, 3)`` float64. Values are not
    checked for NaN here (the caller validates every format the same way).
    """
    header, body = _split_header(path, data)
    names, dtype = _record_dtype(path, header)
    n = _point_count(path, header)
    kind = header["DATA"][0].lower()
    if kind == "ascii":
        records = _parse_ascii(path, body, dtype, n)
    elif kind == "binary":
        if len(body) < n * dtype.itemsize:
            raise InputError(path, f"truncated PCD: {n} points need {n * dtype.itemsize} data bytes, "
                                   f"found {len(body)}")
        records = np.frombuffer(body, dtype=dtype, count=n)
    else:
        records = _parse_compressed(path, body, dtype, n)
    return _fields_to_arrays(path, names, records)


def _split_header(path, data: bytes) -> tuple[dict[str, list[str]], bytes]:
    header: dict[str, list[str]] = {}
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        line = data[pos:end].split(b"#", 1)[0].strip()
        pos = end + 1
        if not line:
            continue
        try:
            key, *values = line.decode("ascii").split()
        except UnicodeDecodeError:
            raise InputError(path, "not a PCD file (binary bytes in the header)") from None
        key = key.upper()
        if not header and key not in ("VERSION", "FIELDS"):
            raise InputError(path, f"not a PCD file (starts with {line[:20].decode('ascii', 'replace')!r})")
        header[key] = values
        if key == "DATA":
            if not values or values[0].lower() not in _DATA_KINDS:
                raise InputError(path, f"unknown PCD DATA kind {' '.join(values)!r} "
                                       f"(expected one of {', '.join(_DATA_KINDS)})")
            return header, data[pos:]
    raise InputError(path, "not a PCD file (no DATA line ending the header)")


def _record_dtype(path, header: dict[str, list[str]]) -> tuple[list[str], np.dtype]:
    for key in ("FIELDS", "SIZE", "TYPE"):
        if key not in header:
            raise InputError(path, f"PCD header has no {key} line")
    names = header["FIELDS"]
    counts = header.get("COUNT", ["1"] * len(names))
    if not (len(names) == len(header["SIZE"]) == len(header["TYPE"]) == len(counts)):
        raise InputError(path, "PCD header: FIELDS, SIZE, TYPE and COUNT have different lengths")
    for axis in "xyz":
        if axis not in names:
            raise InputError(path, f"PCD has no '{axis}' field (fields: {' '.join(names)})")
    formats = []
    for name, size, typ, count in zip(names, header["SIZE"], header["TYPE"], counts):
        try:
            fmt = "<" + _TYPES[(typ.upper(), int(size))]
            count = int(count)
        except (KeyError, ValueError):
            raise InputError(path, f"PCD field {name!r}: unsupported TYPE {typ} SIZE {size} COUNT {count}") from None
        if count < 1:
            raise InputError(path, f"PCD field {name!r}: COUNT must be positive, got {count}")
        formats.append((fmt, (count,)) if count > 1 else fmt)
    # Field names may repeat (PCL pads with "_" fields), so the record uses positional names.
    return names, np.dtype({"names": [f"f{i}" for i in range(len(names))], "formats": formats})


def _point_count(path, header: dict[str, list[str]]) -> int:
    try:
        width, height = int(header["WIDTH"][0]), int(header.get("HEIGHT", ["1"])[0])
        points = int(header["POINTS"][0]) if "POINTS" in header else width * height
    except (KeyError, IndexError, ValueError):
        raise InputError(path, "PCD header needs integer WIDTH, HEIGHT and POINTS") from None
    if points != width * height:
        raise InputError(path, f"PCD header: POINTS {points} != WIDTH {width} x HEIGHT {height}")
    if points < 0:
        raise InputError(path, f"PCD header: negative POINTS {points}")
    return points


def _parse_ascii(path, body: bytes, dtype: np.dtype, n: int) -> np.ndarray:
    columns = sum(int(np.prod(dtype[i].shape)) for i in range(len(dtype.names)))
    try:
        lines = body.decode("ascii").splitlines()
        values = np.loadtxt(lines, dtype=np.float64, ndmin=2) if body.strip() else np.empty((0, columns))
    except (UnicodeDecodeError, ValueError) as e:
        raise InputError(path, f"bad ASCII PCD data ({e})") from None
    if values.shape[1] != columns:
        raise InputError(path, f"ASCII PCD rows have {values.shape[1]} values, the header declares {columns}")
    if len(values) != n:
        what = "truncated PCD" if len(values) < n else "PCD has extra rows"
        raise InputError(path, f"{what}: header declares {n} points, found {len(values)}")
    records = np.empty(n, dtype=dtype)
    col = 0
    for i, name in enumerate(dtype.names):
        field = dtype[i]
        width = int(np.prod(field.shape))
        # Parsed as float64, which holds every float32 and every 32-bit integer
        # exactly, so a packed rgb (float or uint32) keeps its bits.
        records[name] = values[:, col:col + width].reshape((n, *field.shape)).astype(field.base)
        col += width
    return records


def _parse_compressed(path, body: bytes, dtype: np.dtype, n: int) -> np.ndarray:
    if len(body) < 8:
        raise InputError(path, "truncated PCD: binary_compressed data has no size header")
    compressed_size, size = (int(v) for v in np.frombuffer(body, dtype="<u4", count=2))
    if size != n * dtype.itemsize:
        raise InputError(path, f"binary_compressed PCD: uncompressed size {size} != {n} points x "
                               f"{dtype.itemsize} bytes")
    if len(body) - 8 < compressed_size:
        raise InputError(path, f"truncated PCD: {compressed_size} compressed bytes declared, "
                               f"{len(body) - 8} present")
    raw = lzf_decompress(body[8:8 + compressed_size], size)
    if raw is None:
        raise InputError(path, "corrupt binary_compressed PCD (LZF stream does not decode)")
    # Decompressed bytes are field-major: all values of field 0, then field 1, ...
    records = np.empty(n, dtype=dtype)
    offset = 0
    for i, name in enumerate(dtype.names):
        field = dtype[i]
        nbytes = n * field.itemsize
        records[name] = np.frombuffer(raw, dtype=field.base, count=n * int(np.prod(field.shape)),
                                      offset=offset).reshape((n, *field.shape))
        offset += nbytes
    return records


def _fields_to_arrays(path, names: list[str], records: np.ndarray) -> dict[str, np.ndarray]:
    def column(name: str) -> np.ndarray:
        value = records[f"f{names.index(name)}"]
        if value.ndim != 1:
            raise InputError(path, f"PCD field {name!r} must have COUNT 1")
        return value

    out = {"points": np.stack([column(a).astype(np.float64) for a in "xyz"], axis=1)}
    rgb_name = next((c for c in ("rgb", "rgba") if c in names), None)
    if rgb_name is not None:
        packed = np.ascontiguousarray(column(rgb_name))
        if packed.dtype.itemsize != 4:
            raise InputError(path, f"PCD field {rgb_name!r} must be 4 bytes (packed 0x00RRGGBB)")
        packed = packed.view(np.uint32)
        out["colors"] = np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)
    if all(f"normal_{a}" in names for a in "xyz"):
        out["normals"] = np.stack([column(f"normal_{a}").astype(np.float64) for a in "xyz"], axis=1)
    return out


def lzf_decompress(data: bytes, size: int) -> bytes | None:
    """Decompress an LZF stream (liblzf format) whose output is ``size`` bytes; ``None`` if corrupt."""
    out = np.empty(size, dtype=np.uint8)
    written = _compiled_lzf_kernel()(np.frombuffer(data, dtype=np.uint8), out)
    return out.tobytes() if written == size else None


@lru_cache(maxsize=1)
def _compiled_lzf_kernel():
    # Compiled on first use so that importing kptool.io stays fast (numba is slow to import).
    import numba

    return numba.njit(nogil=True)(_lzf_kernel)


def _lzf_kernel(src: np.ndarray, out: np.ndarray) -> int:
    """liblzf's ``lzf_decompress``: returns bytes written, or -1 on a corrupt stream.

    A control byte below 32 starts a literal run of ``ctrl + 1`` bytes; otherwise
    its top 3 bits are a back-reference length (7 = "read one more length byte")
    and its low 5 bits with the next byte an offset back into the output. Runs
    may overlap their source (that is how LZF encodes repeats), so the copy is
    byte by byte. This plain-Python function is also the reference for the
    numba-compiled one.
    """
    ip = 0
    op = 0
    n_in = src.shape[0]
    n_out = out.shape[0]
    while ip < n_in:
        ctrl = int(src[ip])
        ip += 1
        if ctrl < 32:
            length = ctrl + 1
            if ip + length > n_in or op + length > n_out:
                return -1
            for k in range(length):
                out[op + k] = src[ip + k]
            ip += length
            op += length
        else:
            length = ctrl >> 5
            if length == 7:
                if ip >= n_in:
                    return -1
                length += int(src[ip])
                ip += 1
            if ip >= n_in:
                return -1
            ref = op - ((ctrl & 0x1F) << 8) - 1 - int(src[ip])
            ip += 1
            length += 2
            if ref < 0 or op + length > n_out:
                return -1
            for k in range(length):
                out[op + k] = out[ref + k]
            op += length
    return op
