"""benchmarks/teacher_errors.py: a probe's UA per unheard speaker and the class it gives that speaker most."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from benchmarks import teacher_errors  # noqa: E402
from models.data.protocols import Fold  # noqa: E402


def voices(offset_class: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, Fold]:
    """Three classes on one feature each, four speakers; the test speaker's voice adds a large offset on the feature
    of class ``offset_class`` (a voice the training speakers never had)."""
    rng = np.random.default_rng(0)
    y = np.tile(np.arange(3), 40)
    speakers = np.repeat(np.array(["a", "b", "c", "t"]), 30)
    x = np.eye(3)[y] * 2.0 + 0.3 * rng.standard_normal((120, 3))
    x[speakers == "t", offset_class] += 6.0
    idx = np.arange(120)
    val = idx[speakers == "c"][-6:]  # as CASIA's: utterances of the training speakers
    train = idx[(speakers != "t") & ~np.isin(idx, val)]
    fold = Fold("t", tuple(train), tuple(val), tuple(idx[speakers == "t"]), val_by_speaker=False)
    return x, y, speakers, fold


def test_a_voice_offset_shows_as_one_class_taking_the_speaker():
    x, y, speakers, fold = voices(offset_class=1)
    biased = teacher_errors.fold_errors(x, y, speakers, fold, 3)
    assert np.argmax(biased["share"]) == 1 and biased["share"][1] > 0.9  # nearly every utterance called class 1
    assert biased["ua"] < 0.5 and sum(biased["share"]) == pytest.approx(1.0)
    x, y, speakers, fold = voices(offset_class=1)
    x[speakers == "t", 1] -= 6.0  # the same voice without the offset
    clean = teacher_errors.fold_errors(x, y, speakers, fold, 3)
    assert clean["ua"] > 0.9 and max(clean["share"]) < 0.5
    text = teacher_errors.markdown("toy", ["x", "y", "z"], y, {"t": biased})
    assert "| t | " in text and "| y | " in text and "33 % of the corpus" in text


def test_fold_c_is_chosen_on_the_readable_training_rows_only():
    """choose_fold_c drops rows the teacher could not read from the training parts, then picks C as choose_c does."""
    from edge_ser.frontend import Normalization
    from models.teachers.probe import choose_c, choose_fold_c

    x, y, speakers, fold = voices(offset_class=1)
    ok = np.ones(len(y), dtype=bool)
    ok[[0, 5, fold.val[0]]] = False
    x[~ok] = np.nan  # an unreadable row would poison any statistic it entered
    c, train, val = choose_fold_c(x, y, speakers, fold, 3, ok)
    assert set(train) == set(fold.train) - {0, 5} and set(val) == set(fold.val) - {fold.val[0]}
    kept = Fold(fold.name, tuple(train), tuple(val), fold.test, fold.val_by_speaker)
    assert c == choose_c(Normalization.fit([x[train]])(x), y, speakers, kept, 3)[0]
    errors = teacher_errors.fold_errors(x, y, speakers, fold, 3, ok)
    assert np.isfinite(errors["ua"]) and np.argmax(errors["share"]) == 1
