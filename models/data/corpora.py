"""Corpus loaders: each emotional-speech corpus, in its official layout and file names, as one list of utterances.

Audio may be WAV or FLAC under the official names (``.wav`` or ``.flac``). Nothing is dropped silently:
every file that belongs to the corpus layout but cannot be used (unreadable or empty audio, a name off the
official scheme, a label outside the class set, a broken ``.lab`` or transcript line) is listed in
:attr:`Corpus.skipped` with the reason. Hidden files (``.name``, e.g. macOS ``._x.wav``) are not corpus files
and are ignored.

Labels use one vocabulary, the CASIA words (angry, disgust, fear, happy, neutral, sad, surprise, plus boredom),
except RAVDESS, which keeps its official names (calm, fearful, surprised, ...). Each corpus has a fixed class
order, :data:`EMOTIONS`: alphabetical, except RAVDESS, which keeps its code order 01-08. The order does not
depend on which files are present, so class indices are stable across machines and subsets.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edge_ser.errors import EdgeSERError


class CorpusError(EdgeSERError):
    """A corpus cannot be loaded at all: unknown name, missing root, or nothing usable under it."""


@dataclass(frozen=True)
class Utterance:
    """One labelled recording.

    ``syllables`` is CASIA's pinyin with tone digits from its ``.lab``, silences removed, exactly as labelled:
    None without a usable ``.lab``; some CASIA labs cover only part of the sentence, a few hold only SIL (``()``).
    """

    path: str
    emotion: str
    speaker: str
    gender: str | None
    text: str | None
    corpus: str
    syllables: tuple[str, ...] | None = None


@dataclass
class Corpus:
    """A loaded corpus: its fixed class order, usable utterances (sorted by path) and ``(path, reason)`` skips."""

    name: str
    root: str
    emotions: tuple[str, ...]
    utterances: list[Utterance]
    skipped: list[tuple[str, str]] = field(default_factory=list)


CORPORA: dict[str, str] = {
    "casia": "CASIA (Chinese): <root>/<speaker>/<emotion>/<NNN>.wav|flac (+ .lab), <root>/transcripts.txt",
    "ravdess": "RAVDESS speech: <root>/Actor_XX/03-01-EE-II-SS-RR-AA.wav|flac",
    "emodb": "Emo-DB (German): <root>/wav/03a01Fa.wav",
    "iemocap": "IEMOCAP 4-class: <root>/Session{1-5}/dialog/EmoEvaluation/*.txt + sentences/wav/<dialog>/<utt>.wav",
    "cremad": "CREMA-D: <root>/AudioWAV/1001_DFA_ANG_XX.wav (+ <root>/VideoDemographics.csv for genders)",
    "tess": "TESS: <root>/**/<OAF|YAF>_<word>_<emotion>.wav",
    "savee": "SAVEE: <root>/AudioData/<DC|JE|JK|KL>/<a|d|f|h|n|sa|su><NN>.wav",
    "csv": "CSV manifest file: header path,emotion[,speaker,gender,text]; paths relative to the CSV's folder",
}

EMOTIONS: dict[str, tuple[str, ...]] = {
    "casia": ("angry", "fear", "happy", "neutral", "sad", "surprise"),
    "ravdess": ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"),
    "emodb": ("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad"),
    "iemocap": ("angry", "happy", "neutral", "sad"),
    "cremad": ("angry", "disgust", "fear", "happy", "neutral", "sad"),
    "tess": ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"),
    "savee": ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"),
}

AUDIO_SUFFIXES = (".wav", ".flac")
_SILENCE = {"SIL", "SP"}

CASIA_GENDERS = {"liuchanhg": "female", "zhaoquanyin": "female", "wangzhe": "male", "ZhaoZuoxiang": "male"}

RAVDESS_STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}

EMODB_EMOTIONS = {"W": "angry", "L": "boredom", "E": "disgust", "A": "fear", "F": "happy", "T": "sad", "N": "neutral"}
EMODB_GENDERS = {
    "03": "male",
    "08": "female",
    "09": "female",
    "10": "male",
    "11": "male",
    "12": "male",
    "13": "female",
    "14": "female",
    "15": "male",
    "16": "female",
}
EMODB_TEXTS = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}

IEMOCAP_LABELS = {"neu": "neutral", "ang": "angry", "sad": "sad", "hap": "happy", "exc": "happy"}

CREMAD_EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
CREMAD_TEXTS = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}

TESS_EMOTIONS = {
    "angry": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "surprise",
    "sad": "sad",
}
SAVEE_EMOTIONS = {
    "a": "angry",
    "d": "disgust",
    "f": "fear",
    "h": "happy",
    "n": "neutral",
    "sa": "sad",
    "su": "surprise",
}
SAVEE_SPEAKERS = ("DC", "JE", "JK", "KL")

_GENDER_WORDS = {
    "f": "female",
    "female": "female",
    "w": "female",
    "woman": "female",
    "m": "male",
    "male": "male",
    "man": "male",
}

_RAVDESS_NAME = re.compile(r"^(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$")
_EMODB_NAME = re.compile(r"^(\d{2})([a-z]\d{2})([A-Z])([a-z])$")
_IEMOCAP_ID = re.compile(r"^(Ses\d{2})[FM]_\S+_([FM])\d{3}$")
_IEMOCAP_TEXT = re.compile(r"^(\S+) \[[^\]]*\]:\s?(.*)$")
_CREMAD_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")
_TESS_NAME = re.compile(r"^(OAF|YAF)_(.+)_([a-z]+)$", re.IGNORECASE)
_SAVEE_NAME = re.compile(r"^(sa|su|a|d|f|h|n)(\d{2})$")
_TRANSCRIPT_LINE = re.compile(r"^\s*(\d+)\s*[.．]\s*(.*?)\s*$")


class _Collector:
    """Gathers utterances and skips, checking each audio file's header when asked."""

    def __init__(self, corpus: str, check_audio: bool) -> None:
        self.corpus = corpus
        self.check_audio = check_audio
        self.utterances: list[Utterance] = []
        self.skipped: list[tuple[str, str]] = []

    def skip(self, path: str | Path, reason: str) -> None:
        self.skipped.append((str(path), reason))

    def usable(self, path: Path) -> bool:
        """Whether ``path`` is a readable, non-empty audio file; records the reason when it is not."""
        reason = _audio_problem(path, self.check_audio)
        if reason:
            self.skip(path, reason)
        return reason is None

    def keep(
        self,
        path: Path,
        emotion: str,
        speaker: str,
        gender: str | None,
        text: str | None = None,
        syllables: tuple[str, ...] | None = None,
    ) -> None:
        self.utterances.append(Utterance(str(path), emotion, speaker, gender, text, self.corpus, syllables))

    def add(self, path: Path, emotion: str, speaker: str, gender: str | None, text: str | None = None) -> None:
        if self.usable(path):
            self.keep(path, emotion, speaker, gender, text)


