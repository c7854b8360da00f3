"""The training loop and what surrounds it: configuration, losses, distillation, checkpoints, evaluation."""
