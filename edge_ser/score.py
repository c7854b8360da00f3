"""``edge-ser score``: score many audio files into one table, on this machine's cores or on Ray.

Inputs are audio files, folders (searched recursively for audio), glob patterns, or manifests
(CSV, JSONL or Parquet with a ``path`` column; relative paths are taken from the manifest's folder).
Each file becomes one row -- path, duration, label, scores, auxiliary heads, transcripts and, with
``--segments``, the window timeline -- with the model's name and SHA-256, or the error that stopped
that file (the run goes on). Rows go to a Parquet (pyarrow) or JSONL file. A run is resumable: files
already in the output are skipped, and an output written by another model is refused.

Every file is scored on its own (``Recognizer.predict``), so a row depends only on the file and the
model: one process, a process pool or Ray workers give the same rows. The local pool runs one
Recognizer (one ONNX Runtime thread) per process; ``--ray`` runs the same scorer as Ray Data actors
(``map_batches``, one Recognizer per actor), on a local Ray instance or on a cluster.

pyarrow and ray (the ``scale`` extra) are imported only by the functions that need them.
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import json
import logging
import multiprocessing
import os
import sys
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import EdgeSERError

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"})
MANIFEST_FORMATS = {".csv": "csv", ".jsonl": "json", ".ndjson": "json", ".parquet": "parquet"}
OUTPUT_FORMATS = {".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
CHUNK = 8  # files per pool task: large enough to amortize inter-process traffic, small enough to balance
WRITE_BATCH = 512  # rows converted to Arrow and written to a Parquet output at a time
RAY_BATCH = 256  # most files per Ray task: Ray's per-task overhead is larger than a pool's
RAY_SPREAD = 8  # fewest Ray batches per actor: more balance the actors' ends, fewer cost less overhead
RAY_GIVEN_UP = 100  # Ray batches whose actor died that may be given up (or 1 %, if more) before the run fails
Row = dict[str, Any]


class ScoreError(EdgeSERError):
    """The inputs or the output of ``edge-ser score`` cannot be used."""


# -- inputs ---------------------------------------------------------------------------------
def read_manifest(path: str | os.PathLike, column: str = "path") -> list[str]:
    """The audio paths listed in a CSV, JSONL or Parquet manifest (relative ones joined to its folder)."""
    path = Path(path)
    kind = MANIFEST_FORMATS.get(path.suffix.lower())
    try:
        if kind == "csv":
            with open(path, newline="", encoding="utf-8") as f:
                values = [row.get(column) for row in csv.DictReader(f)]
        elif kind == "json":
            with open(path, encoding="utf-8") as f:
                values = [json.loads(line).get(column) for line in f if line.strip()]
        elif kind == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            if column not in table.column_names:
                raise ScoreError(f"{path}: manifest has no {column!r} column (columns: {table.column_names})")
            values = table.column(column).to_pylist()
        else:
            raise ScoreError(f"{path}: not a manifest (expected {', '.join(MANIFEST_FORMATS)})")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, csv.Error) as exc:
        raise ScoreError(f"{path}: unreadable manifest ({exc})") from None
    if any(v is None for v in values):
        raise ScoreError(f"{path}: manifest has rows without a {column!r} value")
    root = manifest_root(path)
    return [resolve_path(str(v), root) for v in values]


def manifest_root(manifest: str | os.PathLike) -> str:
    """The folder that a manifest's relative paths are taken from: its own, as an absolute path."""
    return os.path.dirname(os.path.abspath(manifest))


def resolve_path(path: str, root: str | None) -> str:
    """``path`` as given when absolute, else joined to ``root`` (a manifest's folder)."""
    return path if root is None or os.path.isabs(path) else os.path.normpath(os.path.join(root, path))


