"""A cache of validated configs, so a run of a large config does not parse and validate the
same YAML again (1,000 sources: about 0.4 s of YAML, checks and pydantic per start).

One file per config file, under `$XDG_CACHE_HOME/kpi-collector/` (default
`~/.cache/kpi-collector/`), readable by its owner only. It is used only when everything the
validated config depends on is the same as when it was written:

- the config file's bytes (SHA-256) and its absolute path, the current folder, and the
  loader's options (`need_secrets`, `need_store`, `only`, `need_destinations`);
- each variable the config names (`${VAR}`, from the environment or `.env`): only a salted
  hash of its value is kept, never the value;
- this package's code (installed from a wheel: its distribution's `RECORD`, which every
  install writes again; else the size and time of each of its files), Python's version and
  the installed distributions (the names of `*.dist-info` folders carry their versions), so
  an upgraded plugin or library rebuilds it;
- the text of each module that defines a plugin's model the config holds (a plugin in a
  checkout, installed editable, changes with no installer writing anything).

No secret is ever written in clear: a string holding a variable's value is written as a
template naming the variable (`Bearer ${API_TOKEN}`) and filled from the environment when
read; the values validation marked secret are kept the same way and marked again when the
config is read from the cache (so they are still redacted). A config whose validation
marked a secret written in the file itself (not from a variable), or that holds a
variable's value anywhere but in a plain string, is not cached; nor while plugins
registered in the process (tests) are in play. A file that cannot be read, is corrupt or
does not match is rebuilt. `KPI_CONFIG_CACHE=0` turns the cache off.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from kpi_collector.config.plain import Config, Plain, restore

_MAGIC = b"kpi-collector config cache 3\n"
_SALT = 16
_DIGEST = 32  # SHA-256


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/kpi-collector`, else `~/.cache/kpi-collector`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kpi-collector"


def enabled() -> bool:
    """False when `KPI_CONFIG_CACHE=0` (or `false`, `no`, `off`)."""
    return os.environ.get("KPI_CONFIG_CACHE", "1").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    )


def cached_config(
    path: Path,
    raw: bytes,
    *,
    variables: Mapping[str, str | None],
    options: tuple[object, ...],
    build: Callable[[], Config],
) -> Config:
    """The validated config of file `path` (content `raw`): from the cache when it matches,
    else `build()`, whose result is cached when it is safe to (see the module's docstring).

    `variables` maps each variable the config names to its value (None: unset); `options`
    is (need_secrets, need_store). Errors of `build` propagate; a cache that cannot be read
    or written is passed over."""
    from kpi_collector.config import plugins

    if not enabled() or plugins.has_extra():
        return build()
    file = cache_dir() / f"config-{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]}"
    found = _read(file, path, raw, variables, options)
    if found is not None:
        return found
    from kpi_collector import secrets

    outer = getattr(secrets.recording, "values", None)
    marked: list[str] = []
    secrets.recording.values = marked
    try:
        config = build()
    finally:
        secrets.recording.values = outer
    if outer is not None:
        outer.extend(marked)
    _write(file, config, marked, path, raw, variables, options)
    return config


def _key(
    salt: bytes,
    path: Path,
    raw: bytes,
    variables: Mapping[str, str | None],
    options: tuple[object, ...],
) -> bytes:
    digest = hashlib.sha256(salt)
    for part in (
        _MAGIC,
        str(path.resolve()).encode(),
        os.getcwd().encode(),
        repr(options).encode(),
        hashlib.sha256(raw).digest(),
        sys.version.encode(),
        _code_fingerprint(),
    ):
        digest.update(len(part).to_bytes(8, "big") + part)
    for name in sorted(variables):
        value = variables[name]
        seen = b"\0unset" if value is None else hashlib.sha256(salt + value.encode()).digest()
        digest.update(f"{len(name)}:{name}=".encode() + seen)
    return digest.digest()


_FINGERPRINT: bytes | None = None


def _code_fingerprint() -> bytes:
    """This package's code and the installed distributions (the `*.dist-info` /
    `*.egg-info` names on `sys.path`, which carry their versions).

    The package's code is its installed distribution's `RECORD` (size and time: every
    install or upgrade writes it again) when it was installed from a wheel, where only an
    installer changes its files; otherwise (an editable install, a source checkout) the
    name, size and time of each of its files."""
    global _FINGERPRINT
    if _FINGERPRINT is not None:
        return _FINGERPRINT
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    record = _installed_record(package)
    if record is not None:
        stat = os.stat(record)
        digest.update(f"{record}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    else:
        _digest_files(digest, str(package))
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info", ".egg-link", ".pth")):
                digest.update(f"{entry}/{name}\n".encode())
    _FINGERPRINT = digest.digest()
    return _FINGERPRINT


def _installed_record(package: Path) -> Path | None:
    """The `RECORD` of the wheel-installed distribution `package` came from: one beside it
    that lists the package's own files (an editable install's lists none of them)."""
    try:
        found = [
            entry.path
            for entry in os.scandir(package.parent)
            if entry.name.startswith(f"{package.name}-") and entry.name.endswith(".dist-info")
        ]
    except OSError:
        return None
    if len(found) != 1:
        return None
    record = Path(found[0]) / "RECORD"
    try:
        with record.open(encoding="utf-8") as lines:
            if any(line.startswith(f"{package.name}/__init__.py,") for line in lines):
                return record
    except OSError:
        pass
    return None


def _digest_files(digest: Any, folder: str) -> None:
    """Name, size and time of each `.py` / `.json` file under `folder`, in a stable order."""
    with os.scandir(folder) as found:
        entries = sorted(found, key=lambda entry: entry.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name != "__pycache__":
                _digest_files(digest, entry.path)
        elif entry.name.endswith((".py", ".json")):
            stat = entry.stat()
            digest.update(f"{entry.path}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())


def _read(
    file: Path,
    path: Path,
    raw: bytes,
    variables: Mapping[str, str | None],
    options: tuple[object, ...],
) -> Config | None:
    try:
        data = file.read_bytes()
    except OSError:
        return None
    head = len(_MAGIC)
    if not data.startswith(_MAGIC) or len(data) < head + _SALT + 2 * _DIGEST:
        return None
    salt = data[head : head + _SALT]
    key = data[head + _SALT : head + _SALT + _DIGEST]
    check = data[head + _SALT + _DIGEST : head + _SALT + 2 * _DIGEST]
    start = head + _SALT + 2 * _DIGEST
    if key != _key(salt, path, raw, variables, options):
        return None
    # the payload read in place (a copy of it would be tens of MB for 50,000 sources)
    if hashlib.sha256(memoryview(data)[start:]).digest() != check:  # a torn or damaged file
        return None
    values = {name: value for name, value in variables.items() if value}
    try:
        stream = io.BytesIO(data)  # shares `data`'s buffer until written to
        stream.seek(start)
        unpickler = _Unpickler(stream, values)
        config, marked = unpickler.load()
        modules = unpickler.load()
        if not isinstance(config, Config) or _modules_text(modules) != modules:
            return None  # a plugin's module changed since (its own model may have)
    except Exception:  # written by other code, or a variable it names is gone: rebuilt
        return None
    from kpi_collector.secrets import remember

    for template in marked:  # what validating it marked secret, marked again
        remember(_fill(template, values))
    return config


def _write(
    file: Path,
    config: Config,
    marked: list[str],
    path: Path,
    raw: bytes,
    variables: Mapping[str, str | None],
    options: tuple[object, ...],
) -> None:
    values = {name: value for name, value in variables.items() if value}
    # each value marked secret, as text of the file and variables' names: one that is not
    # built from a variable was written in the file itself, and is never cached
    templates = [_template(value, values) for value in dict.fromkeys(marked)]
    if any(all(isinstance(part, str) for part in t) for t in templates):
        return
    buffer = io.BytesIO()
    try:
        pickler = _Pickler(buffer, values)
        pickler.dump((config, templates))
        pickler.dump(_modules_text(dict.fromkeys(pickler.modules, "")))
    except Exception:  # something in it cannot be pickled: not cached
        return
    payload = buffer.getvalue()
    if any(value.encode() in payload for value in values.values()):
        return  # a variable's value outside a plain string (transformed, in bytes): not cached
    salt = os.urandom(_SALT)
    data = (
        _MAGIC
        + salt
        + _key(salt, path, raw, variables, options)
        + hashlib.sha256(payload).digest()
        + payload
    )
    partial = file.with_name(f"{file.name}.{os.getpid()}.tmp")
    try:
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
        os.replace(partial, file)
    except OSError:  # a read-only home: no cache
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)


Template = tuple[str | tuple[str], ...]  # text, and (name,) where a variable's value goes


def _template(text: str, values: Mapping[str, str]) -> Template:
    """`text` as literal parts and `(name,)` where a variable's value stands (the longest
    value first where they overlap)."""
    parts: list[str | tuple[str]] = []
    ordered = sorted(values.items(), key=lambda item: -len(item[1]))
    rest = text
    while rest:
        hits = [(rest.find(value), -len(value), name) for name, value in ordered if value in rest]
        if not hits:
            parts.append(rest)
            break
        at, minus_length, name = min(hits)
        if at:
            parts.append(rest[:at])
        parts.append((name,))
        rest = rest[at - minus_length :]
    return tuple(parts)


#: class -> how `_Pickler` stores its objects (`_stored_as`), worked out once per class
_STORED_AS: dict[type, type[int] | tuple[type[Plain], str] | None] = {}


#: class -> whether it is a model from outside this package (`_third_party_model`)
_MODEL_OF: dict[type, bool] = {}


def _third_party_model(cls: type) -> bool:
    """Whether `cls` is a pydantic model defined outside this package: a plugin's, whose
    module's text the cache checks (`_modules_text`)."""
    from pydantic import BaseModel

    return issubclass(cls, BaseModel) and not cls.__module__.startswith("kpi_collector.")


