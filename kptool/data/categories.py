"""Category names and ShapeNet synset ids.

Users may name a category either way (``chair`` or ``03001627``); KeypointNet and
ShapeNet-Part use the names below. ``resolve_category`` turns either into
``(name, synset)``.
"""

from __future__ import annotations

from kptool.errors import KptoolError

# ShapeNetCore.v2 synsets (the 16 KeypointNet / ShapeNet-Part categories and the other common ones).
SYNSETS: dict[str, str] = {
    "airplane": "02691156", "bag": "02773838", "basket": "02801938", "bathtub": "02808440",
    "bed": "02818832", "bench": "02828884", "birdhouse": "02843684", "bookshelf": "02871439",
    "bottle": "02876657", "bowl": "02880940", "bus": "02924116", "cabinet": "02933112",
    "camera": "02942699", "can": "02946921", "cap": "02954340", "car": "02958343",
    "cellphone": "02992529", "chair": "03001627", "clock": "03046257", "dishwasher": "03207941",
    "display": "03211117", "earphone": "03261776", "faucet": "03325088", "file": "03337140",
    "guitar": "03467517", "helmet": "03513137", "jar": "03593526", "keyboard": "03085013",
    "knife": "03624134", "lamp": "03636649", "laptop": "03642806", "loudspeaker": "03691459",
    "mailbox": "03710193", "microphone": "03759954", "microwave": "03761084", "motorcycle": "03790512",
    "mug": "03797390", "piano": "03928116", "pillow": "03938244", "pistol": "03948459",
    "pot": "03991062", "printer": "04004475", "remote": "04074963", "rifle": "04090263",
    "rocket": "04099429", "skateboard": "04225987", "sofa": "04256520", "stove": "04330267",
    "table": "04379243", "telephone": "04401088", "tower": "04460130", "train": "04468005",
    "vessel": "04530566", "washer": "04554684",
}
ALIASES = {"plane": "airplane", "aeroplane": "airplane", "motorbike": "motorcycle", "watercraft": "vessel",
           "boat": "vessel", "earphones": "earphone", "monitor": "display", "speaker": "loudspeaker"}
_BY_SYNSET = {v: k for k, v in SYNSETS.items()}


def resolve_category(category: str) -> tuple[str, str | None]:
    """``(name, synset)`` for a category name, alias or synset id.

    Unknown names are allowed (custom folders) and come back as ``(name, None)``;
    an unknown 8-digit synset id is an error, since it is surely a typo.
    """
    key = category.strip().lower()
    if key.isdigit():
        if key in _BY_SYNSET:
            return _BY_SYNSET[key], key
        raise KptoolError(f"unknown ShapeNet synset id {category!r}")
    key = ALIASES.get(key, key)
    return key, SYNSETS.get(key)


def synset_of(category: str) -> str:
    """The synset id of a ShapeNet category; an error when it has none."""
    name, synset = resolve_category(category)
    if synset is None:
        raise KptoolError(f"unknown ShapeNet category {category!r} (use a name such as chair, airplane, "
                          f"table, or an 8-digit synset id)")
    return synset
