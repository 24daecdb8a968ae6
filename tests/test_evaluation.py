import pytest
import torch

from mimstudy.probes.evaluation import extract_features, knn_accuracy, linear_probe_accuracy, raw_pixel_accuracies
from mimstudy.models.backbones import create_backbone


def clusters(n_per_class=30, dim=8, classes=3, spread=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 3
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return centres[labels] + spread * torch.randn(len(labels), dim, generator=g), labels


def test_separable_clusters_are_classified_perfectly():
    train, train_y = clusters(seed=0)
    test, test_y = clusters(seed=0, n_per_class=10)
    test = test + 0.01
    assert knn_accuracy(train, train_y, test, test_y, k=5, num_classes=3) == 1.0
    assert linear_probe_accuracy(train, train_y, test, test_y, num_classes=3) == 1.0


def test_random_labels_give_chance_level():
    train, _ = clusters(n_per_class=200, seed=1)
    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 3, (len(train),), generator=g)
    test, _ = clusters(n_per_class=200, seed=3)
    y_test = torch.randint(0, 3, (len(test),), generator=g)
    assert abs(knn_accuracy(train, y, test, y_test, k=10, num_classes=3) - 1 / 3) < 0.1


def test_knn_validates_k():
    x, y = clusters(n_per_class=2)
    with pytest.raises(ValueError, match="k must lie"):
        knn_accuracy(x, y, x, y, k=100)


def test_features_are_pre_logits_and_batch_independent():
    torch.manual_seed(0)
    model = create_backbone("vit_micro_32")
    images = torch.randn(5, 1, 32, 32)
    a, b = extract_features(model, images, batch_size=5), extract_features(model, images, batch_size=2)
    assert a.shape == (5, 64)
    assert torch.allclose(a, b, atol=1e-5)


def test_raw_pixel_accuracies_classify_the_flattened_images():
    train, train_labels = clusters(seed=0)
    test, test_labels = clusters(seed=0)
    images = lambda x: x.reshape(-1, 1, 2, 4)  # noqa: E731  the 8-d points as 2x4 one-channel "images"
    scores = raw_pixel_accuracies(images(train), train_labels, images(test), test_labels, k=5)
    assert scores == {"knn_accuracy": 1.0, "linear_accuracy": 1.0}
