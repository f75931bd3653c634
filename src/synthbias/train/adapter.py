"""Use a fine-tuned LoRA adapter through the backend protocol, on either runtime.

Why two routes: the HF backend merges the peft adapter into float32 weights (exact, and it
handles adapters that added tokens), while llama.cpp runs the adapter on top of the quantised
GGUF base at nearly base speed, which is what the generation loops of a study use. For llama.cpp
the adapter is written as a GGUF LoRA file in the format of llama.cpp's ``convert_lora_to_gguf.py``:

* metadata ``general.architecture`` (the base's), ``general.type = "adapter"``,
  ``adapter.type = "lora"``, ``adapter.lora.alpha``;
* per adapted weight, ``<base GGUF tensor name>.lora_a`` (peft ``lora_A``, shape ``r x in``,
  i.e. ggml ``ne = [in, r]``) and ``.lora_b`` (peft ``lora_B``, ``out x r``, ``ne = [r, out]``),
  which is what llama.cpp checks against the base tensor (``ne = [in, out]``);
* names mapped from the HF module names with ``gguf.TensorNameMap``;
* for llama-architecture models, the rows of ``lora_b`` of ``q_proj``/``k_proj`` permuted the
  way ``convert_hf_to_gguf.py`` permutes the base's q/k weights (rotary layout), since the GGUF
  holds those weights permuted while the HF checkpoint we trained on does not.

llama.cpp scales the update by ``lora_scale * alpha / r``, peft by ``alpha / r``: the same at
scale 1. Adapters that added tokens cannot be exported (llama.cpp cannot grow the vocabulary
through a LoRA); use the HF backend for those.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from synthbias.core.store import atomic_path
from synthbias.generate import load_backend
from synthbias.generate.llamacpp import widen_model
from synthbias.generate.models import default_model_path, model_fingerprint
from synthbias.generate.split import SplitBackend
from synthbias.train.config import EvalWeights
from synthbias.train.sft import read_train_meta

#: Architectures whose q/k weights convert_hf_to_gguf.py permutes (LlamaModel.permute).
_PERMUTE_QK = {"llama"}
#: Name of the GGUF export kept inside an adapter folder by :func:`load_finetuned`.
GGUF_EXPORT_NAME = "adapter-lora.gguf"


_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q"}
_SCALAR.update({11: "<q", 12: "<d"})
_STRING, _ARRAY = 8, 9


@dataclass
class GGUFHeader:
    """Scalar metadata and tensor table of a GGUF file (arrays are skipped, not decoded).

    ``tensors[name] = (ne, ggml type, absolute byte offset of the data)``; ``ne`` is ggml's
    dimension order (fastest-varying first), i.e. reversed from numpy/PyTorch.
    """

    kv: dict[str, Any]
    tensors: dict[str, tuple[tuple[int, ...], int, int]]


def read_gguf_header(path: str | os.PathLike[str]) -> GGUFHeader:
    """Parse a GGUF header without decoding its vocabulary.

    ``gguf.GGUFReader`` builds numpy views of every vocabulary string (about 9 s for SmolLM2's
    49k tokens on 2 cores); we only need a few scalars and the tensor table.
    """
    with open(path, "rb") as fh:
        f = io.BufferedReader(fh, buffer_size=1 << 20)  # type: ignore[arg-type]

        def unpack(fmt: str) -> Any:
            size = struct.calcsize(fmt)
            return struct.unpack(fmt, f.read(size))[0]

        def string() -> str:
            return f.read(unpack("<Q")).decode("utf-8", errors="replace")

        def value(vtype: int) -> Any:
            if vtype == _STRING:
                return string()
            if vtype == _ARRAY:
                etype, count = unpack("<I"), unpack("<Q")
                if etype in _SCALAR:
                    f.read(struct.calcsize(_SCALAR[etype]) * count)
                else:
                    for _ in range(count):
                        value(etype)
                return None
            if vtype not in _SCALAR:
                raise ValueError(f"{path}: unknown GGUF value type {vtype}")
            return unpack(_SCALAR[vtype])

        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        version = unpack("<I")
        if version < 2:
            raise ValueError(f"{path}: GGUF version {version} is not supported")
        n_tensors, n_kv = unpack("<Q"), unpack("<Q")
        kv: dict[str, Any] = {}
        for _ in range(n_kv):
            key = string()
            kv[key] = value(unpack("<I"))
        infos = []
        for _ in range(n_tensors):
            name = string()
            n_dims = unpack("<I")
            ne = tuple(unpack("<Q") for _ in range(n_dims))
            infos.append((name, ne, unpack("<I"), unpack("<Q")))
        align = int(kv.get("general.alignment") or 32)
        pos = f.tell()
        start = (pos + align - 1) // align * align
    return GGUFHeader(kv, {n: (ne, t, start + off) for n, ne, t, off in infos})


def _permute_rows(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """convert_hf_to_gguf.py's ``LlamaModel.permute`` on the output rows of ``w``."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _base_gguf_for(adapter_dir: Path, base_gguf: str | os.PathLike[str] | None) -> Path:
    if base_gguf is not None:
        return Path(base_gguf).expanduser()
    recorded = read_train_meta(adapter_dir).get("base_model")
    if recorded and str(recorded).endswith(".gguf") and Path(recorded).is_file():
        return Path(recorded)
    return default_model_path()


