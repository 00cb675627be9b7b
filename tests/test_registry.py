import pytest

from kptool.errors import KptoolError
from kptool.registry import Registry


def test_register_build_and_describe():
    reg = Registry("widget")

    @reg.register("box")
    class Box:
        """A box of a given size.

        More text that is not part of the one-line description.
        """

        def __init__(self, size: int, colour: str = "red"):
            self.size, self.colour = size, colour

    reg.add("plain", dict, description="a plain dict")
    assert "box" in reg and len(reg) == 2 and list(reg) == ["box", "plain"]
    assert reg.items() == [("box", "A box of a given size."), ("plain", "a plain dict")]
    box = reg.build({"name": "box", "size": 3}, colour="blue")
    assert isinstance(box, Box) and (box.size, box.colour) == (3, "blue")
    reg.register("box")(Box)  # the same object again is harmless
    with pytest.raises(ValueError, match="already registered"):
        reg.add("box", dict)


def test_errors_name_the_kind_and_the_problem():
    reg = Registry("widget")
    reg.register("box")(lambda size: size)
    with pytest.raises(KptoolError, match=r"unknown widget 'bix' \(available: box\)"):
        reg.build({"name": "bix"})
    with pytest.raises(KptoolError, match="unknown widget None"):
        reg.build({})
    with pytest.raises(KptoolError, match="widget 'box': .*sise"):
        reg.build({"name": "box", "size": 1, "sise": 2})
    with pytest.raises(KptoolError, match="must be a mapping"):
        reg.build("box")


def test_kptool_list_prints_every_registry(capsys):
    import json

    from kptool.cli.main import main
    from kptool.metrics import METRICS
    from kptool.models import MODELS

    assert main(["list", "metrics", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["name"] for e in listed] == list(METRICS) and all(e["description"] for e in listed)
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in MODELS)
    for kind, expected in (("backbones", "pointnet2-msg"), ("losses", "mutual-reconstruction"),
                           ("presets", "skeleton-mutual-wo-mrec"), ("methods", "harris3d"),
                           ("sources", "shapenet-part")):
        assert main(["list", kind, "--json"]) == 0
        assert expected in [e["name"] for e in json.loads(capsys.readouterr().out)]
    assert main(["list", "nope"]) == 2
    assert "unknown kind 'nope'" in capsys.readouterr().err


def test_short_flags_mean_the_same_option_in_every_command():
    import typer

    from kptool.cli.main import app

    meaning: dict[str, set[str]] = {}

    def walk(cmd) -> None:
        for param in cmd.params:
            longs = [o for o in param.opts if o.startswith("--")]
            for short in (o for o in param.opts if o.startswith("-") and not o.startswith("--")):
                meaning.setdefault(short, set()).add(longs[0])
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    assert {s: m for s, m in meaning.items() if len(m) > 1} == {}
    assert meaning["-c"] == {"--category"} and meaning["-k"] == {"--keypoints"} and meaning["-m"] == {"--method"}
