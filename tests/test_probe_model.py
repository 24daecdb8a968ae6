"""probe_model: one streaming pass of distance, entropy, head KL and CKA over ViT, BEiT and SwinV2."""

import gc
import math
import warnings

import numpy as np
import pytest
import timm
import torch

from mimstudy.models.backbones import create_backbone, grid_size_of, patch_size_of
from mimstudy.probes import (
    AttentionMaps,
    MinibatchCKA,
    ModelProbe,
    SwinAttentionMaps,
    attention_distance,
    attention_entropy,
    cka,
    head_kl,
    head_kl_per_head,
    patch_attention,
    patch_distances,
    probe_attention,
    probe_model,
    window_attention_distance,
    window_attention_entropy,
    window_head_kl,
)
from mimstudy.probes.distributions import example_distance, query_independent
from mimstudy.book.claims.verdicts import bootstrap_samples, image_mean_interval

N_IMAGES = 9


pytestmark = pytest.mark.usefixtures("one_thread")


def spread_weights(model: torch.nn.Module, std: float = 0.15, seed: int = 0) -> torch.nn.Module:
    """Redraw every matrix weight with a larger spread: peaked, head-specific attention and layers that differ.

    Norm gains go to 1: SwinV2 starts its post-norms at 0, which makes every block an identity.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 2:
                param.copy_(torch.randn(param.shape, generator=g) * std)
            elif "norm" in name and name.endswith("weight"):
                param.fill_(1.0)
    return model


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return spread_weights(create_backbone("vit_micro_32"))


@pytest.fixture(scope="module")
def beit():
    torch.manual_seed(0)
    model = timm.create_model(
        "beit_base_patch16_224", pretrained=False, img_size=32, patch_size=4, embed_dim=64, depth=2,
        num_heads=2, in_chans=1, use_shared_rel_pos_bias=True, use_abs_pos_emb=False, init_values=0.1,
    )  # fmt: skip
    return spread_weights(model)


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(0)
    model = timm.create_model(
        "swinv2_tiny_window8_256", pretrained=False, img_size=32, patch_size=2, window_size=4, embed_dim=32,
        depths=(2, 2), num_heads=(2, 4), in_chans=1, num_classes=10,
    )  # fmt: skip
    return spread_weights(model, std=0.3)


@pytest.fixture(scope="module")
def images():
    return torch.randn(N_IMAGES, 1, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def probed(vit, beit, swin, images):
    """Each model probed with all images in one batch (the reference for the other tests)."""
    return {name: probe_model(model, images, batch_size=N_IMAGES) for name, model in
            (("vit", vit), ("beit", beit), ("swin", swin))}  # fmt: skip


PER_IMAGE = ("attention_distance", "attention_entropy", "head_kl_per_image")


def test_vit_layout(probed):
    ds = probed["vit"]
    assert set(ds.data_vars) == {*PER_IMAGE, "mean_row_distance", "head_kl", "cka", "uniform_distance",
                                 "uniform_entropy", "max_distance"}
    for var in PER_IMAGE:
        assert ds[var].dims == ("layer", "head", "image") and ds[var].shape == (4, 4, N_IMAGES)
    assert ds["head_kl"].dims == ("layer", "head", "head_j") and ds["cka"].dims == ("layer", "layer_j")
    assert list(ds["layer"].values) == [1, 2, 3, 4] and list(ds["layer_j"].values) == [1, 2, 3, 4]
    assert list(ds["block"].values) == [f"blocks.{i}" for i in range(4)] and (ds["num_heads"] == 4).all()
    assert ds.attrs["cls_in_cka"] == 0 and ds.attrs["num_prefix_tokens"] == 1 and ds.attrs["cka_images"] == N_IMAGES
    assert ds.attrs["distance_units"] == "pixels" and ds["attention_distance"].attrs["units"] == "pixels"
    distance, entropy = ds["attention_distance"].values, ds["attention_entropy"].values
    assert (distance > 0).all() and (distance <= 4 * 7 * math.sqrt(2)).all()  # the 8x8 grid's diameter
    assert (entropy >= 0).all() and (entropy <= math.log(64) + 1e-5).all()
    assert entropy.std() > 0.1  # heads and layers differ: the test models are not trivially uniform


def test_swin_layers_run_over_all_blocks_with_stage_and_nan_padded_heads(probed):
    ds = probed["swin"]
    assert ds.sizes["layer"] == 4 and ds.sizes["head"] == 4
    assert list(ds["stage"].values) == [0, 0, 1, 1] and list(ds["stage_j"].values) == [0, 0, 1, 1]
    assert list(ds["num_heads"].values) == [2, 2, 4, 4]
    assert list(ds["block"].values) == ["layers.0.blocks.0", "layers.0.blocks.1", "layers.1.blocks.0", "layers.1.blocks.1"]
    for var in PER_IMAGE:
        values = ds[var].values  # [layer, head, image]
        assert np.isnan(values[:2, 2:]).all() and np.isfinite(values[:2, :2]).all() and np.isfinite(values[2:]).all()
    kl = ds["head_kl"].values
    assert np.isnan(kl[:2, 2:]).all() and np.isnan(kl[:2, :, 2:]).all() and np.isfinite(kl[2:]).all()
    assert ds["head_kl_per_image"].mean("head").notnull().all()  # xarray's mean skips the padding
    entropy = ds["attention_entropy"].values
    assert np.nanmin(entropy) >= 0 and np.nanmax(entropy) <= math.log(16) + 1e-5  # 4x4 windows
    # stage 0 tokens are 2 px, stage 1 tokens 4 px, inside 4x4 windows
    distance = ds["attention_distance"]
    assert (distance.sel(layer=[1, 2]).max() < 2 * 3 * math.sqrt(2)) and (distance.sel(layer=[3, 4]).min() > 0)
    assert ds.attrs["architecture"] == "swin" and ds.attrs["cls_in_cka"] == 0


@pytest.mark.parametrize("name", ["vit", "beit", "swin"])
def test_cka_diagonal_is_one_and_symmetric(probed, name):
    c = probed[name]["cka"].values
    assert np.allclose(np.diag(c), 1.0, atol=1e-12) and np.allclose(c, c.T, atol=1e-12)


@pytest.mark.parametrize("name", ["vit", "beit", "swin"])
def test_attention_probes_do_not_depend_on_batch_size(probed, vit, beit, swin, images, name):
    model = {"vit": vit, "beit": beit, "swin": swin}[name]
    small = probe_model(model, images, batch_size=4, probes=("distance", "entropy", "kl"))
    ref = probed[name]
    for var in (*PER_IMAGE, "head_kl"):
        np.testing.assert_allclose(small[var].values, ref[var].values, rtol=1e-5, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("name", ["vit", "beit"])
def test_vit_per_image_values_match_direct_probes_on_fx_maps(probed, vit, beit, images, name):
    model = {"vit": vit, "beit": beit}[name]
    ds = probed[name]
    maps = list(AttentionMaps(model)(images).values())  # each [N, H, 65, 65]; independent extraction route
    grid, patch = grid_size_of(model), patch_size_of(model)
    for layer, attn in enumerate(maps):
        for i in range(N_IMAGES):
            one = attn[i : i + 1]
            expect = {
                "attention_distance": attention_distance(one, grid, patch),
                "attention_entropy": attention_entropy(one),
                "head_kl_per_image": head_kl_per_head(head_kl(one)),
            }
            for var, value in expect.items():
                np.testing.assert_allclose(ds[var].values[layer, :, i], value.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ds["head_kl"].values[layer], head_kl(attn).numpy(), rtol=1e-6, atol=1e-9)


def test_swin_per_image_values_match_window_probes(probed, swin, images):
    ds = probed["swin"]
    for layer, entry in enumerate(SwinAttentionMaps(swin)(images).values()):
        windows, heads = entry.attn.shape[0] // N_IMAGES, entry.attn.shape[1]
        for i in range(N_IMAGES):
            attn, mask = entry.attn[i * windows : (i + 1) * windows], entry.pair_mask[i * windows : (i + 1) * windows]
            expect = {
                "attention_distance": window_attention_distance(attn, entry.window_size, entry.pixel_stride, mask),
                "attention_entropy": window_attention_entropy(attn, mask),
                "head_kl_per_image": head_kl_per_head(window_head_kl(attn, mask)),
            }
            for var, value in expect.items():
                np.testing.assert_allclose(ds[var].values[layer, :heads, i], value.numpy(), rtol=1e-5, atol=1e-6)
        kl = window_head_kl(entry.attn, entry.pair_mask).numpy()
        np.testing.assert_allclose(ds["head_kl"].values[layer, :heads, :heads], kl, rtol=1e-6, atol=1e-9)


def test_vit_cka_in_one_batch_is_the_unbiased_cka_of_patch_tokens(probed, vit, images):
    with torch.no_grad():
        feats = vit.forward_intermediates(images, intermediates_only=True, output_fmt="NLC")  # [N, 64, C] each
    expect = np.array([[cka(a, b, unbiased=True).item() for b in feats] for a in feats])
    np.testing.assert_allclose(probed["vit"]["cka"].values, expect, atol=1e-10)
    assert expect.min() < 0.9  # the layers' representations really differ


def test_vit_cka_with_prefix_tokens(vit, images):
    ds = probe_model(vit, images, batch_size=N_IMAGES, probes=("cka",), cka_prefix_tokens=True)
    with torch.no_grad():
        feats = vit.forward_intermediates(images, intermediates_only=True, output_fmt="NLC", return_prefix_tokens=True)
    full = [torch.cat([prefix, patches], dim=1) for patches, prefix in feats]  # [N, 65, C]
    expect = np.array([[cka(a, b, unbiased=True).item() for b in full] for a in full])
    np.testing.assert_allclose(ds["cka"].values, expect, atol=1e-10)
    assert ds.attrs["cls_in_cka"] == 1 and "CLS" in ds.attrs["cka_features"]


def test_minibatch_cka_matches_manual_accumulation_and_skips_small_remainders(vit, images):
    ds = probe_model(vit, images, batch_size=4, probes=("cka",))  # batches of 4, 4 and 1: the last is left out
    manual = MinibatchCKA()
    with torch.no_grad():
        for start in (0, 4):
            manual.update(vit.forward_intermediates(images[start : start + 4], intermediates_only=True, output_fmt="NLC"))
    np.testing.assert_allclose(ds["cka"].values, manual.compute().numpy(), atol=1e-10)
    assert ds.attrs["cka_images"] == 8 and ds.attrs["cka_batches"] == 2 and ds.sizes["image"] == N_IMAGES


def test_swin_cka_is_per_block_and_matches_stage_outputs(probed, swin, images):
    ds = probed["swin"]
    with torch.no_grad():
        stages = swin.forward_intermediates(images, intermediates_only=True)  # [N, C, H, W] per stage
    # the last block of each stage (layers 2 and 4) outputs the stage's feature map
    expect = cka(stages[0], stages[1], unbiased=True).item()
    assert ds["cka"].sel(layer=2, layer_j=4).item() == pytest.approx(expect, abs=1e-10)
    assert ds["cka"].sel(layer=1, layer_j=2).item() != pytest.approx(1.0, abs=1e-6)  # blocks, not stages


def live_tensor_bytes() -> int:
    """Bytes of all tensor storages reachable from Python (model weights included), each storage once."""
    gc.collect()
    storages = {}
    with warnings.catch_warnings():  # isinstance on deprecated torch module attributes warns
        warnings.simplefilter("ignore")
        tensors = [obj for obj in gc.get_objects() if isinstance(obj, torch.Tensor)]
    for tensor in tensors:
        if tensor.device.type == "cpu":
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


@pytest.mark.parametrize("name", ["vit", "swin"])
def test_memory_held_between_batches_does_not_grow_with_images(vit, swin, name):
    model = {"vit": vit, "swin": swin}[name]
    probe = ModelProbe(model)
    g = torch.Generator().manual_seed(2)
    held, shapes = [], []
    for step in range(4):
        probe.update(torch.randn(4, 1, 32, 32, generator=g))  # a fresh batch, dropped after the update
        shapes.append({k: tuple(v.shape) for k, v in probe.accumulators.items()})
        if step in (1, 3):
            held.append(live_tensor_bytes())
    assert held[0] == held[1], f"tensors held between batches grew from {held[0]} to {held[1]} bytes"
    assert shapes[0] == shapes[-1] == {"kl_sum": (4, 4, 4), "hsic_sum": (4, 4)}
    # what grows is the per-image scalars only: 4 variables x [layer, head] float32 per image
    per_image = sum(chunk.nbytes for chunks in probe.per_image.values() for chunk in chunks)
    assert per_image == 16 * 4 * 4 * 4 * 4  # 16 images


def test_probe_attention_is_the_distance_probe(probed, vit, images):
    ds = probe_attention(vit, images, batch_size=4)
    assert list(ds.data_vars) == ["attention_distance", "mean_row_distance", "uniform_distance", "uniform_entropy",
                                  "max_distance"]
    np.testing.assert_allclose(ds["attention_distance"].values, probed["vit"]["attention_distance"].values, atol=1e-5)


def test_model_is_left_as_found_and_batches_may_come_from_an_iterable(vit, images):
    attention = [m for m in vit.modules() if hasattr(m, "fused_attn")]
    for m in attention:
        m.fused_attn = True
    vit.train()
    ds = probe_model(vit, [(images[:5], None), (images[5:], None)], probes=("distance", "kl"))
    assert vit.training and all(m.fused_attn for m in attention)
    assert not any(m._forward_hooks for m in vit.modules())
    vit.eval()
    assert set(ds.data_vars) == {"attention_distance", "mean_row_distance", "head_kl_per_image", "head_kl",
                                 "uniform_distance", "uniform_entropy", "max_distance"} and ds.sizes["image"] == N_IMAGES


def test_bad_arguments_raise(vit, images):
    with pytest.raises(ValueError, match="subset"):
        probe_model(vit, images, probes=("distance", "curvature"))
    with pytest.raises(ValueError, match="at least 4 images"):
        probe_model(vit, images[:3], probes=("cka",))


def test_head_kl_per_image_averages_to_the_head_kl_row_means(probed):
    for ds in probed.values():
        heads = ds["head_kl"]
        row_mean = (heads.sum("head_j") - heads.where(heads["head"] == heads["head_j"]).sum("head_j")) / (ds["num_heads"] - 1)
        per_image = ds["head_kl_per_image"].mean("image")
        np.testing.assert_allclose(per_image.values, row_mean.where(per_image.notnull()).values, rtol=1e-5, equal_nan=True)


def test_per_image_probes_bootstrap_into_layer_intervals(probed):
    ds = probed["swin"]
    ci = image_mean_interval(ds["head_kl_per_image"].mean("head"), n_boot=200, seed=0)
    assert ci["mean"].dims == ("layer",) and list(ci["stage"].values) == [0, 0, 1, 1]
    assert ((ci["low"] <= ci["mean"]) & (ci["mean"] <= ci["high"])).all()
    samples = bootstrap_samples(ds["attention_entropy"], n_boot=50, seed=0)
    assert samples.dims == ("boot", "layer", "head") and samples.isel(layer=0, head=3).isnull().all()


def test_biased_cka_option(vit, images):
    ds = probe_model(vit, images, batch_size=N_IMAGES, probes=("cka",), cka_unbiased=False)
    with torch.no_grad():
        feats = vit.forward_intermediates(images, intermediates_only=True, output_fmt="NLC")
    assert ds["cka"].sel(layer=1, layer_j=4).item() == pytest.approx(cka(feats[0], feats[3]).item(), abs=1e-10)
    assert ds.attrs["cka_unbiased"] == 0


def test_uniform_reference_closed_forms_and_swin_seams(probed):
    vit, swin = probed["vit"], probed["swin"]
    np.testing.assert_allclose(vit["uniform_distance"], patch_distances((8, 8), 4).mean().item(), rtol=1e-6)
    np.testing.assert_allclose(vit["uniform_entropy"], math.log(64), rtol=1e-6)
    np.testing.assert_allclose(vit["max_distance"], 4 * 7 * math.sqrt(2), rtol=1e-6)
    regular, shifted = swin["uniform_distance"].values[[0, 2]], swin["uniform_distance"].values[[1, 3]]
    np.testing.assert_allclose(regular, [patch_distances((4, 4), 2).mean(), patch_distances((4, 4), 4).mean()], rtol=1e-6)
    assert (shifted < regular).all()  # masked seam pairs leave shifted windows fewer, nearer keys
    assert (swin["uniform_entropy"].values[[1, 3]] < math.log(16)).all()
    # every head's entropy stays below its block's uniform entropy, its distance below the largest allowed
    for ds in (vit, swin):
        real = ds["attention_entropy"].notnull()  # Swin: NaN-padded heads
        assert ((ds["attention_entropy"] <= ds["uniform_entropy"] + 1e-5) | ~real).all()
        assert ((ds["attention_distance"] <= ds["max_distance"] + 1e-4) | ~real).all()


def test_mean_row_baseline_matches_the_query_independent_maps(probed, vit, images):
    ds = probed["vit"]
    maps = AttentionMaps(vit)(images)
    for layer, attn in enumerate(maps.values()):
        p = patch_attention(attn, 1)
        expect = example_distance(query_independent(p), patch_distances((8, 8), 4))  # [B, H]
        np.testing.assert_allclose(ds["mean_row_distance"].values[layer], expect.T.numpy(), rtol=1e-5)
    assert (probed["swin"]["mean_row_distance"].notnull().sum() > 0) and ds["mean_row_distance"].attrs["units"] == "pixels"
