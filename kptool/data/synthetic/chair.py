"""Chairs: four-leg or swivel, with or without arms, solid or frame back.

Keypoint ids follow KeypointNet's chair table (four-leg feet 17-20, swivel base
ends 10-14; "right" is +x, the sitter's right, and the chair faces -z as in
KeypointNet's ShapeNetCore.v2 frame). Part labels follow ShapeNet-Part's chair
(1 back, 2 seat, 3 leg, 4 arm; a swivel base and column count as leg).
"""

from __future__ import annotations

import numpy as np

from kptool.data.synthetic._build import Assembly, CategorySpec, box, hull, rod, sphere, square_rod

BACK, SEAT, LEG, ARM = 1, 2, 3, 4

KEYPOINTS = {
    0: "back top right", 1: "back top left",
    2: "seat back right", 3: "seat back left",
    4: "seat front right", 5: "seat front left",
    6: "arm front right", 7: "arm back right", 8: "arm front left", 9: "arm back left",
    10: "base end front right", 11: "base end back right", 12: "base end back",
    13: "base end back left", 14: "base end front left",
    15: "column top", 16: "column bottom",
    17: "foot front right", 18: "foot back right", 19: "foot back left", 20: "foot front left",
}
PAIRS = ((0, 1), (2, 3), (4, 5), (6, 8), (7, 9), (10, 14), (11, 13), (17, 20), (18, 19))


