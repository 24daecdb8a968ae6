"""Fine-tuning support: layer-wise lr decay groups, LambdaLR over them, encoder loading from SimMIM."""

import pytest
import torch

from mimstudy.models.checkpoints.state import CheckpointError, save_checkpoint
from mimstudy.objectives.masking import MaskGenerator
from mimstudy.models.backbones import create_backbone, patch_size_of
from mimstudy.objectives import SimMIM, Supervised
from mimstudy.objectives.finetune import classifier_from_checkpoint, layer_decay_param_groups, load_encoder
from mimstudy.training.optim import build_optimizer, cosine_lr_factor, param_groups

DECAY = 0.75


def scale_by_name(model, groups):
    by_id = {id(p): (g["lr_scale"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(by_id) == len(list(model.parameters()))
    return {name: by_id[id(p)] for name, p in model.named_parameters()}


def depth_key(name):
    """Position of a parameter from input to output: patch embedding, blocks in order, final norm, head."""
    parts = name.split(".")
    if parts[0] in ("patch_embed", "cls_token", "pos_embed"):
        return (0,)
    if parts[0] == "blocks":  # ViT
        return (1, int(parts[1]))
    if parts[0] == "layers":  # Swin: stage, then merging before the stage's blocks
        return (1, int(parts[1]), -1 if parts[2] == "downsample" else int(parts[3]))
    return (2,) if parts[0] == "norm" else (3,)


@pytest.mark.parametrize("arch, blocks", [("vit_micro_32", 4), ("swinv2_micro_32", 14)])
def test_layer_decay_scales_grow_from_patch_embedding_to_head(arch, blocks):
    model = create_backbone(arch)
    scales = scale_by_name(model, layer_decay_param_groups(model, 0.05, DECAY))
    ordered = sorted(scales, key=depth_key)
    values = [scales[name][0] for name in ordered]
    assert values == sorted(values)  # monotone from input to output
    head = [n for n in scales if n.startswith("head")]
    assert head and all(scales[n][0] == 1.0 for n in head)
    embed = [n for n in scales if n.startswith("patch_embed")]
    assert all(scales[n][0] == pytest.approx(DECAY ** (blocks + 1)) for n in embed)
    assert len({s for s, _ in scales.values()}) == blocks + 2  # embedding, each block, head


def test_layer_decay_weight_decay_exclusions():
    vit = create_backbone("vit_micro_32")
    decays = {n: wd for n, (_, wd) in scale_by_name(vit, layer_decay_param_groups(vit, 0.05, DECAY)).items()}
    assert decays["pos_embed"] == decays["cls_token"] == decays["blocks.0.norm1.weight"] == 0.0
    assert decays["blocks.0.attn.qkv.weight"] == decays["head.weight"] == 0.05
    swin = create_backbone("swinv2_micro_32")
    decays = {n: wd for n, (_, wd) in scale_by_name(swin, layer_decay_param_groups(swin, 0.05, DECAY)).items()}
    assert decays["layers.0.blocks.0.attn.cpb_mlp.0.weight"] == decays["layers.0.blocks.0.attn.logit_scale"] == 0.0
    assert decays["layers.0.blocks.0.attn.qkv.weight"] == decays["layers.1.downsample.reduction.weight"] == 0.05


def test_objective_parameters_outside_the_backbone_get_scale_one():
    simmim = SimMIM(create_backbone("vit_micro_32"), MaskGenerator(32, 8, 4, 0.6))
    scales = scale_by_name(simmim, layer_decay_param_groups(simmim, 0.05, DECAY, lr=1e-3))
    assert scales["mask_token"] == (1.0, 0.0)
    assert scales["decoder.0.weight"] == (1.0, 0.05)
    assert scales["backbone.patch_embed.proj.weight"][0] == pytest.approx(DECAY**5)


def test_without_layer_decay_the_groups_are_unchanged():
    model = Supervised(create_backbone("vit_micro_32"))
    optimizer, _ = build_optimizer(model, 1e-3, 0.05, total_steps=10, warmup_steps=2, min_lr=1e-5)
    expected = param_groups(model, 0.05)
    assert len(optimizer.param_groups) == len(expected) == 2
    for group, want in zip(optimizer.param_groups, expected):
        assert [id(p) for p in group["params"]] == [id(p) for p in want["params"]]
        assert group["weight_decay"] == want["weight_decay"] and group["initial_lr"] == 1e-3


def test_lambda_lr_keeps_relative_group_lrs():
    model = Supervised(create_backbone("swinv2_micro_32"))
    lr, total, warmup, min_lr = 1e-3, 12, 3, 1e-5
    optimizer, scheduler = build_optimizer(model, lr, 0.05, total, warmup, min_lr, layer_decay=DECAY)
    scales = [g["lr_scale"] for g in optimizer.param_groups]
    assert min(scales) == pytest.approx(DECAY**15) and max(scales) == 1.0
    for step in range(total):
        factor = cosine_lr_factor(step, total, warmup, min_lr / lr)
        for group, scale in zip(optimizer.param_groups, scales):
            assert group["lr"] == pytest.approx(lr * scale * factor, rel=1e-9)
        optimizer.step()
        scheduler.step()


@pytest.fixture
def simmim_checkpoint(tmp_path):
    def write(arch):
        torch.manual_seed(0)
        backbone = create_backbone(arch, num_classes=10)
        objective = SimMIM(backbone, MaskGenerator(32, 8, patch_size_of(backbone), 0.6))
        path = tmp_path / f"{arch}.pt"
        save_checkpoint({"config": {"arch": arch, "objective": "simmim"}, "backbone": backbone.state_dict(),
                         "model": objective.state_dict()}, path)
        return path, backbone.state_dict()
    return write


@pytest.mark.parametrize("arch, head", [("vit_micro_32", "head"), ("swinv2_micro_32", "head.fc")])
def test_classifier_from_simmim_checkpoint(simmim_checkpoint, arch, head):
    path, saved = simmim_checkpoint(arch)
    torch.manual_seed(1)
    model, config = classifier_from_checkpoint(path, num_classes=10)
    assert config["arch"] == arch
    state = model.state_dict()
    encoder = [k for k in saved if not k.startswith(head + ".")]
    assert len(encoder) == len(state) - 2
    assert all(torch.equal(state[k], saved[k]) for k in encoder)  # every encoder tensor copied
    assert not torch.equal(state[f"{head}.weight"], saved[f"{head}.weight"])  # head re-initialised
    assert torch.equal(state[f"{head}.bias"], torch.zeros(10))


def test_load_encoder_takes_a_new_number_of_classes_and_rejects_other_architectures(simmim_checkpoint):
    _, saved = simmim_checkpoint("vit_micro_32")
    five = create_backbone("vit_micro_32", num_classes=5)
    assert load_encoder(five, saved) == ["head.weight", "head.bias"]
    assert five.head.weight.shape == (5, 64)
    with pytest.raises(CheckpointError, match="shapes differ.*patch_embed"):
        load_encoder(create_backbone("vit_mini_32"), saved)
    with pytest.raises(CheckpointError, match="not this architecture's encoder.*missing.*layers"):
        load_encoder(create_backbone("swinv2_micro_32"), saved)
