import math

import pytest
import torch

from mimstudy.objectives.masking import MaskGenerator


@pytest.mark.parametrize("input_size,mask_patch,model_patch,ratio", [(32, 8, 4, 0.6), (32, 4, 4, 0.5), (192, 32, 4, 0.6), (224, 32, 16, 0.75)])
def test_mask_count_shape_and_units(input_size, mask_patch, model_patch, ratio):
    gen = MaskGenerator(input_size, mask_patch, model_patch, ratio)
    mask = gen(batch_size=5, generator=torch.Generator().manual_seed(0))
    side = input_size // model_patch
    scale = mask_patch // model_patch
    assert mask.shape == (5, side, side)
    units = (input_size // mask_patch) ** 2
    expected_units = math.ceil(units * ratio)
    assert gen.mask_count == expected_units
    # every mask unit is a constant scale x scale block
    blocks = mask.view(5, side // scale, scale, side // scale, scale)
    assert torch.equal(blocks.amax(dim=(2, 4)), blocks.amin(dim=(2, 4)))
    assert (blocks[:, :, 0, :, 0].sum(dim=(1, 2)) == expected_units).all()
    assert (mask.sum(dim=(1, 2)) == expected_units * scale * scale).all()


def test_masks_are_seeded_and_differ_across_samples():
    gen = MaskGenerator(32, 8, 4, 0.6)
    a = gen(4, torch.Generator().manual_seed(1))
    b = gen(4, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not all(torch.equal(a[0], a[i]) for i in range(1, 4))


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_ratio_outside_open_unit_interval(ratio):
    with pytest.raises(ValueError, match=r"mask_ratio must lie in \(0, 1\)"):
        MaskGenerator(32, 8, 4, ratio)


def test_patch_sizes_must_divide():
    with pytest.raises(ValueError, match="must divide input_size"):
        MaskGenerator(32, 7, 1, 0.5)
    with pytest.raises(ValueError, match="must divide mask_patch_size"):
        MaskGenerator(32, 8, 3, 0.5)


def test_a_ratio_that_masks_everything_is_rejected():
    with pytest.raises(ValueError, match="nothing stays visible"):
        MaskGenerator(32, 16, 4, 0.9)  # 4 units, ceil(3.6) = 4 masked
