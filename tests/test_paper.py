"""Paper-scale probing: PaperProbeConfig's weight rules, and the model and images it names."""

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from mimstudy.config import ConfigError, PaperProbeConfig
from mimstudy.study.paper import load_images, load_model, paper_coords
from mimstudy.probes import probe_model

from .official_layouts import deit_checkpoint, randomize

TINY = dict(model_name="deit_tiny_patch16_224", img_size=32, num_images=4, batch_size=4, device="cpu")


def test_defaults_are_a_random_vit_b16_at_224():
    config = PaperProbeConfig()
    config.validate()
    assert (config.model_name, config.img_size, config.objective, config.checkpoint_path) == (
        "vit_base_patch16_224", 224, "random", "")
    assert config.random_weights


@pytest.mark.parametrize("params,match", [
    ({"objective": "simmim"}, "objective 'random' goes with checkpoint_path ''"),  # random weights labelled as a paper model
    ({"checkpoint_path": "deit.pth"}, "objective 'random' goes with"),  # a checkpoint labelled random
    ({"objective": "mae", "checkpoint_path": "x.pth"}, "objective must be one of"),
    ({"layout": "deit"}, "describes a checkpoint file"),
    ({"layout": "mae", "objective": "moco", "checkpoint_path": "x.pth"}, "layout must be one of"),
    ({"img_size": 100}, "patch size 16 does not divide"),
    ({"model_name": "vit_nope"}, "unknown backbone"),
    ({"probes": "distance,attention"}, "probes must be"),
    ({"batch_size": 2}, "batch_size must be >= 4"),
])
def test_bad_paper_parameters(params, match):
    with pytest.raises(ConfigError, match=match):
        PaperProbeConfig.from_dict(params)


def test_random_weights_are_seeded_and_announced():
    lines = []
    config = PaperProbeConfig(**TINY)
    first, second = load_model(config, log=lines.append), load_model(config, log=lines.append)
    torch.testing.assert_close(first.state_dict(), second.state_dict())
    assert "NOT the paper's" in lines[0] and "RANDOMLY INITIALISED" in lines[0]
    assert paper_coords(config) == {"model": "run", "objective": "random", "arch": "deit_tiny_patch16_224",
                                    "weights": "random init (seed 0)"}


def test_checkpoint_file_is_loaded_and_named(tmp_path):
    source = randomize(timm.create_model("deit_tiny_patch16_224", num_classes=0, img_size=32), seed=3).eval()
    path = tmp_path / "deit_tiny.pth"
    torch.save(deit_checkpoint(source), path)
    config = PaperProbeConfig(**TINY, checkpoint_path=str(path), objective="supervised", allow_pickle=True)
    model = load_model(config, log=lambda *_: None)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), source.forward_features(x))
    assert paper_coords(config)["weights"] == "deit_tiny.pth"
    ds = probe_model(model, load_images(config), config.batch_size).assign_coords(paper_coords(config))
    assert ds["objective"].item() == "supervised" and ds.sizes["image"] == 4


def test_images_from_a_folder_or_the_sample_photos(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("n01", "n02"):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / label / f"{i}.JPEG")
    from_folder = load_images(PaperProbeConfig(**{**TINY, "num_images": 5}, image_dir=str(tmp_path)))
    assert from_folder.shape == (5, 3, 32, 32)
    photos = load_images(PaperProbeConfig(**TINY))
    assert photos.shape == (4, 3, 32, 32) and photos.std() > 0.1
