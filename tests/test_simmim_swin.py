"""SimMIM on a SwinV2 backbone: mask token at 2-px patch resolution, decoder at the 8-px last stage."""

import pytest
import torch

from mimstudy.objectives.masking import MaskGenerator
from mimstudy.models.backbones import create_backbone
from mimstudy.objectives import SimMIM

from .test_simmim import check_loss_ignores_visible_pixels, check_loss_is_mean_l1_over_one_masked_unit


def activate_blocks(backbone):
    """timm (like the official SwinV2) zero-initialises each block's residual post-norm weights, so a
    fresh SwinV2 block is the identity; give them weight 1 so that attention really mixes tokens."""
    with torch.no_grad():
        for stage in backbone.layers:
            for block in stage.blocks:
                block.norm1.weight.fill_(1.0)
                block.norm2.weight.fill_(1.0)
    return backbone


@pytest.fixture(scope="module")
def simmim():
    torch.manual_seed(0)
    return SimMIM(activate_blocks(create_backbone("swinv2_micro_32")), MaskGenerator(32, 8, 2, 0.6)).eval()


def test_shapes(simmim):
    assert (simmim.patch_size, simmim.stride) == (2, 8)
    assert simmim.mask_token.shape == (1, 1, 16)  # first-stage width
    x = torch.randn(3, 1, 32, 32)
    mask = simmim.mask_generator(3)
    assert mask.shape == (3, 16, 16)
    with torch.no_grad():
        z = simmim.forward_encoder(x, mask)
        assert z.shape == (3, 64, 4, 4)  # last stage: 64 channels, 32 px / 8
        assert simmim.forward_decoder(z).shape == x.shape


def test_four_stage_swin_decodes_at_stride_16():
    backbone = create_backbone("swinv2_micro_32", depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16))
    model = SimMIM(backbone, MaskGenerator(32, 8, 2, 0.6)).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        z = model.forward_encoder(x, model.mask_generator(1))
    assert model.stride == 16 and z.shape == (1, 128, 2, 2)
    assert model.forward_decoder(z).shape == x.shape


def test_loss_ignores_visible_pixels(simmim):
    check_loss_ignores_visible_pixels(simmim, patch=2)


def test_loss_is_mean_l1_over_masked_pixels(simmim):
    check_loss_is_mean_l1_over_one_masked_unit(simmim, patch=2)


def test_masked_pixels_are_invisible_to_the_encoder(simmim):
    """Masked tokens are replaced right after the (non-overlapping) patch embedding, before any window
    attention or patch merging mixes tokens, so the encoder output is bitwise unchanged."""
    x = torch.randn(2, 1, 32, 32)
    mask = simmim.mask_generator(2, torch.Generator().manual_seed(1))
    pixel_mask = mask.repeat_interleave(2, 1).repeat_interleave(2, 2).unsqueeze(1).bool()  # [B, 1, H, W]
    x_changed = torch.where(pixel_mask, torch.randn_like(x) * 5, x)  # every masked pixel changes
    with torch.no_grad():
        a = simmim.forward_encoder(x, mask)
        b = simmim.forward_encoder(x_changed, mask)
        c = simmim.forward_encoder(x, torch.zeros_like(mask))
        d = simmim.forward_encoder(x_changed, torch.zeros_like(mask))
    assert torch.equal(a, b)
    assert not torch.allclose(c, d, atol=1e-3)  # without the mask the change is seen


def test_one_visible_pixel_reaches_every_output_token(simmim):
    """The encoder does mix tokens (windows, shifted windows, merging), so the test above is not vacuous."""
    x = torch.randn(1, 1, 32, 32)
    mask = torch.ones(1, 16, 16, dtype=torch.long)
    mask[0, 0, 0] = 0  # only the top-left 2x2 patch is visible
    x_changed = x.clone()
    x_changed[0, 0, 1, 1] += 3.0
    with torch.no_grad():
        diff = (simmim.forward_encoder(x, mask) - simmim.forward_encoder(x_changed, mask)).abs()  # [1, D, 4, 4]
    assert (diff.amax(dim=1) > 1e-4).all()  # every last-stage token, also the far corner, changed


def test_forward_trains():
    """A fresh SwinV2 is blockwise the identity and each last-stage token covers one 8-px mask unit, so
    masked pixels first depend on mask tokens only: the post-norm weights get the first gradient.
    Once the blocks are active, gradients reach every part."""
    torch.manual_seed(0)
    model = SimMIM(create_backbone("swinv2_micro_32"), MaskGenerator(32, 8, 2, 0.6)).train()
    x = torch.randn(1, 1, 32, 32)
    loss, metrics = model(x)
    loss.backward()
    assert metrics["loss"] == loss.detach()
    assert model.mask_token.grad.abs().sum() > 0
    assert model.backbone.layers[0].blocks[0].norm1.weight.grad.abs().sum() > 0
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() == 0

    activate_blocks(model.backbone)
    model.zero_grad()
    model(x)[0].backward()
    for param in (model.mask_token, model.backbone.patch_embed.proj.weight,
                  model.backbone.layers[0].blocks[0].attn.qkv.weight, model.decoder[0].weight):
        assert param.grad.abs().sum() > 0


def test_mismatched_mask_generator_is_rejected():
    backbone = create_backbone("swinv2_micro_32")
    with pytest.raises(ValueError, match="2 px"):
        SimMIM(backbone, MaskGenerator(32, 8, 8, 0.6))  # 8-px cells but 2-px patches
    with pytest.raises(ValueError, match="64-px images"):
        SimMIM(backbone, MaskGenerator(64, 8, 2, 0.6))