def _audio_problem(path: Path, check_audio: bool) -> str | None:
    if not path.is_file():
        return "audio file not found"
    if not check_audio:
        return None
    import soundfile as sf

    try:
        frames = sf.info(str(path)).frames
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"unreadable audio ({reason})"
    return "audio is empty (0 frames)" if frames == 0 else None


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p))


def _audio_files(folder: Path, recursive: bool = False) -> Iterator[Path]:
    """Audio files in ``folder`` (or below it), sorted, hidden files and folders left out."""
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    for path in sorted(candidates):
        rel = path.relative_to(folder).parts
        if path.suffix.lower() in AUDIO_SUFFIXES and all(not part.startswith(".") for part in rel) and path.is_file():
            yield path


def _read_lines(path: Path, out: _Collector) -> list[str] | None:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        out.skip(path, f"unreadable text file ({exc})")
        return None


def _casia_texts(path: Path, out: _Collector) -> dict[str, str]:
    """``NNN -> text`` from ``transcripts.txt``; bad lines are reported, a missing file means no texts."""
    texts: dict[str, str] = {}
    for number, line in enumerate((_read_lines(path, out) or []) if path.is_file() else [], 1):
        if not line.strip():
            continue
        match = _TRANSCRIPT_LINE.match(line)
        if match:
            texts[match.group(1)] = match.group(2)
        else:
            out.skip(f"{path}:{number}", "transcript line is not 'NNN. text'")
    return texts


def _casia_syllables(lab: Path, out: _Collector) -> tuple[str, ...] | None:
    """Pinyin syllables (tones kept, SIL removed) of an HTK ``.lab``; None when absent or unparseable."""
    if not lab.is_file():
        return None
    lines = _read_lines(lab, out)
    if lines is None:
        return None
    syllables = []
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or not (fields[0].isdigit() and fields[1].isdigit()):
            problem = "has no label" if len(fields) == 2 else "is not 'start end label'"
            out.skip(lab, f"line {number} {problem}; utterance kept without syllables")
            return None
        if fields[2].upper() not in _SILENCE:
            syllables.append(fields[2])
    return tuple(syllables)


