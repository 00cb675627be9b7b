"""PCD reading: real ASCII files, hand-built binary and binary_compressed files, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from kptool.errors import InputError
from kptool.io import load_shape
from kptool.io.pcd import _compiled_lzf_kernel, _lzf_kernel, lzf_decompress

CHAIR = "keypointnet/pcds/03001627/88382b877be91b2a572f8e1c1caad99e.pcd"


def header(fields, sizes, types, counts, n, data, width=None):
    return (f"# .PCD v0.7 - Point Cloud Data file format\nVERSION .7\nFIELDS {' '.join(fields)}\n"
            f"SIZE {' '.join(map(str, sizes))}\nTYPE {' '.join(types)}\nCOUNT {' '.join(map(str, counts))}\n"
            f"WIDTH {n if width is None else width}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\n"
            f"DATA {data}\n").encode("ascii")


def lzf_literals(data: bytes) -> bytes:
    """A valid LZF stream made of literal runs only (runs of at most 32 bytes)."""
    out = bytearray()
    for i in range(0, len(data), 32):
        chunk = data[i:i + 32]
        out.append(len(chunk) - 1)
        out += chunk
    return bytes(out)


def expected_colors(packed: np.ndarray) -> np.ndarray:
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], 1).astype(np.uint8)


@pytest.fixture
def cloud():
    rng = np.random.default_rng(0)
    n = 50
    normals = rng.normal(size=(n, 3)).astype(np.float32)
    return {
        "xyz": rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        "rgb": rng.integers(0, 2**24, n).astype(np.uint32),
        "normals": normals / np.linalg.norm(normals, axis=1, keepdims=True),
        "extra": rng.normal(size=(n, 2)),  # a COUNT 2 float64 field, read and ignored
    }


def record_array(c):
    dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<f4"), ("normal_x", "<f4"),
                      ("normal_y", "<f4"), ("normal_z", "<f4"), ("extra", "<f8", (2,)), ("_", "u1", (3,))])
    rec = np.zeros(len(c["xyz"]), dtype)
    for i, a in enumerate("xyz"):
        rec[a] = c["xyz"][:, i]
        rec[f"normal_{a}"] = c["normals"][:, i]
    rec["rgb"] = c["rgb"].view(np.float32)  # PCL packs colour bits into a float
    rec["extra"] = c["extra"]
    return rec


FIELDS = (["x", "y", "z", "rgb", "normal_x", "normal_y", "normal_z", "extra", "_"],
          [4, 4, 4, 4, 4, 4, 4, 8, 1], ["F"] * 8 + ["U"], [1] * 7 + [2, 3])


def check_cloud(shape, c):
    np.testing.assert_array_equal(shape.points, c["xyz"])
    np.testing.assert_array_equal(shape.colors, expected_colors(c["rgb"]))
    np.testing.assert_allclose(shape.normals, c["normals"], atol=1e-7)


def test_real_ascii_pcd(shared_data):
    path = shared_data / CHAIR
    shape = load_shape(path)
    assert shape.points.shape == (2048, 3) and shape.points.dtype == np.float32
    assert shape.id == "88382b877be91b2a572f8e1c1caad99e" and shape.meta["format"] == "pcd"
    body = path.read_text().split("DATA ascii\n", 1)[1].split()
    first = np.array(body[:4], dtype=float)
    np.testing.assert_array_equal(shape.points[0], first[:3].astype(np.float32))
    assert shape.colors[0].tolist() == [(10975560 >> 16) & 255, (10975560 >> 8) & 255, 10975560 & 255]
    assert shape.normals is None


def test_binary_pcd(tmp_path, cloud):
    path = tmp_path / "cloud.pcd"
    path.write_bytes(header(*FIELDS, len(cloud["xyz"]), "binary") + record_array(cloud).tobytes())
    check_cloud(load_shape(path), cloud)


def test_ascii_pcd_with_uint_rgb_and_count(tmp_path, cloud):
    rows = [f"{x:.9g} {y:.9g} {z:.9g} {rgb} {a:.17g} {b:.17g}"
            for (x, y, z), rgb, (a, b) in zip(cloud["xyz"], cloud["rgb"], cloud["extra"])]
    path = tmp_path / "cloud.pcd"
    path.write_bytes(header(["x", "y", "z", "rgb", "extra"], [4, 4, 4, 4, 8], list("FFFUF"), [1, 1, 1, 1, 2],
                            len(rows), "ascii") + "\n".join(rows).encode() + b"\n")
    shape = load_shape(path)
    np.testing.assert_array_equal(shape.points, cloud["xyz"])
    np.testing.assert_array_equal(shape.colors, expected_colors(cloud["rgb"]))


def test_binary_compressed_pcd(tmp_path, cloud):
    rec = record_array(cloud)
    field_major = b"".join(np.ascontiguousarray(rec[name]).tobytes() for name in rec.dtype.names)
    compressed = lzf_literals(field_major)
    path = tmp_path / "cloud.pcd"
    path.write_bytes(header(*FIELDS, len(rec), "binary_compressed")
                     + np.array([len(compressed), len(field_major)], "<u4").tobytes() + compressed)
    check_cloud(load_shape(path), cloud)


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "python"])
def test_lzf_back_references(compiled):
    kernel = _compiled_lzf_kernel() if compiled else _lzf_kernel
    # literal "abc"; back-reference length 5 at distance 3 (overlapping its own output);
    # literal "Z"; long back-reference (length 7 + 11 + 2 = 20) at distance 2.
    stream = bytes([2]) + b"abc" + bytes([3 << 5, 2]) + bytes([0]) + b"Z" + bytes([7 << 5, 11, 1])
    expected = b"abcabcab" + b"Z" + (b"bZ" * 10)
    out = np.zeros(len(expected), np.uint8)
    assert kernel(np.frombuffer(stream, np.uint8), out) == len(expected)
    assert out.tobytes() == expected
    # a reference before the start of the output is corrupt, and so is a short output
    bad = np.frombuffer(bytes([0]) + b"a" + bytes([1 << 5, 5]), np.uint8)
    assert kernel(bad, np.zeros(10, np.uint8)) == -1
    assert lzf_decompress(stream, len(expected) + 1) is None


def test_binary_compressed_written_by_open3d(tmp_path):
    o3d = pytest.importorskip("open3d")
    rng = np.random.default_rng(1)
    pcd = o3d.geometry.PointCloud()
    # repeated rows make the LZF stream use back-references
    pcd.points = o3d.utility.Vector3dVector(np.repeat(rng.uniform(-1, 1, (100, 3)), 5, axis=0))
    pcd.colors = o3d.utility.Vector3dVector(np.repeat(rng.integers(0, 256, (100, 3)) / 255, 5, axis=0))
    path = tmp_path / "o3d.pcd"
    o3d.io.write_point_cloud(str(path), pcd, write_ascii=False, compressed=True)
    assert b"binary_compressed" in path.read_bytes()[:400]
    shape = load_shape(path)
    np.testing.assert_allclose(shape.points, np.asarray(pcd.points), atol=1e-6)
    np.testing.assert_array_equal(shape.colors, np.round(np.asarray(pcd.colors) * 255).astype(np.uint8))


def expect_error(path, problem):
    with pytest.raises(InputError) as err:
        load_shape(path)
    assert path.name in str(err.value) and problem in str(err.value), str(err.value)


def test_truncated_binary_pcd(tmp_path, cloud):
    path = tmp_path / "cut.pcd"
    data = header(*FIELDS, len(cloud["xyz"]), "binary") + record_array(cloud).tobytes()
    path.write_bytes(data[:-10])
    expect_error(path, "truncated PCD")


def test_truncated_ascii_pcd(tmp_path):
    path = tmp_path / "cut.pcd"
    path.write_bytes(header(list("xyz"), [4] * 3, "FFF", [1] * 3, 3, "ascii") + b"0 0 0\n1 1 1\n")
    expect_error(path, "header declares 3 points, found 2")


def test_truncated_compressed_pcd(tmp_path):
    path = tmp_path / "cut.pcd"
    path.write_bytes(header(list("xyz"), [4] * 3, "FFF", [1] * 3, 2, "binary_compressed")
                     + np.array([100, 24], "<u4").tobytes() + b"\x05abc")
    expect_error(path, "truncated PCD")


@pytest.mark.parametrize("content, problem", [
    (b"\x89PNG\r\n\x1a\n\x00\x00garbage", "not a PCD file"),
    (header(list("xyz"), [4] * 3, "FFF", [1] * 3, 3, "ascii", width=2), "POINTS 3 != WIDTH 2"),
    (header(list("xyw"), [4] * 3, "FFF", [1] * 3, 1, "ascii") + b"0 0 0\n", "no 'z' field"),
    (header(list("xyz"), [4] * 3, "FFF", [1] * 3, 1, "lzma"), "unknown PCD DATA kind"),
    (header(list("xyz"), [4] * 3, "FFF", [1] * 3, 2, "ascii") + b"0 0 0\nnan 1 1\n", "1 coordinates are NaN"),
    (header(list("xyz"), [4] * 3, "FFF", [1] * 3, 0, "ascii"), "contains no points"),
    (header(list("xyz"), [4] * 3, "FFF", [1] * 3, 1, "ascii") + b"0 0\n", "rows have 2 values"),
])
def test_bad_pcd(tmp_path, content, problem):
    path = tmp_path / "bad.pcd"
    path.write_bytes(content)
    expect_error(path, problem)
