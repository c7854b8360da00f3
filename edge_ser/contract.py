"""The model contract: what an edge-ser ONNX file says about itself in its metadata.

One JSON object under the metadata key ``edge_ser.contract`` holds everything needed to run
the model with no other file: input kind and rate, front-end and normalization, the analysis
window used in training, every output head with its labels, and provenance. See
``docs/model-contract.md``.

A model file is untrusted input. :func:`validate` checks the raw JSON against :data:`SCHEMA` --
every field's type (an int is not a float, a string or a bool; labels are a list) and range --
before anything is built from it, and the bounds are chosen so that no contract can make the
runtime loop, hang or allocate more than the audio needs: at most ``MAX_OVERLAP`` windows cover
any sample, a hop is at least one front-end frame, and one window's spectral analysis is at most
``MAX_STFT_VALUES`` numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .ctc import BLANK
from .errors import ContractError
from .frontend import KINDS, WINDOWS, FrontEnd, Normalization

SCHEMA_VERSION = 1
METADATA_KEY = "edge_ser.contract"
INPUT_KINDS = ("waveform", "features")
HEAD_KINDS = ("classification", "ctc")
ADAPTATIONS = ("none", "speaker", "embedding")
ACTIVATIONS = ("logits", "probabilities")
NORMALIZATIONS = ("none", "global", "utterance")

# The language a model was trained on, for contracts whose provenance names only the corpus.
CORPUS_LANGUAGES = {"ravdess": "English", "casia": "Chinese (Mandarin)", "emodb": "German"}
MAX_CONTRACT_CHARS = 16 * 2**20  # the JSON text; a contract is a few kilobytes, statistics included
MAX_DEPTH = 32  # nesting of JSON objects and lists (provenance is free-form)
MAX_OVERLAP = 50  # window_seconds / hop_seconds: how many windows may cover one sample
MAX_WINDOW_SECONDS = 60.0
MAX_STFT_VALUES = 2**24  # frames x n_fft of one window's spectral analysis (128 MiB as float64)
MAX_HEADS = 16
MAX_LABELS = 65536
MAX_NAME = 256  # characters in a name, output or label
MAX_EMBEDDING = 65536  # dimensions of an adapted embedding


# -- schema ----------------------------------------------------------------------------------------
# Each field: (check, required). A check takes (value, where) and raises ContractError.
Check = Callable[[Any, str], None]


def _fail(where: str, expected: str, value: Any) -> None:
    if isinstance(value, list):
        shown = f"a list of {len(value)}"
    elif isinstance(value, dict):
        shown = "a JSON object"
    else:
        shown = repr(value)[:60]
    raise ContractError(f"{where} must be {expected}, got {shown}")


def integer(low: int, high: int) -> Check:
    def check(value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            _fail(where, f"an integer in {low}..{high}", value)

    return check


def number(low: float, high: float, *, low_open: bool = False) -> Check:
    def check(value: Any, where: str) -> None:
        ok = not isinstance(value, bool) and isinstance(value, (int, float))
        ok = ok and (-1e308 < value < 1e308) and math.isfinite(value)  # a huge int compares; float() would overflow
        if not ok or not (low < value if low_open else low <= value) or value > high:
            _fail(where, f"a number in {'(' if low_open else '['}{low:g}, {high:g}]", value)

    return check


def text(max_len: int = MAX_NAME, *, empty: bool = False) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, str) or len(value) > max_len or (not empty and not value):
            _fail(where, f"a {'' if empty else 'non-empty '}string of at most {max_len} characters", value)

    return check


def one_of(choices: tuple[str, ...]) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, str) or value not in choices:
            _fail(where, f"one of {choices}", value)

    return check


def boolean(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        _fail(where, "true or false", value)


def nullable(inner: Check) -> Check:
    def check(value: Any, where: str) -> None:
        if value is not None:
            inner(value, where)

    return check


def array(item: Check, low: int, high: int) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, list) or not low <= len(value) <= high:
            _fail(where, f"a list of {low}..{high} items", value)
        for i, v in enumerate(value):
            item(v, f"{where}[{i}]")

    return check


def obj(fields: dict[str, tuple[Check, bool]], *, closed: bool = True) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            _fail(where, "a JSON object", value)
        missing = sorted(k for k, (_, required) in fields.items() if required and k not in value)
        if missing:
            raise ContractError(f"{where} lacks {missing}")
        unknown = sorted(set(value) - set(fields))
        if closed and unknown:
            raise ContractError(f"{where} has unknown fields {unknown}")
        for key, (field_check, _) in fields.items():
            if key in value:
                field_check(value[key], f"{where}.{key}" if where != "contract" else key)

    return check


def free_json(value: Any, where: str, depth: int = 0) -> None:
    """Any JSON value nested at most MAX_DEPTH deep (provenance)."""
    if depth > MAX_DEPTH:
        raise ContractError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        for v in value.values():
            free_json(v, where, depth + 1)
    elif isinstance(value, list):
        for v in value:
            free_json(v, where, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ContractError(f"{where} holds a non-finite number")


_RATE = integer(8000, 96000)
_STAT = number(-1e6, 1e6)
FRONTEND = obj(
    {
        "kind": (one_of(KINDS), True),
        "sample_rate": (_RATE, True),
        "win_length": (number(0.0, 1.0, low_open=True), False),
        "hop_length": (number(0.001, 1.0), False),
        "n_fft": (integer(16, 8192), False),
        "window": (one_of(WINDOWS), False),
        "preemph": (number(0.0, 1.0), False),
        "n_mels": (integer(1, 256), False),
        "low_freq": (number(0.0, 48000.0), False),
        "high_freq": (nullable(number(0.0, 48000.0, low_open=True)), False),
        "n_mfcc": (integer(1, 256), False),
        "lifter": (number(0.0, 1000.0), False),
        "append_energy": (boolean, False),
    }
)
NORMALIZATION = obj(
    {
        "mode": (one_of(NORMALIZATIONS), False),
        "mean": (array(_STAT, 0, 100_000), False),
        "std": (array(number(1e-6, 1e6), 0, 100_000), False),
    }
)
HEAD = obj(
    {
        "name": (text(), True),
        "output": (text(), True),
        "kind": (one_of(HEAD_KINDS), False),
        "activation": (one_of(ACTIVATIONS), False),
        "labels": (array(text(), 2, MAX_LABELS), True),
        "separator": (text(8, empty=True), False),
    }
)
EMBEDDING = obj(
    {
        "kind": (one_of(("embedding",)), True),
        "space": (text(), True),
        "dim": (integer(1, MAX_EMBEDDING), True),
        "embedding_output": (text(), True),
        "shift_input": (text(), True),
        "scale_input": (text(), True),
        "output": (text(), True),
        "mean": (array(_STAT, 1, MAX_EMBEDDING), True),
        "std": (array(number(1e-6, 1e6), 1, MAX_EMBEDDING), True),
    }
)


def _adaptation(value: Any, where: str) -> None:
    """``none`` / ``speaker`` (front-end statistics), or the object that describes embedding adaptation."""
    if isinstance(value, dict):
        EMBEDDING(value, where)
    elif not isinstance(value, str) or value not in ("none", "speaker"):
        _fail(where, "'none', 'speaker' or an embedding adaptation object", value)


# The whole contract, as stored (see docs/model-contract.md).
SCHEMA = obj(
    {
        "schema_version": (integer(SCHEMA_VERSION, SCHEMA_VERSION), True),
        "name": (text(), True),
        "input": (
            obj({"kind": (one_of(INPUT_KINDS), True), "name": (text(), True), "frontend_in_graph": (boolean, False)}),
            True,
        ),
        "sample_rate": (_RATE, True),
        "frontend": (FRONTEND, True),
        "normalization": (NORMALIZATION, True),
        "window": (
            obj(
                {
                    "seconds": (number(0.0, MAX_WINDOW_SECONDS, low_open=True), True),
                    "hop_seconds": (number(0.0, MAX_WINDOW_SECONDS, low_open=True), True),
                    "min_seconds": (number(0.0, MAX_WINDOW_SECONDS, low_open=True), True),
                }
            ),
            True,
        ),
        "heads": (array(HEAD, 1, MAX_HEADS), True),
        "parameters": (integer(1, 10**12), True),
        "provenance": (lambda v, where: (obj({}, closed=False)(v, where), free_json(v, where)), False),
        "adaptation": (_adaptation, False),
    }
)


def validate(d: Any) -> None:
    """Check a contract as parsed from JSON against :data:`SCHEMA`; :class:`ContractError` names the field."""
    if isinstance(d, dict) and "schema_version" in d and d["schema_version"] != SCHEMA_VERSION:
        version = d["schema_version"]
        raise ContractError(
            f"contract schema version {version!r} is not supported (this edge-ser reads {SCHEMA_VERSION})"
        )
    SCHEMA(d, "contract")


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
class EmbeddingAdaptation:
    """Speaker adaptation inside the graph, on a pooled embedding (the base tier).

    The graph outputs ``embedding_output`` ``(batch, dim)`` — one row per window, what a
    :class:`~edge_ser.SpeakerProfile` accumulates — and ``output``, the emotion logits of a head trained on
    per-speaker normalized embeddings: ``(embedding - shift) / scale``, where ``shift_input`` and
    ``scale_input`` are optional graph inputs ``(dim,)`` whose defaults are the global statistics
    ``mean``/``std`` (also the profile's prior). ``space`` names the embedding function (encoder and cut):
    a profile is only used with models of the same space.
    """

    space: str
    dim: int
    embedding_output: str
    shift_input: str
    scale_input: str
    output: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != self.dim or len(self.std) != self.dim:
            raise ContractError(f"adaptation has {len(self.mean)}/{len(self.std)} statistics for dim {self.dim}")
        names = (self.embedding_output, self.shift_input, self.scale_input, self.output)
        if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
            raise ContractError("adaptation input and output names must be distinct non-empty strings")

    @property
    def normalization(self) -> Normalization:
        """The global statistics: the profile's fallback and prior."""
        return Normalization("global", self.mean, self.std)

    def profile_spec(self) -> dict[str, Any]:
        """What a speaker profile binds to: profiles of another embedding space are refused."""
        return {"kind": "embedding", "space": self.space, "dim": self.dim}

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "embedding",
            "space": self.space,
            "dim": self.dim,
            "embedding_output": self.embedding_output,
            "shift_input": self.shift_input,
            "scale_input": self.scale_input,
            "output": self.output,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbeddingAdaptation:
        keys = ("space", "dim", "embedding_output", "shift_input", "scale_input", "output")
        return cls(**{k: d[k] for k in keys}, mean=tuple(map(float, d["mean"])), std=tuple(map(float, d["std"])))


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
    ``normalization`` then holds the global statistics used until the profile is ready. ``embedding``:
    the profile adapts a pooled embedding inside the graph instead (:class:`EmbeddingAdaptation`);
    ``adaptation`` is then ``embedding``.
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
    embedding: EmbeddingAdaptation | None = None
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
        if (self.adaptation == "embedding") != (self.embedding is not None):
            raise ContractError("embedding adaptation needs its description (and only it has one)")
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
        if self.window_seconds > MAX_WINDOW_SECONDS:
            raise ContractError(f"window_seconds must be at most {MAX_WINDOW_SECONDS:g}")
        if self.window_seconds > MAX_OVERLAP * self.hop_seconds:
            raise ContractError(f"hop_seconds must be at least window_seconds / {MAX_OVERLAP} (windows overlapping)")
        if self.min_seconds * self.sample_rate < self.frontend.min_samples:
            raise ContractError("min_seconds is shorter than one front-end frame")
        fe = self.frontend
        if fe.kind != "waveform":
            if fe.frame_step > fe.frame_length:
                raise ContractError("frontend.hop_length must not exceed win_length (its frames would skip audio)")
            if self.hop_seconds * self.sample_rate < fe.frame_step:
                raise ContractError("hop_seconds is shorter than one front-end hop")
            window = int(round(self.window_seconds * self.sample_rate))
            frames = 1 + max(math.ceil((window - fe.frame_length) / fe.frame_step), 0)
            if frames * fe.n_fft > MAX_STFT_VALUES:
                raise ContractError(f"one window's analysis exceeds {MAX_STFT_VALUES} values (frames x n_fft)")
        if not self.heads:
            raise ContractError("a model needs at least one head")
        if self.heads[0].kind != "classification":
            raise ContractError("the primary (first) head must be a classification head")
        names = [h.name for h in self.heads]
        outputs = [h.output for h in self.heads]
        if len(set(names)) != len(names) or len(set(outputs)) != len(outputs):
            raise ContractError("head names and outputs must be unique")
        e = self.embedding
        if e is not None:
            if {e.embedding_output, e.output} & set(outputs) or self.input_name in (e.shift_input, e.scale_input):
                raise ContractError("adaptation inputs and outputs must differ from the model's input and heads")
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
    def language(self) -> str | None:
        """The language of the training speech: provenance ``language``, else known from its ``dataset``."""
        language = self.provenance.get("language")
        if isinstance(language, str) and language:
            return language
        dataset = self.provenance.get("dataset")
        return CORPUS_LANGUAGES.get(dataset.lower()) if isinstance(dataset, str) else None

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
            **({"adaptation": self.adaptation} if self.adaptation == "speaker" else {}),
            **({"adaptation": self.embedding.to_dict()} if self.embedding is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: Any) -> ModelContract:
        """Build from parsed JSON, validated against :data:`SCHEMA` first."""
        validate(d)
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
                name=d["name"],
                input_kind=inp["kind"],
                input_name=inp["name"],
                sample_rate=d["sample_rate"],
                frontend=FrontEnd.from_dict(d["frontend"]),
                normalization=Normalization.from_dict(d["normalization"]),
                window_seconds=float(win["seconds"]),
                hop_seconds=float(win["hop_seconds"]),
                min_seconds=float(win["min_seconds"]),
                heads=heads,
                parameters=d["parameters"],
                provenance=d.get("provenance", {}),
                frontend_in_graph=bool(inp.get("frontend_in_graph", False)),
                **_adaptation_fields(d.get("adaptation", "none")),
            )
        except ContractError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
            raise ContractError(f"malformed contract: {type(exc).__name__}: {str(exc)[:200]}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ModelContract:
        if not isinstance(text, str) or len(text) > MAX_CONTRACT_CHARS:
            raise ContractError(f"contract must be JSON text of at most {MAX_CONTRACT_CHARS} characters")
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            raise ContractError(f"contract is nested more than {MAX_DEPTH} levels deep") from None
        except (TypeError, ValueError) as exc:
            raise ContractError(f"contract is not valid JSON: {str(exc)[:200]}") from None
        return cls.from_dict(data)

    def to_metadata(self) -> dict[str, str]:
        """The ONNX ``metadata_props`` entries that carry this contract."""
        return {METADATA_KEY: self.to_json()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> ModelContract:
        if METADATA_KEY not in metadata:
            raise ContractError(f"not an edge-ser model: no {METADATA_KEY!r} entry in its metadata")
        return cls.from_json(metadata[METADATA_KEY])


def fold_score_key(provenance: dict[str, Any]) -> str:
    """Which fold-model score of ``provenance["cross_validation"]`` describes the file itself: ``fp32_ua`` when the
    export rule kept the checkpoint's own FP32 export, ``int8_ua`` when the INT8 fold models were scored (an INT8
    file, or the FP32 graph of INT8 weights), else ``ua`` (the PyTorch checkpoints)."""
    cv = provenance.get("cross_validation")
    cv = cv if isinstance(cv, dict) else {}
    export = provenance.get("export")
    export = export if isinstance(export, dict) else {}
    if export.get("variant") == "fp32" and export.get("source") == "fp32" and "fp32_ua_mean" in cv:
        return "fp32_ua"
    return "int8_ua" if "int8_ua_mean" in cv else "ua"


def _adaptation_fields(value: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        return {"adaptation": "embedding", "embedding": EmbeddingAdaptation.from_dict(value)}
    return {"adaptation": value}


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
