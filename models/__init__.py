"""Training-side code of edge-ser: corpora, evaluation protocols, metrics, networks and the training loop."""
