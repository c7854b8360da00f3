"""The one exception hierarchy of edge-ser: catch ``EdgeSERError`` to catch them all.

Every message is one line and names what is wrong (the file, the field), so a command line can print it as
it is. Inputs -- audio, model files, speaker profiles -- are untrusted: a bad one raises one of these,
never another exception, a hang or an allocation it does not justify (``tests/fuzz/fuzz.py``)."""


class EdgeSERError(Exception):
    """Base class of every error edge-ser raises on purpose."""


class AudioError(EdgeSERError, ValueError):
    """The audio cannot be used: missing, unreadable, truncated, empty, too short, invalid samples or rate."""


class ModelError(EdgeSERError):
    """The model cannot be used: not a name or path, missing, corrupt, too large, bad ``threads``, or its graph
    disagrees with its contract or fails at inference."""


class ContractError(ModelError):
    """The model's metadata does not hold a valid edge-ser contract (see ``edge_ser.contract.SCHEMA``)."""


class ProfileError(EdgeSERError):
    """A speaker profile that cannot be read, or that does not fit the model it is used with."""
