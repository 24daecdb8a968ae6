"""RepLKNet (Appendix B): timm registry, sizes matched to the ViTs, small-kernel merge, FFT large kernels,
SimMIM on the ConvNet, kernel probes through the attention-probe functions."""

import math

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from timm.optim import param_groups_layer_decay

from mimstudy.models.checkpoints import CheckpointError, load_backbone
from mimstudy.models.backbones import available_backbones, create_backbone, model_stride, patch_size_of
from mimstudy.models.cost import count_flops, count_params
from mimstudy.models.replknet import LargeDepthwiseConv2d, RepLKNet, fft_depthwise_conv2d
from mimstudy.objectives import SimMIM
from mimstudy.objectives.masking import MaskGenerator
from mimstudy.probes import probe_model
from mimstudy.probes.kernels import kernel_distributions, kernel_statistics, probe_kernels, tap_distances

from .official_layouts import official_replknet_keys
from .test_simmim import check_loss_ignores_visible_pixels

pytestmark = pytest.mark.usefixtures("one_thread")


def settle(model: RepLKNet, seed: int = 0) -> RepLKNet:
    """Give every BN non-trivial running statistics and affine weights, then eval mode: a merge must fold them."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
        model.train()
        model(torch.randn(16, model.in_chans, 32, 32))
    return model.eval()


def test_registry_round_trip():
    names = timm.list_models("replk*")
    assert {"replk_micro_32", "replk_mini_32", "replk_tiny_32", "replknet_31b"} <= set(names)
    model = timm.create_model("replk_micro_32", small_kernel=3)
    assert isinstance(model, RepLKNet) and model.pretrained_cfg["classifier"] == "head"
    assert {"replk_micro_32", "replk_micro_32_rep"} <= set(available_backbones())
    copy = timm.create_model("replk_micro_32", small_kernel=3)
    copy.load_state_dict(model.state_dict())
    x = torch.randn(2, 1, 32, 32)
    model.eval(), copy.eval()
    assert torch.equal(model(x), copy(x))
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("replk_micro_32", pretrained=True)


@pytest.mark.parametrize("size", ["micro", "mini", "tiny"])
def test_sizes_match_the_vits(size):
    """Parameters and FLOPs (as merged) within 5% of the ViT namesake; the kernels cover each stage's map."""
    vit, cnn = create_backbone(f"vit_{size}_32", num_classes=0), create_backbone(f"replk_{size}_32", num_classes=0)
    assert count_params(cnn) == pytest.approx(count_params(vit), rel=0.05)
    assert count_flops(cnn) == pytest.approx(count_flops(vit), rel=0.05)
    for (_, module, stride), k in zip(cnn.large_kernels(), [m.kernel_size for _, m, _ in cnn.large_kernels()]):
        side = 32 // stride
        assert side <= k <= 2 * side - 1


def test_timm_api():
    model = create_backbone("replk_micro_32").eval()
    x = torch.randn(2, 1, 32, 32)
    features = model.forward_features(x)
    assert features.shape == (2, 64, 4, 4) and model_stride(model) == 8 and patch_size_of(model) == 1
    assert torch.allclose(model.forward_head(features), model(x))
    assert model.forward_head(features, pre_logits=True).shape == (2, 64)
    maps = model.forward_intermediates(x, intermediates_only=True)
    assert [tuple(m.shape[1:]) for m in maps] == [(16, 16, 16), (32, 8, 8), (64, 4, 4)]
    final, maps = model.forward_intermediates(x, indices=1)
    assert len(maps) == 1 and torch.allclose(final, features)
    model.reset_classifier(0)
    assert model(x).shape == (2, 64)
    groups = param_groups_layer_decay(model, layer_decay=0.5)
    scales = sorted({g["lr_scale"] for g in groups})
    assert len(scales) > 10 and scales[-1] == 1.0  # stem smallest, one group per block, head last


def test_fft_depthwise_conv_equals_direct():
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 6, 16, 16), torch.randn(6, 1, 17, 17), torch.randn(6)
    direct = F.conv2d(x, w, b, padding=8, groups=6)
    assert torch.allclose(fft_depthwise_conv2d(x, w, b), direct, atol=1e-4, rtol=1e-5)
    conv = LargeDepthwiseConv2d(6, 17, bias=True)
    with torch.no_grad():
        conv.weight.copy_(w), conv.bias.copy_(b)
    assert conv.use_fft(x) and not conv.use_fft(x[..., :8, :8])  # auto: FFT on big CPU maps only
    assert torch.allclose(conv(x), direct, atol=1e-4, rtol=1e-5)
    with pytest.raises(ValueError, match="impl"):
        LargeDepthwiseConv2d(6, 17, impl="winograd")