def _stored_as(cls: type) -> type[int] | tuple[type[Plain], str] | None:
    """How an object of class `cls` is cached: `int` for pydantic's `ByteSize`; for a model
    whose first base is a `Plain` class and no model, that plain class and the model's
    "module:qualname"; else None, pickled as it is (a model's subclass, a third-party type,
    and models with private attributes, which the plain class would not carry)."""
    from pydantic import BaseModel, ByteSize

    if cls is ByteSize:
        return int
    if not issubclass(cls, BaseModel) or not cls.__bases__:
        return None
    first = cls.__bases__[0]
    if not issubclass(first, Plain) or issubclass(first, BaseModel):
        return None
    if cls.__private_attributes__:
        return None
    return first, f"{cls.__module__}:{cls.__qualname__}"


def _modules_text(modules: Mapping[str, str]) -> dict[str, str]:
    """{module name: SHA-256 of its file as it is now} for each of `modules` (its name:
    what the cache wrote), "" for one without a file."""
    found = {}
    for name in modules:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        try:
            with open(file, "rb") as source:  # type: ignore[arg-type]
                found[name] = hashlib.sha256(source.read()).hexdigest()
        except (OSError, TypeError):
            found[name] = ""
    return found


def _fill(template: Template, values: Mapping[str, str]) -> str:
    return "".join(part if isinstance(part, str) else values[part[0]] for part in template)


