"""Run folders: atomic writes, the manifest, the folder lock.

Every file a run writes goes through :func:`atomic_write` (a temp file in the same folder, then
``os.replace``), so a crash leaves the old file or none, never a truncated one. :class:`RunLock`
keeps two runs off one folder: without it the second silently resumes from the first one's
half-written files. :func:`check_output_folder` keeps one kind of run out of another's folder
(an audit written into an equilibrium run replaced its results and left a mixed folder): every
command that writes a folder calls it before any work.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import inspect
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
import yaml

try:  # POSIX; elsewhere the lock falls back to the pid check alone
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

#: Name of the lock file inside a locked run folder (removed when the run ends).
LOCK_NAME = ".synthbias.lock"

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- atomic writes


@contextlib.contextmanager
def atomic_write(path: str | Path, binary: bool = False, fsync: bool = False) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path`` for writing; on success it replaces ``path``.

    On any error the temp file is removed and ``path`` is left as it was. The file gets the
    ordinary ``0o644`` permissions (``mkstemp`` would leave it private). ``fsync`` flushes data
    to disk before the rename (for caches other processes read).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(
            fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})
        ) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        if fsync:
            fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp path beside ``path`` for writers that need a file name (pandas, GGUF writers);
    renamed onto ``path`` when the block ends without error, removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path) as fh:
        fh.write(text)


def json_default(o: Any) -> Any:
    """JSON for numpy scalars and paths; anything else is an error (no silent ``str``)."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | Path, obj: Any, default: Callable[[Any], Any] = json_default) -> None:
    """Indented JSON plus a final newline, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=default) + "\n")


def write_jsonl_rows(path: str | Path, rows: Any) -> None:
    """One JSON object per line (rows are dicts, or strings already serialised), atomically."""
    with atomic_write(path) as fh:
        for row in rows:
            fh.write(row if isinstance(row, str) else json.dumps(row, default=json_default))
            fh.write("\n")


def write_table(df: Any, path: str | Path) -> None:
    """A DataFrame as CSV or Parquet (by suffix), atomically: temp file, then rename."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)


def corpus_path(out: Path, level: float, generation: int) -> Path:
    """Where the equilibrium study keeps the corpus of one level and generation."""
    return Path(out) / "corpora" / f"level-{level:g}" / f"gen-{generation}.jsonl"


# --------------------------------------------------------------------------- folder lock


class RunLockedError(RuntimeError):
    """Another live process is running in this output folder."""


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _read_owner(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class RunLock:
    """Exclusive, re-entrant (per process) lock on a run folder.

    The lock is ``FOLDER/.synthbias.lock``, holding the owner's pid, host and start time, plus
    an ``flock`` on it where the OS has one (released by the kernel if the process dies). A
    second process is refused at once with :class:`RunLockedError`; a lock whose process is gone
    is stale and taken over. The file is removed on release (and the folder too, if the lock
    created it and nothing else was written there, so a refused run leaves no trace).
    """

    _held: dict[Path, list[Any]] = {}  # folder -> [RunLock, depth]
    _mutex = threading.Lock()

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).resolve()
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._created = False  # made the folder: remove it again if the run left it empty

    def acquire(self) -> RunLock:
        with RunLock._mutex:
            held = RunLock._held.get(self.folder)
            if held is not None:  # the same process, e.g. run_experiment -> run_equilibrium
                held[1] += 1
                return held[0]
            self._created = not self.folder.exists()
            self.folder.mkdir(parents=True, exist_ok=True)
            for _ in range(20):
                if self._try_acquire():
                    RunLock._held[self.folder] = [self, 1]
                    return self
            raise RunLockedError(f"could not lock {self.folder} (lock file keeps changing)")

    def _try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                        raise
                    self._refuse(_read_owner(self.path))
            else:  # pragma: no cover
                owner = _read_owner(self.path)
                if _pid_alive(int(owner.get("pid", -1))) and owner.get("pid") != os.getpid():
                    self._refuse(owner)
            try:  # the file we locked must still be the one at the path (not unlinked since)
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                return False
            owner = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps(owner) + "\n").encode())
        except BaseException:
            if self._fd != fd:
                with contextlib.suppress(OSError):
                    os.close(fd)
            raise
        self._fd = fd
        return True

    def _refuse(self, owner: dict[str, Any]) -> None:
        pid = owner.get("pid", "unknown")
        host = owner.get("host", "?")
        since = owner.get("started", "?")
        raise RunLockedError(
            f"output folder {self.folder} is in use by another run (pid {pid} on {host}, "
            f"since {since}); wait for it to finish or choose another --out folder"
        )

    def release(self) -> None:
        with RunLock._mutex:
            held = RunLock._held.get(self.folder)
            if held is None:
                return
            held[1] -= 1
            if held[1] > 0:
                return
            del RunLock._held[self.folder]
            lock = held[0]
            if lock._fd is not None:
                with contextlib.suppress(FileNotFoundError):
                    lock.path.unlink()  # unlink while still holding: no one can lock a dead inode
                os.close(lock._fd)
                lock._fd = None
            if lock._created:
                with contextlib.suppress(OSError):  # not empty: the run wrote something
                    lock.folder.rmdir()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def lock_run_folder(arg: str = "out") -> Callable[[F], F]:
    """Decorator: hold the :class:`RunLock` of the folder passed as argument ``arg`` while the
    function runs (the one line a study runner needs)."""

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            folder = sig.bind(*args, **kwargs).arguments.get(arg)
            if folder is None:
                return fn(*args, **kwargs)
            with RunLock(folder):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