def _load_casia(root: Path, out: _Collector) -> tuple[str, ...]:
    texts = _casia_texts(root / "transcripts.txt", out)
    for speaker_dir in _subdirs(root):
        for emotion_dir in _subdirs(speaker_dir):
            emotion = emotion_dir.name.lower()
            for path in _audio_files(emotion_dir):
                if emotion not in EMOTIONS["casia"]:
                    out.skip(path, f"folder {emotion_dir.name!r} is not a CASIA emotion")
                elif out.usable(path):
                    speaker = speaker_dir.name
                    syllables = _casia_syllables(path.with_suffix(".lab"), out)
                    out.keep(path, emotion, speaker, CASIA_GENDERS.get(speaker), texts.get(path.stem), syllables)
    return EMOTIONS["casia"]


def _load_ravdess(root: Path, out: _Collector) -> tuple[str, ...]:
    for path in _audio_files(root, recursive=True):
        match = _RAVDESS_NAME.match(path.stem)
        if not match:
            out.skip(path, "name is not MM-CC-EE-II-SS-RR-AA")
            continue
        modality, channel, emotion, _, statement, _, actor = match.groups()
        if (modality, channel) != ("03", "01"):
            out.skip(path, f"not an audio-only speech file (modality {modality}, channel {channel})")
        elif not 1 <= int(emotion) <= 8:
            out.skip(path, f"unknown emotion code {emotion}")
        elif int(actor) == 0:
            out.skip(path, "actor 00 does not exist")
        else:
            gender = "male" if int(actor) % 2 else "female"
            out.add(path, EMOTIONS["ravdess"][int(emotion) - 1], actor, gender, RAVDESS_STATEMENTS.get(statement))
    return EMOTIONS["ravdess"]


def _load_emodb(root: Path, out: _Collector) -> tuple[str, ...]:
    folder = root / "wav" if (root / "wav").is_dir() else root
    for path in _audio_files(folder):
        match = _EMODB_NAME.match(path.stem)
        if not match or match.group(3) not in EMODB_EMOTIONS:
            out.skip(path, "name is not <speaker 2 digits><text code><emotion letter WLEAFTN><version>")
            continue
        speaker, text_code, letter, _ = match.groups()
        out.add(path, EMODB_EMOTIONS[letter], speaker, EMODB_GENDERS.get(speaker), EMODB_TEXTS.get(text_code))
    return EMOTIONS["emodb"]


def _iemocap_texts(session: Path, out: _Collector) -> dict[str, str]:
    texts: dict[str, str] = {}
    folder = session / "dialog" / "transcriptions"
    for path in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
        for line in _read_lines(path, out) or []:
            match = _IEMOCAP_TEXT.match(line.strip())
            if match:
                texts[match.group(1)] = match.group(2).strip()
    return texts


def _load_iemocap(root: Path, out: _Collector) -> tuple[str, ...]:
    for session in sorted(p for p in root.glob("Session*") if p.is_dir()):
        texts = _iemocap_texts(session, out)
        for evaluation in sorted(session.glob("dialog/EmoEvaluation/*.txt")):
            for number, line in enumerate(_read_lines(evaluation, out) or [], 1):
                if not line.startswith("["):
                    continue
                fields = line.rstrip("\n").split("\t")
                match = _IEMOCAP_ID.match(fields[1]) if len(fields) >= 3 else None
                if not match:
                    out.skip(f"{evaluation}:{number}", "evaluation line is not '[start - end]<TAB>id<TAB>label'")
                    continue
                utt, label = fields[1], fields[2].strip()
                folder = session / "sentences" / "wav" / utt.rsplit("_", 1)[0]
                path = next(
                    (p for p in (folder / f"{utt}{s}" for s in AUDIO_SUFFIXES) if p.is_file()), folder / f"{utt}.wav"
                )
                if label not in IEMOCAP_LABELS:
                    out.skip(path, f"label {label!r} is outside the 4-class set (neu, ang, sad, hap+exc)")
                    continue
                session_id, letter = match.groups()
                gender = "female" if letter == "F" else "male"
                out.add(path, IEMOCAP_LABELS[label], session_id + letter, gender, texts.get(utt))
    return EMOTIONS["iemocap"]


def _cremad_genders(root: Path, out: _Collector) -> dict[str, str | None]:
    path = root / "VideoDemographics.csv"
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return {row["ActorID"].strip(): _GENDER_WORDS.get(row["Sex"].strip().lower()) for row in csv.DictReader(f)}
    except (OSError, UnicodeDecodeError, KeyError, AttributeError, csv.Error) as exc:
        out.skip(path, f"unreadable demographics ({type(exc).__name__}: {exc}); genders unknown")
        return {}


