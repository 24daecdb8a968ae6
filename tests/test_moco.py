import math

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer
from torch.utils.data import DataLoader, TensorDataset

from mimstudy.data.augment import MoCoViews, ViewRecipe
from mimstudy.training.engine import evaluate, train_one_epoch
from mimstudy.models.backbones import create_backbone
from mimstudy.objectives import MoCoConfig, MoCoV3, Supervised
from mimstudy.objectives.moco import build_mlp, contrastive_loss, momentum_at
from mimstudy.training.optim import build_optimizer

IDENTITY = ViewRecipe(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0, blur_prob=0.0,
                      solarize_prob=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")


def make_moco(views=None, **config) -> MoCoV3:
    torch.manual_seed(0)
    return MoCoV3(create_backbone("vit_micro_32"), views, MoCoConfig(**config))


def images(batch=8, seed=0):
    return torch.randn(batch, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


# --- loss and schedule ----------------------------------------------------------------------


def test_loss_of_identical_orthonormal_queries_and_keys():
    """q = k = one-hot rows: logits 1/T on the diagonal, 0 elsewhere."""
    batch, t = 4, 0.2
    q = torch.eye(batch, 8) * 3.0  # normalised to the unit rows
    loss, top1 = contrastive_loss(q, q.clone(), t)
    expected = 2 * t * math.log(1 + (batch - 1) * math.exp(-1 / t))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert top1.item() == 1.0


def test_loss_against_a_hand_computed_cross_entropy():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    k = torch.tensor([[1.0, 1.0], [0.0, 1.0]])  # key 0 normalises to (1, 1) / sqrt(2)
    t = 0.5
    s = 1 / math.sqrt(2)
    row0 = -math.log(math.exp(s / t) / (math.exp(s / t) + math.exp(0.0)))  # q0.k0 = s, q0.k1 = 0
    row1 = -math.log(math.exp(1 / t) / (math.exp(s / t) + math.exp(1 / t)))  # q1.k0 = s, q1.k1 = 1
    loss, _ = contrastive_loss(q, k, t)
    assert loss.item() == pytest.approx((row0 + row1) / 2 * 2 * t, rel=1e-5)


def test_forward_loss_is_symmetric_sum():
    moco = make_moco()
    q1, q2, k1, k2 = torch.randn(4, 6, 128).unbind(0)
    loss, _ = moco.forward_loss(q1, q2, k1, k2)
    expected = contrastive_loss(q1, k2, 0.2)[0] + contrastive_loss(q2, k1, 0.2)[0]
    assert torch.allclose(loss, expected)


def test_momentum_schedule():
    assert momentum_at(0.0, 0.99) == pytest.approx(0.99)
    assert momentum_at(0.5, 0.99) == pytest.approx(0.995)
    assert momentum_at(1.0, 0.99) == pytest.approx(1.0)
    moco = make_moco()
    moco.on_step(0, 10)
    assert moco.momentum == pytest.approx(0.99)
    moco.on_step(10, 10)
    assert moco.momentum == pytest.approx(1.0)
    with pytest.raises(ValueError, match="progress"):
        moco.set_progress(1.5)


def test_mlps_follow_moco_v3():
    mlp = build_mlp(3, 64, 32, 16)
    linears = [m for m in mlp if isinstance(m, torch.nn.Linear)]
    norms = [m for m in mlp if isinstance(m, torch.nn.BatchNorm1d)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 32), (32, 32), (32, 16)]
    assert all(m.bias is None for m in linears)
    assert [m.affine for m in norms] == [True, True, False]


# --- architecture ---------------------------------------------------------------------------


def test_backbone_stays_a_timm_vit_with_its_head():
    moco = make_moco()
    assert isinstance(moco.backbone, VisionTransformer)
    assert isinstance(moco.backbone.head, torch.nn.Linear) and moco.backbone.head.out_features == 10
    assert moco.backbone(images(2)).shape == (2, 10)
    assert moco.forward_query(images(2)).shape == (2, 128)
    # a MoCo backbone's weights load into a freshly built study backbone
    create_backbone("vit_micro_32").load_state_dict(moco.backbone.state_dict())


def test_momentum_encoder_starts_as_a_copy_and_gets_no_gradients():
    moco = make_moco()
    for name, param in moco.momentum_encoder.backbone.named_parameters():
        assert torch.equal(param, moco.backbone.get_parameter(name)), name
        assert not param.requires_grad
    moco.train()
    loss, _ = moco(images())
    loss.backward()
    assert all(p.grad is None for p in moco.momentum_encoder.parameters())
    assert moco.backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_momentum_update_moves_by_exactly_m():
    moco = make_moco()
    with torch.no_grad():
        moco.backbone.blocks[0].mlp.fc1.weight.add_(1.0)
        moco.projector[0].weight.mul_(2.0)
    before_m = moco.momentum_encoder.backbone.blocks[0].mlp.fc1.weight.clone()
    base = moco.backbone.blocks[0].mlp.fc1.weight
    moco.update_momentum_encoder(0.9)
    after = moco.momentum_encoder.backbone.blocks[0].mlp.fc1.weight
    assert torch.allclose(after, 0.9 * before_m + 0.1 * base, atol=1e-6)
    assert torch.allclose(moco.momentum_encoder.projector[0].weight, 0.9 * moco.projector[0].weight / 2
                          + 0.1 * moco.projector[0].weight, atol=1e-6)


def test_patch_embed_is_frozen_when_asked():
    frozen, trainable = make_moco(), make_moco(freeze_patch_embed=False)
    assert not any(p.requires_grad for p in frozen.backbone.patch_embed.parameters())
    assert all(p.requires_grad for p in trainable.backbone.patch_embed.parameters())
    frozen.train()
    frozen(images())[0].backward()
    assert frozen.backbone.patch_embed.proj.weight.grad is None


def test_eval_mode_leaves_the_momentum_encoder_alone():
    moco = make_moco()
    with torch.no_grad():
        moco.backbone.blocks[0].mlp.fc1.weight.add_(1.0)  # base and momentum encoders now differ
    before = {k: v.clone() for k, v in moco.momentum_encoder.state_dict().items()}
    moco.eval()
    with torch.no_grad():
        loss, metrics = moco(images())
    assert torch.isfinite(loss) and set(metrics) == {"loss", "contrastive_top1", "momentum"}
    for name, value in moco.momentum_encoder.state_dict().items():
        assert torch.equal(value, before[name]), name


# --- training -------------------------------------------------------------------------------


def test_training_steps_lower_the_loss_and_move_the_backbone():
    moco = make_moco(MoCoViews(IDENTITY, IDENTITY))  # fixed views: the task can be learnt in a few steps
    optimizer = torch.optim.AdamW([p for p in moco.parameters() if p.requires_grad], lr=1e-3)
    qkv = moco.backbone.blocks[0].attn.qkv.weight.clone()
    patch, head = moco.backbone.patch_embed.proj.weight.clone(), moco.backbone.head.weight.clone()
    x, losses = images(), []
    moco.train()
    for step in range(5):
        moco.on_step(step, 5)
        loss, _ = moco(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert not torch.equal(moco.backbone.blocks[0].attn.qkv.weight, qkv)
    assert torch.equal(moco.backbone.patch_embed.proj.weight, patch)  # frozen
    assert torch.equal(moco.backbone.head.weight, head)  # not part of MoCo's graph


def test_engine_reports_the_global_step():
    moco = make_moco()
    seen = []
    moco.on_step = lambda step, total: (seen.append((step, total)), MoCoV3.on_step(moco, step, total))
    data = TensorDataset(images(8), torch.zeros(8, dtype=torch.long))
    loader = DataLoader(data, batch_size=4, shuffle=False, drop_last=True)
    optimizer, scheduler = build_optimizer(moco, 1e-3, 0.05, total_steps=6, warmup_steps=0, min_lr=1e-5)
    with pytest.raises(ValueError, match="total_steps"):
        train_one_epoch(moco, loader, optimizer, scheduler, epoch=1, device=torch.device("cpu"), progress=False)
    record = train_one_epoch(moco, loader, optimizer, scheduler, epoch=1, device=torch.device("cpu"),
                             progress=False, total_steps=6)
    assert seen == [(2, 6), (3, 6)]
    assert record["train_momentum"] == pytest.approx((momentum_at(2 / 6, 0.99) + momentum_at(3 / 6, 0.99)) / 2)
    assert math.isfinite(record["train_loss"])
    val = evaluate(moco, loader, torch.device("cpu"), seed=0)
    assert val == evaluate(moco, loader, torch.device("cpu"), seed=0)  # seeded views


def test_engine_runs_objectives_without_the_hook_as_before():
    torch.manual_seed(0)
    objective = Supervised(create_backbone("vit_micro_32"))
    loader = DataLoader(TensorDataset(images(8), torch.arange(8) % 10), batch_size=4, drop_last=True)
    optimizer, scheduler = build_optimizer(objective, 1e-3, 0.05, total_steps=2, warmup_steps=0, min_lr=1e-5)
    record = train_one_epoch(objective, loader, optimizer, scheduler, epoch=0, device=torch.device("cpu"), progress=False)
    assert math.isfinite(record["train_loss"])


def test_bf16_autocast_trains_with_a_float32_loss():
    moco = make_moco()
    moco.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = moco(images())
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
