"""Training side of edge-ser: ``arch`` (networks and their registry), ``data`` (corpora, protocols, features,
augmentation, batches), ``training`` (the loop, losses, distillation, checkpoints, evaluation) and ``teachers``
(the Whisper teacher). See docs/training-code.md."""
