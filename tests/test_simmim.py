import pytest
import torch

from mimstudy.objectives.masking import MaskGenerator
from mimstudy.models.backbones import create_backbone
from mimstudy.objectives import SimMIM


@pytest.fixture
def simmim():
    torch.manual_seed(0)
    return SimMIM(create_backbone("vit_micro_32"), MaskGenerator(32, 8, 4, 0.6)).eval()


def test_shapes(simmim):
    x = torch.randn(3, 1, 32, 32)
    mask = simmim.mask_generator(3)
    z = simmim.forward_encoder(x, mask)
    assert z.shape == (3, 64, 8, 8)
    assert simmim.forward_decoder(z).shape == x.shape


def check_loss_ignores_visible_pixels(simmim, patch: int):
    x = torch.randn(2, 1, 32, 32)
    mask = simmim.mask_generator(2, torch.Generator().manual_seed(0))
    rec = torch.randn_like(x)
    pixel_mask = mask.repeat_interleave(patch, 1).repeat_interleave(patch, 2).unsqueeze(1).bool()
    changed_visible = torch.where(pixel_mask, rec, rec + 100.0)
    changed_masked = torch.where(pixel_mask, rec + 1.0, rec)
    base = simmim.forward_loss(x, rec, mask)
    assert torch.allclose(simmim.forward_loss(x, changed_visible, mask), base)
    assert not torch.allclose(simmim.forward_loss(x, changed_masked, mask), base)


def check_loss_is_mean_l1_over_one_masked_unit(simmim, patch: int):
    """One 8-px mask unit masked: the loss is the mean of the reconstruction over its 64 pixels."""
    side = 32 // patch
    mask = torch.zeros(1, side, side, dtype=torch.long)
    mask[0, : 8 // patch, : 8 // patch] = 1
    x, rec = torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32)
    rec[0, 0, :8, :8] = torch.arange(64, dtype=torch.float32).view(8, 8)
    assert simmim.forward_loss(x, rec, mask).item() == pytest.approx(torch.arange(64.0).mean().item())


def test_loss_ignores_visible_pixels(simmim):
    check_loss_ignores_visible_pixels(simmim, patch=4)


def test_loss_is_mean_l1_over_masked_pixels(simmim):
    check_loss_is_mean_l1_over_one_masked_unit(simmim, patch=4)


def test_mask_token_replaces_masked_patch_embeddings(simmim):
    x = torch.randn(1, 1, 32, 32)
    mask = torch.zeros(1, 8, 8, dtype=torch.long)
    mask[0, 0, 0] = 1
    x_changed = x.clone()
    x_changed[..., :4, :4] += 5.0  # only the masked patch's pixels change
    with torch.no_grad():
        a = simmim.forward_encoder(x, mask)
        b = simmim.forward_encoder(x_changed, mask)
        c = simmim.forward_encoder(x_changed, torch.zeros_like(mask))
        d = simmim.forward_encoder(x, torch.zeros_like(mask))
    assert torch.allclose(a, b, atol=1e-6)  # the masked patch's content is invisible to the encoder
    assert not torch.allclose(c, d, atol=1e-3)  # without the mask it is seen


def test_forward_trains(simmim):
    simmim.train()
    loss, metrics = simmim(torch.randn(4, 1, 32, 32))
    loss.backward()
    assert simmim.mask_token.grad is not None and simmim.mask_token.grad.abs().sum() > 0
    assert metrics["loss"] == loss.detach()


def test_patch_size_mismatch_is_rejected():
    with pytest.raises(ValueError, match="patches"):
        SimMIM(create_backbone("vit_micro_32"), MaskGenerator(32, 8, 8, 0.6))