# --------------------------------------------------------------------------- folder kind


class OutputFolderError(FileExistsError):
    """An output folder that holds another kind of run, or a path that is a file."""


def _json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; empty when it is missing, unreadable or not an object."""
    if not path.is_file():
        return {}
    return _read_owner(path)


def folder_kind(folder: str | Path) -> str | None:
    """The kind of run stored in ``folder``, or ``None`` when no synthbias run wrote there.

    Read from the manifest's ``kind``, else ``results.json`` (its ``kind``, or its config's),
    else ``audit.json`` (``audit``), else ``config.yaml`` (a run that stopped before its
    results: its ``kind``, ``equilibrium`` in configs older than the key), else an audit's
    ``measure_cache/``; ``"unknown"`` for a manifest or results without any of these.
    """
    folder = Path(folder)
    manifest = _json_object(folder / "manifest.json")
    results = _json_object(folder / "results.json")
    for kind in (manifest.get("kind"), results.get("kind"), (results.get("config") or {})):
        if isinstance(kind, dict):
            kind = kind.get("kind")
        if isinstance(kind, str) and kind:
            return kind
    if (folder / "audit.json").is_file():
        return "audit"
    config = folder / "config.yaml"
    if config.is_file():
        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            data = None
        if isinstance(data, dict):
            return str(data.get("kind") or "equilibrium")
    if (folder / "measure_cache").is_dir():
        return "audit"
    if manifest or results or (folder / "manifest.json").exists():
        return "unknown"
    return None


def _a(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def check_output_folder(folder: str | Path, kind: str, option: str = "--out") -> str | None:
    """Refuse to write a run of ``kind`` into ``folder`` when it is a file, or when it holds
    another kind of run; returns the kind found there (``None``: the folder is new, or no
    synthbias run wrote there).

    Why: without this an audit written into an equilibrium run silently replaced that run's
    results table and report and left a folder holding two runs. ``--overwrite`` does not lift
    this: it replaces an earlier run of the same kind (whose manifest decides, in the runner,
    whether a run resumes or is refused as another config's), but two kinds never share a
    folder and nothing is deleted. Raises :class:`OutputFolderError`; call it before any work,
    so a refused command wastes none.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(
            f"{option} {folder}: is a file, not a folder; give a folder (it is created if missing)"
        )
    found = folder_kind(folder) if folder.is_dir() else None
    if found is not None and found != kind:
        raise OutputFolderError(
            f"{option} {folder} holds {_a(found)} run; writing {_a(kind)} there would replace its "
            f"files and leave a folder of two runs. Choose another {option} folder (or delete "
            "this one)"
        )
    return found


# --------------------------------------------------------------------------- run store


class RunStore:
    """One run's output folder: paths inside it, atomic writes relative to it, its manifest
    (config hash and version, so a changed config never mixes with old files) and its lock."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, *parts: str | Path) -> Path:
        return self.root.joinpath(*parts)

    def lock(self) -> RunLock:
        return RunLock(self.root)

    def _put(self, rel: str | Path, write: Callable[[Path, Any], None], data: Any) -> Path:
        p = self.path(rel)
        write(p, data)
        return p

    def write_text(self, rel: str | Path, text: str) -> Path:
        return self._put(rel, atomic_write_text, text)

    def write_json(self, rel: str | Path, obj: Any) -> Path:
        return self._put(rel, write_json, obj)

    def write_jsonl(self, rel: str | Path, rows: Any) -> Path:
        return self._put(rel, write_jsonl_rows, rows)

    def write_table(self, rel: str | Path, df: Any) -> Path:
        return self._put(rel, lambda p, d: write_table(d, p), df)

    def read_json(self, rel: str | Path) -> Any:
        """The JSON file at ``rel``, or ``None`` when it does not exist."""
        p = self.path(rel)
        return json.loads(p.read_text()) if p.exists() else None

    def check_manifest(
        self,
        config_hash: str,
        version: str,
        resume: bool,
        config_yaml: str | None = None,
        reuse_key: str | None = None,
        kind: str | None = None,
        what: str = "config",
    ) -> None:
        """Refuse to resume a folder holding another config's run; then (re)write the
        manifest and, if given, ``config.yaml``.

        ``reuse_key`` hashes the parts of the config that the stored files depend on: a config
        that differs elsewhere (more generations, another CI level) resumes and re-runs only
        the steps whose inputs changed. ``kind`` is recorded in the manifest (see
        :func:`folder_kind`); ``what`` names what ``config_hash`` hashes, in the message.
        """
        old = self.read_json("manifest.json")
        reusable = reuse_key is not None and old is not None and old.get("reuse_key") == reuse_key
        if old is not None and old.get("config_hash") != config_hash and resume and not reusable:
            raise FileExistsError(
                f"{self.root} holds a run of a different {what} (hash {old.get('config_hash')} "
                f"!= {config_hash}); choose another --out folder or pass --overwrite"
            )
        manifest: dict[str, Any] = {"kind": kind} if kind else {}
        manifest |= {"config_hash": config_hash, "synthbias": version, "created": time.time()}
        self.write_json("manifest.json", manifest | ({"reuse_key": reuse_key} if reuse_key else {}))
        if config_yaml is not None:
            self.write_text("config.yaml", config_yaml)
