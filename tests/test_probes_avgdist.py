"""SimMIM's AvgDist on hand-made masks and on sampled MaskGenerator masks."""

import math

import numpy as np
import pytest
import torch

from mimstudy.objectives.masking import MaskGenerator
from mimstudy.probes import avg_dist, expected_avg_dist


def test_single_masked_pixel_is_one_pixel_from_visible():
    mask = np.zeros((5, 5), dtype=int)
    mask[2, 2] = 1
    assert avg_dist(mask) == 1.0


def test_masked_three_by_three_block():
    mask = torch.zeros(7, 7)
    mask[2:5, 2:5] = 1
    assert avg_dist(mask) == pytest.approx((8 * 1 + 2) / 9)  # 8 border pixels at 1, the centre at 2


def test_distance_is_euclidean_to_the_nearest_visible_pixel():
    mask = np.ones((4, 4), dtype=bool)
    mask[0, 0] = False  # the only visible pixel
    distances = [math.hypot(r, c) for r in range(4) for c in range(4) if (r, c) != (0, 0)]
    assert avg_dist(mask) == pytest.approx(np.mean(distances))


def test_pixel_scale_equals_passing_the_pixel_level_mask():
    coarse = torch.zeros(4, 4, dtype=torch.long)
    coarse[1, 1] = 1  # one masked 4x4-pixel patch: 12 border pixels at 1, 4 inner pixels at 2
    assert avg_dist(coarse, pixel_scale=4) == pytest.approx((12 * 1 + 4 * 2) / 16)
    pixels = coarse.repeat_interleave(4, 0).repeat_interleave(4, 1)
    assert avg_dist(coarse, pixel_scale=4) == avg_dist(pixels)


def test_batch_is_the_mean_of_per_image_values_without_crossing_images():
    one = np.zeros((2, 5, 5))
    one[0, 2, 2] = 1
    one[1, 1:4, 1:4] = 1
    assert avg_dist(one) == pytest.approx((1.0 + 10 / 9) / 2)


def test_expected_avg_dist_of_generator_masks():
    generator = MaskGenerator(input_size=32, mask_patch_size=8, model_patch_size=4, mask_ratio=0.5)
    value = expected_avg_dist(generator, num_samples=16, seed=0)
    assert value == expected_avg_dist(generator, num_samples=16, seed=0)
    masks = generator(16, generator=torch.Generator().manual_seed(0))
    assert value == pytest.approx(avg_dist(masks, pixel_scale=4))
    assert 1.0 <= value <= 4.0  # an 8x8-pixel masked unit is at most 4 pixels deep from its border


def test_avg_dist_grows_with_mask_ratio_and_mask_patch_size():
    def expected(mask_patch_size: int, ratio: float) -> float:
        gen = MaskGenerator(input_size=64, mask_patch_size=mask_patch_size, model_patch_size=4, mask_ratio=ratio)
        return expected_avg_dist(gen, num_samples=8, seed=1)

    assert expected(8, 0.3) < expected(8, 0.8)
    assert expected(8, 0.5) < expected(32, 0.5)


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.zeros((4, 4)), "all visible"),
        (np.ones((4, 4)), "all masked"),
        (np.zeros(4), r"\[H, W\] or \[B, H, W\]"),
        (np.zeros((1, 2, 4, 4)), r"\[H, W\] or \[B, H, W\]"),
    ],
)
def test_undefined_or_misshaped_masks_raise(mask, message):
    with pytest.raises(ValueError, match=message):
        avg_dist(mask)


def test_bad_pixel_scale_and_sample_count_raise():
    mask = np.eye(4)
    with pytest.raises(ValueError, match="pixel_scale"):
        avg_dist(mask, pixel_scale=0)
    with pytest.raises(ValueError, match="num_samples"):
        expected_avg_dist(MaskGenerator(32, 8, 4, 0.5), num_samples=0)
