"""Stage 1, data: Fashion-MNIST (IDX files), ImageNet-style folders, augmentation and batch sampling."""
