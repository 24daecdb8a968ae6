"""load_backbone on files written in each official layout, from small random timm models (no downloads)."""

from __future__ import annotations

import types
import warnings

import pytest
import timm
import torch
from .official_layouts import (
    deit_checkpoint,
    mocov3_checkpoint,
    official_swinv2_encoder,
    randomize,
    simmim_checkpoint,
    simmim_vit_encoder,
)
from safetensors.torch import save_file

from mimstudy.models.checkpoints import (
    CheckpointError,
    UnsafeCheckpointError,
    detect_layout,
    load_backbone,
    read_checkpoint,
)

VIT_SMALL = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
BEIT_SMALL = dict(VIT_SMALL, use_abs_pos_emb=False, use_rel_pos_bias=False, use_shared_rel_pos_bias=True,
                  init_values=0.1, use_fc_norm=False)
# 16x16, 8x8 and 4x4 tokens in windows of 8: shifted windows, one window, and one window smaller than 8
SWIN_SMALL = dict(img_size=32, patch_size=2, embed_dim=16, depths=(2, 2, 2), num_heads=(1, 2, 4), window_size=8)


def _source(name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    return randomize(timm.create_model(name, pretrained=False, **{"num_classes": 0, **kwargs}), seed)


def _assert_same_features(loaded, source, size: int = 32, batch: int = 2) -> None:
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_features(x), source.forward_features(x))


def _save(tmp_path, ckpt: dict, name: str = "ckpt.pth"):
    path = tmp_path / name
    torch.save(ckpt, path)
    return path


