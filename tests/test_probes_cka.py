"""Linear CKA and minibatch CKA: invariances, estimator agreement, accumulation."""

import pytest
import torch

from mimstudy.probes import MinibatchCKA, cka


def naive_unbiased_hsic(x: torch.Tensor, y: torch.Tensor) -> float:
    """Song et al. 2012's unbiased HSIC written out term by term with explicit matrices."""
    x, y = x.reshape(x.shape[0], -1).double(), y.reshape(y.shape[0], -1).double()
    k, l = x @ x.T, y @ y.T
    n = k.shape[0]
    k.fill_diagonal_(0)
    l.fill_diagonal_(0)
    one = torch.ones(n, 1, dtype=torch.float64)
    value = torch.trace(k @ l) + (one.T @ k @ one) * (one.T @ l @ one) / ((n - 1) * (n - 2))
    value = value - 2 / (n - 2) * (one.T @ k @ l @ one)
    return value.item() / (n * (n - 3))


def naive_biased_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Kornblith et al. 2019 feature-space form: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)."""
    xc, yc = x.double() - x.double().mean(0), y.double() - y.double().mean(0)
    return (torch.linalg.norm(yc.T @ xc) ** 2 / (torch.linalg.norm(xc.T @ xc) * torch.linalg.norm(yc.T @ yc))).item()


@pytest.fixture
def x() -> torch.Tensor:
    return torch.randn(40, 6, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_of_a_representation_with_itself_is_one(x, unbiased):
    assert cka(x, x, unbiased=unbiased).item() == pytest.approx(1.0, abs=1e-12)


def test_biased_cka_matches_feature_space_formula(x):
    y = torch.tanh(x @ torch.randn(6, 3, generator=torch.Generator().manual_seed(1)))
    assert cka(x, y).item() == pytest.approx(naive_biased_cka(x, y), abs=1e-10)
    assert cka(x, y).dtype == torch.float64


@pytest.mark.parametrize("unbiased", [False, True])
def test_cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling(x, unbiased):
    x = x.double()
    y = torch.tanh(x[:, :3]) + 0.3 * torch.randn(40, 3, generator=torch.Generator().manual_seed(2)).double()
    rotation, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(3)).double())
    reference = cka(x, y, unbiased=unbiased).item()
    assert 0.2 < reference < 0.95
    assert cka(x @ rotation, y, unbiased=unbiased).item() == pytest.approx(reference, abs=1e-10)
    assert cka(7.5 * x, 0.01 * y, unbiased=unbiased).item() == pytest.approx(reference, abs=1e-10)


def test_cka_is_not_invariant_to_a_general_linear_map(x):
    stretch = torch.diag(torch.tensor([1.0, 10.0, 0.1, 1.0, 3.0, 0.3]))
    assert cka(x, x @ stretch).item() < 0.9


def test_cka_flattens_tokens_and_channels(x):
    tokens = x.reshape(40, 2, 3)
    assert cka(tokens, x).item() == pytest.approx(1.0, abs=1e-12)


def test_unbiased_cka_is_close_to_biased_for_many_examples():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1000, 8, generator=gen)
    y = x @ torch.randn(8, 5, generator=gen) + torch.randn(1000, 5, generator=gen)
    biased, unbiased = cka(x, y).item(), cka(x, y, unbiased=True).item()
    assert 0.3 < unbiased < 0.99 and abs(biased - unbiased) < 0.02


def test_unbiased_cka_removes_the_bias_of_small_samples_of_independent_data():
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(20, 50, generator=gen), torch.randn(20, 50, generator=gen)
    assert cka(x, y).item() > 0.5  # biased CKA of independent high-dimensional data is far from 0
    assert abs(cka(x, y, unbiased=True).item()) < 0.15


def layers_for(gen: torch.Generator, batch: int) -> list[torch.Tensor]:
    base = torch.randn(batch, 4, 3, generator=gen)  # tokens x channels
    mixed = torch.relu(base.reshape(batch, 12)) @ torch.randn(12, 5, generator=gen)
    return [base, mixed, torch.randn(batch, 7, generator=gen)]


def test_minibatch_cka_single_batch_equals_unbiased_cka():
    features = layers_for(torch.Generator().manual_seed(6), 16)
    tracker = MinibatchCKA()
    tracker.update(features)
    heatmap = tracker.compute()
    assert heatmap.shape == (3, 3) and heatmap.dtype == torch.float64
    for i in range(3):
        for j in range(3):
            expected = cka(features[i], features[j], unbiased=True).item()
            assert heatmap[i, j].item() == pytest.approx(expected, abs=1e-12)


def test_biased_minibatch_cka_single_batch_equals_biased_cka_and_counts_examples():
    features = layers_for(torch.Generator().manual_seed(6), 16)
    tracker = MinibatchCKA(unbiased=False)
    tracker.update(features)
    tracker.update([f[:3] for f in features])  # the biased estimator accepts 3 examples
    assert tracker.num_batches == 2 and tracker.num_examples == 19
    single = MinibatchCKA(unbiased=False)
    single.update(features)
    assert single.compute()[0, 1].item() == pytest.approx(cka(features[0], features[1]).item(), abs=1e-12)


def test_minibatch_cka_averages_per_batch_hsic_and_ignores_batch_order():
    gen = torch.Generator().manual_seed(7)
    batches = [layers_for(gen, batch) for batch in (8, 12, 10)]
    tracker, reversed_tracker = MinibatchCKA(), MinibatchCKA()
    for features in batches:
        tracker.update(features)
    for features in reversed(batches):
        reversed_tracker.update(features)
    hsic = torch.tensor([[[naive_unbiased_hsic(f[i], f[j]) for j in range(3)] for i in range(3)] for f in batches])
    mean = hsic.mean(dim=0)  # [3, 3]
    expected = mean / torch.sqrt(mean.diagonal()[:, None] * mean.diagonal()[None, :])
    assert torch.allclose(tracker.compute(), expected.double(), atol=1e-10)
    assert torch.allclose(reversed_tracker.compute(), tracker.compute(), atol=1e-12)
    heatmap = tracker.compute()
    assert torch.allclose(heatmap, heatmap.T)
    assert torch.allclose(heatmap.diagonal(), torch.ones(3, dtype=torch.float64))
    assert tracker.hsic_sum.shape == (3, 3)  # memory does not grow with the number of batches


def test_minibatch_cka_approaches_full_data_cka():
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(600, 6, generator=gen)
    y = torch.tanh(x @ torch.randn(6, 4, generator=gen)) + 0.5 * torch.randn(600, 4, generator=gen)
    tracker = MinibatchCKA()
    for start in range(0, 600, 100):
        tracker.update([x[start : start + 100], y[start : start + 100]])
    assert tracker.compute()[0, 1].item() == pytest.approx(cka(x, y, unbiased=True).item(), abs=0.03)


@pytest.mark.parametrize(
    "call",
    [
        lambda: cka(torch.randn(3, 2), torch.randn(3, 2), unbiased=True),  # unbiased HSIC needs n > 3
        lambda: cka(torch.randn(5, 2), torch.randn(6, 2)),
        lambda: cka(torch.randn(5), torch.randn(5)),
        lambda: MinibatchCKA().update([torch.randn(3, 4), torch.randn(3, 2)]),
        lambda: MinibatchCKA().update([torch.randn(8, 4), torch.randn(6, 2)]),
        lambda: MinibatchCKA().update([]),
        lambda: MinibatchCKA().compute(),
    ],
)
def test_bad_inputs_raise(call):
    with pytest.raises(ValueError):
        call()


def test_minibatch_cka_rejects_a_change_in_layer_count():
    tracker = MinibatchCKA()
    tracker.update([torch.randn(8, 4), torch.randn(8, 2)])
    with pytest.raises(ValueError, match="expected 2 layers"):
        tracker.update([torch.randn(8, 4)])


def test_small_minibatch_error_says_why():
    with pytest.raises(ValueError, match="more than 3 examples"):
        MinibatchCKA().update([torch.randn(3, 4)])
