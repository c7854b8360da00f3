"""The model contract: what an edge-ser ONNX file says about itself in its metadata.

One JSON object under the metadata key ``edge_ser.contract`` holds everything needed to run
the model with no other file: input kind and rate, front-end and normalization, the analysis
window used in training, every output head with its labels, and provenance. See
``docs/model-contract.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .ctc import BLANK
from .errors import ContractError
from .frontend import FrontEnd, Normalization

SCHEMA_VERSION = 1
METADATA_KEY = "edge_ser.contract"
INPUT_KINDS = ("waveform", "features")
HEAD_KINDS = ("classification", "ctc")
ADAPTATIONS = ("none", "speaker")
ACTIVATIONS = ("logits", "probabilities")


@dataclass(frozen=True)
class Head:
    """One output of the model, named ``output`` in the graph.

    ``classification``: shape ``(batch, len(labels))``, one label per window. ``ctc``: shape
    ``(batch, frames, len(labels))`` with ``labels[0]`` the blank; the runtime decodes it into a
    transcript whose tokens are joined with ``separator`` ("" for characters, " " for syllables).
    """

    name: str
    output: str
    labels: tuple[str, ...]
    kind: str = "classification"
    activation: str = "logits"
    separator: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.output:
            raise ContractError("every head needs a name and an output")
        if self.kind not in HEAD_KINDS:
            raise ContractError(f"head {self.name!r}: unknown kind {self.kind!r}; expected one of {HEAD_KINDS}")
        if self.activation not in ACTIVATIONS:
            raise ContractError(f"head {self.name!r}: activation must be one of {ACTIVATIONS}")
        if len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ContractError(f"head {self.name!r} needs at least 2 distinct labels")
        if not all(isinstance(label, str) and label for label in self.labels):
            raise ContractError(f"head {self.name!r}: labels must be non-empty strings")
        if self.kind == "ctc" and self.labels[0] != BLANK:
            raise ContractError(f"CTC head {self.name!r}: the first label must be the blank {BLANK!r}")
        if not isinstance(self.separator, str):
            raise ContractError(f"head {self.name!r}: separator must be a string")

    def to_dict(self) -> dict[str, Any]:
        d = {
            "name": self.name,
            "output": self.output,
            "kind": self.kind,
            "activation": self.activation,
            "labels": list(self.labels),
        }
        if self.kind == "ctc":
            d["separator"] = self.separator
        return d


@dataclass(frozen=True)
class ModelContract:
    """Everything the runtime needs to turn audio into this model's input and read its outputs.

    ``heads[0]`` is the primary head (emotion); the others are auxiliary (gender, speaker, ...).
    ``window_seconds``/``hop_seconds`` are the analysis window the model was trained on and
    the hop between windows for longer audio; ``min_seconds`` is the shortest usable input.
    ``frontend_in_graph``: a waveform-in model whose graph computes ``frontend`` and
    ``normalization`` itself; the runtime then feeds it raw samples. ``adaptation``:
    ``speaker`` when the model was trained on each speaker's own feature statistics and expects
    input normalized with the current user's (a :class:`edge_ser.SpeakerProfile`);
    ``normalization`` then holds the global statistics used until the profile is ready.
    """

    name: str
    input_kind: str
    input_name: str
    sample_rate: int
    frontend: FrontEnd
    normalization: Normalization
    window_seconds: float
    hop_seconds: float
    min_seconds: float
    heads: tuple[Head, ...]
    parameters: int
    provenance: dict[str, Any] = field(default_factory=dict)
    frontend_in_graph: bool = False
    adaptation: str = "none"
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise ContractError(
                f"contract schema version {self.schema_version} is not supported (this edge-ser reads {SCHEMA_VERSION})"
            )
        if self.adaptation not in ADAPTATIONS:
            raise ContractError(f"adaptation must be one of {ADAPTATIONS}, got {self.adaptation!r}")
        if self.adaptation == "speaker" and (self.frontend_in_graph or self.normalization.mode != "global"):
            raise ContractError("speaker adaptation needs features outside the graph and global fallback statistics")
        if self.input_kind not in INPUT_KINDS:
            raise ContractError(f"input_kind must be one of {INPUT_KINDS}, got {self.input_kind!r}")
        if self.frontend_in_graph:
            if self.input_kind != "waveform" or self.frontend.kind == "waveform":
                raise ContractError("frontend_in_graph needs waveform input and a feature front-end")
        elif (self.input_kind == "waveform") != (self.frontend.kind == "waveform"):
            raise ContractError(f"input kind {self.input_kind!r} does not fit front-end {self.frontend.kind!r}")
        if self.frontend.sample_rate != self.sample_rate:
            raise ContractError("front-end sample rate differs from the model's sample rate")
        for name in ("window_seconds", "hop_seconds", "min_seconds"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ContractError(f"{name} must be a positive number of seconds")
        if not self.min_seconds <= self.window_seconds or self.hop_seconds > self.window_seconds:
            raise ContractError("need min_seconds <= window_seconds and hop_seconds <= window_seconds")
        if self.min_seconds * self.sample_rate < self.frontend.min_samples:
            raise ContractError("min_seconds is shorter than one front-end frame")
        if not self.heads:
            raise ContractError("a model needs at least one head")
        if self.heads[0].kind != "classification":
            raise ContractError("the primary (first) head must be a classification head")
        names = [h.name for h in self.heads]
        outputs = [h.output for h in self.heads]
        if len(set(names)) != len(names) or len(set(outputs)) != len(outputs):
            raise ContractError("head names and outputs must be unique")
        norm = self.normalization
        dim = self.frontend.n_features or 1
        if norm.mode == "global" and len(norm.mean) != dim:
            raise ContractError(f"normalization has {len(norm.mean)} statistics for {dim} features")
        if not isinstance(self.parameters, int) or self.parameters <= 0:
            raise ContractError("parameters must be a positive integer")
        if not isinstance(self.provenance, dict):
            raise ContractError("provenance must be an object")

    def model_input(self, samples: np.ndarray, normalization: Normalization | None = None) -> np.ndarray:
        """The graph's input for one window of mono float samples at ``sample_rate`` (no batch axis);
        ``normalization`` replaces the contract's (speaker adaptation)."""
        if self.frontend_in_graph:
            return samples.astype(np.float32, copy=False)
        return self.normalize(self.frontend(samples), normalization)

    def normalize(self, features: np.ndarray, normalization: Normalization | None = None) -> np.ndarray:
        """Front-end ``features`` as graph input: normalized with the contract's statistics or ``normalization``."""
        norm = self.normalization if normalization is None else normalization
        return norm(features).astype(np.float32, copy=False)

    @property
    def primary(self) -> Head:
        return self.heads[0]

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels of the primary (emotion) head."""
        return self.heads[0].labels

    # -- serialization -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "input": {"kind": self.input_kind, "name": self.input_name, "frontend_in_graph": self.frontend_in_graph},
            "sample_rate": self.sample_rate,
            "frontend": self.frontend.to_dict(),
            "normalization": self.normalization.to_dict(),
            "window": {
                "seconds": self.window_seconds,
                "hop_seconds": self.hop_seconds,
                "min_seconds": self.min_seconds,
            },
            "heads": [h.to_dict() for h in self.heads],
            "parameters": self.parameters,
            "provenance": self.provenance,
            **({"adaptation": self.adaptation} if self.adaptation != "none" else {}),
        }

    @classmethod
    def from_dict(cls, d: Any) -> ModelContract:
        if not isinstance(d, dict):
            raise ContractError("contract must be a JSON object")
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ContractError(
                f"contract schema version {version!r} is not supported (this edge-ser reads {SCHEMA_VERSION})"
            )
        known = {
            "schema_version",
            "name",
            "input",
            "sample_rate",
            "frontend",
            "normalization",
            "window",
            "heads",
            "parameters",
            "provenance",
            "adaptation",
        }
        missing = known - set(d) - {"provenance", "adaptation"}
        if missing:
            raise ContractError(f"contract lacks {sorted(missing)}")
        if set(d) - known:
            raise ContractError(f"contract has unknown fields {sorted(set(d) - known)}")
        try:
            inp, win = d["input"], d["window"]
            heads = tuple(
                Head(
                    name=h["name"],
                    output=h["output"],
                    labels=tuple(h["labels"]),
                    kind=h.get("kind", "classification"),
                    activation=h.get("activation", "logits"),
                    separator=h.get("separator", ""),
                )
                for h in d["heads"]
            )
            return cls(
                name=str(d["name"]),
                input_kind=inp["kind"],
                input_name=inp["name"],
                sample_rate=int(d["sample_rate"]),
                frontend=FrontEnd.from_dict(d["frontend"]),
                normalization=Normalization.from_dict(d["normalization"]),
                window_seconds=float(win["seconds"]),
                hop_seconds=float(win["hop_seconds"]),
                min_seconds=float(win["min_seconds"]),
                heads=heads,
                parameters=d["parameters"],
                provenance=d.get("provenance", {}),
                frontend_in_graph=bool(inp.get("frontend_in_graph", False)),
                adaptation=d.get("adaptation", "none"),
            )
        except ContractError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ContractError(f"malformed contract: {type(exc).__name__}: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ModelContract:
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ContractError(f"contract is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def to_metadata(self) -> dict[str, str]:
        """The ONNX ``metadata_props`` entries that carry this contract."""
        return {METADATA_KEY: self.to_json()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> ModelContract:
        if METADATA_KEY not in metadata:
            raise ContractError(f"not an edge-ser model: no {METADATA_KEY!r} entry in its metadata")
        return cls.from_json(metadata[METADATA_KEY])
