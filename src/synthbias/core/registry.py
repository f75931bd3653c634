"""One registry for every pluggable kind of thing: backends, metric families, mitigations, tasks and
studies.

Why: adding one backend, metric family, mitigation or study used to mean editing a tuple here, a
``Literal`` there, an ``if`` chain in a dispatcher and a table of titles or orientations far from
the code it described. Now each thing is registered once, next to its code, with the facts the
rest of the toolkit needs (a metric family's orientation, the pipelines a mitigation applies to,
a study's config section and console printer), and config validation, CLI help and dispatch read
the registry. The shape follows lm-evaluation-harness's ``api/registry.py`` and inspect_ai's
registry::

    @METRIC_FAMILIES.register("toy", title="Toy metrics", default=False)
    def measure_toy(request): ...

    METRIC_FAMILIES.register("toy", measure_toy, replace=True, title="Toy metrics")  # a call
    METRIC_FAMILIES.get("toy"), METRIC_FAMILIES.meta("toy")["title"], "toy" in METRIC_FAMILIES

Each registry declares the metadata its entries carry (``fields``, with defaults): a key it does
not know is an error, so a misspelt ``needs_referense=True`` fails at registration instead of
being ignored. An unknown name is an :class:`UnknownNameError` (a ``KeyError`` and a
``ValueError``) whose message lists the registered names. Registering a taken name is refused
unless ``replace=True``; ``unregister`` is for tests.

The instances live here, at the bottom of the layers, so any layer registers into them without an
import cycle; each is filled when the module that owns its entries is imported: :data:`BACKENDS`
by :mod:`synthbias.generate`; :data:`METRIC_FAMILIES` by :mod:`synthbias.measure.api` (corpus
families), :mod:`synthbias.tasks` (task bias metrics) and :mod:`synthbias.studies.probe` (the
pronoun probe); :data:`MITIGATIONS` by :mod:`synthbias.mitigate`; :data:`TASKS` by
:mod:`synthbias.tasks`; :data:`STUDIES` by :mod:`synthbias.studies`.

Heavy code loads when it is first used, not when it is registered or named: a :class:`Lazy`
reference (``Lazy("package.module:name")``) imports its module on first use, and this is the one
place that imports the package's modules by name. An entry registered with one as its object,
or with one among its metadata values, loads on first use of its object or of such a value, and
then loads whole (all its lazy parts). So a study is registered with its config section, but its
runner, console summary and report pages import only when a run or a report needs them::

    STUDIES.register("toy", Lazy("toy.runner:run"), section="study", report=Lazy("toy.report"))
    STUDIES.meta("toy")["section"]   # imports nothing
    STUDIES.get("toy")               # imports toy.runner and toy.report
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")
F = TypeVar("F")

#: Marks a metadata field every entry must give.
REQUIRED: Any = object()


class RegistryError(ValueError):
    """A registration that clashes with an existing one, or metadata the registry does not know."""


class UnknownNameError(RegistryError, KeyError):
    """A name nobody registered; the message lists the registered names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def import_object(target: str) -> Any:
    """The object ``"package.module:name"`` names (``name`` may be dotted), or the module
    ``"package.module"``; imports the module."""
    module, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


class Lazy:
    """A reference to ``"package.module:name"`` (or a whole ``"package.module"``), imported on
    first use and then kept.

    Calling it calls the object, and reading an attribute reads the object's, so a module-level
    ``check = Lazy("synthbias.mitigate:check_strategies")`` is used like the function, and
    ``measure_api = Lazy("synthbias.measure.api")`` like the module
    (``measure_api.measure_corpus``), without importing either until then. As a registry
    entry's object or metadata value, the registry resolves it (see the module's docstring).
    """

    __slots__ = ("_loaded", "_obj", "target")

    def __init__(self, target: str) -> None:
        self.target = target
        self._obj: Any = None
        self._loaded = False

    def resolve(self) -> Any:
        """The object (imported on the first call)."""
        if not self._loaded:
            self._obj = import_object(self.target)
            self._loaded = True
        return self._obj

    @property
    def loaded(self) -> bool:
        return self._loaded

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy, pickle and the like probe dunders: no import for them
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    def __repr__(self) -> str:
        return f"Lazy({self.target!r})"


class _Metadata(Mapping[str, Any]):
    """An entry's metadata, read-only; a :class:`Lazy` value loads the entry when it is read."""

    __slots__ = ("_entry",)

    def __init__(self, entry: Entry[Any]) -> None:
        self._entry = entry

    def __getitem__(self, key: str) -> Any:
        value = self._entry.raw_meta[key]
        if isinstance(value, Lazy):
            self._entry.load()
            return value.resolve()
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._entry.raw_meta)

    def __len__(self) -> int:
        return len(self._entry.raw_meta)

    def __repr__(self) -> str:
        return repr(dict(self._entry.raw_meta))