def build(rng: np.random.Generator, asm: Assembly) -> dict:
    u = rng.uniform
    swivel = bool(rng.random() < 0.4)
    arms = bool(rng.random() < 0.45)
    frame_back = bool(rng.random() < 0.35)
    rounded_seat = bool(rng.random() < 0.4)

    # Seat: top at height h, front edge at z = -depth/2.
    width, depth, thick, h = u(0.42, 0.56), u(0.40, 0.52), u(0.03, 0.08), u(0.40, 0.50)
    r = u(0.04, 0.12) if rounded_seat else 0.0  # corner radius
    if rounded_seat:
        corners = [(sx * (width / 2 - r), h - thick, sz * (depth / 2 - r)) for sx in (-1, 1) for sz in (-1, 1)]
        asm.add(hull(*(rod(c, np.add(c, (0, thick, 0)), r, segments=32) for c in corners)), SEAT)
    else:
        asm.add(box((0, h - thick / 2, 0), (width, thick, depth)), SEAT)
    # The corner on the top's rim, on the diagonal of a rounded corner.
    corner = r * (1 - np.sqrt(0.5))
    asm.keypoint(4, (width / 2 - corner, h, -depth / 2 + corner))

    # Back: a (possibly tilted) panel or two posts with rails, rising from the seat's rear.
    back_h, back_t = u(0.32, 0.62), u(0.025, 0.06)
    back_w = width * u(0.8, 1.0)
    tilt = np.radians(u(0.0, 18.0))
    up = np.array([0.0, np.cos(tilt), np.sin(tilt)])
    b0 = np.array([0.0, h - thick, depth / 2 - back_t / 2])
    b1 = b0 + (back_h + thick) * up
    half = np.array([back_w / 2, 0.0, 0.0])
    if frame_back:
        post = u(0.03, 0.05)
        asm.add(square_rod(b0 + half - (post / 2, 0, 0), b1 + half - (post / 2, 0, 0), post, back_t), BACK, mirror=True)
        rails = [(1.0, u(0.06, 0.15))] + ([(u(0.35, 0.6), u(0.04, 0.08))] if rng.random() < 0.6 else [])
        for at, rail_h in rails:
            c = b0 + (at * (back_h + thick) - rail_h / 2) * up
            asm.add(square_rod(c - half, c + half, back_t, rail_h), BACK)
    else:
        asm.add(square_rod(b0, b1, back_w, back_t), BACK)
    asm.keypoint(0, b1 + half)

    def back_front_z(y: float) -> float:
        return b0[2] - back_t / 2 / np.cos(tilt) + (y - b0[1]) * np.tan(tilt)

    asm.keypoint(2, (width / 2 - corner, h, back_front_z(h)))

    if arms:
        arm_w, arm_t, arm_h = u(0.04, 0.07), u(0.025, 0.045), u(0.18, 0.26)
        x = min(width, back_w) / 2 - arm_w / 2
        y = h + arm_h
        z_front = -depth / 2 + r + u(0.015, 0.08)  # along the seat's straight side
        z_back = back_front_z(y) + back_t / 2
        asm.add(box((x, y, (z_front + z_back) / 2), (arm_w, arm_t, z_back - z_front)), ARM, mirror=True)
        post_w = arm_w * u(0.6, 0.9)
        asm.add(square_rod((x, h - thick / 2, z_front + post_w / 2), (x, y, z_front + post_w / 2), post_w, post_w),
                ARM, mirror=True)
        asm.keypoint(6, (x, y + arm_t / 2, z_front))
        asm.keypoint(7, (x, y + arm_t / 2, back_front_z(y + arm_t / 2)))

    if swivel:
        caster = u(0.022, 0.032)
        spoke_w = u(0.03, 0.05)
        hub_y = 2 * caster + spoke_w / 2
        col_r, reach = u(0.022, 0.035), u(0.26, 0.34)
        asm.add(rod((0, hub_y, 0), (0, h - thick / 2, 0), col_r), LEG)
        hub_top = hub_y + spoke_w / 2 + u(0.01, 0.04)
        asm.add(rod((0, hub_y - spoke_w / 2, 0), (0, hub_top, 0), 1.8 * col_r), LEG)
        # Five spokes, one pointing back (+z); the others come in mirror pairs.
        for kid, angle in ((12, 0.0), (11, 72.0), (10, 144.0)):
            a = np.radians(angle)
            end = np.array([reach * np.sin(a), 2 * caster, reach * np.cos(a)])
            mirror = angle != 0.0
            asm.add(square_rod((0, hub_y, 0), end, spoke_w, spoke_w), LEG, mirror=mirror)
            asm.add(sphere(end - (0, caster, 0), caster), LEG, mirror=mirror)
            asm.keypoint(kid, end)
        asm.keypoint(15, (0, h - thick, -col_r))
        asm.keypoint(16, (0, hub_top, -col_r))
    else:
        leg_w, inset, splay = u(0.025, 0.05), u(0.0, 0.03), u(0.0, 0.05)
        inset = max(inset, 0.35 * r)  # keep the leg tops under a rounded corner
        round_legs = bool(rng.random() < 0.4)
        feet = {}
        for kid, sz in ((17, -1.0), (18, 1.0)):
            top = np.array([width / 2 - inset - leg_w / 2, h - thick / 2, sz * (depth / 2 - inset - leg_w / 2)])
            if kid == 18:
                top[2] = min(top[2], b0[2])  # under the back, not behind it
            foot = np.array([top[0] + splay, 0.0, top[2] + sz * splay])
            leg = rod(foot, top, leg_w / 2, leg_w / 2 * u(1.0, 1.3)) if round_legs \
                else square_rod(foot, top, leg_w, leg_w)
            asm.add(leg, LEG, mirror=True)
            asm.keypoint(kid, foot)
            feet[kid] = (foot, top)
        rungs = bool(rng.random() < 0.35)
        if rungs:
            t = u(0.2, 0.45)  # fraction of the way up the legs
            (f0, t0), (f1, t1) = feet[17], feet[18]
            asm.add(rod(f0 + t * (t0 - f0), f1 + t * (t1 - f1), leg_w * 0.3), LEG, mirror=True)
        return {"variant": "four-leg", "arms": arms, "back": "frame" if frame_back else "solid",
                "rounded_seat": rounded_seat, "round_legs": round_legs, "rungs": rungs}
    return {"variant": "swivel", "arms": arms, "back": "frame" if frame_back else "solid",
            "rounded_seat": rounded_seat}


SPEC = CategorySpec(
    name="chair",
    keypoint_names=KEYPOINTS,
    part_names={BACK: "back", SEAT: "seat", LEG: "leg", ARM: "arm"},
    symmetric_pairs=PAIRS,
    variants="four-leg (square or round legs, splay, optional side rungs) or swivel (five-star base with "
             "casters); arms or not; solid or frame back (posts and rails), tilt; square or rounded seat",
    build=build,
)
