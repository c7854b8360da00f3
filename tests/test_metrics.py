"""Metrics against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from models.training.metrics import plot_confusion, scores, summarize


def test_scores_hand_computed():
    # Confusion (rows true, columns predicted): [[2, 1, 0], [0, 1, 1], [0, 0, 1]]; class 3 never occurs.
    # Recalls 2/3, 1/2, 1 -> UA 13/18; accuracy 4/6; F1 = 2TP / (true + predicted): 4/5, 2/4, 2/3 -> 59/90.
    result = scores([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], n_classes=4)
    assert result["ua"] == pytest.approx(13 / 18)
    assert result["wa"] == pytest.approx(4 / 6)
    assert result["macro_f1"] == pytest.approx(59 / 90)
    assert result["confusion"] == [[2, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert all(type(result[k]) is float for k in ("ua", "wa", "macro_f1"))


def test_scores_class_predicted_but_absent():
    # UA averages class 0 only (recall 1/2); macro F1 also counts class 1, predicted but never true (F1 0).
    result = scores(np.array([0, 0]), np.array([0, 1]), n_classes=2)
    assert (result["ua"], result["wa"]) == (0.5, 0.5)
    assert result["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)


def test_scores_perfect_and_imbalanced():
    perfect = scores([1, 1, 0], [1, 1, 0], 2)
    assert (perfect["ua"], perfect["wa"], perfect["macro_f1"]) == (1.0, 1.0, 1.0)
    # Always predicting the majority class: WA 0.9, UA 0.5.
    majority = scores([0] * 9 + [1], [0] * 10, 2)
    assert majority["wa"] == pytest.approx(0.9) and majority["ua"] == pytest.approx(0.5)
    assert majority["macro_f1"] == pytest.approx((18 / 19 + 0) / 2)


@pytest.mark.parametrize(
    "y_true, y_pred, n_classes",
    [([], [], 2), ([0, 1], [0], 2), ([0, 2], [0, 1], 2), ([0, -1], [0, 0], 2), ([0.0, 1.0], [0, 1], 2), ([0], [0], 0)],
)
def test_scores_rejects_bad_input(y_true, y_pred, n_classes):
    with pytest.raises(ValueError):
        scores(y_true, y_pred, n_classes)


def test_summarize():
    a = {"ua": 0.5, "wa": 0.6, "macro_f1": 0.4, "confusion": [[1, 1], [0, 2]]}
    b = {"ua": 0.7, "wa": 0.8, "macro_f1": 0.6, "confusion": [[3, 0], [1, 1]]}
    summary = summarize([a, b])
    assert summary["ua_mean"] == pytest.approx(0.6) and summary["ua_std"] == pytest.approx(0.1)
    assert summary["wa_mean"] == pytest.approx(0.7) and summary["wa_std"] == pytest.approx(0.1)
    assert summary["macro_f1_mean"] == pytest.approx(0.5) and summary["macro_f1_std"] == pytest.approx(0.1)
    assert summary["confusion"] == [[4, 1], [1, 3]] and summary["folds"] == 2
    assert summarize([a])["ua_std"] == 0.0
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([a, {**b, "confusion": [[1]]}])


def test_plot_confusion(tmp_path):
    path = plot_confusion([[4, 1], [0, 0]], ["angry", "sad"], tmp_path / "plots" / "cm.png", "fold 1")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        plot_confusion([[1, 0], [0, 1]], ["only"], tmp_path / "bad.png", "bad")
