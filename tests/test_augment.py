import numpy as np
import pytest
import torch
import torch.nn.functional as F
from timm.loss import SoftTargetCrossEntropy
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from mimstudy.data import augment as A
from mimstudy.data.augment import MoCoViews, SupervisedAugment, ViewRecipe
from mimstudy.data.fashion_mnist import PIXEL_MEAN, PIXEL_STD
from mimstudy.models.backbones import create_backbone
from mimstudy.objectives import Supervised

IDENTITY = ViewRecipe(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.0, jitter_prob=0.0, blur_prob=0.0,
                      solarize_prob=0.0)


pytestmark = pytest.mark.usefixtures("one_thread")


def images(batch=8, seed=0):
    return torch.randn(batch, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def seeded(fn, seed):
    torch.manual_seed(seed)
    return fn()


# --- batched ops against torchvision, image by image -------------------------------------------


def test_crop_boxes_fit_the_image_and_the_scale():
    torch.manual_seed(0)
    boxes = A.draw_crop_boxes(500, 32, 32, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3))
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    area = (h * w).float() / 1024
    assert area.min() >= 0.15 and area.max() <= 1.0  # 0.2 up to rounding of h and w
    assert len(set(map(tuple, boxes.tolist()))) > 100  # a different box for (almost) each image


def test_crop_boxes_fall_back_to_the_centre_when_no_try_fits():
    boxes = A.draw_crop_boxes(4, 32, 32, scale=(2.0, 2.0), ratio=(1.0, 1.0))  # never fits
    assert boxes.tolist() == [[0, 0, 32, 32]] * 4


def test_crop_box_distribution_matches_torchvision():
    torch.manual_seed(0)
    ours = A.draw_crop_boxes(3000, 32, 32, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)).float()
    crop = v2.RandomResizedCrop(32, scale=(0.2, 1.0))
    theirs = torch.tensor([list(crop.make_params([torch.zeros(1, 32, 32)]).values())[:4] for _ in range(3000)]).float()
    # (top, left, height, width): means agree within a few standard errors
    assert torch.allclose(ours.mean(0), theirs.mean(0), atol=0.5)


def test_resized_crop_equals_torchvision():
    x = images(16)
    torch.manual_seed(1)
    boxes = A.draw_crop_boxes(16, 32, 32, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3))
    ours = A.resized_crop(x, boxes, (32, 32))
    theirs = torch.stack([TF.resized_crop(x[b], *boxes[b].tolist(), size=[32, 32], antialias=True) for b in range(16)])
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_photometric_ops_equal_torchvision():
    x = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    factor = torch.linspace(0.5, 1.5, 8)
    sigma = torch.linspace(0.1, 2.0, 8)
    mask = torch.tensor([True, False] * 4)
    checks = {
        "brightness": (A.adjust_brightness(x, factor), [TF.adjust_brightness(x[b], float(factor[b])) for b in range(8)]),
        "contrast": (A.adjust_contrast(x, factor), [TF.adjust_contrast(x[b], float(factor[b])) for b in range(8)]),
        "blur": (A.gaussian_blur(x, sigma, 3), [TF.gaussian_blur(x[b], [3, 3], [float(sigma[b])] * 2) for b in range(8)]),
        "solarize": (A.solarize(x, mask, 0.5), [TF.solarize(x[b], 0.5) if mask[b] else x[b] for b in range(8)]),
        "flip": (A.hflip(x, mask), [TF.horizontal_flip(x[b]) if mask[b] else x[b] for b in range(8)]),
    }
    for name, (ours, theirs) in checks.items():
        assert torch.allclose(ours, torch.stack(theirs), atol=1e-6), name


# --- MoCo views -----------------------------------------------------------------------------


def test_views_shapes_and_two_views_differ():
    x = images()
    v1, v2_ = seeded(lambda: MoCoViews()(x), 0)
    assert v1.shape == v2_.shape == x.shape
    assert not torch.allclose(v1, v2_)
    assert torch.isfinite(v1).all() and torch.isfinite(v2_).all()


