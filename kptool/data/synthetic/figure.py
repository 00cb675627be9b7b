"""Articulated figures: a humanoid whose four limbs pose independently.

Proportions (height, limb lengths and thickness, shoulder and hip width) are shared by
both sides; each arm and each leg draws its own pose (abduction, flexion, elbow or
knee bend) from the same distribution. A single figure is therefore asymmetric,
while the set of figures is a symmetric deformation space in the sense of
Fernandez-Labrador et al. (ECCV 2020, Definition 1): the mirror image of any half
pose is the other half of some figure. The shape's ``symmetry_plane`` is that of the
deformation space (the rest pose's mid-plane).

Frame as the other categories: y up, the figure faces -z, "right" is +x (the
figure's right). Part labels: 1 head, 2 torso, 3 arm, 4 leg.
"""

from __future__ import annotations

import numpy as np

from kptool.data.synthetic._build import Assembly, CategorySpec, capsule, ellipsoid, sphere

HEAD, TORSO, ARM, LEG = 1, 2, 3, 4

KEYPOINTS = {
    0: "head top", 1: "neck front", 2: "pelvis front",
    3: "shoulder right", 4: "shoulder left", 5: "elbow right", 6: "elbow left",
    7: "hand right", 8: "hand left", 9: "hip right", 10: "hip left",
    11: "knee right", 12: "knee left", 13: "toe right", 14: "toe left",
}
PAIRS = ((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14))
FORWARD = np.array([0.0, 0.0, -1.0])


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _bend(direction: np.ndarray, towards: np.ndarray, angle: float) -> np.ndarray:
    """``direction`` turned by ``angle`` (radians) towards ``towards`` (in their common plane)."""
    perp = towards - towards.dot(direction) * direction
    return _unit(np.cos(angle) * direction + np.sin(angle) * _unit(perp))


def _limb_direction(side: float, abduction: float, flexion: float) -> np.ndarray:
    """Unit direction of a limb hanging down, raised sideways by ``abduction`` then forwards by ``flexion``."""
    return _unit([side * np.sin(abduction) * np.cos(flexion), -np.cos(abduction) * np.cos(flexion), -np.sin(flexion)])


def build(rng: np.random.Generator, asm: Assembly) -> dict:
    u = rng.uniform
    # Proportions, shared by both sides (heights relative to the hip joints at y = 0).
    thigh, shin = u(0.40, 0.50), u(0.38, 0.48)
    torso_h, torso_w, torso_d = u(0.50, 0.62), u(0.15, 0.21), u(0.09, 0.13)
    upper_arm, forearm = u(0.27, 0.34), u(0.25, 0.31)
    limb_r, head_r = u(0.035, 0.05), u(0.09, 0.11)
    hip_w = torso_w * u(0.55, 0.75)
    shoulder = np.array([torso_w + 0.3 * limb_r, torso_h - 0.06, 0.0])
    hip = np.array([hip_w, 0.0, 0.0])

    asm.add(ellipsoid((0, torso_h / 2, 0), (torso_w, torso_h / 2 + 0.03, torso_d)), TORSO)
    # Shoulder girdle: the arms hang from its ends (the ellipsoid narrows near the top).
    asm.add(capsule(shoulder * (-1, 1, 1), shoulder, 1.1 * limb_r), TORSO)
    neck_top = np.array([0.0, torso_h + 0.08, 0.0])
    asm.add(capsule((0, torso_h - 0.05, 0), neck_top, 0.55 * limb_r + 0.01), TORSO)
    head = neck_top + (0, head_r * 0.9, 0)
    asm.add(sphere(head, head_r), HEAD)
    asm.keypoint(0, head + (0, head_r, 0))
    asm.keypoint(1, (0.0, torso_h + 0.02, -0.5 * limb_r))
    asm.keypoint(2, (0.0, 0.02, -torso_d))

    poses = {}
    for side, name, ids in ((1.0, "right", (3, 5, 7, 9, 11, 13)), (-1.0, "left", (4, 6, 8, 10, 12, 14))):
        s_kp, e_kp, h_kp, hip_kp, k_kp, t_kp = ids
        mirror = np.array([side, 1.0, 1.0])
        # Arm: raised sideways 5-80 degrees, swung -30..60 forwards, elbow bent 0-90 degrees.
        abduction, flexion, elbow = np.radians(u(5, 80)), np.radians(u(-30, 60)), np.radians(u(0, 90))
        s = shoulder * mirror
        upper = _limb_direction(side, abduction, flexion)
        e = s + upper_arm * upper
        h = e + forearm * _bend(upper, FORWARD + (0, 0.5, 0), elbow)
        asm.add(capsule(s, e, limb_r, 0.9 * limb_r), ARM)
        asm.add(capsule(e, h, 0.9 * limb_r, 0.75 * limb_r), ARM)
        asm.add(sphere(h, 1.25 * limb_r), ARM)
        asm.keypoint(s_kp, s + (0, limb_r, 0))
        asm.keypoint(e_kp, e)
        asm.keypoint(h_kp, h + 1.2 * limb_r * _unit(h - e))
        # Leg: spread 0-25 degrees, swung -25..55 forwards, knee bent backwards 0-70 degrees.
        spread, swing, knee = np.radians(u(0, 25)), np.radians(u(-25, 55)), np.radians(u(0, 70))
        p = hip * mirror
        upper_leg = _limb_direction(side, spread, swing)
        k = p + thigh * upper_leg
        a = k + shin * _bend(upper_leg, -FORWARD, knee)
        toe = a + (0, -0.02, 0) + 0.14 * _unit(FORWARD + (0, 0.15, 0))
        asm.add(capsule(p, k, 1.3 * limb_r, 1.1 * limb_r), LEG)
        asm.add(capsule(k, a, 1.1 * limb_r, 0.85 * limb_r), LEG)
        asm.add(capsule(a, toe, 0.85 * limb_r, 0.6 * limb_r), LEG)
        asm.keypoint(hip_kp, p + (0, 0, -1.3 * limb_r))
        asm.keypoint(k_kp, k + 1.1 * limb_r * _bend(upper_leg, FORWARD, np.pi / 2))
        asm.keypoint(t_kp, toe + 0.6 * limb_r * _unit(toe - a))
        poses[name] = {"arm_abduction": round(float(np.degrees(abduction)), 2),
                       "arm_flexion": round(float(np.degrees(flexion)), 2),
                       "elbow": round(float(np.degrees(elbow)), 2),
                       "leg_spread": round(float(np.degrees(spread)), 2),
                       "leg_swing": round(float(np.degrees(swing)), 2), "knee": round(float(np.degrees(knee)), 2)}
    return {"variant": "humanoid", "pose": poses}


SPEC = CategorySpec(
    name="figure",
    keypoint_names=KEYPOINTS,
    part_names={HEAD: "head", TORSO: "torso", ARM: "arm", LEG: "leg"},
    symmetric_pairs=PAIRS,
    variants="humanoid; proportions shared by both sides, each arm and leg posed independently "
             "(abduction, flexion, elbow or knee bend): instances asymmetric, deformation space symmetric",
    build=build,
    symmetric=False,
)
