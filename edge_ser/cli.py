"""The ``edge-ser`` command line: predict, info, and the training-side tools when installed.

Exit codes: 0 everything worked; 1 at least one input failed (the others still ran);
2 the model, the command line or the output is unusable; 130 interrupted (Ctrl-C).
Every failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .errors import AudioError, EdgeSERError, ProfileError
from .result import Prediction

if TYPE_CHECKING:
    from .contract import ModelContract
    from .recognizer import Recognizer

# Subcommands loaded on demand: train and export live outside the runtime and need the `train` extra.
_EXTERNAL = {
    "train": ("models.train", "train a model on a corpus (needs the train extra)"),
    "export": ("export.cli", "export a trained checkpoint to a self-describing ONNX file (needs the train extra)"),
    "score": ("edge_ser.score", "score many files into a Parquet/JSONL table, on all cores or on Ray (scale extra)"),
    "bench": ("edge_ser.bench", "speed, size, MACs, memory (and with --data, accuracy) of models, as one table"),
}
EXIT_OK, EXIT_INPUT, EXIT_UNUSABLE, EXIT_INTERRUPTED = 0, 1, 2, 130
LONG_SECONDS = 60.0  # a file at least this long shows progress even alone


class OutputError(Exception):
    """Standard output cannot be written (closed, a broken pipe, a full disk)."""


# -- output ------------------------------------------------------------------------------------------
def _emit(line: str) -> None:
    """One line on stdout, flushed; any failure to write becomes :class:`OutputError`."""
    if sys.stdout is None:
        raise OutputError("standard output is closed")
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        raise OutputError("output closed early (broken pipe)") from None
    except (OSError, ValueError) as exc:  # ValueError: I/O on a closed file
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OutputError(f"cannot write output ({reason})") from None


def _warn(message: str) -> None:
    """One line on stderr; if stderr itself is gone there is nobody left to tell."""
    try:
        if sys.stderr is not None:
            sys.stderr.write(f"edge-ser: {message}\n")
            sys.stderr.flush()
    except (OSError, ValueError):
        pass


_INTERRUPTED = threading.Event()


def _on_interrupt(signum: int, frame: Any) -> None:
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def _catch_interrupts() -> None:
    """Ctrl-C always ends the run. soundfile decodes file objects through cffi callbacks, and an exception raised
    inside one is printed as 'unraisable' and swallowed (the file then fails to decode, or even decodes): the
    interrupt is recorded so the loop over files stops at the next file, and its unraisable report is dropped."""
    _INTERRUPTED.clear()
    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, _on_interrupt)
    default = sys.unraisablehook
    if getattr(default, "edge_ser", False):
        return

    def hook(unraisable: Any) -> None:
        if not issubclass(unraisable.exc_type, KeyboardInterrupt):
            default(unraisable)

    hook.edge_ser = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _check_interrupted() -> None:
    if _INTERRUPTED.is_set():
        raise KeyboardInterrupt


def _safe_streams() -> None:
    """Characters the terminal's encoding lacks (``PYTHONIOENCODING=ascii``, file names that are not UTF-8)
    are written as backslash escapes instead of raising; in JSON they stay valid escapes."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="backslashreplace")
            except (OSError, ValueError):
                pass


def _json(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False)


class Progress:
    """A one-line progress report on stderr (``[3/120] name.wav, 7.2 min of audio, 14 s``), redrawn by a
    background thread; cleared before each result line so the two never mix on a terminal."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled and sys.stderr is not None
        self._lock = threading.Lock()
        self._label = ""
        self._started = time.monotonic()
        self._shown = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, index: int, name: str, seconds: float | None, long: bool) -> None:
        if not self.enabled:
            return
        audio = f", {seconds / 60:.1f} min of audio" if seconds else ""
        with self._lock:
            self._label = f"[{index}/{self.total}] {os.path.basename(name)}{audio}"
            self._started = time.monotonic()
            if self.total > 1 or long:
                self._draw(self._label)
        if self._thread is None and (self.total > 1 or long):
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                self._draw(f"{self._label}, {time.monotonic() - self._started:.0f} s")

    def _draw(self, text: str) -> None:
        try:
            sys.stderr.write("\r\x1b[K" + text[:200])
            sys.stderr.flush()
            self._shown = bool(text)
        except (OSError, ValueError):
            self.enabled = False

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Clear the line while something else is printed."""
        with self._lock:
            if self._shown:
                self._draw("")
            yield

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self._shown:
                self._draw("")


# -- predict -----------------------------------------------------------------------------------------
def _format(path: str, p: Prediction) -> str:
    if p.silent:
        return f"{path}\tsilence"
    extra = "".join(f"\t{name}={h.label} ({h.scores[h.label]:.2f})" for name, h in p.heads.items())
    extra += "".join(f"\t{name}={text!r}" for name, text in p.transcripts.items())
    return f"{path}\t{p.label} ({p.score:.2f}){extra}"