class _Pickler(pickle.Pickler):
    """Writes every string holding a variable's value as a template naming the variable,
    so no value a variable gave is written; and a model whose first base is a plain class
    (`class HTML(PlainHTML, HttpSource)`, see `config.plain`) as that plain class with the
    same fields, which reading the cache then needs neither pydantic nor the model for."""

    def __init__(self, file: io.BytesIO, values: Mapping[str, str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.values = values
        #: the modules of the models pickled as themselves, not this package's (a plugin's)
        self.modules: set[str] = set()

    def reducer_override(self, obj: object) -> Any:
        cls = type(obj)
        if cls not in _STORED_AS:
            _STORED_AS[cls] = _stored_as(cls)
        stored = _STORED_AS[cls]
        if stored is not int:
            if _MODEL_OF.get(cls) is None:
                _MODEL_OF[cls] = _third_party_model(cls)
            if _MODEL_OF[cls]:  # its plain class too, when it has one, is in that module
                self.modules.add(cls.__module__)
        if stored is None:
            return NotImplemented
        if not isinstance(stored, tuple):  # pydantic's ByteSize (`max_bytes: 50MiB`): an int
            return int, (int(obj),)  # type: ignore[call-overload]
        plain, model = stored
        given = obj.model_fields_set  # type: ignore[attr-defined]
        unset = tuple(name for name in obj.__dict__ if name not in given)
        return restore, (plain, dict(obj.__dict__), model, unset)

    def persistent_id(self, obj: object) -> object:
        if type(obj) is str and obj and any(value in obj for value in self.values.values()):
            return ("variables", _template(obj, self.values))
        return None


class _Unpickler(pickle.Unpickler):
    """Fills the templates `_Pickler` wrote with the variables' values of this process (the
    cache key checked that they are the ones the config was built with)."""

    def __init__(self, file: io.BytesIO, values: Mapping[str, str]) -> None:
        super().__init__(file)
        self.values = values

    def persistent_load(self, pid: object) -> object:
        if not (isinstance(pid, tuple) and len(pid) == 2 and pid[0] == "variables"):
            raise pickle.UnpicklingError("not a template")
        return _fill(pid[1], self.values)