def expand_inputs(inputs: Iterable[str], column: str = "path") -> list[str]:
    """Audio paths from files, folders (recursive), glob patterns and manifests, in order, without repeats.

    A path that exists is taken as is (a file with a manifest suffix is read as a manifest; any
    other file is audio, even a corrupt one); anything else with ``*?[`` is a glob pattern."""
    out: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            for folder, dirs, files in os.walk(item):
                dirs.sort()
                out += [os.path.join(folder, f) for f in sorted(files) if Path(f).suffix.lower() in AUDIO_SUFFIXES]
        elif os.path.isfile(item):
            out += read_manifest(item, column) if Path(item).suffix.lower() in MANIFEST_FORMATS else [item]
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            if not matches:
                raise ScoreError(f"{item}: no file matches this pattern")
            out += expand_inputs(matches, column)
        else:
            raise ScoreError(f"{item}: no such file, folder or pattern")
    return list(dict.fromkeys(out))


# -- scoring --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreSpec:
    """What every worker needs to score files: picklable, so it travels to processes and Ray actors."""

    model: str
    model_name: str
    model_sha256: str
    threads: int = 1
    segments: bool = False

    @classmethod
    def for_model(cls, model: str, threads: int = 1, segments: bool = False) -> ScoreSpec:
        """Open ``model`` (a shipped name or a path) once to validate it; :class:`ModelError` if unusable."""
        return cls.opened(model, threads, segments)[0]

    @classmethod
    def opened(cls, model: str, threads: int = 1, segments: bool = False) -> tuple[ScoreSpec, Any]:
        """:meth:`for_model` and the Recognizer it opened, for a run in this process to reuse."""
        from .recognizer import Recognizer

        rec = Recognizer(model, threads=threads)
        digest = hashlib.sha256(Path(rec.path).read_bytes()).hexdigest()
        return cls(str(Path(rec.path).resolve()), rec.contract.name, digest, threads, segments), rec


def _prediction(p: Any) -> Row:
    return {
        "label": p.label,
        "scores": p.scores,
        "silent": p.silent,
        "heads": {name: {"label": h.label, "scores": h.scores} for name, h in p.heads.items()},
        "transcripts": dict(p.transcripts),
    }


def empty_row(path: str, spec: ScoreSpec) -> Row:
    """A row with every result field empty (None), as an error row starts."""
    row: Row = {"path": path, "seconds": None, "label": None, "scores": None, "silent": None}
    row.update(heads=None, transcripts=None, segments=None, error=None, error_type=None)
    return {**row, "model": spec.model_name, "model_sha256": spec.model_sha256}


class Scorer:
    """One Recognizer turning paths into rows: what each pool process and each Ray actor holds.

    ``skip``: paths already scored (left out); ``root``: folder that relative paths are taken
    from (a manifest's, when Ray reads it)."""

    def __init__(
        self,
        spec: ScoreSpec,
        skip: Iterable[str] = (),
        root: str | None = None,
        column: str = "path",
        recognizer: Any = None,
    ) -> None:
        from .recognizer import Recognizer

        self.spec = spec
        self.recognizer = recognizer or Recognizer(spec.model, threads=spec.threads)
        self.skip = frozenset(skip)
        self.root = root
        self.column = column

    def row(self, path: str) -> Row:
        """The row of one file; an error of any kind is recorded in it, never raised."""
        row = empty_row(path, self.spec)
        try:
            p = self.recognizer.predict(path)
            row.update(seconds=p.end, **_prediction(p))
            if self.spec.segments:
                row["segments"] = [
                    {"start": s.start, "end": s.end, **_prediction(s)} for s in self.recognizer.predict_segments(path)
                ]
        except Exception as exc:  # a bad file must not stop a run over millions of them
            row.update(error=str(exc) or type(exc).__name__, error_type=type(exc).__name__)
        return row

    def rows(self, paths: Iterable[str]) -> list[Row]:
        paths = (resolve_path(p, self.root) for p in paths)
        return [self.row(p) for p in paths if p not in self.skip]

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        """Ray Data ``map_batches``: a batch with a ``column`` of paths in, rows as JSON strings out."""
        return {"row": [json.dumps(r, ensure_ascii=False) for r in self.rows(str(p) for p in batch[self.column])]}