def _describe_model(c: ModelContract) -> str:
    language = f"{c.language}; " if c.language else ""
    dataset = c.provenance.get("dataset")
    trained = f"trained on {dataset}; " if isinstance(dataset, str) else ""
    return f"model {c.name} ({language}{trained}{len(c.labels)} emotions: {', '.join(c.labels)})"


def _audio_seconds(path: str) -> float | None:
    """Duration from the file's header (nothing decoded), for the progress line; None if unknown."""
    from .audio import AudioFile

    try:
        with AudioFile(path) as f:
            return f.frames / f.rate if f.frames else None
    except EdgeSERError:
        return None


def _predict(args: argparse.Namespace) -> int:
    from .recognizer import Recognizer

    profile = None
    if args.profile:
        from .profile import SpeakerProfile

        folder = os.path.dirname(os.path.abspath(args.profile))
        if not os.path.isdir(folder):
            raise ProfileError(f"{args.profile}: cannot save the speaker profile there: no directory {folder}")
        new = SpeakerProfile(min_utterances=1, prior=3)  # adapts from the first file on (docs/adaptation.md)
        profile = SpeakerProfile.load(args.profile) if os.path.exists(args.profile) else new
    rec = Recognizer(args.model, threads=args.threads, profile=profile)
    if not args.json:
        _warn(_describe_model(rec.contract))
    progress = Progress(
        len(args.files), sys.stderr is not None and sys.stderr.isatty() if args.progress is None else args.progress
    )
    try:
        return _predict_files(rec, args, progress)
    finally:
        progress.close()
        if profile is not None:
            profile.save(args.profile)


def _predict_files(rec: Recognizer, args: argparse.Namespace, progress: Progress) -> int:
    c = rec.contract
    model = {"model": c.name, "language": c.language}
    failed = 0
    for index, path in enumerate(args.files, 1):
        seconds = _audio_seconds(path) if progress.enabled else None
        progress.start(index, path, seconds, long=(seconds or 0) >= LONG_SECONDS)
        try:
            if args.segments:
                segments = rec.predict_segments(path)
                lines = (
                    [_json({"file": path, **model, "segments": [s.to_dict() for s in segments]})]
                    if args.json
                    else [_format(f"{path}[{s.start:.2f}-{s.end:.2f}]", s) for s in segments]
                )
            else:
                p = rec.predict(path)
                lines = [_json({"file": path, **model, **p.to_dict()}) if args.json else _format(path, p)]
        except AudioError as exc:  # this input is bad, the next may be fine; a ModelError ends the run (exit 2)
            _check_interrupted()  # or Ctrl-C broke its decoding
            failed += 1
            message = str(exc) if str(exc).startswith(path) else f"{path}: {exc}"
            lines = [_json({"file": path, **model, "error": str(exc), "type": type(exc).__name__})] if args.json else []
            with progress.quiet():
                _warn(f"error: {message}")
        _check_interrupted()
        with progress.quiet():
            for line in lines:
                _emit(line)
    return EXIT_INPUT if failed else EXIT_OK


# -- info --------------------------------------------------------------------------------------------
def _percent(value: Any) -> str:
    return f"{100 * value:.1f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def _evaluation_lines(provenance: dict[str, Any]) -> list[str]:
    """The model card's speaker-independent cross-validation, as a small table."""
    cv = provenance.get("cross_validation")
    metrics = provenance.get("metrics")
    lines = []
    if isinstance(cv, dict):
        spread = f" ± {_percent(cv.get('ua_std'))}" if "ua_std" in cv else ""
        from .contract import fold_score_key

        shipped = fold_score_key(provenance)
        kinds = [(k, name) for k, name in (("fp32_ua", "FP32"), ("int8_ua", "INT8")) if f"{k}_mean" in cv]
        onnx = "".join(f", {name} {_percent(cv[k + '_mean'])}{' (this file)' * (k == shipped)}" for k, name in kinds)
        lines.append(
            f"evaluation  {cv.get('protocol', '?')}, {cv.get('folds', '?')} speaker-independent folds: "
            f"UA {_percent(cv.get('ua_mean'))}{spread} %{onnx}, WA {_percent(cv.get('wa_mean'))} %"
        )
        folds = cv.get("per_fold")
        if isinstance(folds, dict) and folds:
            width = max(len(str(name)) for name in folds)
            lines.append(f"  {'fold':<{width}}  UA     FP32   INT8   FP32/INT8 agree")
            for name, fold in folds.items():
                f = fold if isinstance(fold, dict) else {}
                cells = [_percent(f.get(k)) for k in ("ua", "fp32_ua", "int8_ua", "fp32_int8_top1_agreement")]
                lines.append((f"  {name:<{width}}  " + "  ".join(f"{cell:<5}" for cell in cells)).rstrip())
    elif isinstance(metrics, dict) and metrics:
        shown = ", ".join(f"{k} {_percent(v)}" for k, v in metrics.items() if isinstance(v, (int, float)))
        lines.append(f"evaluation  {shown or 'see --json'}")
    else:
        lines.append("evaluation  none recorded in the file")
    return lines