class Entry(Generic[T]):
    """One registered thing: its name, the object, and its metadata (read-only).

    ``lazy``: ``target`` is a zero-argument loader (or a :class:`Lazy`), called on first use of
    the object. The first use of the object or of a :class:`Lazy` metadata value loads every
    lazy part of the entry (:meth:`load`).
    """

    def __init__(
        self,
        name: str,
        target: Any,
        meta: Mapping[str, Any],
        aliases: tuple[str, ...] = (),
        lazy: bool = False,
    ) -> None:
        self.name = name
        self.target = target
        self.raw_meta = dict(meta)
        self.aliases = aliases
        self.lazy = lazy
        self._loaded = False

    @property
    def meta(self) -> Mapping[str, Any]:
        return _Metadata(self)

    @property
    def obj(self) -> T:
        """The registered object; a lazy entry loads on first use, once."""
        self.load()
        return self.target

    def load(self) -> None:
        """Import every lazy part of the entry (its object, its :class:`Lazy` metadata)."""
        if self._loaded:
            return
        target = self.target
        if self.lazy:
            target = target.resolve() if isinstance(target, Lazy) else target()
        for value in self.raw_meta.values():
            if isinstance(value, Lazy):
                value.resolve()
        self.target, self._loaded = target, True

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, {self.target!r}, lazy={self.lazy})"


def _plain(name: str) -> str:
    return name


class Registry(Generic[T]):
    """Names -> objects with metadata, in registration order.

    Args:
        kind: what the entries are, for messages ("backend", "metric family").
        fields: the metadata keys an entry may carry, with their defaults (:data:`REQUIRED`:
            no default); ``None`` accepts any key.
        normalize: maps a name before it is stored or looked up (e.g. case-insensitive
            ``llama.cpp`` == ``llamacpp``); names are listed as registered.
    """

    def __init__(
        self,
        kind: str,
        fields: Mapping[str, Any] | None = None,
        normalize: Callable[[str], str] | None = None,
    ) -> None:
        self.kind = kind
        self.fields = dict(fields) if fields is not None else None
        self._key = normalize or _plain
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}  # normalised alias -> normalised name

    # ------------------------------------------------------------------ registering

    @overload
    def register(
        self,
        name: str,
        obj: None = None,
        *,
        replace: bool = False,
        aliases: tuple[str, ...] = (),
        lazy: bool = False,
        **meta: Any,
    ) -> Callable[[F], F]: ...

    @overload
    def register(
        self,
        name: str,
        obj: F,
        *,
        replace: bool = False,
        aliases: tuple[str, ...] = (),
        lazy: bool = False,
        **meta: Any,
    ) -> F: ...

    def register(
        self,
        name: str,
        obj: Any = None,
        *,
        replace: bool = False,
        aliases: tuple[str, ...] = (),
        lazy: bool = False,
        **meta: Any,
    ) -> Any:
        """Register ``obj`` under ``name`` (returns it), or, without ``obj``, a decorator that does.

        ``aliases`` are other names that find the entry; ``lazy=True``: ``obj`` is a
        zero-argument loader called on the first :meth:`get` (so a heavy module loads only
        when the entry is used); a :class:`Lazy` ``obj`` is lazy without saying so. ``meta`` is
        checked against the registry's ``fields``; a :class:`Lazy` value in it is resolved when
        it is read.
        """
        if obj is None:

            def deco(f: F) -> F:
                self.register(name, f, replace=replace, aliases=aliases, lazy=lazy, **meta)
                return f

            return deco
        meta = self._check_meta(name, meta)
        key = self._key(name)
        keys = [key, *(self._key(a) for a in aliases)]
        if len(set(keys)) != len(keys):
            raise RegistryError(f"{self.kind} {name!r}: an alias repeats a name: {aliases}")
        if not replace:
            taken = [k for k in keys if k in self._entries or k in self._aliases]
            if taken:
                raise RegistryError(
                    f"{self.kind} {name!r} is already registered (as {', '.join(taken)}); "
                    "pass replace=True to replace it"
                )
        for k in keys:  # replacing may not take a name or alias of another entry
            owner = self._aliases.get(k, k if k in self._entries else None)
            if owner is not None and owner != key:
                raise RegistryError(f"{self.kind} {k!r} is taken by {owner!r}")
        if key in self._entries:
            self.unregister(name)
        lazy = lazy or isinstance(obj, Lazy)
        self._entries[key] = Entry(name, obj, meta, tuple(aliases), lazy)
        for k in keys[1:]:
            self._aliases[k] = key
        return obj

    def _check_meta(self, name: str, meta: dict[str, Any]) -> dict[str, Any]:
        if self.fields is None:
            return dict(meta)
        unknown = sorted(set(meta) - set(self.fields))
        if unknown:
            raise RegistryError(
                f"{self.kind} {name!r}: unknown metadata {', '.join(unknown)}; "
                f"a {self.kind} has {', '.join(self.fields)}"
            )
        out = {k: meta.get(k, default) for k, default in self.fields.items()}
        missing = [k for k, v in out.items() if v is REQUIRED]
        if missing:
            raise RegistryError(f"{self.kind} {name!r}: missing metadata {', '.join(missing)}")
        return out

    def unregister(self, name: str) -> Entry[T]:
        """Remove an entry and its aliases (tests); returns it."""
        key = self._resolve(name)
        for alias in [a for a, k in self._aliases.items() if k == key]:
            del self._aliases[alias]
        return self._entries.pop(key)

    # ------------------------------------------------------------------ looking up

    def _resolve(self, name: str) -> str:
        key = self._key(name) if isinstance(name, str) else name
        key = self._aliases.get(key, key)
        if key not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        return key

    def unknown_message(self, name: Any, names: tuple[str, ...] | None = None) -> str:
        """``unknown <kind> 'x'; choose from a, b, c`` (``names``: the choices to list)."""
        choices = self.names() if names is None else names
        return f"unknown {self.kind} {name!r}; choose from {', '.join(choices) or '(none)'}"

    def entry(self, name: str) -> Entry[T]:
        return self._entries[self._resolve(name)]

    def get(self, name: str) -> T:
        """The object registered as ``name`` (or one of its aliases)."""
        return self.entry(name).obj

    def meta(self, name: str) -> Mapping[str, Any]:
        return self.entry(name).meta

    def canonical(self, name: str) -> str:
        """The registered name that ``name`` (an alias, or another spelling) finds."""
        return self.entry(name).name

    def entries(self, **where: Any) -> tuple[Entry[T], ...]:
        """Entries in registration order whose metadata matches ``where``: each value equals
        the entry's, or is a member of it when the entry's value is a collection
        (``MITIGATIONS.entries(pipelines="equilibrium")``)."""
        return tuple(e for e in self._entries.values() if _matches(e.meta, where))

    def load(self) -> None:
        """Load every lazy entry (e.g. every study's report pages, before a report of any kind
        is built)."""
        for e in self._entries.values():
            e.load()

    def names(self, **where: Any) -> tuple[str, ...]:
        """Registered names in registration order (filtered like :meth:`entries`)."""
        return tuple(e.name for e in self.entries(**where))

    def check(self, name: str, names: tuple[str, ...] | None = None) -> str:
        """``name`` if it is one of ``names`` (default: every registered name), else an
        :class:`UnknownNameError` listing them; for config validators."""
        choices = self.names() if names is None else names
        if name not in choices:
            raise UnknownNameError(self.unknown_message(name, choices))
        return name

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = self._key(name)
        return self._aliases.get(key, key) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"


