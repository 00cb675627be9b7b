"""Reading meshes and point clouds from the files users have, into :class:`~kptool.core.Shape`.

Formats (chosen by the file's suffix, case-insensitive):

- meshes: ``.obj``, ``.off`` (also ModelNet's broken header ``OFF490 518 0``),
  ``.stl``, ``.glb``/``.gltf`` (a scene of several objects is flattened into one
  mesh with every node's transform applied), and ``.ply`` with faces;
- point clouds: ``.ply`` without faces, ``.pcd`` (see :mod:`kptool.io.pcd`),
  ``.xyz``/``.txt``/``.pts`` text, ``.npy`` and ``.npz``.

Vertices and faces keep the file's order (no merging of duplicate vertices, no
removal of zero-area faces), because annotations index them: KeypointNet's
``mesh_info.face_index`` counts the faces of the ShapeNet ``.obj``/``.ply`` in file
order, and TOSCA's ground-truth maps index the ``.off`` vertices. ``.obj`` is
parsed here because trimesh regroups its faces by material, ``.off`` because
trimesh reads a truncated one silently; the other formats go through trimesh.
Faces with fewer than three distinct vertices (edges and points that exporters
write as faces) are skipped with one :class:`~kptool.errors.InputWarning` per file
giving the count; OBJ ``l``/``p`` elements, groups and materials are ignored and
``.mtl`` files and textures never opened.

Text clouds: one point per line, values separated by whitespace or commas, ``#``
starts a comment. Columns 1-3 are x y z. Each further group of three columns
(4-6, then 7-9) is read as colours when all its values are integers in 0..255
and some exceed 1, as normals when every row has unit length (within 1 %),
and is otherwise ignored. ``.npy`` files (an ``(N, 3+)`` array) follow the same
rule. ``.npz`` files hold ``points`` (or ``xyz``, or a single array), optionally
with ``normals`` and ``colors``.

Points stay in the file's frame: the ``up`` axis given to :func:`load_shape` is
only recorded in ``meta["up"]``; ``kptool prepare`` applies the rotation and
stores it in the shape's transform so that results can be mapped back.
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from kptool.core.shape import Shape
from kptool.core.transform import up_rotation
from kptool.errors import InputError, InputWarning
from kptool.io.pcd import read_pcd

MESH_SUFFIXES = (".obj", ".off", ".stl", ".glb", ".gltf")
CLOUD_SUFFIXES = (".pcd", ".xyz", ".txt", ".pts", ".npy", ".npz")
SUFFIXES = (".ply", *MESH_SUFFIXES, *CLOUD_SUFFIXES)
_TRIMESH_SUFFIXES = (".ply", ".stl", ".glb", ".gltf")


def load_shape(path: str | os.PathLike, up: str | None = None) -> Shape:
    """Read a mesh or point cloud file.

    A mesh gives ``vertices`` ``(V, 3)`` float64, ``faces`` ``(F, 3)`` int64 and
    ``points`` = the vertices as float32 (plus per-vertex ``colors`` when the file
    has them). A point cloud gives ``points`` ``(N, 3)`` float32 and, when
    present, ``normals`` ``(N, 3)`` float32 and ``colors`` ``(N, 3)`` uint8.
    ``id`` is the file name without suffix; ``meta`` records ``source``,
    ``format`` and ``up``.

    Args:
        path: the file; its suffix picks the reader (see the module docstring).
        up: the file's up axis (``"y"`` or ``"z"``), recorded in ``meta["up"]``;
            ``None`` when unknown. The points are not rotated.

    Raises:
        InputError: missing, unreadable or malformed file, unsupported suffix,
            no points, a mesh format without faces, NaN/inf coordinates.
    """
    if up is not None:
        up_rotation(up)  # raises the standard "unknown up axis" error
    p = existing_file(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(p, f"unsupported format '{suffix}' (supported: {', '.join(SUFFIXES)})")
    if suffix == ".obj":
        arrays = _read_obj(p)
    elif suffix == ".off":
        arrays = _read_off(p)
    elif suffix in _TRIMESH_SUFFIXES:
        arrays = _read_trimesh(p, suffix)
    elif suffix == ".pcd":
        arrays = read_pcd(p, read_bytes(p))
    elif suffix in (".npy", ".npz"):
        arrays = _read_numpy(p, suffix)
    else:
        arrays = _split_columns(p, read_table(p))
    return _to_shape(p, suffix, arrays, up)


def load_mesh(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle mesh: ``(vertices (V, 3) float64, faces (F, 3) int64)``, in file order."""
    shape = load_shape(path)
    if not shape.has_mesh:
        raise InputError(path, "is a point cloud, not a mesh (no faces)")
    return shape.vertices, shape.faces


