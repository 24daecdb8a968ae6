"""A pre-training run's final weights as a committed result (mimstudy.models.checkpoints.weights)."""

import json

import pytest
import torch

from mimstudy.models.backbones import create_backbone
from mimstudy.models.checkpoints.state import CheckpointError, load_pretrain_checkpoint
from mimstudy.models.checkpoints.weights import (file_sha256, load_backbone_weights, read_weights, save_weights,
                                                 weights_file)

INFO = {"arch": "vit_micro_32", "img_size": 32, "num_classes": 10, "run_id": "vit_sup-s0",
        "parameters": {"arch": "vit_micro_32", "img_size": 32, "objective": "supervised", "run_id": "vit_sup-s0"}}


def trained_backbone():
    torch.manual_seed(3)
    return create_backbone("vit_micro_32", num_classes=10)


def test_weights_round_trip_and_rebuild_the_backbone(tmp_path):
    backbone = trained_backbone()
    path = weights_file(tmp_path, "cpu", "vit_sup-s0")
    assert path == tmp_path / "cpu" / "weights" / "vit_sup-s0.safetensors"
    digest = save_weights(backbone.state_dict(), path, INFO)
    assert digest == file_sha256(path) and len(digest) == 64
    loaded, info = load_backbone_weights(path, sha256=digest)
    assert info == INFO and not loaded.training
    images = torch.randn(2, 1, 32, 32)
    assert torch.equal(loaded(images), backbone.eval()(images))  # the same function, bitwise
    as_checkpoint = load_pretrain_checkpoint(path)  # every reader of a checkpoint's backbone reads it too
    assert as_checkpoint["config"] == INFO["parameters"] and as_checkpoint["num_classes"] == 10
    assert all(torch.equal(as_checkpoint["backbone"][k], v) for k, v in backbone.state_dict().items())


def test_the_same_weights_give_the_same_bytes(tmp_path):
    state = trained_backbone().state_dict()
    first = save_weights(state, tmp_path / "a.safetensors", INFO)
    shuffled = dict(reversed(list(state.items())))
    assert save_weights(shuffled, tmp_path / "b.safetensors", dict(reversed(list(INFO.items())))) == first
    state["blocks.0.attn.qkv.weight"][0, 0] += 1e-6
    assert save_weights(state, tmp_path / "c.safetensors", INFO) != first


def test_bad_weights_files_say_what_to_do(tmp_path):
    with pytest.raises(CheckpointError, match=r"no weights at .*missing\.safetensors: run the pre-training run"):
        read_weights(tmp_path / "missing.safetensors")
    path = tmp_path / "w.safetensors"
    digest = save_weights(trained_backbone().state_dict(), path, INFO)
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        read_weights(path, sha256="0" * 64)
    assert read_weights(path, sha256=digest)[1] == INFO
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        read_weights(path)
    from safetensors.torch import save_file

    save_file({"w": torch.ones(1)}, str(tmp_path / "foreign.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="no 'mimstudy' metadata"):
        read_weights(tmp_path / "foreign.safetensors")
    with pytest.raises(ValueError, match="lacks \\['parameters'\\]"):
        save_weights({}, tmp_path / "x.safetensors", {k: v for k, v in INFO.items() if k != "parameters"})


def test_weights_are_stored_in_fp32(tmp_path):
    state = {"w": torch.ones(3, dtype=torch.bfloat16), "steps": torch.tensor([4])}
    save_weights(state, tmp_path / "w.safetensors", INFO)
    loaded, _ = read_weights(tmp_path / "w.safetensors")
    assert loaded["w"].dtype == torch.float32 and loaded["steps"].dtype == torch.int64


def test_metadata_is_one_json_entry(tmp_path):
    from safetensors import safe_open

    save_weights(trained_backbone().state_dict(), tmp_path / "w.safetensors", INFO)
    with safe_open(str(tmp_path / "w.safetensors"), framework="pt") as handle:
        assert json.loads(handle.metadata()["mimstudy"]) == INFO