def _matches(meta: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    for k, v in where.items():
        have = meta.get(k)
        if have == v:
            continue
        if isinstance(have, tuple | list | set | frozenset) and v in have:
            continue
        return False
    return True


def _backend_key(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(".", "")


#: Text generators (:mod:`synthbias.generate`): the backend class, built with keyword arguments.
#: ``indexed``: it implements ``generate_indexed`` (generates part of a call at the call's own
#: indices, so a cache or a pool of workers can split a call); ``requires``: config fields it
#: cannot run without, each with a hint; ``config_kwargs(cfg, seed)``: its constructor's
#: arguments from a ``GeneratorConfig``.
BACKENDS: Registry[Any] = Registry(
    "backend",
    fields={"description": "", "indexed": False, "requires": {}, "config_kwargs": None},
    normalize=_backend_key,
)

#: Corpus metric families (:mod:`synthbias.measure.api`) and the families measured elsewhere
#: (task bias, the pronoun probe; ``corpus=False``). The object measures a corpus
#: (``fn(request) -> {name without the family prefix: MetricResult}``). ``orientations``: metric
#: name -> which direction is towards the stereotype (:class:`synthbias.measure.names.Orientation`).
METRIC_FAMILIES: Registry[Any] = Registry(
    "metric family",
    fields={
        "title": REQUIRED,
        "corpus": True,
        "default": False,
        "needs_reference": False,
        "needs_encoder": False,
        "per_axis": True,
        "orientations": {},
    },
)

#: Mitigation strategies (:mod:`synthbias.mitigate`): the hook a pipeline calls, the pipelines
#: (``equilibrium``, ``inheritance``) it applies to, and its kind (``data``: edits a corpus;
#: ``prompt``: changes the generation prompt; ``generator``: tunes the generator; ``training``:
#: acts while a model trains on the data).
MITIGATIONS: Registry[Any] = Registry(
    "strategy",
    fields={"pipelines": REQUIRED, "kind": REQUIRED, "description": ""},
)

#: Downstream tasks (:mod:`synthbias.tasks`): the task YAML file, with facts from its spec.
TASKS: Registry[Any] = Registry(
    "task",
    fields={
        "kind": REQUIRED,
        "bias_related": False,
        "axis": None,
        "description": "",
        "primary_metric": None,
        "bias_metric": None,
    },
)

#: Studies (:mod:`synthbias.studies`): the runner (``run(config, out, progress=, resume=)``), the
#: config ``section`` it owns and the other sections it ``uses``, whether ``synthbias run`` runs
#: it (``experiment``), its console ``printer(results, console, out)`` and its ``report`` pages
#: (the module that registers them).
STUDIES: Registry[Any] = Registry(
    "experiment kind",
    fields={
        "section": None,
        "uses": (),
        "experiment": True,
        "printer": None,
        "report": None,
        "description": "",
    },
)
