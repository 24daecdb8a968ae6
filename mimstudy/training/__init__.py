"""Stage 4, training: the engine (one epoch, evaluation), optimizers and the pre-training loop."""
