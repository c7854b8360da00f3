"""Training data: corpora, evaluation protocols, cached features, augmentation, transcripts and batching."""
