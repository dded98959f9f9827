"""A cache of validated configs, so a run of a large config does not parse and validate the
same YAML again (1,000 sources: about 0.4 s of YAML, checks and pydantic per start).

One file per config file, under `$XDG_CACHE_HOME/kpi-collector/` (default
`~/.cache/kpi-collector/`), readable by its owner only. It is used only when everything the
validated config depends on is the same as when it was written:

- the config file's bytes (SHA-256) and its absolute path, the current folder, and the
  loader's options (`need_secrets`, `need_store`);
- each variable the config names (`${VAR}`, from the environment or `.env`): only a salted
  hash of its value is kept, never the value;
- this package's code (the size and time of each of its files), Python's version and the
  installed distributions (the names of `*.dist-info` folders carry their versions), so an
  upgraded plugin or library rebuilds it.

Never written: a config whose validation marked a value as secret (a token, a password, a
database URL's password) or that holds a value a variable gave, so the cache never keeps a
secret in clear; nor while plugins registered in the process (tests) are in play. A file
that cannot be read, is corrupt or does not match is rebuilt. `KPI_CONFIG_CACHE=0` turns the
cache off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kpi_collector.config.models import Config

_MAGIC = b"kpi-collector config cache 1\n"
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
    options: tuple[bool, bool],
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

    before = secrets.remembered
    config = build()
    if secrets.remembered != before:  # a secret was found while validating: never cached
        return config
    _write(file, config, path, raw, variables, options)
    return config


def _key(
    salt: bytes,
    path: Path,
    raw: bytes,
    variables: Mapping[str, str | None],
    options: tuple[bool, bool],
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
    """This package's files (name, size, modification time) and the installed distributions
    (the `*.dist-info` / `*.egg-info` names on `sys.path`, which carry their versions)."""
    global _FINGERPRINT
    if _FINGERPRINT is not None:
        return _FINGERPRINT
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for folder, _, files in sorted(os.walk(package)):
        for name in sorted(files):
            if name.endswith((".py", ".json")):
                stat = os.stat(os.path.join(folder, name))
                digest.update(f"{folder}/{name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
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


def _read(
    file: Path,
    path: Path,
    raw: bytes,
    variables: Mapping[str, str | None],
    options: tuple[bool, bool],
) -> Config | None:
    from kpi_collector.config.models import Config

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
    payload = data[head + _SALT + 2 * _DIGEST :]
    if key != _key(salt, path, raw, variables, options):
        return None
    if hashlib.sha256(payload).digest() != check:  # a torn or damaged file
        return None
    try:
        config = pickle.loads(payload)
    except Exception:  # written by other code: rebuilt
        return None
    return config if isinstance(config, Config) else None


def _write(
    file: Path,
    config: Config,
    path: Path,
    raw: bytes,
    variables: Mapping[str, str | None],
    options: tuple[bool, bool],
) -> None:
    try:
        payload = pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # something in it cannot be pickled: not cached
        return
    if any(value and value.encode() in payload for value in variables.values()):
        return  # a value a variable gave is in the config: it stays out of the cache
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