def _info(args: argparse.Namespace) -> int:
    from .model import OnnxModel

    model = OnnxModel(args.model)
    c = model.contract
    if args.json:
        _emit(
            json.dumps(
                {
                    "path": str(model.path),
                    "size_bytes": model.size_bytes,
                    "language": c.language,
                    "contract": c.to_dict(),
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return EXIT_OK
    fe = c.frontend.to_dict()
    p = c.provenance
    lines = [
        f"model       {c.name}  ({model.path})",
        f"language    {c.language or 'not recorded'}" + (f" (trained on {p['dataset']})" if "dataset" in p else ""),
        f"size        {model.size_bytes:,} bytes, {c.parameters:,} parameters",
        f"input       {c.input_kind} '{c.input_name}' at {c.sample_rate} Hz",
        "front-end   " + ", ".join(f"{k}={v}" for k, v in fe.items()),
        f"normalize   {c.normalization.mode}"
        + (", adapts to its speaker (SpeakerProfile)" if c.adaptation != "none" else ""),
        f"window      {c.window_seconds:g} s, hop {c.hop_seconds:g} s, minimum {c.min_seconds:g} s",
    ]
    lines += [
        f"head        {h.name}: {', '.join(h.labels)}"
        if h.kind == "classification"
        else f"head        {h.name}: CTC transcript over {len(h.labels) - 1} tokens"
        for h in c.heads
    ]
    lines += _evaluation_lines(p)
    int8 = p.get("int8")
    if isinstance(int8, dict):
        shown = [
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
            for k, v in int8.items()
            if not isinstance(v, (dict, list))
        ]
        lines.append("int8        " + ", ".join(shown))
    for key in ("command", "created", "commit", "licence", "protocol"):
        if isinstance(p.get(key), (str, int, float)):
            lines.append(f"{key:<11} {p[key]}")
    rest = sorted(
        k
        for k in p
        if k
        not in {"dataset", "cross_validation", "metrics", "int8", "command", "created", "commit", "licence", "protocol"}
    )
    if rest:
        lines.append(f"more        {', '.join(rest)} (see --json)")
    _emit("\n".join(lines))
    return EXIT_OK


# -- parser and entry point --------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="edge-ser", description="On-device speech emotion recognition.")
    parser.add_argument("--version", action="version", version=f"edge-ser {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="emotion of audio files, one line (or JSON object) per file")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", default="default", help="shipped model name or .onnx path (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="one JSON object per line (with the model's name and language)")
    p.add_argument(
        "--profile",
        metavar="PROFILE.json",
        help="speaker profile to adapt to (created if missing, with min_utterances=1, prior=3): files are read in "
        "order, each normalized with the profile as it stood before it, then added; saved at the end",
    )
    p.add_argument("--segments", action="store_true", help="a timeline of analysis windows instead of one result")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default: %(default)s)")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress line on stderr for many or long files (default: on when stderr is a terminal)",
    )
    p.set_defaults(func=_predict)

    p = sub.add_parser("info", help="a model's language, labels, evaluation, size and contract")
    p.add_argument("model", nargs="?", default="default", metavar="MODEL")
    p.add_argument("--json", action="store_true", help="the whole contract as JSON, for machines")
    p.set_defaults(func=_info)

    for name, (module, help_text) in _EXTERNAL.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(module=module)
    return parser


def _external(argv: list[str]) -> int:
    try:
        tool = importlib.import_module(_EXTERNAL[argv[0]][0])
    except ImportError as exc:
        _warn(f"error: '{argv[0]}' needs the training extra: pip install 'edge-ser[train]' ({exc})")
        return EXIT_UNUSABLE
    sub = argparse.ArgumentParser(prog=f"edge-ser {argv[0]}")
    tool.configure_parser(sub)
    return int(tool.run(sub.parse_args(argv[1:])) or 0)


def _run(argv: list[str]) -> int:
    if argv and argv[0] in _EXTERNAL:
        return _external(argv)
    args = _parser().parse_args(argv)
    return args.func(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    _safe_streams()
    _catch_interrupts()
    try:
        return _run(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except EdgeSERError as exc:  # the model, the speaker profile or an argument cannot be used
        _warn(f"error: {exc}")
        return EXIT_UNUSABLE
    except OutputError as exc:
        _warn(f"error: {exc}")
        _silence_stdout()
        return EXIT_UNUSABLE
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            _silence_stdout()
            return EXIT_UNUSABLE
        _warn(f"error: {exc.strerror or exc}")
        return EXIT_UNUSABLE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again at exit."""
    try:
        if sys.stdout is not None:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
