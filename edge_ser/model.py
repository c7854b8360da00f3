"""Loading an edge-ser ONNX file: resolve a name or path, open an ONNX Runtime session,
read and validate the contract against the graph, and run batches of model input."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .contract import ModelContract
from .errors import ContractError, ModelError
from .frontend import Normalization

if TYPE_CHECKING:
    from pathlib import Path

# The package's model files. Paths here are strings (os.path): pathlib would add urllib.parse and ipaddress
# to the predict process (0.6 MiB, several ms); ``ASSETS`` and :func:`resolve` still give ``Path`` objects.
_ASSETS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
# Shipped models by name (English: RAVDESS, 8 emotions; Chinese: CASIA, 6 emotions);
# "default" is what Recognizer() loads. `python -m export.ship NAME` rebuilds them.
SHIPPED: dict[str, str] = {
    "english": "english.onnx",  # FP32: the export rule's choice (card: variants)
    "chinese": "chinese.onnx",  # FP32: the export rule's choice (card: variants)
    "english-adaptive": "english-adaptive.int8.onnx",  # for use with a SpeakerProfile (docs/adaptation.md)
    "chinese-adaptive": "chinese-adaptive.int8.onnx",
    "english-base": "english-base.onnx",  # the base tier: a truncated Whisper encoder (python -m export.base_tier)
    "chinese-base": "chinese-base.onnx",
    "english-small": "english-small.onnx",  # the small tier: the same encoder cut after its first block
    "chinese-small": "chinese-small.onnx",
}
ALIASES: dict[str, str] = {
    "default": "english",
    "en": "english",
    "ravdess": "english",
    "zh": "chinese",
    "casia": "chinese",
}


MAX_THREADS = 256  # ONNX Runtime starts every thread up front: an absurd count would hang the load
MAX_MODEL_BYTES = 2**30  # an edge model is kilobytes to megabytes; refuse to load a gigabyte


def shipped_models() -> list[str]:
    """Names (and aliases) of the models inside the package that exist on disk."""
    present = sorted(n for n, f in SHIPPED.items() if os.path.isfile(os.path.join(_ASSETS, f)))
    return present + sorted(a for a, n in ALIASES.items() if n in present)


def __getattr__(name: str) -> Any:
    if name == "ASSETS":  # the assets folder as a Path, for the training side and tests
        from pathlib import Path

        return Path(_ASSETS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve(model: str | os.PathLike) -> Path:
    """The file for a shipped model name or a path; :class:`ModelError` if there is none."""
    from pathlib import Path

    return Path(resolve_file(model))


def resolve_file(model: str | os.PathLike) -> str:
    """:func:`resolve` as a string path (what the predict path uses, without pathlib)."""
    if not isinstance(model, (str, os.PathLike)):
        raise ModelError(f"model must be a shipped model name or a path, got {type(model).__name__}")
    name = os.fspath(model)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    name = ALIASES.get(name, name)
    if name in SHIPPED:
        path = os.path.join(_ASSETS, SHIPPED[name])
        if not os.path.isfile(path):
            raise ModelError(f"shipped model {name!r} is missing from the installation ({path})")
        return path
    if os.path.isfile(name):
        return name
    if os.path.exists(name):
        raise ModelError(f"{name}: is not a model file")
    available = ", ".join(shipped_models()) or "none yet"
    raise ModelError(
        f"model {name!r} not found: no such file, and no shipped model of that name (shipped: {available})"
    )


def _dims(shape: Sequence[Any]) -> list[int | None]:
    return [d if isinstance(d, int) else None for d in shape]


def session_options(threads: int = 1) -> Any:
    """The ONNX Runtime session options edge-ser runs a model with (export measures its variants with them too):
    ``threads`` intra-op threads, quiet logging, and exact integer kernels on x86 CPUs with AVX2 but no VNNI, where
    ONNX Runtime's fast UINT8 x INT8 kernel adds pairs of products in saturating 16-bit lanes (this option does
    not reach into ``Loop`` bodies: see ``export.quantize.unsigned_weights``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.x64quantprecision", "1")
    return options