def _simmim_swinv2(swin, rpe_name: str = "cpb_mlp") -> dict:
    encoder = official_swinv2_encoder(swin, SWIN_SMALL["window_size"], rpe_name)
    return simmim_checkpoint(encoder, swin.num_features, 32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One small file per official layout, and the source models they were written from."""
    tmp = tmp_path_factory.mktemp("ckpts")
    deit = _source("deit_base_patch16_224", num_classes=10, **VIT_SMALL)
    moco = _source("vit_base_patch16_224", seed=1, **VIT_SMALL)
    beit = _source("beit_base_patch16_224", seed=2, **BEIT_SMALL)
    swin = _source("swinv2_base_window12_192", seed=3, **SWIN_SMALL)
    simmim_config = types.SimpleNamespace(MODEL=types.SimpleNamespace(TYPE="vit"))
    return {
        "deit": (_save(tmp, deit_checkpoint(deit), "deit.pth"), deit),
        "mocov3": (_save(tmp, mocov3_checkpoint(moco), "moco.pth.tar"), moco),
        "simmim_vit": (
            _save(tmp, simmim_checkpoint(simmim_vit_encoder(beit), 32, 8, simmim_config), "vit.pth"), beit
        ),
        "simmim_swinv2": (_save(tmp, _simmim_swinv2(swin), "swin.pth"), swin),
    }


@pytest.mark.parametrize("layout", ["deit", "mocov3", "simmim_vit", "simmim_swinv2"])
def test_detect_layout(files, layout):
    path, _ = files[layout]
    assert detect_layout(read_checkpoint(path, allow_pickle=True)) == layout


def test_deit_pickled_args_need_opt_in(files):
    path, _ = files["deit"]
    with pytest.raises(UnsafeCheckpointError, match=r"argparse\.Namespace.*allow_pickle=True"):
        load_backbone("deit_base_patch16_224", path, **VIT_SMALL)


def test_deit_headless_and_with_classifier(files):
    path, source = files["deit"]
    model, report = load_backbone("deit_base_patch16_224", path, allow_pickle=True, **VIT_SMALL)
    assert report.layout == "deit" and not report.missing_keys and not report.unexpected_keys
    assert {"model.head.weight", "model.head.bias", "args", "optimizer", "epoch"} <= set(report.dropped_keys)
    _assert_same_features(model, source)

    model, report = load_backbone("deit_base_patch16_224", path, allow_pickle=True, num_classes=10, **VIT_SMALL)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x))
    _, report = load_backbone("deit_base_patch16_224", path, allow_pickle=True, num_classes=5, **VIT_SMALL)
    assert report.missing_keys == ["head.weight", "head.bias"]  # re-initialised for 5 classes


def test_mocov3_drops_projector_momentum_and_predictor(files):
    path, source = files["mocov3"]
    model, report = load_backbone("vit_base_patch16_224", path, **VIT_SMALL)
    assert report.layout == "mocov3" and not report.missing_keys and not report.unexpected_keys
    dropped = report.dropped_keys
    assert "state_dict.module.base_encoder.head.0.weight" in dropped
    assert any(k.startswith("state_dict.module.momentum_encoder.") for k in dropped)
    assert "state_dict.module.predictor.0.weight" in dropped and "optimizer" in dropped
    _assert_same_features(model, source)


def test_simmim_vit_as_beit(files):
    path, source = files["simmim_vit"]
    with pytest.raises(UnsafeCheckpointError, match="SimpleNamespace"):
        load_backbone("beit_base_patch16_224", path, **VIT_SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # index buffers match timm's, nothing unexpected
        model, report = load_backbone("beit_base_patch16_224", path, allow_pickle=True, **VIT_SMALL)
    assert report.model_kwargs["use_shared_rel_pos_bias"] and not report.model_kwargs["use_rel_pos_bias"]
    dropped = {"model.encoder.mask_token", "model.decoder.0.weight",
               "model.encoder.rel_pos_bias.relative_position_index"}
    assert dropped <= set(report.dropped_keys) and "config" in report.dropped_keys
    assert not report.missing_keys and not report.unexpected_keys
    assert report.checked_buffers == ["rel_pos_bias.relative_position_index"]
    _assert_same_features(model, source)


def test_simmim_vit_needs_a_beit(files):
    path, _ = files["simmim_vit"]
    with pytest.raises(CheckpointError, match="beit_base_patch16_224"):
        load_backbone("vit_base_patch16_224", path, allow_pickle=True, **VIT_SMALL)


def test_simmim_vit_wrong_index_order_is_refused(files, tmp_path):
    path, _ = files["simmim_vit"]
    ckpt = read_checkpoint(path, allow_pickle=True)
    index = ckpt["model"]["encoder.rel_pos_bias.relative_position_index"]
    ckpt["model"]["encoder.rel_pos_bias.relative_position_index"] = index.t().contiguous()
    with pytest.raises(CheckpointError, match="relative_position_index"):
        load_backbone("beit_base_patch16_224", _save(tmp_path, ckpt), allow_pickle=True, **VIT_SMALL)


@pytest.mark.parametrize("rpe_name", ["cpb_mlp", "rpe_mlp"])
def test_simmim_swinv2(files, tmp_path, rpe_name):
    path, source = files["simmim_swinv2"]
    if rpe_name != "cpb_mlp":  # early official code: same weights, other name
        path = _save(tmp_path, _simmim_swinv2(source, rpe_name))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # coordinate tables and shift masks match timm's
        model, report = load_backbone("swinv2_base_window12_192", path, **SWIN_SMALL)
    assert report.layout == "simmim_swinv2" and not report.missing_keys and not report.unexpected_keys
    assert "model.decoder.0.weight" in report.dropped_keys and "model.encoder.mask_token" in report.dropped_keys
    assert len(report.checked_buffers) == 13  # 6 blocks x (index, coords table) + 1 shift mask, all official
    _assert_same_features(model, source)


def test_simmim_swinv2_other_coords_table_warns(files, tmp_path):
    path, _ = files["simmim_swinv2"]
    ckpt = read_checkpoint(path)
    ckpt["model"]["encoder.layers.0.blocks.0.attn.relative_coords_table"] *= 2
    with pytest.warns(UserWarning, match="relative_coords_table.*pretrained_window_sizes"):
        _, report = load_backbone("swinv2_base_window12_192", _save(tmp_path, ckpt), **SWIN_SMALL)
    assert any("relative_coords_table" in note for note in report.notes)


def test_timm_safetensors(tmp_path):
    source = _source("vit_base_patch16_224", seed=4, **VIT_SMALL)
    path = tmp_path / "vit.safetensors"
    save_file(source.state_dict(), str(path))
    model, report = load_backbone("vit_base_patch16_224", path, **VIT_SMALL)
    assert report.layout == "timm" and report.loaded == len(source.state_dict())
    _assert_same_features(model, source)


def test_ddp_prefixed_classifier(tmp_path):
    """E.g. MoCo v3's linear-probe files: a DDP-wrapped ViT with its classifier, under 'state_dict'."""
    source = _source("vit_base_patch16_224", seed=6, num_classes=10, **VIT_SMALL)
    sd = {f"module.{k}": v for k, v in source.state_dict().items()}
    path = _save(tmp_path, {"epoch": 90, "arch": "vit_base", "state_dict": sd, "best_acc1": 76.5})
    model, report = load_backbone("vit_base_patch16_224", path, num_classes=10, **VIT_SMALL)
    assert report.layout == "timm" and not report.missing_keys and not report.unexpected_keys
    assert {"epoch", "arch", "best_acc1"} <= set(report.dropped_keys)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x))