_opened: Any = None  # the Recognizer a pool process opened as it started
_worker: Scorer | None = None


def _init_worker(model: str, threads: int) -> None:
    """Open the model as the process starts (while the parent opens it too); a failure is left to
    :func:`_score_chunk`, which reports it as an error of the task rather than a broken pool."""
    global _opened
    from .recognizer import Recognizer

    try:
        _opened = Recognizer(model, threads=threads)
    except Exception:
        _opened = None


def _score_chunk(spec: ScoreSpec, paths: list[str]) -> list[Row]:
    global _worker
    if _worker is None or _worker.spec != spec:
        same = _opened is not None and str(Path(_opened.path).resolve()) == spec.model
        _worker = Scorer(spec, recognizer=_opened if same else None)
    return _worker.rows(paths)


def pool_context() -> multiprocessing.context.BaseContext:
    """The start method of pool processes that cannot be forks of this process (it has imported
    ONNX Runtime: a retry after a crash, a caller that opened a model; or not Linux), started now.

    A fork server that has imported numpy and edge-ser (not ONNX Runtime, not a model) forks each
    worker: workers start in milliseconds instead of each importing numpy anew, and none is a fork
    of a process that holds an ONNX Runtime session. Where there is no fork server: spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["edge_ser.recognizer"])
    forkserver.ensure_running()
    return context


def start_pool(workers: int, model: str, threads: int = 1) -> ProcessPoolExecutor:
    """``workers`` pool processes for :func:`score_local`, each opening ``model`` as it starts.

    On Linux, in a process that has not imported ONNX Runtime yet (``edge-ser score`` calls this
    first), they are forks of this process, made before it imports ONNX Runtime (whose import
    starts a thread) and opens the model: the state of a fork server, without a second interpreter
    importing numpy and edge-ser again; they open the model while this process opens it too.
    Otherwise: :func:`pool_context`."""
    from . import recognizer  # noqa: F401  (numpy and edge-ser, imported once for every fork)

    fork = sys.platform.startswith("linux") and "onnxruntime" not in sys.modules
    context = multiprocessing.get_context("fork") if fork else pool_context()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(model, threads))
    pool.submit(int)  # the first task forks them all, now
    return pool


def score_local(
    paths: Sequence[str],
    spec: ScoreSpec,
    workers: int = 0,
    recognizer: Any = None,
    pool: ProcessPoolExecutor | None = None,
) -> Iterator[list[Row]]:
    """Rows of ``paths``, chunk by chunk as they finish, from ``workers`` processes (0: one per core;
    1: this process, with ``recognizer`` if given). ``pool``: processes of :func:`start_pool` to
    use first (they are shut down at the end).

    A worker process that dies (a crash in a native decoder, say) neither hangs nor stops the run:
    the files it may have been scoring are retried one at a time in a fresh process, and the one that
    kills it again is recorded as a ``WorkerCrash`` error."""
    workers = workers or default_workers()
    queue = deque(list(paths[i : i + CHUNK]) for i in range(0, len(paths), CHUNK))
    if workers == 1 or len(queue) <= 1:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        scorer = Scorer(spec, recognizer=recognizer)
        yield from (scorer.rows(c) for c in queue)
        return

    def new_pool(n: int) -> ProcessPoolExecutor:  # after a crash, or without start_pool's processes
        context, init = pool_context(), (spec.model, spec.threads)
        return ProcessPoolExecutor(n, mp_context=context, initializer=_init_worker, initargs=init)

    suspects: deque[str] = deque()
    while queue or suspects:
        if suspects:  # one file at a time, so that a crash names its file
            with new_pool(1) as retry:
                while suspects:
                    path = suspects.popleft()
                    try:
                        yield retry.submit(_score_chunk, spec, [path]).result()
                    except BrokenProcessPool:
                        message = "the worker process died while scoring this file (a crash in a decoder?)"
                        yield [{**empty_row(path, spec), "error": message, "error_type": "WorkerCrash"}]
                        break
            continue
        with pool or new_pool(min(workers, len(queue))) as running:
            pool = None  # a pool broken by a crash is not used again
            in_flight: dict[Future, list[str]] = {}
            while queue or in_flight:
                while queue and len(in_flight) < 2 * workers:  # bounded: memory stays flat however many files
                    chunk = queue.popleft()
                    in_flight[running.submit(_score_chunk, spec, chunk)] = chunk
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in finished):
                    for f, chunk in in_flight.items():
                        if f.done() and f.exception() is None:
                            yield f.result()
                        else:
                            suspects.extend(chunk)
                    break
                for f in finished:
                    yield f.result()
                    del in_flight[f]


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def score_ray(
    paths: Sequence[str] | None,
    spec: ScoreSpec,
    address: str | None = None,
    workers: int = 0,
    manifest: str | None = None,
    column: str = "path",
    skip: Iterable[str] = (),
    on_ready: Callable[[], None] | None = None,
) -> Iterator[list[Row]]:
    """Rows from Ray Data actors, one Recognizer each: ``map_batches`` over ``paths``, or over the
    ``column`` of a ``manifest`` that Ray reads itself. ``address``: a Ray cluster (``auto``: the one
    ``ray start`` started on this machine or ``RAY_ADDRESS`` names; ``ray://host:10001``, ...); None
    starts a new local Ray with ``workers`` CPUs (0: one per core), even beside a running cluster.
    ``workers`` is also the number of actors (0: one per CPU of the cluster). ``on_ready`` is called
    once Ray is up (to tell its start-up from the actors' and the scoring).

    An actor that dies (a crash in a native decoder, say) neither stalls nor stops the run: Ray
    replaces it, its batch (and one queued behind it) is given up rather than retried without end,
    and the files of the batches given up are scored again one per task, one task per actor at a
    time, so that a file that kills its actor again is recorded as a ``WorkerCrash`` error and no
    other file shares its fate. More than ``RAY_GIVEN_UP`` batches given up (or 1 % of them) means a
    broken node rather than bad files: the run fails."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ScoreError(f"--ray needs Ray: pip install 'edge-ser[scale]' ({exc})") from None
    started = not ray.is_initialized()
    if started:
        local = {"num_cpus": workers or default_workers()} if address is None else {}
        try:
            # "local": a new instance; Ray's default (None) would join a running one, which refuses num_cpus
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, **local)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ScoreError(f"cannot start or reach Ray at {address or 'a local instance'}: {exc}") from None
    if on_ready is not None:
        on_ready()
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        # our own bar, summary and WorkerCrash rows say the rest (Ray logs every batch it gives up)
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)
        actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        if manifest is not None:  # the driver lists the paths too, to know which ones Ray gave up
            skip = frozenset(skip)
            expected = [p for p in read_manifest(manifest, column) if p not in skip]
        else:
            expected, skip = list(paths or ()), frozenset()
        batch = max(1, min(RAY_BATCH, -(-len(expected) // (RAY_SPREAD * actors))))
        # batches that may be given up: set before the dataset is made, which keeps its own copy
        context.max_errored_blocks = max(RAY_GIVEN_UP, len(expected) // batch // 100)
        root = None
        if manifest is not None:
            kind = MANIFEST_FORMATS.get(Path(manifest).suffix.lower())
            reader = {"csv": ray.data.read_csv, "json": ray.data.read_json, "parquet": ray.data.read_parquet}[kind]
            no_cpu = {"num_cpus": 0}  # reading paths is light; every CPU goes to the scoring actors
            with warnings.catch_warnings():  # as in _ray_pass: ray_remote_args works on every Ray >= 2.9
                warnings.simplefilter("ignore", DeprecationWarning)
                ds = reader(manifest, ray_remote_args=no_cpu)
            # the actors pick the column themselves: a select_columns step of its own would wait
            # for a CPU that the actors hold (it is fused into them only while their Ray options
            # are the defaults)
            root = manifest_root(manifest)
        else:
            blocks = max(1, -(-len(expected) // batch))  # one block per batch, not Ray's default of up to 200
            ds, column = ray.data.from_items([{"path": p} for p in expected], override_num_blocks=blocks), "path"
        scored: set[str] = set()
        for rows in _ray_pass(ray, ds, (spec, skip, root, column), actors, batch, in_flight=0):
            scored.update(r["path"] for r in rows)
            yield rows
        again = [p for p in expected if p not in scored]
        if again:  # files of the batches given up: one per task and one task per actor, so a crash names its file
            context.max_errored_blocks = -1  # each given up now is one file, recorded below
            ds = ray.data.from_items([{"path": p} for p in again])
            for rows in _ray_pass(ray, ds, (spec, frozenset(), None, "path"), actors, 1, in_flight=1):
                scored.update(r["path"] for r in rows)
                yield rows
            message = "the Ray worker process died while scoring this file (a crash in a decoder?)"
            crashed = [{**empty_row(p, spec), "error": message, "error_type": "WorkerCrash"} for p in again]
            yield [r for r in crashed if r["path"] not in scored]
    finally:
        if started:
            ray.shutdown()


def _ray_pass(ray: Any, ds: Any, args: tuple, actors: int, batch: int, in_flight: int) -> Iterator[list[Row]]:
    """Rows of ``Scorer(*args)`` over ``ds`` (``in_flight``: batches queued per actor, 0: Ray's
    default). A batch whose actor dies is given up (its rows are missing) while the dataset's
    ``max_errored_blocks`` allows it, else the run fails."""
    strategy = {"max_tasks_in_flight_per_actor": in_flight} if in_flight else {}
    with warnings.catch_warnings():  # Ray 2.60 deprecates ray_remote_args, yet has no other way to set these
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map_batches(
            Scorer,
            fn_constructor_args=args,
            batch_size=batch,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors, **strategy),
            num_cpus=1,
            max_restarts=-1,  # a dead actor is replaced ...
            max_task_retries=0,  # ... but the batch that killed it is not retried (Ray's default: forever)
        )
    try:
        for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
            yield [json.loads(r) for r in out["row"]]
    except ray.exceptions.RayError as exc:  # e.g. a node without the model file, or without edge-ser
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise ScoreError(f"the Ray run failed: {lines[-1] if lines else type(exc).__name__}") from None


# -- output ---------------------------------------------------------------------------------
def _arrow_schema() -> Any:
    import pyarrow as pa

    scores = pa.map_(pa.string(), pa.float64())
    prediction = [
        ("label", pa.string()),
        ("scores", scores),
        ("silent", pa.bool_()),
        ("heads", pa.map_(pa.string(), pa.struct([("label", pa.string()), ("scores", scores)]))),
        ("transcripts", pa.map_(pa.string(), pa.string())),
    ]
    segment = pa.struct([("start", pa.float64()), ("end", pa.float64()), *prediction])
    return pa.schema(
        [
            ("path", pa.string()),
            ("seconds", pa.float64()),
            *prediction,
            ("segments", pa.list_(segment)),
            ("error", pa.string()),
            ("error_type", pa.string()),
            ("model", pa.string()),
            ("model_sha256", pa.string()),
        ]
    )


def _read_jsonl(path: Path) -> list[Row]:
    """Rows of a JSONL file; a last line cut off by an interrupted run is dropped (and cut off the file)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with open(path, "r+b") as f:
            f.truncate(len(complete))
    try:
        return [json.loads(line) for line in complete.decode("utf-8").splitlines() if line.strip()]
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScoreError(f"{path}: not a results file of edge-ser score ({exc})") from None


def read_results(path: str | os.PathLike) -> list[Row]:
    """The rows of a results file (Parquet or JSONL), as ``edge-ser score`` wrote them."""
    path = Path(path)
    if OUTPUT_FORMATS.get(path.suffix.lower()) != "parquet":
        return _read_jsonl(path)
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist(maps_as_pydicts="strict")
    except (OSError, ValueError) as exc:
        raise ScoreError(f"{path}: unreadable Parquet results ({exc})") from None


class ResultsFile:
    """The output table, opened for resuming: :meth:`done` lists the paths it holds.

    JSONL is appended to line by line. Parquet cannot be appended to: new rows go to a JSONL
    journal beside it (``NAME.parquet.partial.jsonl``) as they come, and to a new Parquet file
    (``.NAME.parquet.tmp``, after the old file's rows) in batches of ``WRITE_BATCH``; :meth:`close`
    puts the new file in place of the old one (atomically) and deletes the journal. A run killed
    before that leaves the journal, which the next run reads back and folds in. Memory stays flat
    however many rows the table holds."""

    def __init__(self, path: str | os.PathLike, spec: ScoreSpec) -> None:
        self.path = Path(path)
        self.format = OUTPUT_FORMATS.get(self.path.suffix.lower())
        if self.format is None:
            raise ScoreError(f"{self.path}: output must end in {', '.join(OUTPUT_FORMATS)}")
        if self.format == "parquet":
            import pyarrow  # noqa: F401  (fail now, not after scoring, without the scale extra)
        self.spec = spec
        self.journal = self.path.with_name(self.path.name + ".partial.jsonl") if self.format == "parquet" else self.path
        self._file: Any = None
        self._table: Any = None  # the new Parquet file's writer
        self._pending: list[Row] = []

    def done(self) -> set[str]:
        """Paths already scored (by this model; another model's results are refused)."""
        rows = read_results(self.path) if self.format == "parquet" and self.path.exists() else []
        rows += _read_jsonl(self.journal)
        ours = (self.spec.model_name, self.spec.model_sha256)
        other = {(r.get("model"), r.get("model_sha256")) for r in rows} - {ours}
        if other:
            name, digest = sorted(other, key=str)[0]
            raise ScoreError(
                f"{self.path} holds results of another model ({name}, sha256 {str(digest)[:12]}...); "
                "score into another file"
            )
        return {r["path"] for r in rows}

    def write(self, rows: list[Row]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.format == "parquet":
                self._start_table()
            self._file = open(self.journal, "a", encoding="utf-8")
        self._file.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        self._file.flush()
        if self.format == "parquet":
            self._pending += rows
            if len(self._pending) >= WRITE_BATCH:
                self._write_pending()

    def _start_table(self) -> None:
        """Open the new Parquet file with the old file's rows and an earlier run's journal in it."""
        import pyarrow.parquet as pq

        self._table = pq.ParquetWriter(self._tmp, _arrow_schema())
        if self.path.exists():
            try:
                for batch in pq.ParquetFile(self.path).iter_batches():
                    self._table.write_batch(batch)
            except (OSError, ValueError) as exc:
                raise ScoreError(f"{self.path}: unreadable Parquet results ({exc})") from None
        self._pending = _read_jsonl(self.journal)
        self._write_pending()

    def _write_pending(self) -> None:
        import pyarrow as pa

        if self._pending:
            self._table.write_table(pa.Table.from_pylist(self._pending, schema=_arrow_schema()))
            self._pending = []

    @property
    def _tmp(self) -> Path:
        return self.path.with_name(f".{self.path.name}.tmp")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.format != "parquet" or not self.journal.exists():
            return
        if self._table is None:  # nothing new, but an earlier run's journal to fold in
            self._start_table()
        self._write_pending()
        self._table.close()
        self._table = None
        os.replace(self._tmp, self.path)
        self.journal.unlink()


# -- progress and the command ---------------------------------------------------------------
class Progress:
    """A tqdm bar when tqdm is installed, else a one-line counter on stderr; nothing when disabled."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.done, self.errors, self._last = total, 0, 0, 0.0
        self.enabled = enabled
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, rows: list[Row]) -> None:
        self.done += len(rows)
        self.errors += sum(r["error"] is not None for r in rows)
        if self._bar is not None:
            self._bar.update(len(rows))
            self._bar.set_postfix(errors=self.errors, refresh=False)
        elif self.enabled and (time.monotonic() - self._last > 1.0 or self.done == self.total):
            self._last = time.monotonic()
            end = "\r" if sys.stderr.isatty() else "\n"
            print(f"scored {self.done}/{self.total} ({self.errors} errors)", end=end, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.done and sys.stderr.isatty():
            print(file=sys.stderr)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("inputs", nargs="+", metavar="INPUT", help="audio files, folders, glob patterns, manifests (CSV/JSONL/Parquet)")
    add("--out", required=True, help="results file: .parquet (needs pyarrow) or .jsonl; existing rows are kept")
    add("--model", default="default", help="shipped model name or .onnx path (default: %(default)s)")
    add("--column", default="path", help="manifest column holding the audio paths (default: %(default)s)")
    add("--segments", action="store_true", help="also store each file's window timeline")
    add("--workers", type=int, default=0, help="processes, or Ray actors (default: one per core)")
    add("--threads", type=int, default=1, help="ONNX Runtime threads per worker (default: %(default)s)")
    add(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on Ray Data (the scale extra): a local Ray without ADDRESS, else a cluster (auto, ray://HOST:10001)",
    )
    add("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run ``edge-ser score``: 0 every file scored, 1 some were recorded as errors, 2 unusable input/model."""
    if args.ray not in (None, "local") and os.path.exists(args.ray):  # `--ray clips/ ...`: an input, not an address
        args.inputs, args.ray = [args.ray, *args.inputs], "local"
    pool = None
    try:
        if args.workers < 0:
            raise ScoreError("--workers must be >= 0")
        start = time.perf_counter()
        if args.ray is None and (args.workers or default_workers()) > 1:
            pool = start_pool(args.workers or default_workers(), args.model, args.threads)  # they open the model ...
        spec, recognizer = ScoreSpec.opened(args.model, args.threads, args.segments)  # ... while this process does
        out = ResultsFile(args.out, spec)
        done = out.done()
        one_manifest = len(args.inputs) == 1 and Path(args.inputs[0]).suffix.lower() in MANIFEST_FORMATS
        ray_ready: list[float] = []
        address = None if args.ray == "local" else args.ray

        def ready() -> None:
            ray_ready.append(time.perf_counter() - start)

        if args.ray is not None and one_manifest and os.path.isfile(args.inputs[0]):
            total = sum(p not in done for p in read_manifest(args.inputs[0], args.column))  # the bar's total
            batches = score_ray(None, spec, address, args.workers, args.inputs[0], args.column, done, ready)
        else:
            paths = [p for p in expand_inputs(args.inputs, args.column) if p not in done]
            total = len(paths)
            if args.ray is not None:
                batches = score_ray(paths, spec, address, args.workers, on_ready=ready)
            else:
                batches = score_local(paths, spec, args.workers, recognizer, pool)
        progress = Progress(max(total, 0), enabled=not args.no_progress)
        seconds, first_rows, first_count = 0.0, None, 0
        try:
            for rows in batches:
                if first_rows is None:
                    first_rows, first_count = time.perf_counter() - start, len(rows)
                out.write(rows)
                progress.update(rows)
                seconds += sum(r["seconds"] or 0.0 for r in rows)
        finally:
            progress.close()
            out.close()
    except EdgeSERError as exc:
        print(f"edge-ser score: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if pool is not None:  # unused (an unusable model, nothing left to score) or already shut down
            pool.shutdown(cancel_futures=True)
    elapsed = time.perf_counter() - start
    per_second = 1.0 / elapsed if elapsed > 0 else 0.0
    print(
        f"scored {progress.done} files ({progress.errors} errors; {len(done)} already in {args.out})"
        f" in {elapsed:.1f} s: {progress.done * per_second:.1f} files/s, {seconds * per_second:.1f} s of audio per s"
        + (f" (first {first_count} rows after {first_rows:.1f} s: start-up included)" if first_rows else "")
        + (f" (Ray up after {ray_ready[0]:.1f} s)" if ray_ready else "")
    )
    return 1 if progress.errors else 0
