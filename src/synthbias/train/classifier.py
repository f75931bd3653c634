"""Small text classifiers: the fast downstream models of bias-inheritance experiments.

Why two: :class:`EmbeddingClassifier` (logistic regression on frozen all-MiniLM-L6-v2 sentence
embeddings) trains in a second once texts are embedded, and the embedding cache makes repeated
fits over mixtures of the same corpora nearly free; :class:`EncoderHeadClassifier` fine-tunes the
encoder's last transformer layer(s) as well, so the student can pick up surface cues (names,
pronouns) that frozen embeddings blur, which is where inherited bias often lives.

Both take per-example weights (loss-based mitigation), are deterministic given ``seed``, and are
callables ``texts -> class probabilities``, i.e. a ``Predictor`` for
:mod:`synthbias.measure.behavioural` (counterfactual flip rates, score gaps).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synthbias.measure.embedding import Encoder, default_model_path


def _check_fit_args(
    texts: Sequence[str], labels: Sequence[Any], sample_weight: Sequence[float] | None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    if isinstance(texts, str):
        raise TypeError("fit() takes a sequence of texts, not a single string")
    texts = list(texts)
    y = np.asarray(list(labels))
    if len(texts) != len(y):
        raise ValueError(f"{len(texts)} texts but {len(y)} labels")
    if len(texts) == 0:
        raise ValueError("no training texts")
    if len(np.unique(y)) < 2:
        raise ValueError("need at least two classes to train a classifier")
    if sample_weight is None:
        w = np.ones(len(texts), dtype=np.float64)
    else:
        w = np.asarray(list(sample_weight), dtype=np.float64)
        if w.shape != (len(texts),):
            raise ValueError(f"sample_weight has {w.shape[0]} values for {len(texts)} texts")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("sample_weight must be finite, >= 0 and not all zero")
    return texts, y, w


class _Base:
    classes_: np.ndarray

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Most probable class label of each text."""
        proba = self.predict_proba(texts)
        return self.classes_[np.argmax(proba, axis=1)]

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities: the ``Predictor`` interface of the behavioural metrics."""
        return self.predict_proba(texts)

    def _check_fitted(self) -> None:
        if not hasattr(self, "classes_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")


class EmbeddingClassifier(_Base):
    """Logistic regression on frozen, cached sentence embeddings.

    Args:
        encoder: the :class:`~synthbias.measure.embedding.Encoder` to embed with (default: the
            bundled all-MiniLM-L6-v2, in-memory cache); pass one with ``cache_dir`` to reuse
            embeddings across runs.
        C: inverse L2 regularisation strength (scikit-learn's ``C``).
        max_iter: L-BFGS iterations.
        seed: fixes the solver's randomness (L-BFGS itself is deterministic).
    """

    def __init__(
        self,
        encoder: Encoder | None = None,
        *,
        C: float = 1.0,
        max_iter: int = 2000,
        seed: int = 0,
    ) -> None:
        self.encoder = encoder if encoder is not None else Encoder()
        self.C = C
        self.max_iter = max_iter
        self.seed = seed
        self._clf: Any = None

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[Any],
        sample_weight: Sequence[float] | None = None,
    ) -> EmbeddingClassifier:
        """Fit on ``texts``; ``sample_weight`` scales each example's log-loss."""
        from sklearn.linear_model import LogisticRegression

        texts, y, w = _check_fit_args(texts, labels, sample_weight)
        x = self.encoder.encode(texts)
        clf = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)
        clf.fit(x, y, sample_weight=w)
        self._clf = clf
        self.classes_ = clf.classes_
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, n_classes)`` probabilities, columns in ``classes_`` order."""
        self._check_fitted()
        if isinstance(texts, str):
            raise TypeError("predict_proba() takes a sequence of texts, not a single string")
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.classes_)))
        return self._clf.predict_proba(self.encoder.encode(texts))


class EncoderHeadClassifier(_Base):
    """MiniLM with its last ``n_layers`` transformer layers and a linear head fine-tuned.

    Mean pooling over tokens (as all-MiniLM-L6-v2 does), then a linear layer; the rest of the
    encoder stays frozen, so training stays light (about 500 short sentences x 3 epochs in
    seconds on 2 cores). Loss: cross-entropy weighted by ``sample_weight`` (weighted mean per
    batch). Deterministic given ``seed`` (initialisation, shuffling and dropout).

    Args:
        model_path: a local BERT-style sentence-transformers folder (default: the bundled
            all-MiniLM-L6-v2).
        n_layers: top transformer layers to fine-tune (0: only the head).
        epochs, batch_size: passes over the data and examples per step.
        lr: learning rate of the tuned encoder layers; head_lr: of the linear head.
        max_length: tokens per text (longer texts are truncated).
        n_threads: torch threads while fitting/predicting (restored afterwards).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        n_layers: int = 1,
        epochs: int = 3,
        batch_size: int = 32,
        lr: float = 1e-4,
        head_lr: float = 1e-2,
        weight_decay: float = 0.0,
        max_length: int = 64,
        seed: int = 0,
        n_threads: int | None = None,
    ) -> None:

        if n_layers < 0 or epochs < 1 or batch_size < 1 or max_length < 2:
            raise ValueError("need n_layers >= 0, epochs >= 1, batch_size >= 1, max_length >= 2")
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        self.n_layers = n_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.head_lr = head_lr
        self.weight_decay = weight_decay
        self.max_length = max_length
        self.seed = seed
        self.n_threads = n_threads
        self.losses: list[float] = []
        self._model: Any = None
        self._head: Any = None
        self._tokenizer: Any = None

    def _load(self) -> tuple[Any, Any]:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        was_enabled = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            tok = AutoTokenizer.from_pretrained(str(self.model_path), local_files_only=True)
            model = AutoModel.from_pretrained(str(self.model_path), local_files_only=True)
        finally:
            if was_enabled:
                hf_logging.enable_progress_bar()
        return tok, model

    def _pooled(self, model: Any, texts: list[str]) -> Any:
        enc = self._tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[Any],
        sample_weight: Sequence[float] | None = None,
    ) -> EncoderHeadClassifier:
        """Fine-tune from the pretrained encoder (every call starts afresh)."""
        import torch

        texts, y, w = _check_fit_args(texts, labels, sample_weight)
        classes, y_idx = np.unique(y, return_inverse=True)
        prev_threads = torch.get_num_threads()
        if self.n_threads:
            torch.set_num_threads(self.n_threads)
        try:
            torch.manual_seed(self.seed)
            self._tokenizer, model = self._load()
            for p in model.parameters():
                p.requires_grad_(False)
            layers = model.encoder.layer
            tuned = list(layers[len(layers) - self.n_layers :]) if self.n_layers else []
            enc_params = [p for layer in tuned for p in layer.parameters()]
            for p in enc_params:
                p.requires_grad_(True)
            head = torch.nn.Linear(model.config.hidden_size, len(classes))
            groups = [{"params": list(head.parameters()), "lr": self.head_lr}]
            if enc_params:
                groups.append({"params": enc_params, "lr": self.lr})
            opt = torch.optim.AdamW(groups, weight_decay=self.weight_decay)
            model.eval()  # frozen layers: no dropout
            for layer in tuned:
                layer.train()
            rng = np.random.default_rng(self.seed)
            y_t = torch.as_tensor(y_idx, dtype=torch.long)
            w_t = torch.as_tensor(w, dtype=torch.float32)
            self.losses = []
            for _ in range(self.epochs):
                order = rng.permutation(len(texts))
                for s in range(0, len(texts), self.batch_size):
                    idx = order[s : s + self.batch_size]
                    logits = head(self._pooled(model, [texts[i] for i in idx]))
                    ce = torch.nn.functional.cross_entropy(logits, y_t[idx], reduction="none")
                    bw = w_t[idx]
                    if float(bw.sum()) <= 0:
                        continue
                    loss = (bw * ce).sum() / bw.sum()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    self.losses.append(float(loss.detach()))
            model.eval()
            self._model, self._head = model, head
            self.classes_ = classes
        finally:
            torch.set_num_threads(prev_threads)
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, n_classes)`` probabilities, columns in ``classes_`` order."""
        import torch

        self._check_fitted()
        if isinstance(texts, str):
            raise TypeError("predict_proba() takes a sequence of texts, not a single string")
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.classes_)))
        prev_threads = torch.get_num_threads()
        if self.n_threads:
            torch.set_num_threads(self.n_threads)
        try:
            out = []
            with torch.inference_mode():
                for s in range(0, len(texts), 64):
                    logits = self._head(self._pooled(self._model, texts[s : s + 64]))
                    out.append(torch.softmax(logits.double(), dim=-1).numpy())
        finally:
            torch.set_num_threads(prev_threads)
        return np.concatenate(out)
