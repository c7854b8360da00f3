"""The ``edge-ser`` command line: predict, info, and the training-side tools when installed.

Exit codes: 0 everything worked; 1 at least one input failed (the others still ran);
2 the model or the command line is unusable.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import EdgeSERError
from .result import Prediction

if TYPE_CHECKING:
    from .recognizer import Recognizer

# Subcommands loaded on demand: train and export live outside the runtime and need the `train` extra.
_EXTERNAL = {
    "train": ("models.train", "train a model on a corpus (needs the train extra)"),
    "export": ("export.cli", "export a trained checkpoint to a self-describing ONNX file (needs the train extra)"),
    "score": ("edge_ser.score", "score many files into a Parquet/JSONL table, on all cores or on Ray (scale extra)"),
    "bench": ("edge_ser.bench", "speed, size, MACs, memory (and with --data, accuracy) of models, as one table"),
}


def _format(path: str, p: Prediction) -> str:
    if p.silent:
        return f"{path}\tsilence"
    extra = "".join(f"\t{name}={h.label} ({h.scores[h.label]:.2f})" for name, h in p.heads.items())
    extra += "".join(f"\t{name}={text!r}" for name, text in p.transcripts.items())
    return f"{path}\t{p.label} ({p.score:.2f}){extra}"


def _predict(args: argparse.Namespace) -> int:
    from .recognizer import Recognizer

    profile = None
    if args.profile:
        from .profile import SpeakerProfile

        new = SpeakerProfile(min_utterances=1, prior=3)  # adapts from the first file on (docs/adaptation.md)
        profile = SpeakerProfile.load(args.profile) if os.path.exists(args.profile) else new
    rec = Recognizer(args.model, threads=args.threads, profile=profile)
    try:
        return _predict_files(rec, args)
    finally:
        if profile is not None:
            profile.save(args.profile)


def _predict_files(rec: Recognizer, args: argparse.Namespace) -> int:
    failed = 0
    for path in args.files:
        try:
            if args.segments:
                segments = rec.predict_segments(path)
                if args.json:
                    print(json.dumps({"file": path, "segments": [s.to_dict() for s in segments]}, ensure_ascii=False))
                else:
                    for s in segments:
                        print(_format(f"{path}[{s.start:.2f}-{s.end:.2f}]", s))
            else:
                p = rec.predict(path)
                print(json.dumps({"file": path, **p.to_dict()}, ensure_ascii=False) if args.json else _format(path, p))
        except EdgeSERError as exc:
            failed += 1
            if args.json:
                print(json.dumps({"file": path, "error": str(exc), "type": type(exc).__name__}, ensure_ascii=False))
            message = str(exc) if str(exc).startswith(path) else f"{path}: {exc}"
            print(f"edge-ser: error: {message}", file=sys.stderr)
        sys.stdout.flush()
    return 1 if failed else 0


def _info(args: argparse.Namespace) -> int:
    from .model import OnnxModel

    model = OnnxModel(args.model)
    c = model.contract
    if args.json:
        print(json.dumps({"path": str(model.path), "size_bytes": model.size_bytes, "contract": c.to_dict()}, indent=2))
        return 0
    fe = c.frontend.to_dict()
    lines = [
        f"model       {c.name}  ({model.path})",
        f"size        {model.size_bytes:,} bytes",
        f"parameters  {c.parameters:,}",
        f"input       {c.input_kind} '{c.input_name}' at {c.sample_rate} Hz",
        "front-end   " + ", ".join(f"{k}={v}" for k, v in fe.items()),
        f"normalize   {c.normalization.mode}",
        f"window      {c.window_seconds:g} s, hop {c.hop_seconds:g} s, minimum {c.min_seconds:g} s",
    ]
    lines += [
        f"head        {h.name}: {', '.join(h.labels)}"
        if h.kind == "classification"
        else f"head        {h.name}: CTC transcript over {len(h.labels) - 1} tokens"
        for h in c.heads
    ]
    lines += [f"provenance  {k}: {json.dumps(v, ensure_ascii=False)}" for k, v in c.provenance.items()]
    print("\n".join(lines))
    return 0


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="edge-ser", description="On-device speech emotion recognition.")
    parser.add_argument("--version", action="version", version=f"edge-ser {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="emotion of audio files, one line (or JSON object) per file")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", default="default", help="shipped model name or .onnx path (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument(
        "--profile",
        metavar="PROFILE.json",
        help="speaker profile to adapt to (created if missing, with min_utterances=1, prior=3): files are read in "
        "order, each normalized with the profile as it stood before it, then added; saved at the end",
    )
    p.add_argument("--segments", action="store_true", help="a timeline of analysis windows instead of one result")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (default: %(default)s)")
    p.set_defaults(func=_predict)

    p = sub.add_parser("info", help="print a model's contract, parameter count and file size")
    p.add_argument("model", nargs="?", default="default", metavar="MODEL")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_info)

    for name, (module, help_text) in _EXTERNAL.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if argv and argv[0] in _EXTERNAL:
        try:
            tool = importlib.import_module(_EXTERNAL[argv[0]][0])
        except ImportError as exc:
            print(
                f"edge-ser: error: '{argv[0]}' needs the training extra: pip install 'edge-ser[train]' ({exc})",
                file=sys.stderr,
            )
            return 2
        sub = argparse.ArgumentParser(prog=f"edge-ser {argv[0]}")
        tool.configure_parser(sub)
        try:
            return int(tool.run(sub.parse_args(argv[1:])) or 0)
        except EdgeSERError as exc:
            print(f"edge-ser: error: {exc}", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except EdgeSERError as exc:
        print(f"edge-ser: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which closed early: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
