"""The one exception hierarchy of edge-ser: catch ``EdgeSERError`` to catch them all."""


class EdgeSERError(Exception):
    """Base class of every error edge-ser raises on purpose."""


class AudioError(EdgeSERError, ValueError):
    """The audio cannot be used: missing, unreadable, empty, too short or invalid samples."""


class ModelError(EdgeSERError):
    """The model file cannot be used: missing, corrupt, or its graph disagrees with its contract."""


class ContractError(ModelError):
    """The model's metadata does not hold a valid edge-ser contract."""


class ProfileError(EdgeSERError):
    """A speaker profile that cannot be read, or that does not fit the model it is used with."""