@pytest.mark.parametrize("small_kernel", [0, 3])
def test_reparameterize_keeps_the_function(small_kernel):
    model = settle(create_backbone("replk_micro_32", small_kernel=small_kernel))
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        before = model(x)
        model.reparameterize()
        after = model(x)
    assert all(m.merged and not hasattr(m, "small_conv") for _, m, _ in model.large_kernels())
    assert torch.allclose(before, after, atol=1e-5)
    assert not torch.allclose(before, create_backbone("replk_micro_32").eval()(x))  # a different model differs


def test_merged_kernel_adds_the_padded_small_branch():
    model = settle(create_backbone("replk_micro_32", small_kernel=3))
    module = model.large_kernels()[0][1]
    kernel, _ = module.equivalent_kernel_bias()
    scale = lambda bn: (bn.weight / (bn.running_var + bn.eps).sqrt()).reshape(-1, 1, 1, 1)  # noqa: E731
    large = module.lkb_origin.conv.weight * scale(module.lkb_origin.bn)
    small = module.small_conv.conv.weight * scale(module.small_conv.bn)
    centre = slice(7, 10)
    assert torch.allclose(kernel[..., centre, centre], large[..., centre, centre] + small, atol=1e-6)
    assert torch.allclose(kernel[..., :7, :], large[..., :7, :])


def test_simmim_on_the_convnet_masks_the_in_projection():
    torch.manual_seed(0)
    backbone = settle(create_backbone("replk_micro_32"))
    simmim = SimMIM(backbone, MaskGenerator(32, 8, 1, 0.6)).eval()
    assert (simmim.family, simmim.patch_size, simmim.stride) == ("convnet", 1, 8)
    check_loss_ignores_visible_pixels(simmim, patch=1)
    x = torch.randn(2, 1, 32, 32)
    mask = simmim.mask_generator(2, torch.Generator().manual_seed(1))
    with torch.no_grad():
        z = simmim.forward_encoder(x, mask)
        assert simmim.forward_decoder(z).shape == x.shape
        # the encoder never sees masked pixels: changing them leaves its output as it was
        changed = torch.where(mask.unsqueeze(1).bool(), torch.randn_like(x), x)
        assert torch.allclose(simmim.forward_encoder(changed, mask), z, atol=1e-6)
        visible_changed = torch.where(mask.unsqueeze(1).bool(), x, x + 1.0)
        assert not torch.allclose(simmim.forward_encoder(visible_changed, mask), z, atol=1e-3)
    with pytest.raises(ValueError, match="in_proj"):
        SimMIM(create_backbone("replk_micro_32", in_proj=0), MaskGenerator(32, 8, 1, 0.6))


def test_delta_kernel_has_distance_and_entropy_zero():
    kernel = torch.zeros(3, 1, 7, 7)
    kernel[:, 0, 3, 3] = torch.tensor([1.0, -2.0, 0.5])
    for normalisation in ("abs", "square"):
        stats = kernel_statistics(kernel, stride=4, normalisation=normalisation)
        assert torch.allclose(stats["kernel_distance"], torch.zeros(3, dtype=torch.float64), atol=1e-12)
        assert torch.allclose(stats["kernel_entropy"], torch.zeros(3, dtype=torch.float64), atol=1e-12)
        assert torch.allclose(stats["kernel_kl"], torch.zeros(3, dtype=torch.float64), atol=1e-6)  # identical channels


def test_uniform_kernel_has_the_analytic_mean_distance():
    k, stride = 5, 2
    expected = np.mean([math.hypot(i - 2, j - 2) * stride for i in range(k) for j in range(k)])
    stats = kernel_statistics(torch.full((2, 1, k, k), -0.3), stride=stride)
    assert torch.allclose(stats["kernel_distance"], torch.full((2,), expected, dtype=torch.float64))
    assert torch.allclose(stats["kernel_entropy"], torch.full((2,), math.log(k * k), dtype=torch.float64))
    # a delta against a uniform channel: KL(delta || uniform) = log k^2 (up to the eps smoothing)
    kernel = torch.ones(2, 1, k, k)
    kernel[0] = 0
    kernel[0, 0, 2, 2] = 1
    kl = kernel_statistics(kernel, stride=stride)["kernel_kl"]
    assert kl[0].item() == pytest.approx(math.log(k * k), rel=1e-5) and kl[1] > kl[0]
    assert tap_distances(3, 1.0).shape == (1, 9)