def load_points(path: str | os.PathLike, up: str | None = None) -> Shape:
    """Read any supported file as a point cloud (``points``, ``normals``, ``colors``).

    For a mesh file the points are its vertices, which are not a uniform surface
    sample; use :func:`load_shape` to keep the faces and sample the surface.
    """
    return replace(load_shape(path, up), vertices=None, faces=None)


def shape_files(folder: str | os.PathLike) -> list[Path]:
    """Every file below ``folder`` that kptool reads as a shape, sorted; hidden files and folders skipped.

    Artists' folders hold licences and notes beside the models: a ``.txt`` file is
    taken only when its first data line starts with a number (it is a point table);
    the others are left out, counted in one :class:`~kptool.errors.InputWarning`.
    """
    root = Path(folder)
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and not p.is_dir()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    for p in found:   # a link to /dev/zero or a fifo would be read forever
        if not p.is_file():
            raise InputError(p, "not a regular file (a device, pipe or broken link); remove it from the folder")
    files = [p for p in found if p.suffix.lower() != ".txt" or _looks_like_point_table(p)]
    if len(files) < len(found):
        warnings.warn(InputWarning(root, f"left out {len(found) - len(files)} .txt files that are not point "
                                         f"tables (e.g. {found[[f in files for f in found].index(False)].name})"),
                      stacklevel=2)
    return files


