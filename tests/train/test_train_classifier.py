"""Downstream classifiers on real all-MiniLM-L6-v2 embeddings (synthbias.train.classifier)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from cores import CORES

from synthbias.measure.behavioural import counterfactual_flip_rate
from synthbias.measure.embedding import Encoder
from synthbias.train.classifier import EmbeddingClassifier, EncoderHeadClassifier

torch.set_num_threads(CORES)

_SPORT = (
    ["The striker", "Our goalkeeper", "The tennis player", "The runner", "The coach", "The team"],
    [
        "scored a late goal in the final",
        "trained hard before the match",
        "won the championship game",
        "broke the record at the stadium",
        "lost the match on penalties",
        "celebrated the victory with the fans",
    ],
)
_COOK = (
    ["The chef", "My grandmother", "The baker", "The cook", "Our neighbour", "The student"],
    [
        "simmered the tomato sauce for an hour",
        "baked fresh bread this morning",
        "chopped onions for the soup",
        "seasoned the roast with garlic",
        "whisked eggs for the omelette",
        "stirred the risotto slowly",
    ],
)


def _toy() -> tuple[list[str], list[str], list[str], list[str]]:
    """Sports vs cooking sentences, shuffled, split 48/24."""
    sport = [f"{a} {b}." for a, b in itertools.product(*_SPORT)]
    cook = [f"{a} {b}." for a, b in itertools.product(*_COOK)]
    texts = sport + cook
    labels = ["sports"] * len(sport) + ["cooking"] * len(cook)
    order = np.random.default_rng(0).permutation(len(texts))
    texts, labels = [texts[i] for i in order], [labels[i] for i in order]
    return texts[:48], labels[:48], texts[48:], labels[48:]


def _accuracy(
    clf: EmbeddingClassifier | EncoderHeadClassifier, x: list[str], y: list[str]
) -> float:
    return float(np.mean(clf.predict(x) == np.asarray(y)))


def _conflicting() -> tuple[list[str], list[str], np.ndarray]:
    """Every training text twice, with its true and its flipped label (the flip weighted 1)."""
    x, y, _, _ = _toy()
    flipped = ["cooking" if t == "sports" else "sports" for t in y]
    return x + x, y + flipped, np.r_[np.ones(len(x)), np.ones(len(x))]


def test_embedding_classifier_separates_topics(encoder: Encoder) -> None:
    x, y, xt, yt = _toy()
    clf = EmbeddingClassifier(encoder).fit(x, y)
    assert list(clf.classes_) == ["cooking", "sports"]
    assert _accuracy(clf, xt, yt) >= 0.95
    proba = clf.predict_proba(xt)
    assert proba.shape == (len(xt), 2) and np.allclose(proba.sum(1), 1)
    assert np.array_equal(clf(xt), proba)  # a Predictor: texts -> class probabilities
    assert clf.predict_proba([]).shape == (0, 2)
    again = EmbeddingClassifier(encoder).fit(x, y)
    assert np.array_equal(again.predict_proba(xt), proba)  # deterministic


def test_embedding_classifier_sample_weights_decide(encoder: Encoder) -> None:
    x, y, w = _conflicting()
    _, _, xt, yt = _toy()
    n = len(x) // 2
    w_true, w_flip = w.copy(), w.copy()
    w_true[n:] = 0.2  # the flipped copies barely count
    w_flip[:n] = 0.2  # the true copies barely count
    assert _accuracy(EmbeddingClassifier(encoder).fit(x, y, w_true), xt, yt) >= 0.95
    assert _accuracy(EmbeddingClassifier(encoder).fit(x, y, w_flip), xt, yt) <= 0.05


def test_encoder_head_classifier_trains_fast_and_weights_matter() -> None:
    x, y, xt, yt = _toy()
    clf = EncoderHeadClassifier(n_threads=CORES, seed=1).fit(x, y)
    assert _accuracy(clf, xt, yt) >= 0.95
    assert clf.losses[-1] < clf.losses[0]
    proba = clf(xt)
    assert proba.shape == (len(xt), 2) and np.allclose(proba.sum(1), 1)
    again = EncoderHeadClassifier(n_threads=CORES, seed=1).fit(x, y)
    assert np.array_equal(again.predict_proba(xt), proba)  # deterministic given the seed

    xc, yc, w = _conflicting()
    n = len(xc) // 2
    w[:n] = 0.1  # the flipped labels dominate
    flipped = EncoderHeadClassifier(n_threads=CORES, seed=1).fit(xc, yc, w)
    assert _accuracy(flipped, xt, yt) <= 0.05


def test_head_only_and_errors(encoder: Encoder) -> None:
    x, y, xt, yt = _toy()
    head_only = EncoderHeadClassifier(n_layers=0, epochs=4, n_threads=CORES).fit(x, y)
    assert _accuracy(head_only, xt, yt) >= 0.9
    with pytest.raises(RuntimeError, match="not fitted"):
        EmbeddingClassifier(encoder).predict(xt)
    with pytest.raises(ValueError, match="two classes"):
        EmbeddingClassifier(encoder).fit(x, ["sports"] * len(x))
    with pytest.raises(ValueError, match="labels"):
        EmbeddingClassifier(encoder).fit(x, y[:-1])
    with pytest.raises(ValueError, match="sample_weight"):
        EmbeddingClassifier(encoder).fit(x, y, [-1.0] * len(x))
    with pytest.raises(ValueError, match="sample_weight"):
        EncoderHeadClassifier().fit(x, y, [1.0] * 3)
    with pytest.raises(TypeError, match="single string"):
        head_only.predict_proba("one text")


def test_classifier_as_predictor_for_counterfactual_flips(encoder: Encoder) -> None:
    """A classifier trained on gender-skewed labels inherits the skew; a fair one does not."""
    jobs = ["nurse", "doctor", "teacher", "engineer", "pilot", "baker", "lawyer", "farmer"]
    acts = ["said {p} was ready for the shift", "told us {p} would be late"]
    texts, skewed, fair = [], [], []
    for job, act in itertools.product(jobs, acts):
        for pron, label in (("he", "hired"), ("she", "rejected")):
            texts.append(f"The {job} {act.format(p=pron)}.")
            skewed.append(label)
            fair.append("hired" if act.startswith("said") else "rejected")
    probe = [f"The {j} said {p} enjoyed the work." for j in ("manager", "writer") for p in ("he",)]
    biased = EmbeddingClassifier(encoder, C=100).fit(texts, skewed)
    unbiased = EmbeddingClassifier(encoder, C=100).fit(texts, fair)
    assert counterfactual_flip_rate(probe, biased, "gender", n_resamples=50).value == 1.0
    assert counterfactual_flip_rate(probe, unbiased, "gender", n_resamples=50).value == 0.0