def test_kernel_normalisations():
    w = torch.tensor([[[[1.0, -3.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]])
    assert torch.allclose(kernel_distributions(w, "abs")[0, 0, 0, :2], torch.tensor([0.25, 0.75], dtype=torch.float64))
    assert torch.allclose(kernel_distributions(w, "square")[0, 0, 0, :2], torch.tensor([0.1, 0.9], dtype=torch.float64))
    assert kernel_distributions(w, "softmax").sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="all-zero"):
        kernel_distributions(torch.zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match="normalisation"):
        kernel_distributions(w, "l1")
    # |w| normalisation ignores a per-channel scale (what folding a BN multiplies in); softmax does not
    assert torch.allclose(kernel_distributions(3 * w), kernel_distributions(w))
    assert not torch.allclose(kernel_distributions(3 * w, "softmax"), kernel_distributions(w, "softmax"))


def test_probe_model_gives_a_convnet_kernel_probes_and_cka():
    model = settle(create_backbone("replk_micro_32_rep"))
    ds = probe_model(model, torch.randn(8, 1, 32, 32), batch_size=4)
    assert set(ds.data_vars) == {"kernel_distance", "kernel_entropy", "kernel_kl", "cka"}
    assert list(ds["weights"].values) == ["trained", "random_init"]
    assert ds.sizes["layer"] == 10 and ds["cka"].shape == (10, 10)
    assert ds.attrs["merge_max_abs_error"] < 1e-5
    distance = ds["kernel_distance"]
    present = distance.notnull()
    assert bool(((distance >= 0) & (distance <= ds["max_kernel_distance"])).where(present, True).all())
    assert bool((ds["kernel_entropy"] <= ds["max_kernel_entropy"] + 1e-9).where(present, True).all())
    assert int(distance.isel(weights=0, normalisation=0).notnull().sum()) == int(ds["num_channels"].sum())
    # the probe reads the merged kernel, computed on a copy: the model keeps its branches
    assert all(not m.merged for _, m, _ in model.large_kernels())
    again = probe_kernels(model)
    assert np.allclose(again["kernel_distance"].values, distance.values, equal_nan=True)


def test_replknet_31b_has_the_official_keys():
    with torch.device("meta"):
        model = timm.create_model("replknet_31b")
    assert set(model.state_dict()) == official_replknet_keys((2, 2, 18, 2), small_kernel=5)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["stages.0.blocks.0.large_kernel.lkb_origin.conv.weight"] == (128, 1, 31, 31)
    assert shapes["stages.3.blocks.2.large_kernel.small_conv.conv.weight"] == (1024, 1, 5, 5)
    assert shapes["head.weight"] == (1000, 1024)


@pytest.mark.parametrize("merged", [False, True])
def test_official_replknet_checkpoint_loads(tmp_path, merged):
    """A state dict in the official names (small-kernel branch, or merged), under 'model' with DDP's
    'module.' prefix as training scripts save it, loads by path with the layout detected."""
    source = settle(create_backbone("replk_micro_32", small_kernel=3, num_classes=0))
    if merged:
        source.reparameterize()
    sd = source.state_dict()
    assert set(sd) == official_replknet_keys((6, 1, 3), small_kernel=3, stem_layers=3, merged=merged) - {
        "head.weight", "head.bias"} | {"in_proj.weight", "in_proj.bias"}
    path = tmp_path / "replknet.pth"
    torch.save({"model": {"module." + k: v for k, v in sd.items()}, "epoch": 3}, path)
    model, report = load_backbone("replk_micro_32" if merged else "replk_micro_32_rep", path)
    assert report.layout == "replknet" and report.model_kwargs.get("small_kernel_merged", False) == merged
    assert merged or report.model_kwargs["small_kernel"] == 3
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), source(x), atol=1e-6)
    with pytest.raises(CheckpointError, match="RepLKNet name"):
        load_backbone("vit_micro_32", path, layout="replknet")
    if not merged:
        with pytest.raises(CheckpointError, match="small_kernel=3"):
            load_backbone("replk_micro_32", path)


def test_moco_names_what_a_convnet_lacks():
    from mimstudy.objectives.moco import MoCoConfig, MoCoV3

    with pytest.raises(TypeError, match="freeze_patch_embed=False"):
        MoCoV3(create_backbone("replk_micro_32"))
    assert MoCoV3(create_backbone("replk_micro_32"), config=MoCoConfig(freeze_patch_embed=False)).projector is not None
