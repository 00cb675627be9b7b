"""Airplanes: fuselage, swept wings, tail (conventional, T or twin fin), 0, 2 or 4 engines.

Keypoint ids follow KeypointNet's airplane table where it is known (nose 0,
tail 2, wing tips 3/5, stabiliser tips 7/8, fin top 9, engine fronts 14-17; left
is -x, the nose points to -z). Part labels follow ShapeNet-Part's airplane
(1 body, 2 wing, 3 tail, 4 engine; pylons belong to the engine).
"""

from __future__ import annotations

import numpy as np

from kptool.data.synthetic._build import Assembly, CategorySpec, Manifold, box, ellipsoid, hull, revolve, rod

BODY, WING, TAIL, ENGINE = 1, 2, 3, 4

KEYPOINTS = {
    0: "nose", 1: "cockpit", 2: "tail end",
    3: "wing tip left", 4: "wing root leading edge left", 5: "wing tip right", 6: "wing root leading edge right",
    7: "stabiliser tip left", 8: "stabiliser tip right", 9: "fin top",
    10: "twin fin top left", 11: "twin fin top right",
    12: "wing root trailing edge left", 13: "wing root trailing edge right",
    14: "inner engine front left", 15: "inner engine front right",
    16: "outer engine front left", 17: "outer engine front right",
}
PAIRS = ((3, 5), (4, 6), (7, 8), (10, 11), (12, 13), (14, 15), (16, 17))


def _surface(p0, c0, t0, p1, c1, t1, vertical: bool = False) -> Manifold:
    """A wing-like solid from section ``p0`` to ``p1``: hull of two flat ellipsoids.

    ``c`` is the chord (along z) and ``t`` the thickness (along y, or x for a
    ``vertical`` fin); a section reaches ``t / 4`` along the span.
    """
    def section(p, c, t):
        return ellipsoid(p, (t / 2, t / 4, c / 2) if vertical else (t / 4, t / 2, c / 2), segments=16)
    return hull(section(p0, c0, t0), section(p1, c1, t1))