def test_views_are_deterministic_under_a_seed_and_differ_across_seeds():
    x = images()
    a, b, c = (seeded(lambda: MoCoViews()(x), s) for s in (0, 0, 1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.allclose(a[0], c[0]) and not torch.allclose(a[1], c[1])


def test_each_image_gets_its_own_augmentation():
    x = images(1).expand(8, -1, -1, -1)  # one image, eight times
    view, _ = seeded(lambda: MoCoViews()(x), 0)
    assert len({tuple(v.flatten().tolist()) for v in view}) == 8


def test_identity_recipe_returns_the_images():
    x = images()
    v1, v2_ = seeded(lambda: MoCoViews(IDENTITY, IDENTITY)(x), 0)
    assert torch.allclose(v1, x, atol=1e-5) and torch.allclose(v2_, x, atol=1e-5)


def test_photometric_ops_act_on_unit_intensities():
    """Solarization inverts [0, 1] intensities >= 0.5, not standardised values."""
    unit = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    x = (unit - PIXEL_MEAN) / PIXEL_STD
    solarizing = ViewRecipe(**{**IDENTITY.__dict__, "solarize_prob": 1.0})
    out = seeded(lambda: A.augment_view(x, solarizing), 0)
    expected = (torch.where(unit >= 0.5, 1 - unit, unit) - PIXEL_MEAN) / PIXEL_STD
    assert torch.allclose(out, expected, atol=1e-5)


def test_views_are_asymmetric_as_in_byol():
    views = MoCoViews()
    assert (views.view1.blur_prob, views.view1.solarize_prob) == (1.0, 0.0)
    assert (views.view2.blur_prob, views.view2.solarize_prob) == (0.1, 0.2)


# --- supervised augmentation ----------------------------------------------------------------


def labels(batch=8):
    return torch.arange(batch) % 10


def test_supervised_augment_mixes_with_soft_targets_summing_to_one():
    aug = SupervisedAugment(mixup_alpha=0.8, cutmix_alpha=1.0, mixup_prob=1.0, label_smoothing=0.1)
    x, y = images(), labels()
    out, targets = seeded(lambda: aug(x, y), 0)
    assert out.shape == x.shape and targets.shape == (8, 10)
    assert torch.allclose(targets.sum(1), torch.ones(8))
    assert (targets.max(1).values < 0.9 + 0.01 + 1e-6).all()  # smoothed
    assert (targets > 0.011).sum(1).max() >= 2  # two classes mixed (mixup prob 1)


def test_supervised_augment_is_deterministic_and_keeps_numpy_state():
    aug = SupervisedAugment()
    x, y = images(), labels()
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    a, b, c = (seeded(lambda: aug(x, y), s) for s in (0, 0, 1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.allclose(a[0], c[0])
    assert np.array_equal(np.random.get_state()[1], state)


def test_supervised_augment_without_mixup_gives_smoothed_one_hots_and_label_smoothing_ce():
    aug = SupervisedAugment(mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.1)
    x, y = images(), labels()
    _, targets = seeded(lambda: aug(x, y), 0)
    assert torch.allclose(targets[torch.arange(8), y], torch.full((8,), 0.91))
    logits = torch.randn(8, 10)
    assert torch.allclose(SoftTargetCrossEntropy()(logits, targets), F.cross_entropy(logits, y, label_smoothing=0.1))


def test_supervised_augment_rejects_odd_batches_when_mixing():
    with pytest.raises(ValueError, match="even"):
        SupervisedAugment()(images(7), labels(7))


def test_supervised_objective_augments_only_in_training():
    torch.manual_seed(0)
    backbone = create_backbone("vit_micro_32")
    plain = Supervised(backbone, label_smoothing=0.1)
    augmented = Supervised(backbone, label_smoothing=0.1, augment=SupervisedAugment(label_smoothing=0.1))
    x, y = images(), labels()
    plain.eval(), augmented.eval()
    assert torch.equal(plain(x, y)[0], augmented(x, y)[0])
    plain.train(), augmented.train()
    torch.manual_seed(0)
    loss, metrics = augmented(x, y)
    torch.manual_seed(0)
    assert not torch.allclose(loss, plain(x, y)[0])
    assert set(metrics) == {"loss", "accuracy"} and 0.0 <= metrics["accuracy"] <= 1.0
    loss.backward()
    assert backbone.head.weight.grad is not None


def test_supervised_objective_checks_the_augment_matches():
    backbone = create_backbone("vit_micro_32")
    with pytest.raises(ValueError, match="smooths"):
        Supervised(backbone, label_smoothing=0.1, augment=SupervisedAugment(label_smoothing=0.0))
    with pytest.raises(ValueError, match="classes"):
        Supervised(backbone, augment=SupervisedAugment(num_classes=5))


def test_augmentations_ignore_bf16_autocast():
    x, y = images(), labels()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        views = seeded(lambda: MoCoViews()(x), 0)
        mixed = seeded(lambda: SupervisedAugment()(x, y), 0)
    assert views[0].dtype == torch.float32
    assert torch.equal(views[0], seeded(lambda: MoCoViews()(x), 0)[0])
    assert torch.equal(mixed[0], seeded(lambda: SupervisedAugment()(x, y), 0)[0])


def test_rgb_colour_ops_match_torchvision_image_by_image():
    from torchvision.transforms.v2 import functional as TF

    from mimstudy.data.augment import adjust_contrast_rgb, adjust_hue, adjust_saturation, grayscale

    x = torch.rand(4, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    x[0] = 0.5  # a gray image: hue undefined
    hue, factor = torch.tensor([-0.1, 0.05, 0.3, -0.45]), torch.tensor([0.6, 1.0, 1.2, 1.4])
    for ours, theirs, f in ((adjust_hue, TF.adjust_hue, hue), (adjust_saturation, TF.adjust_saturation, factor),
                            (adjust_contrast_rgb, TF.adjust_contrast, factor)):
        expected = torch.stack([theirs(x[i], float(f[i])) for i in range(4)])
        torch.testing.assert_close(ours(x, f), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(grayscale(x), TF.rgb_to_grayscale(x))