def export_gguf_lora(
    adapter_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    base_gguf: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the peft adapter in ``adapter_dir`` as a GGUF LoRA for llama.cpp; return its path.

    ``base_gguf`` is the GGUF the adapter will run on (default: the base recorded at training
    when it was a GGUF, else the embedded model); tensor names and shapes are checked against it.
    The file is written under a temporary name and renamed into place.
    """
    import gguf

    adir = Path(adapter_dir).expanduser()
    lora = gguf_lora_tensors(adir, base_gguf)
    out = Path(out_path).expanduser()
    with atomic_path(out) as tmp:
        writer = gguf.GGUFWriter(str(tmp), lora.arch)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, lora.alpha)
        writer.add_name(f"{adir.name} (LoRA)")
        for name, a, b in lora.tensors:
            writer.add_tensor(name + ".lora_a", a)
            writer.add_tensor(name + ".lora_b", b)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return out


@dataclass
class GGUFLoRA:
    """A peft LoRA mapped onto a GGUF base: ``(base tensor name, A (r x in), B (out x r))``.

    B's rows are already permuted like the base's q/k weights; the update of a weight is
    ``alpha / r * B @ A`` (numpy shape ``(out, in)``, the GGUF tensor's row-major layout).
    """

    base: Path
    arch: str
    alpha: float
    tensors: list[tuple[str, np.ndarray, np.ndarray]]


def gguf_lora_tensors(
    adapter_dir: str | os.PathLike[str], base_gguf: str | os.PathLike[str] | None = None
) -> GGUFLoRA:
    """The adapter's A/B matrices under the base GGUF's tensor names, checked against it."""
    import gguf
    from safetensors.numpy import load_file

    adir = Path(adapter_dir).expanduser()
    cfg_file = adir / "adapter_config.json"
    weights_file = adir / "adapter_model.safetensors"
    if not cfg_file.is_file() or not weights_file.is_file():
        raise FileNotFoundError(f"{adir} has no adapter_config.json/adapter_model.safetensors")
    cfg = json.loads(cfg_file.read_text())
    meta = read_train_meta(adir)
    if cfg.get("peft_type", "LORA") != "LORA":
        raise ValueError(f"only LoRA adapters can be exported, not {cfg.get('peft_type')}")
    if meta.get("added_tokens") or cfg.get("trainable_token_indices") or cfg.get("modules_to_save"):
        raise ValueError(
            f"adapter {adir} added tokens or trains whole modules; llama.cpp LoRA cannot change "
            "the vocabulary or embeddings. Load it with the HF backend instead "
            "(load_finetuned(adapter_dir, backend='hf'))."
        )
    for key in ("use_dora", "use_rslora"):
        if cfg.get(key):
            raise ValueError(f"adapters with {key}=true are not supported by this export")
    if cfg.get("rank_pattern") or cfg.get("alpha_pattern"):
        raise ValueError("adapters with per-module rank_pattern/alpha_pattern are not supported")

    base = _base_gguf_for(adir, base_gguf)
    if not base.is_file():
        raise FileNotFoundError(f"base GGUF not found: {base}")
    recorded_base = meta.get("base_model")
    if recorded_base and str(recorded_base).endswith(".gguf"):
        if meta.get("base_fingerprint") not in (None, model_fingerprint(base)):
            raise ValueError(
                f"adapter {adir} was trained on {meta['base_fingerprint']}, not {base.name}"
            )
    header = read_gguf_header(base)
    arch = str(header.kv.get("general.architecture"))
    if arch not in _PERMUTE_QK:
        raise NotImplementedError(
            f"GGUF LoRA export supports the llama architecture, not {arch!r}; use the HF backend"
        )
    n_head = int(header.kv[f"{arch}.attention.head_count"])
    n_head_kv = int(header.kv.get(f"{arch}.attention.head_count_kv") or n_head)
    n_blocks = int(header.kv[f"{arch}.block_count"])
    arch_enum = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch]
    names = gguf.TensorNameMap(arch_enum, n_blocks)
    base_shapes = {name: info[0] for name, info in header.tensors.items()}

    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in load_file(str(weights_file)).items():
        module = key.removeprefix("base_model.model.")
        for part in ("lora_A", "lora_B"):
            suffix = f".{part}.weight"
            if module.endswith(suffix):
                pairs.setdefault(module[: -len(suffix)], {})[part] = value
                break
        else:
            raise ValueError(f"unexpected tensor {key!r} in the adapter (only LoRA A/B supported)")

    tensors: list[tuple[str, np.ndarray, np.ndarray]] = []
    for module in sorted(pairs):
        ab = pairs[module]
        if set(ab) != {"lora_A", "lora_B"}:
            raise ValueError(f"{module}: adapter has only {sorted(ab)}")
        a = np.ascontiguousarray(ab["lora_A"], dtype=np.float32)  # (r, in)
        b = np.ascontiguousarray(ab["lora_B"], dtype=np.float32)  # (out, r)
        name = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if name is None or name not in base_shapes:
            raise ValueError(f"{module}: no matching tensor in {base.name} (mapped to {name!r})")
        if module.endswith("q_proj"):
            b = _permute_rows(b, n_head, n_head)
        elif module.endswith("k_proj"):
            b = _permute_rows(b, n_head, n_head_kv)
        ne = base_shapes[name]
        if a.shape[0] != b.shape[1] or ne[:2] != (a.shape[1], b.shape[0]):
            raise ValueError(
                f"{module}: LoRA shapes A{a.shape} B{b.shape} do not fit {name} (ne={ne})"
            )
        tensors.append((name, a, np.ascontiguousarray(b)))
    return GGUFLoRA(base, arch, float(cfg["lora_alpha"]), tensors)


#: Name of the merged f32 model kept inside an adapter folder (:func:`merged_gguf`).
MERGED_NAME = "merged-f32.gguf"
_GGML_F32 = 0


def merged_gguf(
    adapter_dir: str | os.PathLike[str], base_gguf: str | os.PathLike[str] | None = None
) -> Path:
    """The base's f32 copy with the adapter merged in (``W + alpha/r * B @ A``), kept in the folder.

    Why: llama.cpp applies a LoRA at run time as extra graph nodes in every layer (two small
    matmuls, a scale and an add per adapted weight), each a thread barrier; on 2 cores that cost
    1.3x CPU and up to 1.7x wall time in option scoring (bench/evaluation.py). Merged once per
    adapter (copy of the 540 MB f32 file, a few seconds), the adapter runs at the base's speed.
    The f32 base is :func:`~synthbias.generate.llamacpp.widen_model` of the adapter's GGUF
    base, so the weights are the same numbers as the LoRA path's; scores differ from it only by
    float32 rounding of the merged sum. Rewritten when missing or older than the adapter.
    """
    adir = Path(adapter_dir).expanduser()
    target = adir / MERGED_NAME
    weights = adir / "adapter_model.safetensors"
    if base_gguf is None and target.is_file() and target.stat().st_mtime >= weights.stat().st_mtime:
        return target
    lora = gguf_lora_tensors(adir, base_gguf)
    wide = widen_model(lora.base, "f32")
    header = read_gguf_header(wide)
    with atomic_path(target) as tmp:
        shutil.copyfile(wide, tmp)
        with open(tmp, "r+b") as fh:
            for name, a, b in lora.tensors:
                ne, gtype, offset = header.tensors[name]
                if gtype != _GGML_F32:
                    raise ValueError(f"{wide.name}: {name} is not f32 (ggml type {gtype})")
                w = np.memmap(fh, dtype=np.float32, mode="r+", offset=offset, shape=(ne[1], ne[0]))
                w += np.float32(lora.alpha / a.shape[0]) * (b @ a)
                w.flush()
                del w
    return target


def gguf_export(
    adapter_dir: str | os.PathLike[str], base_gguf: str | os.PathLike[str] | None = None
) -> Path:
    """The adapter's GGUF export kept in its folder, (re)written when missing or stale."""
    adir = Path(adapter_dir).expanduser()
    target = adir / GGUF_EXPORT_NAME
    weights = adir / "adapter_model.safetensors"
    if base_gguf is None and target.is_file() and target.stat().st_mtime >= weights.stat().st_mtime:
        return target
    return export_gguf_lora(adir, target, base_gguf)


def load_eval_llamacpp(
    adapter_dir: str | os.PathLike[str] | None,
    weights: EvalWeights,
    model_path: str | os.PathLike[str] | None = None,
    **kw: Any,
) -> Any:
    """The llama.cpp evaluation model of a study: the base (``adapter_dir`` None) or a tuned one.

    ``f32-merged`` runs the f32 copy with the adapter merged into the weights once
    (:func:`merged_gguf`) and a float32 KV cache, for the base too, so every model of a run is
    scored by the same arithmetic: scores equal transformers fp32 within 1e-4 nats, and no LoRA
    nodes run per token. Other values keep a run-time GGUF LoRA on those weights (f16 KV cache).
    """
    merged = weights == "f32-merged"
    settings: dict[str, Any] = {"kv_type": "f32"} if merged else {}
    if adapter_dir is None:
        base_weights = "f32" if merged else weights
        return load_backend(
            "llamacpp", model_path=model_path, weights=base_weights, **settings, **kw
        )
    if model_path:
        settings["model_path"] = model_path
    settings |= {"merge": True} if merged else {"weights": weights}
    return load_finetuned(adapter_dir, "llamacpp", **settings, **kw)


#: Why ``eval_backend: auto`` splits the work on a CPU (recorded with each evaluation).
AUTO_WHY = (
    "CPU: option and pair scoring on transformers fp32 (the harness recipe, float32 KV, each "
    "shared prefix fed once: exact and fastest here); greedy generation there too (mostly "
    "prompt prefill, fed as a prefix tree, ~1.6x llama.cpp's f32 rate); sampled generation on "
    "llama.cpp (faster decoding steps and sampler), same weights (bench/evaluation.py)"
)
#: Cache key of an ``auto`` evaluation: names the routing, so results stored under an earlier
#: one (greedy generation on llama.cpp) are not reused.
AUTO_KEY = "auto-greedy-hf"


def load_eval_model(
    adapter_dir: str | os.PathLike[str] | None,
    backend: str,
    weights: EvalWeights,
    model_path: str | os.PathLike[str] | None = None,
    **kw: Any,
) -> Any:
    """The evaluation model of a study: ``hf``, ``llamacpp`` or ``auto`` (the default).

    ``auto`` picks the fastest exact path for the machine: with CUDA, transformers for
    everything; on a CPU a :class:`~synthbias.generate.split.SplitBackend` that scores on
    transformers fp32 (adapter merged), generates greedily there too, and samples on llama.cpp
    with ``weights`` (``native`` becomes ``f32``: the numbers the scorer runs), loaded only when
    a task samples. ``kw`` (``n_ctx``, ``batch_size``) go to llama.cpp.
    """
    hf_kw = {"model_path": model_path} if model_path else {}
    if backend == "hf":
        if adapter_dir is None:
            return load_backend("hf", **hf_kw)
        return load_finetuned(adapter_dir, "hf", **hf_kw)
    if backend == "llamacpp":
        return load_eval_llamacpp(adapter_dir, weights, model_path, **kw)
    if backend != "auto":
        raise ValueError(f"eval_backend must be auto, hf or llamacpp, got {backend!r}")
    import torch

    if torch.cuda.is_available():
        return load_eval_model(adapter_dir, "hf", weights, model_path)
    scorer = load_eval_model(adapter_dir, "hf", weights, model_path)
    gen_weights: EvalWeights = "f32" if weights == "native" else weights
    return SplitBackend(
        scorer,
        lambda: load_eval_llamacpp(adapter_dir, gen_weights, model_path, **kw),
        generator_name=f"llama.cpp[{gen_weights}]",
        why=AUTO_WHY,
        greedy_on_scorer=True,
    )


def load_finetuned(
    adapter_dir: str | os.PathLike[str],
    backend: Literal["hf", "llamacpp"] = "hf",
    **kw: Any,
) -> Any:
    """A backend (``generate``/``logprobs``) running the base model with the adapter applied.

    The base is ``kw["model_path"]`` when given, else the one recorded at training (a GGUF base
    for llama.cpp is the recorded GGUF or the embedded model). ``"hf"`` merges the adapter into
    the float32 weights; ``"llamacpp"`` exports it once to ``adapter-lora.gguf`` in the adapter
    folder and runs it on the quantised GGUF (``lora_scale`` may be passed); with
    ``merge=True`` it runs :func:`merged_gguf` instead (the f32 base with the adapter merged in,
    no LoRA at run time: faster, same scores to float32 rounding). Other keyword arguments go to
    the backend's constructor.
    """

    adir = Path(adapter_dir).expanduser()
    if not (adir / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adir} is not a LoRA adapter folder (no adapter_config.json)")
    meta = read_train_meta(adir)
    key = backend.lower().replace("-", "").replace("_", "").replace(".", "")
    if key in ("hf", "transformers"):
        if "model_path" not in kw and meta.get("base_model"):
            kw["model_path"] = meta["base_model"]
        return load_backend("hf", adapter_path=adir, **kw)
    if key == "llamacpp":
        explicit = kw.pop("model_path", None)
        if kw.pop("merge", False):
            if kw.pop("weights", "f32") not in ("f32", "native") or "lora_scale" in kw:
                raise ValueError("merge=True runs the merged f32 model: no weights/lora_scale")
            return load_backend("llamacpp", model_path=merged_gguf(adir, explicit), **kw)
        base = _base_gguf_for(adir, explicit)
        lora = gguf_export(adir, explicit)
        return load_backend("llamacpp", model_path=base, lora_path=lora, **kw)
    raise ValueError(f"unknown backend {backend!r}; choose 'hf' or 'llamacpp'")