def build(rng: np.random.Generator, asm: Assembly) -> dict:
    u = rng.uniform
    length = u(0.9, 1.2)
    radius = length * u(0.04, 0.065)
    nose_len, tail_len = length * u(0.08, 0.16), length * u(0.25, 0.38)
    tail_r = radius * u(0.12, 0.3)
    upsweep = radius * u(0.0, 0.9)
    z0, z1 = -length / 2, length / 2  # nose, tail
    z_tail_start = z1 - tail_len

    def axis_y(z):
        """Height of the fuselage axis: the rear sweeps up."""
        t = np.clip((np.asarray(z, float) - z_tail_start) / tail_len, 0.0, 1.0)
        return upsweep * t ** 2

    def fuselage_r(z):
        s = z - z0
        if s < nose_len:
            return radius * np.sqrt(max(0.0, 1.0 - (1.0 - s / nose_len) ** 2))
        if z < z_tail_start:
            return radius
        return radius - (radius - tail_r) * ((z - z_tail_start) / tail_len) ** 1.3

    zs = np.concatenate([z0 + nose_len * (1 - np.cos(np.linspace(0, np.pi / 2, 8))),
                         np.linspace(z0 + nose_len, z_tail_start, 4)[1:],
                         np.linspace(z_tail_start, z1, 9)[1:]])
    profile = [(0.0, z0)] + [(fuselage_r(z), z) for z in zs[1:]] + [(0.0, z1)]
    body = revolve(profile, axis="z", segments=32)

    def sweep_up(v):
        v = np.array(v, float)
        v[:, 1] += axis_y(v[:, 2])
        return v

    asm.add(body.warp_batch(sweep_up), BODY)
    asm.keypoint(0, (0.0, 0.0, z0))
    z_cockpit = z0 + nose_len * u(1.0, 1.6)
    asm.keypoint(1, (0.0, radius, z_cockpit))
    asm.keypoint(2, (0.0, float(axis_y(z1)), z1))

    # Wings: root chord at the fuselage centre line, tapered and swept towards the tip.
    position = rng.choice(["low", "mid", "high"], p=[0.5, 0.2, 0.3])
    y_w = {"low": -0.55, "mid": 0.0, "high": 0.6}[position] * radius
    span = length * u(0.42, 0.62)
    root_c = length * u(0.16, 0.26)
    tip_c = root_c * u(0.22, 0.5)
    sweep = np.radians(u(0.0, 35.0))
    dihedral = np.radians(u(-2.0, 6.0) if position == "high" else u(0.0, 7.0))
    z_le = z0 + length * u(0.3, 0.42)
    root_t, tip_t = root_c * 0.12, tip_c * 0.12

    def wing_at(x):
        """Leading-edge z, chord, mid-plane y and thickness at span station x."""
        f = x / span
        return (z_le + x * np.tan(sweep), root_c + f * (tip_c - root_c),
                y_w + x * np.tan(dihedral), root_t + f * (tip_t - root_t))

    tip_le, _, tip_y, _ = wing_at(span)
    asm.add(_surface((0, y_w, z_le + root_c / 2), root_c, root_t, (span, tip_y, tip_le + tip_c / 2), tip_c, tip_t),
            WING, mirror=True)
    asm.keypoint(5, (span + tip_t / 4, tip_y, tip_le + tip_c / 2))
    x_root = np.sqrt(max(radius ** 2 - y_w ** 2, 0.0))
    asm.keypoint(6, (x_root, y_w, z_le))
    asm.keypoint(13, (x_root, y_w, z_le + root_c))

    # Tail.
    style = rng.choice(["conventional", "t-tail", "twin"], p=[0.6, 0.25, 0.15])
    stab_span = span * u(0.28, 0.4)
    stab_c = root_c * u(0.45, 0.7)
    stab_sweep = np.radians(u(10.0, 35.0))
    fin_c = stab_c * u(1.0, 1.4)
    fin_h = length * u(0.1, 0.18)
    fin_sweep = np.radians(u(25.0, 50.0))
    z_stab = z1 - stab_c - length * u(0.01, 0.05)  # clear of the tail end
    z_fin = z1 - fin_c - length * u(0.01, 0.04)

    def fin(x, base_y, z_root, height, chord):
        tip_chord = chord * u(0.45, 0.7)
        z_tip = z_root + height * np.tan(fin_sweep)
        tip = (x, base_y + height, z_tip + tip_chord / 2)
        solid = _surface((x, base_y, z_root + chord / 2), chord, chord * 0.1, tip, tip_chord, tip_chord * 0.1, True)
        return solid, np.add(tip, (0.0, tip_chord * 0.1 / 4, 0.0))

    stab_y = float(axis_y(z_stab + stab_c / 2))
    if style != "twin":
        solid, top = fin(0.0, float(axis_y(z_fin + fin_c / 2)), z_fin, fin_h, fin_c)
        asm.add(solid, TAIL)
        if style == "t-tail":
            z_stab = top[2] - stab_c / 2
            stab_y = top[1]
            top = (0.0, stab_y + stab_c * 0.1 / 2, top[2])  # the top of the T
        asm.keypoint(9, top)
    stab_tip_y = stab_y + stab_span * np.tan(np.radians(u(0.0, 8.0)))
    stab_tip_c = stab_c * u(0.4, 0.6)
    stab_tip_z = z_stab + stab_span * np.tan(stab_sweep) + stab_tip_c / 2
    asm.add(_surface((0, stab_y, z_stab + stab_c / 2), stab_c, stab_c * 0.1,
                     (stab_span, stab_tip_y, stab_tip_z), stab_tip_c, stab_tip_c * 0.1), TAIL, mirror=True)
    asm.keypoint(8, (stab_span + stab_tip_c * 0.025, stab_tip_y, stab_tip_z))
    if style == "twin":
        x = stab_span * 0.85
        chord = stab_tip_c + (stab_c - stab_tip_c) * 0.15
        z_root = stab_tip_z - stab_tip_c / 2 - (stab_span - x) * np.tan(stab_sweep)
        solid, top = fin(x, stab_y + (stab_tip_y - stab_y) * 0.85, z_root, fin_h * 0.6, chord)
        asm.add(solid, TAIL, mirror=True)
        asm.keypoint(11, top)

    # Engines under the wings, in pairs.
    engines = int(rng.choice([0, 2, 4], p=[0.25, 0.5, 0.25]))
    eng_r = radius * u(0.35, 0.5)
    eng_len = length * u(0.1, 0.16)
    stations = [(15, u(0.28, 0.4)), (17, u(0.58, 0.7))][: engines // 2]
    for kid, frac in stations:
        x = max(span * frac, radius + 2.0 * eng_r)
        le, chord, y, t = wing_at(x)
        y_e = y - t / 2 - eng_r * u(1.1, 1.5)
        z_front = le - eng_len * u(0.25, 0.5)
        asm.add(rod((x, y_e, z_front), (x, y_e, z_front + eng_len), eng_r, eng_r * u(0.7, 0.9)), ENGINE,
                mirror=True)
        pylon_z0, pylon_z1 = z_front + eng_len * 0.3, le + chord * 0.6
        asm.add(box((x, (y_e + y) / 2, (pylon_z0 + pylon_z1) / 2), (eng_r * 0.3, y - y_e, pylon_z1 - pylon_z0)),
                ENGINE, mirror=True)
        asm.keypoint(kid, (x, y_e, z_front))
    return {"variant": str(style), "wing_position": str(position), "engines": engines}


SPEC = CategorySpec(
    name="airplane",
    keypoint_names=KEYPOINTS,
    part_names={BODY: "body", WING: "wing", TAIL: "tail", ENGINE: "engine"},
    symmetric_pairs=PAIRS,
    variants="fuselage length, radius, nose and tail cone, tail upsweep; low, mid or high wings of varied span, "
             "chord, taper, sweep and dihedral; conventional, T or twin-fin tail; 0, 2 or 4 engines on pylons",
    build=build,
)