def _looks_like_point_table(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            head = f.read(4096).decode("utf-8", errors="replace")
    except OSError:
        return True   # unreadable: let the reader report it
    for line in head.splitlines():
        tokens = line.split("#", 1)[0].replace(",", " ").split()
        if tokens:
            try:
                float(tokens[0])
                return True
            except ValueError:
                return False
    return True   # empty: the reader says so


def existing_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or :class:`InputError` when it is missing or a folder."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "no such file")
    if p.is_dir():
        raise InputError(p, "is a folder, expected a file")
    return p


def read_bytes(p: Path) -> bytes:
    """The file's bytes; an OS error (permissions...) becomes :class:`InputError`."""
    try:
        return p.read_bytes()
    except OSError as e:
        raise InputError(p, f"cannot read ({e.strerror or e})") from None


def _read_text(p: Path, what: str) -> str:
    data = read_bytes(p)
    if b"\x00" in data:
        raise InputError(p, f"not a text {what} file (contains binary bytes)")
    return data.decode("utf-8", errors="replace")


def _read_obj(p: Path) -> dict[str, np.ndarray]:
    """``v`` and ``f`` lines in file order; polygons are fanned into triangles like trimesh does.

    ``f`` lines with fewer than three distinct vertices (edges and points written as
    faces) are skipped and counted in one :class:`~kptool.errors.InputWarning`; ``l``
    and ``p`` elements (lines and points, never surfaces) are ignored, as are
    ``vt``/``vn``, groups, objects and materials (``.mtl`` files and textures are
    never opened). ``v x y z r g b`` vertex colours are kept when every vertex has them.
    """
    vertices: list[list[float]] = []
    colors: list[list[float]] = []
    faces: list[tuple[int, int, int]] = []
    skipped = {"'f' lines with fewer than 3 distinct vertices": 0}
    for lineno, line in enumerate(_read_text(p, "OBJ").splitlines(), 1):
        tokens = line.split()
        if not tokens or tokens[0] not in ("v", "f"):
            # normals, texture coordinates, groups, objects, materials, smoothing, comments, and
            # 'l'/'p' elements: lines and points by definition, so leaving them out loses no surface
            continue
        try:
            if tokens[0] == "v":
                values = [float(t) for t in tokens[1:7]]
                if len(values) < 3:
                    raise ValueError
                vertices.append(values[:3])
                if len(values) == 6:
                    colors.append(values[3:])
                continue
            # "f 1/1/1 2/2/1 3/3/1": the vertex index comes before the first slash;
            # negative indices count back from the last vertex read so far.
            index = [int(t.split("/", 1)[0]) for t in tokens[1:]]
            if 0 in index:
                raise ValueError
        except ValueError:
            raise InputError(p, f"line {lineno}: malformed OBJ '{tokens[0]}' line: {line.strip()[:60]!r}") from None
        index = [i - 1 if i > 0 else len(vertices) + i for i in index]
        if len(set(index)) < 3:
            skipped["'f' lines with fewer than 3 distinct vertices"] += 1
            continue
        if max(map(abs, index)) >= 1 << 62:
            # Range is checked once all vertices are read (see _to_shape); an index beyond int64 would overflow first.
            raise InputError(p, f"line {lineno}: face index out of range: {line.strip()[:60]!r}")
        faces.extend((index[0], index[k], index[k + 1]) for k in range(1, len(index) - 1))
    _warn_skipped(p, skipped)
    out = {"points": np.array(vertices, dtype=np.float64).reshape(-1, 3),
           "faces": _index_array(p, faces)}
    if colors and len(colors) == len(vertices):
        rgb = np.array(colors, dtype=np.float64)
        if np.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 255:
            # Exporters write 0..1 floats (Blender, MeshLab) or, rarely, 0..255 integers.
            out["colors"] = np.round(rgb * 255 if rgb.max() <= 1 else rgb).astype(np.uint8)
    return out


def _index_array(p: Path, faces: list[tuple[int, int, int]]) -> np.ndarray:
    """``(F, 3)`` int64 faces; an index beyond int64 is a clean error, not an OverflowError."""
    try:
        return np.array(faces, dtype=np.int64).reshape(-1, 3)
    except OverflowError:
        raise InputError(p, "face index out of range (larger than any mesh can have)") from None


def _warn_skipped(p: Path, skipped: dict[str, int]) -> None:
    """One warning naming the file and how many of each kind of element were skipped."""
    counts = [f"{n} {what}" for what, n in skipped.items() if n]
    if counts:
        warnings.warn(InputWarning(p, f"skipped what is not a surface triangle: {', '.join(counts)}"), stacklevel=3)


def _read_off(p: Path) -> dict[str, np.ndarray]:
    """OFF (also COFF/NOFF and ModelNet's ``OFF490 518 0``), checking the declared counts.

    trimesh reads a truncated OFF silently with fewer faces, hence this reader.
    """
    lines = [line.split("#", 1)[0].split() for line in _read_text(p, "OFF").splitlines()]
    lines = [tokens for tokens in lines if tokens]
    match = re.fullmatch(r"(ST)?C?N?4?OFF(\d*)", lines[0][0]) if lines else None
    if match is None:
        raise InputError(p, "not an OFF file (the first line must start with OFF)")
    # ModelNet writes the counts on the header line, glued to "OFF".
    counts = ([match.group(2)] if match.group(2) else []) + lines[0][1:]
    body = lines[1:]
    if not counts:
        counts, body = (body[0], body[1:]) if body else ([], [])
    try:
        n_vertices, n_faces = int(counts[0]), int(counts[1])
        if len(body) < n_vertices + n_faces:
            raise InputError(p, f"truncated OFF: the header declares {n_vertices} vertices and {n_faces} faces, "
                                f"the file has {len(body)} data lines")
        vertices = np.array([tokens[:3] for tokens in body[:n_vertices]], dtype=np.float64).reshape(-1, 3)
        faces = []
        skipped = 0
        for tokens in body[n_vertices:n_vertices + n_faces]:
            index = [int(t) for t in tokens[1:1 + int(tokens[0])]]  # colour values may follow
            if len(index) != int(tokens[0]):
                raise ValueError
            if len(set(index)) < 3:
                skipped += 1
                continue
            faces.extend((index[0], index[k], index[k + 1]) for k in range(1, len(index) - 1))
    except (ValueError, IndexError):
        raise InputError(p, "malformed OFF data (expected 'V F E' counts, V lines 'x y z', "
                            "F lines 'n i1 ... in')") from None
    _warn_skipped(p, {"faces with fewer than 3 distinct vertices": skipped})
    return {"points": vertices, "faces": _index_array(p, faces)}


def _read_trimesh(p: Path, suffix: str) -> dict[str, np.ndarray]:
    import trimesh

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trimesh warns about unused materials, textures...
            loaded = trimesh.load(str(p), file_type=suffix[1:], process=False)
    except Exception as e:  # trimesh raises many types on bad input
        raise InputError(p, f"not a readable {suffix[1:].upper()} file ({e.__class__.__name__}: {e})") from None
    if isinstance(loaded, trimesh.Scene):
        parts = loaded.dump()  # one geometry per scene node, node transforms applied
        meshes = [g for g in parts if isinstance(g, trimesh.Trimesh)]
        clouds = [g for g in parts if isinstance(g, trimesh.PointCloud)]
        if meshes:
            loaded = trimesh.util.concatenate(meshes)
        elif clouds:
            loaded = trimesh.PointCloud(np.concatenate([c.vertices for c in clouds]))
        else:
            return {"points": np.zeros((0, 3))}
    out = {"points": np.asarray(loaded.vertices, dtype=np.float64)}
    if suffix == ".ply":
        _check_ply_counts(p, len(out["points"]), len(getattr(loaded, "faces", ())))
    if isinstance(loaded, trimesh.Trimesh):
        faces = np.asarray(loaded.faces, dtype=np.int64).reshape(-1, 3)
        flat = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
        _warn_skipped(p, {"faces with fewer than 3 distinct vertices": int(flat.sum())})
        out["faces"] = faces[~flat]
        if loaded.visual.kind == "vertex":
            out["colors"] = np.asarray(loaded.visual.vertex_colors)[:, :3]
        return out
    colors = np.asarray(loaded.colors)
    if len(colors):
        out["colors"] = colors[:, :3]
    # trimesh keeps a PLY cloud's per-vertex properties only in this raw table.
    raw = (loaded.metadata.get("_ply_raw") or {}).get("vertex", {}).get("data", {})
    if isinstance(raw, dict) and all(k in raw for k in ("nx", "ny", "nz")):
        out["normals"] = np.concatenate([np.asarray(raw[k], np.float64).reshape(-1, 1) for k in ("nx", "ny", "nz")], 1)
    return out


def _check_ply_counts(p: Path, n_vertices: int, n_faces: int) -> None:
    """trimesh reads a truncated ASCII PLY silently with fewer faces: compare with the header."""
    with open(p, "rb") as f:
        head = f.read(1 << 16)
    declared = {}
    for line in head[:head.find(b"end_header")].decode("ascii", "replace").splitlines():
        tokens = line.split()
        if len(tokens) == 3 and tokens[0] == "element" and tokens[2].isdigit():
            declared[tokens[1]] = int(tokens[2])
    # Polygons are fanned into triangles, so there may be more faces than declared, never fewer.
    if n_vertices != declared.get("vertex", n_vertices) or n_faces < declared.get("face", 0):
        raise InputError(p, f"truncated PLY: the header declares {declared.get('vertex')} vertices and "
                            f"{declared.get('face', 0)} faces, read {n_vertices} and {n_faces}")


def read_table(p: Path) -> np.ndarray:
    """A text table of numbers (whitespace or commas, ``#`` comments) as ``(rows, columns)`` float64."""
    lines = _read_text(p, "point").replace(",", " ").splitlines()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file is reported below, not as a warning
            values = np.loadtxt(lines, comments="#", dtype=np.float64, ndmin=2)
    except ValueError as e:
        # numpy appends advice about `usecols` that means nothing to our users.
        raise InputError(p, f"bad point data ({str(e).split(';')[0]})") from None
    return values


def _read_numpy(p: Path, suffix: str) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(p, allow_pickle=False)
        if suffix == ".npy":
            return _split_columns(p, np.asarray(loaded))
        with loaded:
            arrays = {k: loaded[k] for k in loaded.files}
    except (OSError, ValueError, EOFError, AttributeError, zipfile.BadZipFile) as e:
        # AttributeError: an .npz name holding a plain .npy array (no .files)
        raise InputError(p, f"not a readable {suffix} file ({e})") from None
    except MemoryError:   # the header claims a shape far larger than the file
        raise InputError(p, f"not a readable {suffix} file (its header claims an array too large to load)") from None
    key = next((k for k in ("points", "xyz") if k in arrays), None)
    if key is None and len(arrays) == 1:
        key = next(iter(arrays))
    if key is None:
        raise InputError(p, f"has no 'points' array (arrays: {', '.join(arrays) or 'none'})")
    out = _split_columns(p, arrays[key])
    out.update({k: arrays[k] for k in ("normals", "colors") if k in arrays})
    return out


def _split_columns(p: Path, values: np.ndarray) -> dict[str, np.ndarray]:
    """``(N, C)`` numbers -> points from the first 3 columns, colours/normals from the next triples."""
    if values.ndim == 2 and len(values) == 0:
        raise InputError(p, "contains no points")
    if values.ndim != 2 or values.shape[1] < 3 or not np.issubdtype(values.dtype, np.number):
        raise InputError(p, f"expected an (N, 3) or wider table of numbers, got shape {values.shape} "
                            f"of {values.dtype}")
    out = {"points": values[:, :3].astype(np.float64)}
    for start in (3, 6):
        block = values[:, start:start + 3].astype(np.float64)
        if block.shape[1] < 3 or not np.isfinite(block).all():
            continue
        if "colors" not in out and (block == np.round(block)).all() and block.min() >= 0 \
                and 1 < block.max() <= 255:
            out["colors"] = block.astype(np.uint8)
        elif "normals" not in out and (np.abs(np.linalg.norm(block, axis=1) - 1) < 0.01).all():
            out["normals"] = block
    return out


def _to_shape(p: Path, suffix: str, arrays: dict[str, np.ndarray], up: str | None) -> Shape:
    points = np.asarray(arrays["points"])
    faces = arrays.get("faces")
    if suffix in MESH_SUFFIXES and (faces is None or len(faces) == 0):
        # trimesh returns an empty scene for a truncated or foreign STL rather than failing
        hint = " (empty, truncated or not an STL file)" if suffix == ".stl" else ""
        raise InputError(p, f"mesh has no faces{hint}")
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(p, f"points must be (N, 3), got shape {points.shape}")
    if len(points) == 0:
        raise InputError(p, "contains no points")
    bad = int((~np.isfinite(points)).sum())
    if bad:
        raise InputError(p, f"{bad} coordinates are NaN or inf")
    if faces is not None and len(faces) and (faces.min() < 0 or faces.max() >= len(points)):
        raise InputError(p, f"face indices out of range (the mesh has {len(points)} vertices, a face refers to "
                            f"vertex {int(faces.max() if faces.max() >= len(points) else faces.min())})")
    extra = {}
    for key, dtype in (("normals", np.float32), ("colors", np.uint8)):
        if key in arrays:
            value = np.asarray(arrays[key])
            if value.shape != points.shape:
                raise InputError(p, f"{key} have shape {value.shape}, expected {points.shape}")
            if not np.isfinite(value).all():
                raise InputError(p, f"{int((~np.isfinite(value)).sum())} {key} values are NaN or inf")
            extra[key] = value.astype(dtype)
    has_faces = faces is not None and len(faces) > 0
    return Shape(
        points=points.astype(np.float32), id=p.stem,
        vertices=points.astype(np.float64) if has_faces else None,
        faces=faces.astype(np.int64) if has_faces else None,
        meta={"source": str(p), "format": suffix[1:], "up": up},
        **extra,
    )
