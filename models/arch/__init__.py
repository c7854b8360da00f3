"""Architectures: the backbones, the heads around them and the registry that builds a model from its config."""
