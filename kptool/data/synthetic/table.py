"""Tables: rectangular or round top on four legs or on a pedestal.

"Right" is +x and the front is -z. Round tops have their "corners" on the rim at
45 degrees, where a rectangular top's corners would be. Part labels follow
ShapeNet-Part's table (1 top, 2 leg; a pedestal, its feet and aprons count as leg).
"""

from __future__ import annotations

import numpy as np

from kptool.data.synthetic._build import Assembly, CategorySpec, box, rod, square_rod

TOP, LEG = 1, 2

KEYPOINTS = {
    0: "top corner front right", 1: "top corner front left",
    2: "top corner back right", 3: "top corner back left",
    4: "foot front right", 5: "foot front left", 6: "foot back right", 7: "foot back left",
    8: "pedestal foot front right", 9: "pedestal foot front left",
    10: "pedestal foot back right", 11: "pedestal foot back left",
    12: "top centre", 13: "pedestal base centre",
}
PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11))


def build(rng: np.random.Generator, asm: Assembly) -> dict:
    u = rng.uniform
    round_top = bool(rng.random() < 0.4)
    pedestal = bool(rng.random() < 0.35)
    h, thick = u(0.45, 0.78), u(0.025, 0.06)
    if round_top:
        radius = u(0.35, 0.6)
        asm.add(rod((0, h - thick, 0), (0, h, 0), radius, segments=64), TOP)
        # Where a rectangular top's corners would be; (cos 45, sin 45) on the rim.
        cx = cz = radius / np.sqrt(2.0)
    else:
        width = u(0.7, 1.6)
        depth = width * u(0.45, 0.9)
        asm.add(box((0, h - thick / 2, 0), (width, thick, depth)), TOP)
        cx, cz = width / 2, depth / 2
    asm.keypoint(0, (cx, h, -cz))
    asm.keypoint(2, (cx, h, cz))
    asm.keypoint(12, (0, h, 0))

    if pedestal:
        col_r = u(0.04, 0.09)
        asm.add(rod((0, 0.0, 0), (0, h - thick / 2, 0), col_r, col_r * u(0.6, 1.0)), LEG)
        reach = min(cx, cz) * np.sqrt(2.0) * u(0.55, 0.8)
        foot_w, foot_h = u(0.04, 0.07), u(0.03, 0.06)
        for kid, sz in ((8, -1.0), (10, 1.0)):
            end = np.array([reach / np.sqrt(2.0), foot_h / 2, sz * reach / np.sqrt(2.0)])
            asm.add(square_rod((0, foot_h / 2, 0), end, foot_w, foot_h), LEG, mirror=True)
            asm.keypoint(kid, end)
        asm.keypoint(13, (0, 0, 0))
        return {"variant": "pedestal", "top": "round" if round_top else "rectangular"}

    leg_w = u(0.035, 0.07)
    round_legs = bool(rng.random() < 0.4)
    # Legs of a round top stand on the diagonals, inside the rim.
    inset = u(0.02, 0.08) + (cx * (1 - u(0.6, 0.8)) if round_top else 0.0)
    x, z = cx - inset - leg_w / 2, cz - inset - leg_w / 2
    for kid, sz in ((4, -1.0), (6, 1.0)):
        foot, top = (x, 0.0, sz * z), (x, h - thick / 2, sz * z)
        asm.add(rod(foot, top, leg_w / 2 * u(0.7, 1.0), leg_w / 2) if round_legs
                else square_rod(foot, top, leg_w, leg_w), LEG, mirror=True)
        asm.keypoint(kid, foot)
    apron = bool(not round_top and rng.random() < 0.5)
    if apron:
        apron_h = u(0.05, 0.12)
        y = h - thick - apron_h / 2 + 0.005
        asm.add(box((x, y, 0), (leg_w * 0.5, apron_h, 2 * z)), LEG, mirror=True)
        for sz in (-1.0, 1.0):
            asm.add(box((0, y, sz * z), (2 * x, apron_h, leg_w * 0.5)), LEG)
    shelf = bool(rng.random() < 0.25)
    if shelf:
        y = h * u(0.15, 0.35)
        asm.add(box((0, y, 0), (2 * x, thick * 0.7, 2 * z)), LEG)
    return {"variant": "four-leg", "top": "round" if round_top else "rectangular",
            "round_legs": round_legs, "apron": apron, "shelf": shelf}


SPEC = CategorySpec(
    name="table",
    keypoint_names=KEYPOINTS,
    part_names={TOP: "top", LEG: "leg"},
    symmetric_pairs=PAIRS,
    variants="rectangular or round top of varied size and height; four legs (square or round, optional apron, "
             "optional lower shelf) or a pedestal with four feet",
    build=build,
)