class OnnxModel:
    """An ONNX Runtime session plus the contract it was validated against."""

    def __init__(
        self,
        model: str | os.PathLike,
        threads: int = 1,
        providers: Sequence[Any] | None = None,
    ) -> None:
        import onnxruntime as ort

        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 0 <= threads <= MAX_THREADS:
            raise ModelError(f"threads must be an int in 0..{MAX_THREADS} (0 = ONNX Runtime's choice), got {threads!r}")
        self.path = resolve_file(model)
        if os.path.getsize(self.path) > MAX_MODEL_BYTES:
            raise ModelError(
                f"{self.path}: {os.path.getsize(self.path)} bytes; an edge-ser model is at most {MAX_MODEL_BYTES}"
            )
        options = session_options(int(threads))
        try:
            self.session = ort.InferenceSession(
                self.path, sess_options=options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as exc:  # onnxruntime raises several untyped errors for bad files
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: not a loadable ONNX model ({reason})") from None
        try:
            metadata = self.session.get_modelmeta().custom_metadata_map
        except UnicodeDecodeError:
            raise ContractError(f"{self.path}: model metadata is not valid UTF-8") from None
        try:
            self.contract = ModelContract.from_metadata(metadata)
        except ContractError as exc:
            raise ContractError(f"{self.path}: {exc}") from None
        self._check_graph()
        self.outputs = [h.output for h in self.contract.heads]

    @property
    def size_bytes(self) -> int:
        return os.path.getsize(self.path)

    def _check_graph(self) -> None:
        """Reject a model whose inputs or outputs disagree with its contract."""
        c = self.contract
        inputs = self.session.get_inputs()
        where = f"{self.path}: graph disagrees with its contract:"
        if len(inputs) != 1 or inputs[0].name != c.input_name:
            raise ModelError(f"{where} expected one input {c.input_name!r}, graph has {[i.name for i in inputs]}")
        if inputs[0].type != "tensor(float)":
            raise ModelError(f"{where} input must be float32, graph has {inputs[0].type}")
        shape = _dims(inputs[0].shape)
        rank = 2 if c.input_kind == "waveform" else 3
        if len(shape) != rank:
            raise ModelError(f"{where} {c.input_kind} input must have rank {rank}, graph has shape {inputs[0].shape}")
        if rank == 3 and shape[2] is not None and shape[2] != c.frontend.n_features:
            raise ModelError(f"{where} input has {shape[2]} features, front-end gives {c.frontend.n_features}")
        outputs = {o.name: o for o in self.session.get_outputs()}
        if c.embedding is not None:
            self._check_embedding(outputs, where)
        for head in c.heads:
            if head.output not in outputs:
                raise ModelError(f"{where} head {head.name!r} output {head.output!r} not in graph {sorted(outputs)}")
            oshape = _dims(outputs[head.output].shape)
            rank = 3 if head.kind == "ctc" else 2
            if len(oshape) != rank or oshape[-1] not in (None, len(head.labels)):
                raise ModelError(
                    f"{where} {head.kind} head {head.name!r} has {len(head.labels)} labels, "
                    f"output shape is {outputs[head.output].shape}"
                )

    def _check_embedding(self, outputs: dict[str, Any], where: str) -> None:
        """The adaptation section's inputs are optional ``(dim,)`` float inputs (initializers the caller may
        override) and its outputs exist with the right widths."""
        e, c = self.contract.embedding, self.contract
        assert e is not None
        optional = {i.name: i for i in self.session.get_overridable_initializers()}
        for name in (e.shift_input, e.scale_input):
            i = optional.get(name)
            if i is None or i.type != "tensor(float)" or _dims(i.shape) != [e.dim]:
                shown = "missing" if i is None else f"{i.type} {i.shape}"
                raise ModelError(f"{where} adaptation input {name!r} must be an optional float ({e.dim},), is {shown}")
        for name, width in ((e.embedding_output, e.dim), (e.output, len(c.heads[0].labels))):
            if name not in outputs or len(_dims(outputs[name].shape)) != 2:
                raise ModelError(f"{where} adaptation output {name!r} must be (batch, {width}) in the graph")
            if _dims(outputs[name].shape)[1] not in (None, width):
                raise ModelError(
                    f"{where} adaptation output {name!r} has shape {outputs[name].shape}, not width {width}"
                )

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Per head, for a batch of model input (features or waveforms): class probabilities
        ``(batch, labels)``, or for a CTC head its frame scores ``(batch, frames, labels)``."""
        return self._collect(batch, self._session_run(self.outputs, {self.contract.input_name: batch}))

    def run_embedding(
        self, batch: np.ndarray, normalization: Normalization | None = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``run`` plus the pooled embedding ``(batch, dim)`` of a model with embedding adaptation. With
        ``normalization`` (the speaker's statistics, ``dim`` each) the primary head is the adapted one, fed
        those statistics; without, the model is run as :meth:`run` runs it."""
        e = self.contract.embedding
        if e is None:
            raise ModelError(f"{self.path}: the model has no embedding adaptation")
        feeds = {self.contract.input_name: batch}
        outputs = list(self.outputs)
        if normalization is not None:
            mean, std = (np.asarray(v, dtype=np.float32) for v in (normalization.mean, normalization.std))
            if mean.shape != (e.dim,) or std.shape != (e.dim,):
                raise ModelError(f"{self.path}: adaptation statistics must have {e.dim} values each")
            feeds.update({e.shift_input: mean, e.scale_input: std})
            outputs[0] = e.output
        values = self._session_run([*outputs, e.embedding_output], feeds)
        embedding = values.pop()
        if embedding.shape != (len(batch), e.dim) or not np.isfinite(embedding).all():
            raise ModelError(f"{self.path}: embedding has shape {embedding.shape} or non-finite values")
        return self._collect(batch, values), embedding.astype(np.float64)

    def _session_run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self.session.run(outputs, feeds)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: inference failed ({reason})") from None

    def _collect(self, batch: np.ndarray, values: list[np.ndarray]) -> dict[str, np.ndarray]:
        result = {}
        for head, value in zip(self.contract.heads, values):
            ctc = head.kind == "ctc"
            if value.ndim != (3 if ctc else 2) or value.shape[0] != len(batch) or value.shape[-1] != len(head.labels):
                expected = f"({len(batch)}, frames, {len(head.labels)})" if ctc else (len(batch), len(head.labels))
                raise ModelError(f"{self.path}: head {head.name!r} returned shape {value.shape}, expected {expected}")
            if not np.isfinite(value).all():
                raise ModelError(f"{self.path}: head {head.name!r} returned NaN or infinite values")
            if ctc:
                result[head.name] = value
            else:
                result[head.name] = softmax(value) if head.activation == "logits" else value.astype(np.float64)
        return result


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
