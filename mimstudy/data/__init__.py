"""Stage 1, data: Fashion-MNIST (IDX files), ImageNet-style folders, augmentation and batch sampling."""

from mimstudy.data.fashion_mnist import FashionMNISTSplits, fashion_mnist
from mimstudy.data.photo_composites import fashion_mnist_on_photos

# Datasets held in memory as standardised 32x32 tensors, by the name a config's ``dataset`` gives.
MEMORY_DATASETS = {"fashion_mnist": fashion_mnist, "fashion_mnist_photos": fashion_mnist_on_photos}


def memory_splits(dataset: str, train_size: int | None = None, val_size: int = 0, test_size: int | None = None,
                  seed: int = 0) -> FashionMNISTSplits:
    """The train / val / test tensor datasets of in-memory ``dataset`` (see :data:`MEMORY_DATASETS`)."""
    if dataset not in MEMORY_DATASETS:
        raise ValueError(f"dataset must be one of {sorted(MEMORY_DATASETS)}, got {dataset!r}")
    return MEMORY_DATASETS[dataset](train_size, val_size, test_size, seed=seed)