def test_missing_encoder_key_is_an_error(files, tmp_path):
    path, _ = files["mocov3"]
    ckpt = read_checkpoint(path)
    del ckpt["state_dict"]["module.base_encoder.blocks.1.attn.qkv.weight"]
    with pytest.raises(CheckpointError, match=r"blocks\.1\.attn\.qkv\.weight.*'mocov3'"):
        load_backbone("vit_base_patch16_224", _save(tmp_path, ckpt), **VIT_SMALL)


def test_wrong_architecture_is_an_error(files):
    path, _ = files["mocov3"]
    with pytest.raises(CheckpointError, match="do not fit.*embed_dim"):
        load_backbone("vit_base_patch16_224", path, **dict(VIT_SMALL, embed_dim=64))
    with pytest.raises(CheckpointError, match="lacks"):
        load_backbone("vit_base_patch16_224", path, **dict(VIT_SMALL, depth=3))


def test_unexpected_keys_warn_or_fail_when_strict(files, tmp_path):
    path, _ = files["mocov3"]
    ckpt = read_checkpoint(path)
    ckpt["state_dict"]["module.base_encoder.blocks.0.extra.weight"] = torch.zeros(3)
    path = _save(tmp_path, ckpt)
    with pytest.warns(UserWarning, match=r"blocks\.0\.extra\.weight"):
        _, report = load_backbone("vit_base_patch16_224", path, **VIT_SMALL)
    assert report.unexpected_keys == ["blocks.0.extra.weight"]
    with pytest.raises(CheckpointError, match="strict"):
        load_backbone("vit_base_patch16_224", path, strict=True, **VIT_SMALL)


def test_explicit_layout_must_fit(files):
    path, _ = files["simmim_vit"]
    with pytest.raises(CheckpointError, match="module.base_encoder"):
        load_backbone("vit_base_patch16_224", path, layout="mocov3", allow_pickle=True, **VIT_SMALL)


def test_unknown_layout():
    with pytest.raises(ValueError, match="unknown checkpoint layout 'mae'"):
        load_backbone("vit_base_patch16_224", "whatever.pth", layout="mae")


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="checkpoint file not found: 'no/such/file.pth'"):
        load_backbone("vit_base_patch16_224", "no/such/file.pth")


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint" * 8)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_backbone("vit_base_patch16_224", path, **VIT_SMALL)


def test_hub_failure_asks_for_a_path(monkeypatch):
    def offline(*args, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return real(*args, **kwargs)

    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(CheckpointError, match="checkpoint_path"):
        load_backbone("vit_base_patch16_224")
    with pytest.raises(CheckpointError, match="no pretrained weights"):
        load_backbone("vit_micro_32")
    with pytest.raises(ValueError, match="checkpoint_path"):
        load_backbone("beit_base_patch16_224", layout="simmim_vit")


def test_simmim_vit_base_full_size(tmp_path):
    """The paper's SimMIM ViT-B/16 at 224 px: real dimensions, 14x14 shared relative position bias."""
    kwargs = dict(use_abs_pos_emb=False, use_rel_pos_bias=False, use_shared_rel_pos_bias=True, use_fc_norm=False)
    source = _source("beit_base_patch16_224", seed=5, **kwargs)
    path = _save(tmp_path, simmim_checkpoint(simmim_vit_encoder(source), 768, 16))
    model, report = load_backbone("beit_base_patch16_224", path)
    assert report.layout == "simmim_vit" and not report.missing_keys and not report.unexpected_keys
    assert report.loaded == len(model.state_dict())
    assert report.checked_buffers == ["rel_pos_bias.relative_position_index"]  # 14x14 grid, official formula
    _assert_same_features(model, source, size=224, batch=1)
