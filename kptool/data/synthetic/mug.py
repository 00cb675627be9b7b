"""Mugs: a hollow, possibly tapered body with a round or square handle at +z.

The handle lies in the x = 0 plane, on the back (+z); "right" is +x. Part
labels follow ShapeNet-Part's mug (1 body, 2 handle). A mug has genus 1.
"""

from __future__ import annotations

import manifold3d
import numpy as np

from kptool.data.synthetic._build import Assembly, CategorySpec, capsule, revolve

BODY, HANDLE = 1, 2

KEYPOINTS = {
    0: "rim back", 1: "rim front", 2: "rim right", 3: "rim left",
    4: "base back", 5: "base front", 6: "base right", 7: "base left",
    8: "handle top", 9: "handle bottom", 10: "handle outer middle",
    11: "inside bottom centre", 12: "bottom centre",
}
PAIRS = ((2, 3), (6, 7))


def _arc(center, radius: float, tube: float, degrees: float, squash: float) -> manifold3d.Manifold:
    """Part of a torus in the x = 0 plane, centred on +z, squashed along z by ``squash``."""
    section = manifold3d.CrossSection.circle(tube, 20).translate([radius, 0.0])
    ring = manifold3d.Manifold.revolve(section, 48, degrees)  # about z, starting on +x
    # Centre the arc on +x, then turn the ring's plane (xy) into the yz plane, +x -> +z.
    ring = ring.rotate([0.0, 0.0, -degrees / 2]).rotate([0.0, -90.0, 0.0])
    return ring.scale([1.0, 1.0, squash]).translate(list(map(float, center)))


def build(rng: np.random.Generator, asm: Assembly) -> dict:
    u = rng.uniform
    r_base = u(0.035, 0.05)
    height = r_base * u(1.6, 2.8)
    r_top = r_base * u(0.85, 1.25)
    wall = r_base * u(0.06, 0.12)
    floor = wall * u(1.0, 2.0)
    bevel = wall * u(0.3, 1.0)

    def r_out(y):
        return r_base + (r_top - r_base) * y / height

    asm.add(revolve([(0.0, 0.0), (r_base - bevel, 0.0), (r_out(bevel), bevel), (r_top, height), (0.0, height)]),
            BODY)
    # The cavity goes last, so it also trims whatever of the handle pokes inside.
    lip = height * 0.1
    asm.cut(revolve([(0.0, floor), (r_out(floor) - wall, floor), (r_out(height + lip) - wall, height + lip),
                     (0.0, height + lip)]), BODY)
    for kid, z in ((0, 1.0), (1, -1.0)):
        asm.keypoint(kid, (0.0, height, z * (r_top - wall / 2)))
        asm.keypoint(kid + 4, (0.0, 0.0, z * r_base))
    asm.keypoint(2, (r_top - wall / 2, height, 0.0))
    asm.keypoint(6, (r_base, 0.0, 0.0))
    asm.keypoint(11, (0.0, floor, 0.0))
    asm.keypoint(12, (0.0, 0.0, 0.0))

    tube = r_base * u(0.07, 0.12)
    y_mid = height * u(0.45, 0.6)
    half = height * u(0.2, 0.32)  # half the handle's height
    square = bool(rng.random() < 0.35)
    if square:
        reach = r_base * u(0.45, 0.8)
        y_top, y_bottom = y_mid + half, y_mid - half
        z_in = min(r_out(y_top), r_out(y_bottom)) - wall / 2
        z_out = max(r_out(y_top), r_out(y_bottom)) + reach
        corners = [(0.0, y_top, z_in), (0.0, y_top, z_out), (0.0, y_bottom, z_out), (0.0, y_bottom, z_in)]
        for a, b in zip(corners, corners[1:]):
            asm.add(capsule(a, b, tube, segments=16), HANDLE)
        asm.keypoint(8, (0.0, y_top + tube, (z_in + z_out) / 2))
        asm.keypoint(9, (0.0, y_bottom - tube, (z_in + z_out) / 2))
        asm.keypoint(10, (0.0, y_mid, z_out + tube))
    else:
        squash = u(0.6, 1.2)
        # Centre on the wall where it is nearer the axis so that both ends sink into it.
        z_c = min(r_out(y_mid - half), r_out(y_mid + half)) - wall / 2
        asm.add(_arc((0.0, y_mid, z_c), half, tube, 190.0, squash), HANDLE)
        for kid, angle in ((8, 55.0), (9, -55.0), (10, 0.0)):
            t = np.radians(angle)
            asm.keypoint(kid, (0.0, y_mid + (half + tube) * np.sin(t), z_c + squash * (half + tube) * np.cos(t)))
    return {"variant": "square-handle" if square else "round-handle"}


SPEC = CategorySpec(
    name="mug",
    keypoint_names=KEYPOINTS,
    part_names={BODY: "body", HANDLE: "handle"},
    symmetric_pairs=PAIRS,
    variants="radius, height, taper (wider or narrower at the top), wall and floor thickness, base bevel; "
             "round (squashed torus arc) or square handle of varied size and height",
    build=build,
)
