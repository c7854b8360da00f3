"""edge-ser: on-device speech emotion recognition from one self-describing ONNX file.

Example (tests/test_docs.py runs it)::

    import edge_ser

    rec = edge_ser.Recognizer()  # the default English model; or Recognizer("path/to/model.onnx")
    print(rec.predict("hello.wav").label)
"""

from .audio import load_audio
from .contract import ModelContract
from .errors import AudioError, ContractError, EdgeSERError, ModelError, ProfileError
from .frontend import FrontEnd, Normalization
from .model import shipped_models
from .profile import SpeakerProfile
from .recognizer import Recognizer, Stream
from .result import HeadResult, Prediction

__version__ = "0.1.0"

__all__ = [
    "AudioError",
    "ContractError",
    "EdgeSERError",
    "FrontEnd",
    "HeadResult",
    "ModelContract",
    "ModelError",
    "Normalization",
    "Prediction",
    "ProfileError",
    "Recognizer",
    "SpeakerProfile",
    "Stream",
    "load_audio",
    "shipped_models",
    "__version__",
]
