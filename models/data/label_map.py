"""One emotion vocabulary across corpora, so that several corpora can train one model (``--extra-corpus``).

Every corpus' labels map onto the shared words of :data:`SHARED` (the CASIA words most loaders already use);
an extra corpus' utterance then takes the *target* corpus' own name for that word, or is left out of training
when the target has no such class. The decisions (see ``docs/multi-corpus.md``):

- RAVDESS ``calm`` -> ``neutral``: RAVDESS' calm is a low-arousal, neutral-valence rendering of the same
  sentences; it has no class of its own in any other corpus, and speaker-independent work usually merges it.
  For a RAVDESS target, the other corpora's ``neutral`` becomes RAVDESS ``neutral`` (never ``calm``).
- RAVDESS ``fearful`` / ``surprised`` are ``fear`` / ``surprise``.
- Emo-DB ``boredom`` -> left out: it is low-arousal but negative, confused with both sad and neutral, and no
  other corpus has it; folding it into ``neutral`` would teach neutral a sad tone. An Emo-DB target keeps its
  own boredom utterances; nothing from another corpus becomes boredom.
- Classes the target lacks are left out (e.g. ``disgust`` from RAVDESS or Emo-DB for a CASIA target), so the
  model's head is exactly the target's label set and its predictions need no further restriction.
"""

from __future__ import annotations

from dataclasses import replace

from .corpora import EMOTIONS, Corpus, Utterance

SHARED: tuple[str, ...] = ("angry", "boredom", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# corpus -> {its own label: shared word, or None: never trains another corpus' model}; labels not listed are
# already shared words (CASIA, Emo-DB, IEMOCAP, CREMA-D, TESS, SAVEE, and CSV manifests that use them).
TO_SHARED: dict[str, dict[str, str | None]] = {
    "ravdess": {"calm": "neutral", "fearful": "fear", "surprised": "surprise"},
    "emodb": {"boredom": None},
}

# corpus -> {shared word: its own label}, where its own name differs (the inverse of TO_SHARED, except merges).
FROM_SHARED: dict[str, dict[str, str]] = {"ravdess": {"fear": "fearful", "surprise": "surprised"}}


def shared_emotion(corpus: str, emotion: str) -> str | None:
    """The shared word for ``corpus``' label ``emotion`` (None: the label is not mapped onto other corpora)."""
    return TO_SHARED.get(corpus, {}).get(emotion, emotion)


def target_emotion(source: str, emotion: str, target: str, target_labels: tuple[str, ...]) -> str | None:
    """Corpus ``source``'s label ``emotion`` as corpus ``target`` names it, or None when ``target_labels``
    (the target's classes) has no such class or the label is not mapped."""
    if source == target:
        return emotion if emotion in target_labels else None
    shared = shared_emotion(source, emotion)
    if shared is None:
        return None
    own = FROM_SHARED.get(target, {}).get(shared, shared)
    return own if own in target_labels else None


def mapping_table(source: str, target: str) -> dict[str, str | None]:
    """``{source label: target label or None}`` for two known corpora (:data:`models.data.corpora.EMOTIONS`)."""
    return {e: target_emotion(source, e, target, EMOTIONS[target]) for e in EMOTIONS[source]}


def relabel(extra: Corpus, target: Corpus) -> list[tuple[int, Utterance]]:
    """The utterances of ``extra`` that can train a model of ``target``'s classes, as ``(index in extra,
    utterance)`` with the target's label and the speaker prefixed by the corpus (``ravdess:01``), so that no
    extra speaker can share a name with a target speaker."""
    out = []
    for i, u in enumerate(extra.utterances):
        emotion = target_emotion(extra.name, u.emotion, target.name, target.emotions)
        if emotion is not None:
            out.append((i, replace(u, emotion=emotion, speaker=f"{extra.name}:{u.speaker}")))
    return out
