"""RenderedImages: a rendered dataset as a torch Dataset of views."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from kptool.data.batches import collate_shapes
from kptool.data.prepare import PrepareOptions, run_prepare
from kptool.data.prepared import PreparedDataset
from kptool.data.sources import SyntheticSource
from kptool.errors import InputError
from kptool.render.camera import ViewSampling
from kptool.render.dataset import RenderOptions, run_render
from kptool.render.images import FIELDS, RenderedImages


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("images")
    data = base / "chairs"
    run_prepare(SyntheticSource("chair", 4, 0), data, PrepareOptions(points=128, split_fractions=(0.5, 0.25, 0.25)))
    renders = base / "renders"
    run_render(data, renders, RenderOptions(ViewSampling(views=2, size=32, elevation=(40.0, 120.0)),
                                            background="random"))
    return data, renders


def test_items_hold_the_stored_views(tiny):
    data, renders = tiny
    ds = RenderedImages(renders)
    prepared = PreparedDataset(data)
    assert len(ds) == 8 and set(ds[0]) == {"index", "id", "view", "split", *FIELDS}
    for i in (0, 5):
        item = ds[i]
        z = np.load(renders / f"views/{item['id']}.npz")
        v = item["view"]
        rgb = np.asarray(Image.open(renders / f"rgb/{item['id']}/{v:02d}.png"))
        assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
        np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), rgb / 255.0, atol=1e-6)
        np.testing.assert_array_equal(item["silhouette"].numpy(), z["silhouette"][v])
        np.testing.assert_array_equal(item["depth"].numpy(), z["depth"][v])
        assert item["normal_map"].shape == (3, 32, 32)
        assert float(item["azimuth"]) == pytest.approx(z["azimuth"][v], abs=1e-6)
        assert float(item["elevation"]) == pytest.approx(z["elevation"][v], abs=1e-6)
        np.testing.assert_allclose(item["rotation"].numpy(), z["R"][v], atol=1e-6)
        np.testing.assert_array_equal(item["keypoint_visible"].numpy(), z["keypoint_visible"][v])
        # the split is the shape's split in the prepared dataset
        assert item["split"] == prepared.records[prepared.index_of(item["id"])]["split"]
    assert {ds[i]["split"] for i in range(len(ds))} == {"train", "val", "test"}
    train = RenderedImages(renders, "train")
    assert len(train) == 4 and all(train[i]["split"] == "train" for i in range(len(train)))
    assert train.index_of(train.ids[1], 1) == 3


def test_resize_keeps_cameras_and_keypoints_consistent(tiny):
    _, renders = tiny
    full, small = RenderedImages(renders), RenderedImages(renders, size=16)
    for i in range(len(full)):
        a, b = full[i], small[i]
        assert b["image"].shape == (3, 16, 16) and b["silhouette"].shape == (16, 16)
        assert b["depth"].shape == (16, 16) and b["normal_map"].shape == (3, 16, 16)
        # the resized intrinsics project the 3D keypoints onto the resized 2D keypoints
        cam = b["keypoints"] @ b["rotation"].T + b["translation"]
        uv = cam @ b["intrinsics"].T
        torch.testing.assert_close(uv[:, :2] / uv[:, 2:], b["keypoints_2d"], atol=1e-3, rtol=0)
        # pixel centres: u' = (u + 1/2) / 2 - 1/2; the mean colour and the covered area survive
        torch.testing.assert_close(b["keypoints_2d"], (a["keypoints_2d"] + 0.5) / 2 - 0.5)
        assert abs(float(b["image"].mean() - a["image"].mean())) < 0.02
        assert abs(float(b["silhouette"].float().mean() - a["silhouette"].float().mean())) < 0.05
    batch = collate_shapes([small[0], small[3]])
    assert batch["image"].shape == (2, 3, 16, 16) and batch["azimuth"].shape == (2,)
    assert isinstance(batch["keypoints_2d"], list) and batch["view"].tolist() == [0, 1]


def test_fields_read_only_what_is_asked(tiny):
    _, renders = tiny
    ds = RenderedImages(renders, "test", fields=("image", "azimuth", "elevation"))
    item = ds[0]
    assert set(item) == {"index", "id", "view", "split", "image", "azimuth", "elevation"}
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_shapes)
    assert next(iter(loader))["image"].shape == (2, 3, 32, 32)


def test_bad_inputs_name_the_folder_or_file(tiny, tmp_path):
    data, renders = tiny
    with pytest.raises(InputError, match="prepared shape dataset"):
        RenderedImages(data)
    with pytest.raises(InputError, match="no such rendered dataset folder"):
        RenderedImages(tmp_path / "missing")
    with pytest.raises(InputError, match="unknown split"):
        RenderedImages(renders, "dev")
    with pytest.raises(InputError, match="unknown image field"):
        RenderedImages(renders, fields=("image", "points"))
    with pytest.raises(InputError, match="image size"):
        RenderedImages(renders, size=2)
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((renders / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps({**manifest, "shapes": [{**manifest["shapes"][0],
                                                                              "file": "../escape.npz"}]}))
    with pytest.raises(InputError, match="outside the rendered dataset folder"):
        RenderedImages(broken)
    (broken / "manifest.json").write_text(json.dumps(manifest))
    (broken / "rgb" / manifest["shapes"][0]["id"]).mkdir(parents=True)
    (broken / "rgb" / manifest["shapes"][0]["id"] / "00.png").write_bytes(b"not a png")
    ds = RenderedImages(broken, fields=("image",))
    with pytest.raises(InputError, match="unreadable rendered image") as e:
        ds[0]
    assert "00.png" in str(e.value)
    with pytest.raises(InputError, match="missing views file"):
        RenderedImages(broken, fields=("azimuth",))[0]