def _load_cremad(root: Path, out: _Collector) -> tuple[str, ...]:
    genders = _cremad_genders(root, out)
    folder = root / "AudioWAV" if (root / "AudioWAV").is_dir() else root
    for path in _audio_files(folder):
        match = _CREMAD_NAME.match(path.stem)
        if not match or match.group(3) not in CREMAD_EMOTIONS:
            out.skip(path, "name is not <actor>_<sentence>_<ANG|DIS|FEA|HAP|NEU|SAD>_<level>")
            continue
        actor, sentence, emotion, _ = match.groups()
        out.add(path, CREMAD_EMOTIONS[emotion], actor, genders.get(actor), CREMAD_TEXTS.get(sentence))
    return EMOTIONS["cremad"]


def _load_tess(root: Path, out: _Collector) -> tuple[str, ...]:
    for path in _audio_files(root, recursive=True):
        match = _TESS_NAME.match(path.stem)
        emotion = match.group(3).lower() if match else None
        if emotion not in TESS_EMOTIONS:
            out.skip(path, "name is not <OAF|YAF>_<word>_<angry|disgust|fear|happy|neutral|ps|sad>")
            continue
        out.add(path, TESS_EMOTIONS[emotion], match.group(1).upper(), "female", match.group(2))
    return EMOTIONS["tess"]


def _load_savee(root: Path, out: _Collector) -> tuple[str, ...]:
    folder = root / "AudioData" if (root / "AudioData").is_dir() else root
    for speaker_dir in _subdirs(folder):
        speaker = speaker_dir.name
        for path in _audio_files(speaker_dir):
            match = _SAVEE_NAME.match(path.stem)
            if not match:
                out.skip(path, "name is not <a|d|f|h|n|sa|su><NN>")
                continue
            out.add(path, SAVEE_EMOTIONS[match.group(1)], speaker, "male" if speaker in SAVEE_SPEAKERS else None)
    return EMOTIONS["savee"]


def _load_csv(manifest: Path, out: _Collector) -> tuple[str, ...]:
    if not manifest.is_file():
        raise CorpusError(f"csv corpus root must be the manifest file, got {manifest}")
    base = manifest.parent
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            reader.fieldnames = [name.strip().lower() for name in reader.fieldnames or []]
            missing = {"path", "emotion"} - set(reader.fieldnames)
            if missing:
                raise CorpusError(f"{manifest}: header lacks column(s) {', '.join(sorted(missing))}")
            rows = [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorpusError(f"{manifest}: unreadable manifest ({exc})") from None
    for line, row in rows:
        where = f"{manifest}:{line}"
        gender = row.get("gender", "")
        if not row["path"] or not row["emotion"]:
            out.skip(where, "empty path or emotion")
        elif gender and gender.lower() not in _GENDER_WORDS:
            out.skip(where, f"gender {gender!r} is not female/male (or f/m); leave it empty when unknown")
        else:
            path = Path(row["path"]).expanduser()
            path = Path(os.path.normpath(path if path.is_absolute() else base / path))
            out.add(
                path, row["emotion"], row.get("speaker", ""), _GENDER_WORDS.get(gender.lower()), row.get("text") or None
            )
    return tuple(sorted({u.emotion for u in out.utterances}))


_LOADERS: dict[str, Callable[[Path, _Collector], tuple[str, ...]]] = {
    "casia": _load_casia,
    "ravdess": _load_ravdess,
    "emodb": _load_emodb,
    "iemocap": _load_iemocap,
    "cremad": _load_cremad,
    "tess": _load_tess,
    "savee": _load_savee,
    "csv": _load_csv,
}


def load_corpus(name: str, root: str | os.PathLike, check_audio: bool = True) -> Corpus:
    """Load corpus ``name`` (a key of :data:`CORPORA`) from ``root``.

    ``root`` is the corpus folder (for ``csv``: the manifest file). With ``check_audio`` every audio
    header is opened (fast) so unreadable or empty files land in ``skipped`` instead of failing training
    later. Raises :class:`CorpusError` for an unknown name, a missing root, or when nothing is usable.
    """
    key = name.lower()
    if key not in _LOADERS:
        raise CorpusError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    path = Path(os.path.abspath(Path(root).expanduser()))
    if not path.exists():
        raise CorpusError(f"{key} corpus root {path} does not exist")
    if key != "csv" and not path.is_dir():
        raise CorpusError(f"{key} corpus root {path} is not a folder")
    out = _Collector(key, check_audio)
    emotions = _LOADERS[key](path, out)
    skipped = sorted(out.skipped)
    if not out.utterances:
        detail = f"; {len(skipped)} skipped, first: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise CorpusError(f"no usable {key} utterances under {path} (expected {CORPORA[key]}){detail}")
    return Corpus(key, str(path), emotions, sorted(out.utterances, key=lambda u: u.path), skipped)
