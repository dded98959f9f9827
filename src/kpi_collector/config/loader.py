"""Reading `kpi.yaml`: YAML with line numbers, `${VAR}` expansion, validation with errors that
name the file, the line, the source and the key, and say how to fix it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kpi_collector.config.plain import Config, Unchecked, config_fingerprint
from kpi_collector.errors import ConfigError
from kpi_collector.secrets import FromVariables, Secret, remember

if TYPE_CHECKING:
    import yaml
    from pydantic import BaseModel, ValidationError

CONFIG_NAME = "kpi.yaml"
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_NAME = re.compile(
    r"(?i)(token|secret|passw|pwd|key|webhook|dsn|credential|auth|database_url)"
)
Path_ = tuple[str | int, ...]


def find_config(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file: the argument, else `KPI_CONFIG`, else `kpi.yaml` in the current folder."""
    if path is not None and not os.fspath(path):
        # `kpi -c "$CONFIG"` with CONFIG unset: another config than meant would be read
        raise ConfigError("the config path is empty; give the file's path, e.g. -c kpi.yaml")
    chosen = path or os.environ.get("KPI_CONFIG") or CONFIG_NAME
    found = Path(chosen)
    if found.is_dir():
        raise ConfigError(
            f"{found}: a folder, not a config file; give the file's path, e.g. "
            f"{found / CONFIG_NAME}"
        )
    if found.exists() and not found.is_file():
        raise ConfigError(
            f"{found}: not a regular file (a device or a pipe); write the config to a file "
            "and give its path"
        )
    if not found.is_file():
        hint = (
            "run `kpi init` to write a starter config"
            if chosen == CONFIG_NAME
            else "check the path"
        )
        raise ConfigError(f"{found}: no such config file; {hint}")
    return found


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    need_secrets: bool = True,
    need_store: bool = True,
    only: Collection[str] | None = None,
    need_destinations: bool = True,
) -> Config:
    """Read, expand and validate a config file.

    A validated config is cached (`config.cache`) and used again while the file, the
    variables it names and the installed code stay the same.

    With `need_secrets=False` (commands that only read the store: history, report, serve),
    a source or destination that names an unset variable is left out instead of failing.
    With `need_store=False` too (deployment snippets), a `store:` naming an unset variable
    is kept as written: it is not opened. With `only` (source names: `kpi run --only`,
    `kpi probe --source`), the other sources, and with `need_destinations=False` the
    destinations, may name unset variables: such an entry is left out, as a switched-off
    one is, since the command does not use it.
    """
    found = find_config(path)
    try:
        with found.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{found}: cannot read it: {exc.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{found}: larger than {MAX_CONFIG_BYTES // 2**20} MiB; is it really the config?"
        )
    text = decode_config(raw, found)

    def build() -> Config:
        return parse_config(
            text,
            path=found,
            need_secrets=need_secrets,
            need_store=need_store,
            only=only,
            need_destinations=need_destinations,
        )

    from kpi_collector.config import cache

    if not cache.enabled():
        return build()
    # what the validated config depends on besides the file: the variables it names
    names = {m.group(1) for m in _VAR.finditer(text) if m.group(1)}
    names |= {m.group(1) for m in _BARE.finditer(text) if m.group(1)}  # `$NAME`: refused if set
    environment = dict(_dotenv(found.parent / ".env", os.environ)) if names else {}
    environment.update(os.environ)
    return cache.cached_config(
        found,
        raw,
        variables={name: environment.get(name) for name in names},
        options=(need_secrets, need_store, tuple(sorted(only or ())), need_destinations),
        build=build,
    )


def file_fingerprint(path: Path) -> str | None:
    """The config fingerprint (`models.config_fingerprint`) of the file at `path` as it is
    now, which may differ from that of the config loaded from it earlier; None when it
    cannot be read or parsed."""
    import yaml

    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            return None
        data = _parse_yaml(decode_config(raw, path), str(path))
    except (OSError, ConfigError, yaml.YAMLError):
        return None
    return config_fingerprint(data)


def decode_config(raw: bytes, path: Path) -> str:
    """The text of a config file, which YAML 1.2 (section 5.2) and this tool take as UTF-8
    (a UTF-8 byte order mark is allowed); raises ConfigError for anything else."""
    wide = _wide_encoding(raw)
    if wide is not None:
        raise ConfigError(f"{path}: this file is {wide} text; save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
            f"is it a binary file? save the config as UTF-8"
        ) from None


def _wide_encoding(raw: bytes) -> str | None:
    """ "UTF-16" or "UTF-32" when `raw` starts as one of them does, with a byte order mark or
    without one (a first character below U+0100, as YAML 1.2 section 5.2 detects it)."""
    head = raw[:4]
    if head in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff") or (
        len(head) == 4 and (head[1:] == b"\x00\x00\x00" or head[:3] == b"\x00\x00\x00")
    ):
        return "UTF-32"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (
        len(head) >= 2 and (head[0] == 0) != (head[1] == 0)
    ):
        return "UTF-16"
    return None


def parse_config(
    text: str,
    *,
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    need_secrets: bool = True,
    need_store: bool = True,
    only: Collection[str] | None = None,
    need_destinations: bool = True,
) -> Config:
    """Validate config text; `path` names it in errors and anchors relative paths and `.env`
    (`need_secrets`, `need_store`, `only`, `need_destinations`: see `load_config`)."""
    import yaml

    label = str(path) if path else CONFIG_NAME
    try:
        data = _parse_yaml(text, label)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_problem(exc, text, label)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: the top level must be a mapping of keys like `sources:`")
    for key in _SECTIONS:  # `destinations:` with every entry commented out: none
        if key in data and data[key] is None:
            del data[key]
    # what workers of the celery executor compare: the text as written, before entries are
    # left out or variables expanded
    executor = data.get("executor")
    celery = isinstance(executor, dict) and executor.get("type") == "celery"
    fingerprint = config_fingerprint(data) if celery else None
    # the YAML node tree (≈5 KB per source) is built again only to name a line in an error
    lines = _LineFinder(text, label)
    outside = os.environ if env is None else env
    dotenv = _dotenv(path.parent / ".env", outside) if path else {}
    environment = _Environment({**dotenv, **outside}, dotenv=dotenv, outside=outside)
    # a switched-off entry, one the command does not use (`only`, `need_destinations`), or
    # any entry when the command only reads the store, may name variables that are not set:
    # it is left out (its place kept, for line numbers)
    left_out: dict[str, set[int]] = {"sources": set(), "destinations": set()}
    unchecked_sources: set[str] = set()  # their KPI ids may still be named in `kpis:`
    unchecked: list[Unchecked] = []  # what a deployment snippet still needs of them
    for key, indexes in left_out.items():
        items = data.get(key)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            disabled = _disabled(item, (key, index), environment, lines)
            used = (
                need_destinations
                if key == "destinations"
                else not only or (item.get("name") or item.get("type")) in only
            )
            if (disabled or not need_secrets or not used) and _unresolved(item, environment):
                indexes.add(index)
                name = str(item.get("name") or item.get("type"))
                if key == "sources":
                    unchecked_sources.add(name)
                if not disabled:
                    cron_at: Path_ = (key, index, "schedule")
                    cron = item.get("schedule")
                    if cron is not None:
                        cron = _checked_cron(
                            _expand(cron, environment, lines, cron_at), lines, cron_at
                        )
                    unchecked.append(Unchecked(key, name, cron))
                items[index] = {}
    store = data.get("store")
    if not need_store and isinstance(store, str) and _unresolved(store, environment):
        data = {k: v for k, v in data.items() if k != "store"}  # kept as written, unopened
    else:
        store = None
    if "$" in text:  # no `${VAR}` anywhere: nothing to walk
        data = _expand(data, environment, lines, ())
    from kpi_collector.config.models import Settings

    settings = _validate(Settings, data, lines, (), "")
    del data  # the raw entries live on in `settings` until each is validated
    if store is not None:  # kept as written, unchecked: it names a variable that is not set
        settings = settings.model_copy(update={"store": store})
    if settings.executor.type == "celery" and (settings.store or "sqlite").startswith("sqlite"):
        raise ConfigError(
            f"{lines.where(('executor', 'type'))}: executor celery needs a store every machine "
            "shares: set `store:` to postgresql+psycopg://... or mysql+pymysql://..."
        )
    from kpi_collector.config.plugins import destination_type, source_type

    # The raw entries are dropped as they are validated: the validated objects are the
    # config (a raw copy kept in `settings` would cost every source a second time).
    raw_sources: list[Any] = settings.sources
    raw_destinations: list[Any] = settings.destinations
    settings.sources, settings.destinations = [], []
    sources = []
    #: each validated entry by its place in the file: ("sources", 2) -> its source
    entries: dict[Path_, Any] = {}
    seen: dict[str, int] = {}
    shared: dict[Any, Any] = {}
    for index, item in enumerate(raw_sources):
        raw_sources[index] = None
        if index in left_out["sources"]:
            continue
        at: Path_ = ("sources", index)
        kind = _kind(item, lines, at, "source")
        label_ = _named(item, kind, "source", lines, at)
        cls = _resolve(source_type, kind, lines, at)
        source = _validate(cls, {k: v for k, v in item.items() if k != "type"}, lines, at, label_)
        _unique(source.name, index, seen, lines, at, "source")
        _check_source_ids(source, lines, at, label_)
        _check_free_form(source, lines, at, label_)
        if source.locale is None and settings.locale is not None:
            source.locale = settings.locale
        _share_metrics(source, shared)
        sources.append(source)
        entries[at] = source
    del shared
    destinations = []
    seen = {}
    places: dict[str, int] = {}
    for index, item in enumerate(raw_destinations):
        raw_destinations[index] = None
        if index in left_out["destinations"]:
            continue
        at = ("destinations", index)
        kind = _kind(item, lines, at, "destination")
        cls = _resolve(destination_type, kind, lines, at)
        label_ = _named(item, kind, "destination", lines, at)
        destination = _validate(
            cls, {k: v for k, v in item.items() if k != "type"}, lines, at, label_
        )
        _unique(destination.name, index, seen, lines, at, "destination")
        if len(destination.name) > DESTINATION_NAME_MAX:
            raise ConfigError(
                f"{lines.where((*at, 'name'))}: destination name has {len(destination.name)} "
                f"characters; the store keeps each destination's deliveries under its name, of "
                f"at most {DESTINATION_NAME_MAX} characters: give it a shorter `name:`"
            )
        _check_free_form(destination, lines, at, label_)
        entries[at] = destination
        _one_writer(destination, index, places, path, lines, at, label_)
        destinations.append(destination)
    config = Config(
        settings, sources, destinations, path=path, unchecked=unchecked, fingerprint=fingerprint
    )
    if need_secrets:  # with every source left out, references cannot be checked
        _check_references(config, lines, unchecked_sources)
    if _OTHER_BASE_TEXT.search(text):  # rare: the node tree only then
        _check_other_bases(lines, left_out, entries, settings)
    return config


#: the top-level sections an empty value leaves at their default (no entries, no settings)
_SECTIONS = ("sources", "destinations", "kpis", "alerts", "defaults", "health")


# A plain scalar YAML 1.1 reads as a number in another base than the one it looks written in:
# a leading 0 is octal (010 is 8), `a:b` is base 60 (1:30 is 90). Where a text is expected,
# validation says so; where a number is, it would pass as a number nobody wrote.
_OCTAL = re.compile(r"[-+]?0[0-7_]+")
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
# where such a scalar may start (not inside a word, a host:port or a date); also the other
# forms of integers YAML 1.1 reads (0x1F, 0b101, 1_000, +7), refused where a credential goes
_OTHER_BASE_TEXT = re.compile(
    r"(?<![\w.:/@-])[-+]?(?:0[0-7_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+"
    r"|0[xXb][0-9a-fA-F_]+|[0-9][0-9_]*_[0-9_]*|\+[0-9]+)(?![\w:])"
)
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)")


def _check_other_bases(
    lines: _LineFinder, left_out: Mapping[str, set[int]], entries: Mapping[Path_, Any], top: Any
) -> None:
    """Raise ConfigError for a number written as YAML 1.1 reads in another base (octal or
    base 60), naming the key, and for an integer written otherwise than its digits (0x1F
    is 31, 1_000 is 1000, +7 is 7) that validation made a text (a token, a password, an
    id: `_validated` finds it in `entries`, the validated sources and destinations by
    place, or `top`, the settings): the text sent would not be the one written. A
    credential's value (`_credential_position`) is never shown. Entries left out
    unchecked (`left_out`) are not looked at."""
    import yaml

    stack: list[tuple[Any, Path_]] = [(lines.root, ())] if lines.root is not None else []
    while stack:
        node, at = stack.pop()
        if isinstance(node, yaml.MappingNode):
            stack.extend((value, (*at, str(key.value))) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            if len(at) == 1 and isinstance(at[0], str) and at[0] in left_out:
                skip = left_out[at[0]]
                stack.extend((v, (*at, i)) for i, v in enumerate(node.value) if i not in skip)
            else:
                stack.extend((value, (*at, index)) for index, value in enumerate(node.value))
        elif isinstance(node, yaml.ScalarNode) and not node.style and node.tag in (_INT, _FLOAT):
            written = str(node.value)
            form = _integer_form(written) if node.tag == _INT else None
            if form is not None and isinstance(_validated(at, entries, top), str | Secret):
                label = _entry_label(str(at[0]), _entry_of(node, lines, at)) if len(at) > 2 else ""
                shown = "this value" if _names_credential(at) else written
                fix = "quote it" if _names_credential(at) else f"quote it: '{written}'"
                raise ConfigError(
                    f"{lines.where(at)}: {_key_named(at, label)}: YAML reads {shown} as a "
                    f"number ({form}), not as the text written; {fix}"
                )
            if _OCTAL.fullmatch(written):
                why = "a leading 0 makes it octal); write it without the leading 0"
            elif _SEXAGESIMAL.fullmatch(written):
                why = "a number with : is base 60, like a time); write the number itself"
            else:
                continue
            read = yaml.safe_load(written)
            label = _entry_label(str(at[0]), _entry_of(node, lines, at)) if len(at) > 2 else ""
            raise ConfigError(
                f"{lines.where(at)}: {_key_named(at, label)}: {written} (YAML reads it as "
                f"{_shown(read)}: {why}, or quote it: '{written}'"
            )


def _validated(at: Path_, entries: Mapping[Path_, Any], top: Any) -> Any:
    """The validated value at key path `at` of the file (through models' attributes, dicts
    and lists), or None where it cannot be followed (a merge key, an alias field)."""
    found = entries.get(at[:2]) if len(at) > 1 else None
    value, rest = (found, at[2:]) if found is not None else (top, at)
    for part in rest:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list | tuple) and isinstance(part, int):
            value = value[part] if part < len(value) else None
        elif isinstance(part, str) and not isinstance(value, str | Secret | None):
            value = getattr(value, part, None)
        else:
            return None
    return value


def _integer_form(written: str) -> str | None:
    """How an integer YAML 1.1 reads is written when not as its own digits (`0x1F`:
    "hexadecimal"), else None."""
    if _DECIMAL.fullmatch(written):
        return None
    bare = written.lstrip("+-")
    if bare[:2] in ("0x", "0X"):
        return "hexadecimal"
    if bare[:2] == "0b":
        return "binary"
    if ":" in bare:
        return "base 60, like a time"
    if bare[:1] == "0" and len(bare) > 1:
        return "octal: a leading 0"
    if "_" in bare:
        return "digits grouped with _"
    return "a + sign"


def _entry_of(node: Any, lines: _LineFinder, at: Path_) -> Any:
    """`{"name": ..., "type": ...}` of the item of `sources:` / `destinations:` that `at`
    is inside, as written (for `_entry_label`), else None."""
    import yaml

    if at[0] not in ("sources", "destinations") or not isinstance(at[1], int):
        return None
    item = lines._node_at(at[:2])
    if not isinstance(item, yaml.MappingNode):
        return None
    return {
        str(key.value): str(value.value)
        for key, value in item.value
        if isinstance(value, yaml.ScalarNode) and str(key.value) in ("name", "type")
    }


def _named(item: Mapping[str, Any], kind: str, what: str, lines: _LineFinder, at: Path_) -> str:
    """How messages name a source or destination (`source 'crm'`: its name, else its type).
    A `name:` YAML read as no text (`no` as false, `0`, a date) is a ConfigError: the model
    would take a false or zero one for no name and use the type, renaming its KPIs."""
    name = item.get("name")
    label = f"{what} {name if isinstance(name, str) and name else kind!r}"
    if name is not None and not isinstance(name, str):
        error = {"type": "string_type", "input": name}
        message = _in_our_words(error, _as_written(name, lines, (*at, "name")))
        raise ConfigError(f"{lines.where((*at, 'name'))}: {label}: name: {message}")
    return label


def _share_metrics(source: Any, shared: dict[Any, Any]) -> None:
    """Let `source` use the metric spec an earlier source of this config already has when
    they are equal (50,000 sources counting the same selector then hold one `Metric`, not
    50,000). Specs are never changed after validation; one holding a mapping (`map:`,
    `expect:`) is not hashable and stays its own."""
    from pydantic import BaseModel

    metrics = getattr(source, "metrics", None)
    if not isinstance(metrics, dict):
        return
    for name, spec in metrics.items():
        if not isinstance(spec, BaseModel) or spec.__pydantic_extra__ or spec.__pydantic_private__:
            continue
        # with each value's type: 1 == 1.0 == True, but they are not the same spec
        values = tuple((k, type(v), v) for k, v in spec.__dict__.items())
        key = (type(spec), values, frozenset(spec.model_fields_set))
        try:
            metrics[name] = shared.setdefault(key, spec)
        except TypeError:  # an unhashable value
            continue


def _check_source_ids(source: Any, lines: _LineFinder, at: Path_, label: str) -> None:
    """A KPI id is `<source name>.<metric>`, read up to its first dot: a source name with a
    dot (`app.v2`) would give ids that name another source (`app`) or clash with its ids,
    and an empty metric name gives an id that names no metric."""
    if "." in source.name:
        raise ConfigError(
            f"{lines.where((*at, 'name'))}: {label}: a source name cannot hold '.', since "
            f"KPI ids are <source name>.<metric>; name it e.g. {source.name.replace('.', '_')!r}"
        )
    if source.name == "formula":  # what the store records derived KPIs' values under
        raise ConfigError(
            f"{lines.where((*at, 'name'))}: {label}: the name 'formula' is taken by derived "
            "KPIs (their values and failures are stored under it); name it e.g. 'formulas_src'"
        )
    for metric in source.metric_names():
        if not metric.strip():
            raise ConfigError(
                f"{lines.where((*at, 'metrics'))}: {label}: a metric has an empty name; "
                "give it one, e.g. users: ..."
            )


#: the fields of each model that take any YAML as data, passed on as it is: (class) -> names
_FREE_FORM: dict[type, tuple[str, ...]] = {}
_BOOL, _TIMESTAMP = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"


def _check_free_form(entry: Any, lines: _LineFinder, at: Path_, label: str) -> None:
    """Raise ConfigError for a value YAML read as other than written inside a field that
    takes any data and passes it on as it is (an `http_json` `body:`, a `python` source's
    `kwargs:`): a plain yes/no/on/off (YAML 1.1's booleans: `country: no` would go out as
    false) or a date (no JSON form). Where a model's type says what a value is, validation
    does this; here no type does. Only entries that set such a field read the node tree."""
    import yaml

    cls = type(entry)
    if cls not in _FREE_FORM:
        _FREE_FORM[cls] = tuple(
            name for name, field in cls.model_fields.items() if _takes_any(field.annotation)
        )
    for name in _FREE_FORM[cls]:
        if getattr(entry, name, None) in (None, {}, []):
            continue
        stack: list[tuple[Any, Path_]] = [(lines._node_at((*at, name)), (*at, name))]
        while stack:
            node, where = stack.pop()
            if isinstance(node, yaml.MappingNode):
                stack.extend((v, (*where, str(k.value))) for k, v in reversed(node.value))
            elif isinstance(node, yaml.SequenceNode):
                stack.extend((v, (*where, i)) for i, v in reversed(list(enumerate(node.value))))
            elif isinstance(node, yaml.ScalarNode) and not node.style:
                written = str(node.value)
                if node.tag == _BOOL and written.lower() not in ("true", "false"):
                    read = "true" if yaml.safe_load(written) else "false"
                    why = f"YAML 1.1 reads it as {read}); quote it: '{written}', or write {read}"
                elif node.tag == _TIMESTAMP:
                    why = f"YAML reads it as a date); quote it: '{written}'"
                else:
                    continue
                raise ConfigError(
                    f"{lines.where(where)}: {_key_named(where, label)}: {written} ({why}"
                )


def _takes_any(annotation: Any) -> bool:
    """Whether a field's type is `Any` or holds it (`dict[str, Any]`, `Any | None`)."""
    from typing import get_args

    return annotation is Any or any(_takes_any(arg) for arg in get_args(annotation))


def _checked_cron(value: Any, lines: _LineFinder, at: Path_) -> str:
    from kpi_collector.config.cron import check_cron

    try:
        return check_cron(str(value))
    except ValueError as exc:
        raise ConfigError(f"{lines.where(at)}: schedule: {exc}") from None


#: the longest destination name the store keeps its deliveries under (`deliveries.destination`,
#: `store.limits.ID_MAX`): PostgreSQL and MariaDB refused every delivery of a longer one
DESTINATION_NAME_MAX = 200


def _unique(
    name: str, index: int, seen: dict[str, int], lines: _LineFinder, at: Path_, what: str
) -> None:
    if name in seen:
        raise ConfigError(
            f"{lines.where((*at, 'name'))}: duplicate {what} name {name!r} "
            f"(also {what}s[{seen[name]}]); give each {what} its own `name:`"
        )
    seen[name] = index


def _one_writer(
    destination: Any,
    index: int,
    places: dict[str, int],
    path: Path | None,
    lines: _LineFinder,
    at: Path_,
    label: str,
) -> None:
    """Two enabled destinations writing one place (`path: k.csv` and `path: ./k.csv`) would
    each rewrite the other's rows as its own, losing some: a config error naming both."""
    if not destination.enabled:
        return
    place = destination.writes_to(path.parent if path else Path.cwd())
    if place is None:
        return
    if place in places:
        raise ConfigError(
            f"{lines.where((*at, 'path'))}: {label}: writes {place}, as destinations"
            f"[{places[place]}] does; each would rewrite the other's rows: give one of them "
            "another `path`"
        )
    places[place] = index


def _yaml_problem(exc: Exception, text: str, label: str) -> str:
    """One line for a YAML error: the line where the problem is (for a bracket or quote
    never closed, the line that opens it, not the line where the parser gave up), what is
    wrong in our words and how to fix it."""
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark else None
    position = getattr(exc, "position", None)  # a ReaderError: a character YAML refuses
    if line is None and isinstance(position, int):
        line = text.count("\n", 0, position) + 1
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
    character = getattr(exc, "character", None)
    if isinstance(character, str | int) and getattr(exc, "reason", None):
        code = ord(character) if isinstance(character, str) else character
        problem = f"character U+{code:04X}: {problem}"
    problem = " ".join(str(problem).split())
    found = _explain_yaml(exc, text, problem)
    if found is not None:
        line, problem = found
    return (
        f"{label}:{line}: not valid YAML: {problem}"
        if line
        else f"{label}: not valid YAML: {problem}"
    )


def _explain_yaml(exc: Exception, text: str, problem: str) -> tuple[int, str] | None:
    """(line, explanation) for the YAML mistakes people make, else None (PyYAML's words)."""
    context = str(getattr(exc, "context", None) or "")
    opened = getattr(exc, "context_mark", None)
    mark = getattr(exc, "problem_mark", None)
    if opened is not None and ("flow mapping" in context or "flow sequence" in context):
        left, right = ("{", "}") if "mapping" in context else ("[", "]")
        return opened.line + 1, (
            f"the `{left}` opened here is never closed: add `{right}` at its end, or quote a "
            f"value that contains `{left}`, `{right}`, `,` or `: `"
        )
    mark = getattr(exc, "problem_mark", None)
    lowered = problem.lower()
    if (
        mark is not None
        and "quoted scalar" in context
        and re.search("escape|hexa?decimal", lowered)
    ):
        # a backslash in "..." (a Windows path) starts an escape YAML does not know: the
        # quote is closed, the escape is what is wrong
        return mark.line + 1, (
            f'{_escape_at(text, mark)} in a "..." text is not an escape YAML reads: write a '
            "backslash as \\\\, or quote the value with '...' (where \\ is itself)"
        )
    if opened is not None and "quoted scalar" in context:
        lines = text.splitlines()
        quote = '"'
        if opened.line < len(lines) and opened.column < len(lines[opened.line]):
            quote = lines[opened.line][opened.column]
        return opened.line + 1, (
            f"the quote {quote} opened here is never closed: add the closing {quote} "
            "(a value on several lines needs it too)"
        )
    if mark is None:
        return None
    here = mark.line + 1
    lines = text.splitlines()
    current = lines[mark.line] if mark.line < len(lines) else ""
    tag = re.fullmatch(r"could not determine a constructor for the tag '([^']*)'", problem)
    if tag is not None:
        special = {"tag:yaml.org,2002:value": "=", "tag:yaml.org,2002:merge": "<<"}
        written = special.get(tag.group(1))
        if written is not None:  # a plain `=` or `<<` where a value goes (YAML 1.1 types)
            return here, (
                f"YAML 1.1 reads a lone {written} as a special value, not as the text; "
                f"quote it: '{written}'"
            )
        shown = tag.group(1).replace("tag:yaml.org,2002:", "!!")
        return here, (
            f"the tag {shown} is not read here: remove it, or quote the value if the ! is "
            "part of it"
        )
    if "another document" in lowered:
        return here, (
            "a second YAML document starts here (---); a config is one document: remove this line"
        )
    # libyaml leaves the character out of "found character that cannot start any token"
    if "tab" in lowered or "'\\t'" in problem or current[mark.column : mark.column + 1] == "\t":
        return here, "a tab indents this line; YAML indents with spaces only"
    odd = _ODD_SPACE.search(current)
    if odd is not None:  # pasted from a web page or a chat: it looks like a space
        import unicodedata

        name = unicodedata.name(odd.group(0), "space").lower()
        article = "an" if name[0] in "aeiou" else "a"
        return here, (
            f"{article} {name} (U+{ord(odd.group(0)):04X}) on this line, where YAML needs a "
            "plain space; retype it as a space"
        )
    if "mapping values are not allowed" in lowered:
        if not re.search(r":(\s|$)", current[: mark.column]):
            # the line's only `key:`, indented deeper than the keys above it: YAML reads it
            # as more of the value on the line before
            return here, (
                "this line is indented deeper than the key above it, so it is read as part "
                "of that key's value: start it in the same column as the other keys"
            )
        return here, (
            'a second `: ` on this line; quote the value that contains it (url: "http://host/a: b")'
        )
    if "undefined alias" in lowered:
        return here, (
            "`*` starts an alias of an `&anchor` that is not defined above; quote the value "
            'if the `*` is part of it ("*.example.com")'
        )
    stray = current[mark.column : mark.column + 1]
    if stray in ("]", "}"):
        return here, f"this `{stray}` closes nothing: remove it, or add the bracket it closes"
    if "block end" in lowered or "'-' indicator" in lowered or "expected key" in lowered:
        return here, (
            "this line's indentation does not fit the lines above it: keys of one mapping, "
            "and the `-` of one list, start in the same column"
        )
    if "could not find expected ':'" in lowered:
        return here, "a key needs `: ` and a value, or a text on several lines needs quotes"
    return None


_ODD_SPACE = re.compile("[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000\ufeff]")


def _escape_at(text: str, mark: Any) -> str:
    """The escape (`\\d`, `\\x`, `\\ud800`) that ends at or holds the YAML error mark: the
    parsers put the mark on the backslash or on the characters after it."""
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    start = line.rfind("\\", 0, mark.column + 1)
    if start < 0 or start + 1 >= len(line):
        return "a \\"
    kind = line[start + 1]
    digits = re.match(r"[0-9A-Fa-f]*", line[start + 2 : start + 2 + _HEX_DIGITS.get(kind, 0)])
    return line[start : start + 2] + (digits.group(0) if digits else "")


_HEX_DIGITS = {"x": 2, "u": 4, "U": 8}


def _parse_yaml(text: str, label: str = CONFIG_NAME) -> Any:
    """The document's data (libyaml when present): built from the parser's events when it
    is plain (`_plain_events`), else from the node tree, checked first (`_check_tree`) so
    that what is built is bounded."""
    import yaml

    if _flow_depth(text) > MAX_DEPTH:  # the composers recurse: refuse before they do
        raise ConfigError(
            f"{label}: brackets nested more than {MAX_DEPTH} deep; a config is a few levels deep"
        )
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
    try:
        # most configs: built from the parser's events, no node tree (≈5 KB per source)
        return _plain_events(loader)
    except _NotPlain:  # anything beyond plain YAML, or a check to make: the node tree's way
        pass
    finally:
        loader.dispose()
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        _check_tree(root, label)
        try:
            data = _plain_data(root, loader)
        except _NotPlain:
            data = loader.construct_document(root)
    finally:
        loader.dispose()
    return data


_PLAIN_SCALARS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp")
)


def _plain_events(loader: Any) -> Any:
    """The data of a single plain document (mappings with text keys, lists, scalars of the
    core types) built straight from the parser's events, so no node tree is held. Raises
    _NotPlain for anything else (anchors, aliases, explicit tags, other keys, several
    documents) and for anything `_check_tree` refuses (a key twice in a mapping, nesting
    deeper than MAX_DEPTH, a too long integer): the node tree's way reads and says it."""
    import yaml

    get = loader.get_event
    get()  # the stream's start
    if loader.check_event(yaml.StreamEndEvent):
        return None
    get()  # the document's start
    # each open mapping or list, with the key its next value goes to (mappings)
    stack: list[list[Any]] = []
    root: Any = None
    while True:
        event = get()
        kind = type(event)
        if kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            stack.pop()
            if stack:
                continue
            break
        if kind is yaml.AliasEvent or event.anchor is not None or event.tag not in (None, "!"):
            raise _NotPlain
        if len(stack) >= MAX_DEPTH:
            raise _NotPlain
        value: Any
        if kind is yaml.ScalarEvent:
            tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            if tag == _STR:
                value = event.value
            elif tag not in _PLAIN_SCALARS or (tag == _INT and len(event.value) > _MAX_INT_DIGITS):
                raise _NotPlain
            else:
                node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark)
                value = loader.construct_object(node, deep=True)
                loader.constructed_objects.pop(node, None)
        elif kind is yaml.MappingStartEvent:
            value = {}
        elif kind is yaml.SequenceStartEvent:
            value = []
        else:
            raise _NotPlain
        if stack:
            top = stack[-1]
            container = top[0]
            if type(container) is list:
                container.append(value)
            elif top[1] is None:  # a key
                if kind is not yaml.ScalarEvent or tag != _STR or value in container:
                    raise _NotPlain
                top[1] = value
            else:
                container[top[1]] = value
                top[1] = None
        else:
            root = value
        if kind is yaml.ScalarEvent:
            if not stack:
                break
        else:
            stack.append([value, None])
    get()  # the document's end
    if not loader.check_event(yaml.StreamEndEvent):
        raise _NotPlain  # a second document: the node tree's way says so
    return root


def _node_tree(text: str) -> Any:
    """The YAML node tree of `text`, a document `_parse_yaml` read already (for lines)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


MAX_CONFIG_BYTES = 16 * 2**20
MAX_DEPTH = 64  # mappings and lists inside each other; a real config needs about 6
MAX_ALIAS_VALUES = 100_000  # values that YAML aliases may add to the document
_MAX_INT_DIGITS = 1000  # Python refuses to read more than 4300 (sys.get_int_max_str_digits)
_INT = "tag:yaml.org,2002:int"
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _flow_depth(text: str) -> int:
    """How deep `[` and `{` nest in `text`, a bound on the flow collections' depth (brackets
    inside quoted strings count too, which only overestimates)."""
    brackets = _NOT_BRACKET.sub("", text)
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif char in "]}" and depth:
            depth -= 1
    return deepest


def _check_tree(root: Any, label: str) -> None:
    """Refuse, before anything is built from it, a YAML node tree that would be huge or
    wrong: aliases that multiply the document ("billion laughs"), an alias inside itself,
    nesting deeper than MAX_DEPTH, integers too long to read, and a key given twice in one
    mapping (YAML 1.2 section 3.2.1.1: keys are unique; PyYAML would keep the last silently).
    """
    expanded: dict[int, int] = {}  # id(node) -> values it stands for, aliases expanded
    distinct = 0
    # an explicit stack: (node, depth, children done?)
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    open_: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            open_.discard(key)
            children = _children(node)
            expanded[key] = 1 + sum(expanded[id(c)] for c in children)
            continue
        if key in expanded:
            continue
        line = node.start_mark.line + 1
        if key in open_:
            raise ConfigError(f"{label}:{line}: a YAML alias refers to the value it is inside")
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"{label}:{line}: nested more than {MAX_DEPTH} levels deep; "
                f"a config is a few levels deep"
            )
        distinct += 1
        if node.id == "scalar":
            if node.tag == _INT and len(node.value) > _MAX_INT_DIGITS:
                raise ConfigError(
                    f"{label}:{line}: a number with {len(node.value)} digits; "
                    f"quote it if it is meant as text"
                )
            expanded[key] = 1
            continue
        if node.id == "mapping":
            _unique_keys(node, label)
        open_.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node))
    total = expanded[id(root)]
    if total - distinct > MAX_ALIAS_VALUES:
        raise ConfigError(
            f"{label}: YAML aliases (*name) expand this file to {total:,} values; "
            f"refusing more than {MAX_ALIAS_VALUES:,} added by aliases"
        )


def _children(node: Any) -> list[Any]:
    if node.id == "mapping":
        return [part for pair in node.value for part in pair]
    if node.id == "sequence":
        return list(node.value)
    return []


def _unique_keys(node: Any, label: str) -> None:
    """Raise ConfigError naming both lines when a plain key occurs twice in `node`."""
    first: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if key.id != "scalar":
            continue
        line = key.start_mark.line + 1
        seen = first.get((key.tag, key.value))
        if seen is not None:
            raise ConfigError(
                f"{label}:{line}: duplicate key {key.value!r} (first at line {seen}); "
                f"keep one of them"
            )
        first[(key.tag, key.value)] = line


class _NotPlain(Exception):
    """The document uses YAML beyond plain mappings, lists and scalars (merge keys...)."""


_STR, _MAP, _SEQ = (f"tag:yaml.org,2002:{t}" for t in ("str", "map", "seq"))
_FLOAT = "tag:yaml.org,2002:float"


def _plain_data(node: Any, loader: Any) -> Any:
    """Build the data of a config-shaped document straight from its nodes: PyYAML's generic
    constructor costs a third of loading a 1,000-source config. Anything else (merge keys,
    non-string keys, custom tags) raises _NotPlain and goes the generic way."""
    tag = node.tag
    if tag == _STR:
        return node.value
    if tag == _MAP:
        out = {}
        for key, value in node.value:
            if key.tag != _STR:
                raise _NotPlain
            out[key.value] = _plain_data(value, loader)
        return out
    if tag == _SEQ:
        return [_plain_data(item, loader) for item in node.value]
    if node.id == "scalar":  # int, float, bool, null, timestamp
        return loader.construct_object(node, deep=True)
    raise _NotPlain


def _kind(item: Mapping[str, Any], lines: _LineFinder, at: Path_, what: str) -> str:
    kind = item.get("type")
    if kind is not None and kind != "" and not isinstance(kind, str):
        shown = _shown(kind)
        written = _as_written(kind, lines, (*at, "type"))
        if written is not None:
            shown = f"{written} (YAML reads it as {shown})"
        label = _entry_label(f"{what}s", {**item, "type": None})
        raise ConfigError(
            f"{lines.where((*at, 'type'))}: {label + ': ' if label else ''}type: {shown} is "
            f"not a type's name; write one, e.g. `type: html`"
        )
    if not isinstance(kind, str) or not kind:
        raise ConfigError(
            f"{lines.where(at)}: this {what} has no `type:`; add one, e.g. `type: html`"
        )
    return kind


def _resolve(lookup: Any, kind: str, lines: _LineFinder, at: Path_) -> Any:
    try:
        return lookup(kind)
    except ConfigError as exc:
        raise ConfigError(f"{lines.where((*at, 'type'))}: {exc}") from None


def _validate(model: type[BaseModel], data: Any, lines: _LineFinder, at: Path_, label: str) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, model, lines, at, label)) from None


def _describe(exc: ValidationError, model: Any, lines: _LineFinder, at: Path_, label: str) -> str:
    messages = []
    # a misspelt key first: `metric:` is then "did you mean 'metrics'?", not "missing 'metrics'"
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    for error in errors[:1]:  # one line: the first problem, and how many follow
        loc = tuple(
            p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        member = None  # the executor's class chosen by its `type:`, named in pydantic's loc
        if loc[:1] == ("executor",) and len(loc) > 1 and loc[1] in ("local", "celery"):
            from kpi_collector.config.models import CeleryExecutor, LocalExecutor

            member = CeleryExecutor if loc[1] == "celery" else LocalExecutor
            loc = loc[:1] + loc[2:]
        key = ".".join(str(p) for p in loc)

        def where(path: Path_) -> str:  # file:line of `path`, and the entry's label
            return f"{lines.where(at + path)}: {label + ': ' if label else ''}"

        def key_head(parent: Path_, value: Any) -> str:  # at the key's own line
            place = lines.key_where(at + parent, value)
            return f"{place}: {label + ': ' if label else ''}" if place else where(parent)

        prefix = where(loc)
        kind = error["type"]
        if loc[-1:] == ("[key]",):  # a mapping's key, such as `yes:` read as true
            parent = loc[:-2]
            found = lines.written_key(at + parent, loc[-2])
            shown = _shown(loc[-2])
            if found is not None:
                written, read = found
                shown = written if written == _shown(read) else f"{written} (YAML reads it as "
                shown += "" if written == _shown(read) else f"{_shown(read)})"
            fix = f"; quote it: '{found[0]}'" if found is not None else ""
            messages.append(
                f"{key_head(parent, loc[-2])}{'.'.join(str(p) for p in parent)}: the key "
                f"{shown} is not a text{fix}"
            )
        elif kind == "invalid_key":  # a key YAML read as no text: `~:`, `1:`
            parent = loc[:-1]
            found = lines.written_key(at + parent, error.get("input"))
            written = found[0] if found is not None else _shown(error.get("input"))
            inside = f"{'.'.join(str(p) for p in parent)}: " if parent else ""
            messages.append(
                f"{key_head(parent, error.get('input'))}{inside}the key {written} is not a "
                f"text; quote it: '{written}'"
            )
        elif kind == "extra_forbidden":
            name = str(loc[-1]) if loc else "?"
            known = (
                sorted(member.model_fields)
                if member is not None and len(loc) == 2
                else _known_keys(model, loc[:-1])
            )
            import difflib  # only for a wrong name

            close = difflib.get_close_matches(name, known, n=1)
            fix = (
                f"did you mean {close[0]!r}?"
                if close
                else f"known keys: {', '.join(known)}"
                if known
                else "remove it"
            )
            messages.append(f"{prefix}unknown key {key!r}; {fix}")
        elif kind == "missing":
            messages.append(f"{prefix}missing required key {key!r}")
        else:
            hidden = _names_credential(at + loc) and not isinstance(error.get("input"), bool)
            as_written = None if hidden else _as_written(error.get("input"), lines, at + loc)
            message = _in_our_words(error, as_written, hidden=hidden)
            message = message or error["msg"].removeprefix("Value error, ")
            messages.append(f"{prefix}{key + ': ' if key else ''}{message}")
    more = len(errors) - 1
    if more:
        messages.append(
            f"(and {more} more problem{'s' if more > 1 else ''} in this {label or 'file'})"
        )
    return " ".join(" ".join(m.split()) for m in messages)


_EXPECTED = {
    "float_parsing": "a number",
    "float_type": "a number",
    "int_parsing": "a whole number",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a text",
    "dict_type": "a mapping (key: value lines, or {key: value})",
    "model_type": "a mapping (key: value lines, or {key: value})",
    "model_attributes_type": "a mapping (key: value lines, or {key: value})",
    "list_type": "a list (- item lines, or [a, b])",
    "url_parsing": "a URL like https://host/path",
    "bool_not_number": "a number",
    "finite_number": "a finite number",
    "tuple_type": "a list (- item lines, or [a, b])",
}
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def _as_written(value: Any, lines: _LineFinder, at: Path_) -> str | None:
    """The text of a YAML value that YAML read as something else than it looks when shown
    (`12:30` read as 750, `0755` as 493, `1.10` as 1.1, `yes`/`no`/`on`/`off` as true or
    false: YAML 1.1), else None."""
    if isinstance(value, str) or not isinstance(value, int | float | date):
        return None
    written = lines.written(at)
    return written if written is not None and written != _shown(value) else None


def _in_our_words(error: Any, written: str | None = None, *, hidden: bool = False) -> str | None:
    """A pydantic error said as this project says it, with the value that was written
    (`'abc' is not a number`), or None to keep pydantic's message (a validator's own).
    `written`: the value's text in the file when YAML read it as something else; `hidden`:
    the value is a credential's, named by its kind only (`a number is not a text`)."""
    kind = error["type"]
    shown = _kind_of(error.get("input")) if hidden else _shown(error.get("input"))
    if written is not None:
        shown = f"{written} (YAML reads it as {shown})"
    if kind in _EXPECTED:
        value = error.get("input")
        scalar = isinstance(value, int | float | date) and kind == "string_type"
        fix = "; quote it" if scalar and hidden else ""
        fix = fix or (f"; quote it: '{written or shown}'" if scalar else "")
        return f"{shown} is not {_EXPECTED[kind]}{fix}"
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        bound = error.get("ctx", {}).get(name)
        limit = f"{bound:g}" if isinstance(bound, int | float) else str(bound)
        size = "small" if "greater" in kind else "large"
        return f"{shown} is too {size}; it must be {words} {limit}"
    if kind in ("literal_error", "enum"):
        expected = str(error.get("ctx", {}).get("expected", "")).replace("'", "")
        return f"{shown} is not one of: {expected}"
    if kind == "union_tag_invalid":
        import difflib  # only for a wrong name

        ctx = error.get("ctx", {})
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        tag = str(ctx.get("tag", ""))
        close = difflib.get_close_matches(tag, tags, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"type {tag!r} is not one of: {', '.join(tags)}{hint}"
    if kind == "string_pattern_mismatch":
        pattern = error.get("ctx", {}).get("pattern", "")
        return f"{shown} is not allowed here: it must match the pattern {pattern}"
    if kind in ("string_too_short", "too_short") and error.get("input") in ("", [], {}):
        return "is empty; give a value"
    return None


def _kind_of(value: Any) -> str:
    """What a value is, for a message that must not show it (a credential's)."""
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return _shown(value)
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, date):
        return "a date"
    return "the value"


def _shown(value: Any) -> str:
    """A written value for a message: YAML's words for None and lists, cut to 60."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    from kpi_collector.secrets import redact_cut

    text = repr(value) if isinstance(value, str) else str(value)
    # masked before it is cut: a cut secret would no longer be found whole
    return redact_cut(text, 60)


def _known_keys(model: Any, loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at `loc` inside `model`, following fields, dicts and lists."""
    from typing import get_args, get_origin

    from pydantic import BaseModel

    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif get_origin(current) in (dict, list, tuple):
            current = get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X; a union of several -> the first pydantic model among them."""
    from typing import get_args, get_origin

    from pydantic import BaseModel

    if get_origin(annotation) in (dict, list, tuple) or not get_args(annotation):
        return annotation
    members = [a for a in get_args(annotation) if a is not type(None)]
    if len(members) == 1:
        return _unwrap(members[0])
    return next(
        (m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), annotation
    )


def _check_references(config: Config, lines: _LineFinder, unchecked: set[str]) -> None:
    """KPI ids in `kpis:`, formulas and `north_star` must name sources and their metrics;
    sources left out unchecked (switched off, with unset variables) accept any metric."""
    names = {s.name: s for s in config.sources}
    known = set(config.kpi_ids())
    for kid, spec in config.kpis.items():
        source_name, dot, metric = kid.partition(".")
        if spec.formula:
            continue
        if dot and source_name in unchecked:
            continue
        if not dot or source_name not in names:
            raise ConfigError(
                f"{lines.where(('kpis', kid))}: kpis.{kid}: no source named {source_name!r}; "
                f"KPI ids are <source name>.<metric>"
            )
        source = names[source_name]
        if source.metric_names() and kid not in known:
            raise ConfigError(
                f"{lines.where(('kpis', kid))}: kpis.{kid}: source {source_name!r} has no metric "
                f"{metric!r}; it has {', '.join(source.metric_names())}"
            )
    _check_formulas(config, lines, unchecked)
    _check_kpi_names(config, lines)
    from kpi_collector.config.alerts import alert_problems

    for at, message in alert_problems(config):
        raise ConfigError(f"{lines.where(at)}: {message}")
    star = config.settings.north_star
    if star and star not in known:
        star_source = names.get(star.partition(".")[0])
        # ids of sources left out unchecked, or whose metrics are only known at run time
        open_ids = star_source is not None and not star_source.metric_names()
        if not open_ids and star.partition(".")[0] not in unchecked:
            import difflib  # only for a wrong name

            close = difflib.get_close_matches(star, sorted(known), n=1, cutoff=0.6)
            some = ", ".join(sorted(known)[:5]) + (", ..." if len(known) > 5 else "")
            fix = f"did you mean {close[0]!r}?" if close else f"KPI ids here: {some or 'none'}"
            raise ConfigError(
                f"{lines.where(('north_star',))}: north_star {star!r} is not a KPI id of this "
                f"config; {fix}"
            )


def _check_kpi_names(config: Config, lines: _LineFinder) -> None:
    """No destination may map two of the config's KPIs to one column, property, header,
    field or metric name, nor one to a name it writes itself (`Destination.kpi_names`,
    `reserved_names`): one value would overwrite the other."""
    ids = config.kpi_ids()
    titles = {kid: spec.title for kid, spec in config.kpis.items() if spec.title}
    for index, destination in enumerate(config.destinations):
        clash = destination.name_clash(ids, titles)
        if clash:
            raise ConfigError(
                f"{lines.where(('destinations', index))}: destination {destination.name!r}: "
                f"{clash.describe(destination.name_kind)}; {destination.name_fix}"
            )


def _check_formulas(config: Config, lines: _LineFinder, unchecked: set[str]) -> None:
    formulas = {kid: spec.formula for kid, spec in config.kpis.items() if spec.formula}
    if not formulas:
        return
    from kpi_collector.config.formula import Formula, order_formulas

    parsed = {}
    for kid, text in formulas.items():
        try:
            parsed[kid] = Formula.parse(text)
        except ValueError as exc:
            raise ConfigError(
                f"{lines.where(('kpis', kid, 'formula'))}: kpis.{kid}.formula: {exc}"
            ) from None
    collected = {kid for source in config.sources for kid in source.kpi_ids()}
    for kid in formulas:
        if kid in collected:
            source_name = kid.partition(".")[0]
            raise ConfigError(
                f"{lines.where(('kpis', kid, 'formula'))}: kpis.{kid}.formula: source "
                f"{source_name!r} collects {kid} already; give the derived KPI an id of its "
                f"own, e.g. {kid}_derived"
            )
    known = set(config.kpi_ids())
    # ids of sources whose metrics are only known at run time are accepted by their prefix
    open_prefixes = {s.name for s in config.sources if not s.metric_names()} | unchecked
    known |= {i for f in parsed.values() for i in f.inputs if i.partition(".")[0] in open_prefixes}
    available = known | set(parsed)
    for kid, formula in parsed.items():
        if not formula.inputs <= available:  # the message from order_formulas, at its line
            try:
                order_formulas({kid: formula}, available)
            except ValueError as exc:
                raise ConfigError(
                    f"{lines.where(('kpis', kid, 'formula'))}: kpis.{kid}.formula: {exc}"
                ) from None
    try:
        order_formulas(parsed, known)
    except ValueError as exc:
        raise ConfigError(f"{lines.where(('kpis',))}: kpis: {exc}") from None


#: the texts pydantic reads as false for a bool (any case): `enabled: "${CRM_ON:-false}"`
_FALSE_TEXTS = frozenset({"false", "f", "no", "n", "off", "0"})


def _disabled(
    item: Mapping[str, Any], at: Path_, env: Mapping[str, str], lines: _LineFinder
) -> bool:
    """Whether the `enabled:` of the entry `item` (of `sources:` / `destinations:`, at key
    path `at`) reads as false once its variables are expanded (`enabled: false`, `enabled:
    "${CRM_ON:-false}"`), as its model reads it: such an entry never runs, so the variables
    it names may be unset."""
    value = item.get("enabled")
    if value is False or (type(value) is int and value == 0):
        return True
    if not isinstance(value, str):
        return False
    if "$" in value:
        if _unresolved(value, env):
            return False  # not known: an error where secrets are needed, else left out
        label = _entry_label(str(at[0]), item)
        value = _expand_text(value, env, lines, (*at, "enabled"), label)
    return value.lower() in _FALSE_TEXTS


def _unresolved(value: Any, env: Mapping[str, str]) -> bool:
    """Whether `value` names a variable that has neither a value nor a default."""
    if isinstance(value, str):
        return any(
            m.group(1) and m.group(2) is None and not env.get(m.group(1))
            for m in _VAR.finditer(value)
        )
    if isinstance(value, list):
        return any(_unresolved(v, env) for v in value)
    if isinstance(value, dict):
        return any(_unresolved(v, env) for v in value.values())
    return False


def _expand(
    value: Any, env: Mapping[str, str], lines: _LineFinder, at: Path_, label: str = ""
) -> Any:
    """`value` with `${VAR}`s replaced; `label` names the entry being walked (`source 'crm'`)
    for messages, taken from an item of `sources:` / `destinations:` by its name or type."""
    if isinstance(value, str):
        return _expand_text(value, env, lines, at, label)
    if isinstance(value, list):
        if at in (("sources",), ("destinations",)):
            return [
                _expand(v, env, lines, (*at, i), _entry_label(at[0], v))
                for i, v in enumerate(value)
            ]
        return [_expand(v, env, lines, (*at, i), label) for i, v in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if isinstance(key, str) and "${" in key.replace("$$", ""):
                path = ".".join(str(p) for p in (*at, key))
                raise ConfigError(
                    f"{lines.where((*at, key))}: {path}: variables are read in values "
                    "only, not in keys; write the key as it is (a literal $ is $$)"
                )
        expanded = {
            _unescaped(k): _expand(v, env, lines, (*at, k), label) for k, v in value.items()
        }
        if len(expanded) < len(value):  # `a$$` and `a$` are one key: one would be lost
            twins = [
                k for k in value if isinstance(k, str) and "$$" in k and _unescaped(k) in value
            ]
            path = ".".join(str(p) for p in (*at, twins[0]))
            raise ConfigError(
                f"{lines.where((*at, twins[0]))}: {path}: the same key as "
                f"{_unescaped(twins[0])!r} ($$ is a literal $); keep one of them"
            )
        return expanded
    return value


def _unescaped(key: Any) -> Any:
    """A mapping's key with `$$` read as a literal `$`, as in values."""
    return key.replace("$$", "$") if isinstance(key, str) else key


def _entry_label(key: str, item: Any) -> str:
    """`source 'crm'` for an item of `sources:` (its name, else its type), `` if neither."""
    if not isinstance(item, dict):
        return ""
    name = item.get("name") or item.get("type")
    return f"{key.removesuffix('s')} {name!r}" if isinstance(name, str) and name else ""


def _expand_text(
    text: str, env: Mapping[str, str], lines: _LineFinder, at: Path_, label: str = ""
) -> str:
    if "$" not in text:
        return text
    _check_references_written(text, lines, at, label)
    if _credential_position(at) or str(at[-1] if at else "").endswith("url"):
        _check_bare_names(text, env, lines, at, label)
    used: list[str] = []
    given: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        used.append(name)
        value = env.get(name)
        if not value:  # unset or empty: like the shell's ${X:-default}, "" is no value
            if default is None:
                # an empty secret would go out as `Bearer ` with nothing after it
                raise ConfigError(
                    f"{lines.where(at)}: {_key_named(at, label)} uses ${{{name}}}, which "
                    f"{_why_no_value(name, env)}, or give a default: ${{{name}:-...}}"
                )
            value = default.replace("$$", "$")  # a literal `$` is `$$` there too
        if _SECRET_NAME.search(name) or _credential_position(at):
            remember(value)
        given.append(value)
        return value

    expanded = FromVariables(_VAR.sub(substitute, text))
    expanded.variables = tuple(dict.fromkeys(used))
    expanded.values = tuple(dict.fromkeys(given))
    return expanded


class _Environment(dict[str, str]):
    """The variables a config reads (`.env`'s, then the environment's over them), with
    both kept apart to say where an empty value came from."""

    def __init__(
        self, merged: Mapping[str, str], *, dotenv: Mapping[str, str], outside: Mapping[str, str]
    ) -> None:
        super().__init__(merged)
        self.dotenv = dotenv
        self.outside = outside


def _why_no_value(name: str, env: Mapping[str, str]) -> str:
    """Why variable `name` has no value, and how to give it one (a message's middle):
    unset, empty in `.env`, or empty in the environment, which wins over `.env` even
    where `.env` sets it (README: the environment wins)."""
    if env.get(name) is None:
        return "is not set; set it in the environment or in .env beside the config"
    if not isinstance(env, _Environment):
        return "is set but empty; give it a value in the environment or in .env beside the config"
    if name not in env.outside:
        return "is set but empty in .env; give it a value there or in the environment"
    if env.dotenv.get(name):
        return (
            "is set but empty in the environment, and the environment wins over .env, which "
            "sets it; unset it in the environment (or give it a value)"
        )
    return (
        "is set but empty in the environment; give it a value there, or unset it there and "
        "set it in .env beside the config"
    )


_ANY_REFERENCE = re.compile(r"\$\$|\$\{[^}]*\}?")


def _check_references_written(text: str, lines: _LineFinder, at: Path_, label: str) -> None:
    """Raise ConfigError for a `${` that is not `${NAME}` or `${NAME:-default}`: `${X:=5}`,
    `${X-5}`, `${X` never closed, `${X:-${Y}}` (no nesting); each would be kept as text."""
    for match in _ANY_REFERENCE.finditer(text):
        written = match.group(0)
        if written == "$$":
            continue
        valid = _VAR.fullmatch(written)
        if valid is not None and "${" not in (valid.group(2) or ""):
            continue
        if "${" in written[2:]:
            problem = f"{written}: a default cannot hold another variable"
        elif not written.endswith("}"):
            problem = f"{written[:40]} is never closed"
        else:
            problem = f"{written} is not a variable this config reads"
        key = _key_named(at, label)
        raise ConfigError(
            f"{lines.where(at)}: {key}: {problem}; write ${{NAME}} or ${{NAME:-default}} "
            "(a literal $ is $$)"
        )


_BARE = re.compile(r"\$\$|\$([A-Za-z_][A-Za-z0-9_]*)")


def _check_bare_names(
    text: str, env: Mapping[str, str], lines: _LineFinder, at: Path_, label: str
) -> None:
    """Raise ConfigError for `$NAME` (the shell's form without braces) naming a variable
    that is set, in a credential or a URL: it is kept as text (the config reads `${NAME}`),
    so `Bearer $TOKEN` would go out as written. An unset name stays text (`pa$word`), and
    so does any elsewhere (a `command` running `sh -c 'echo $HOME'`); `$$` is a literal `$`."""
    for match in _BARE.finditer(text):
        name = match.group(1)
        if name and env.get(name) is not None:
            raise ConfigError(
                f"{lines.where(at)}: {_key_named(at, label)}: ${name} is kept as text, not "
                f"read from the variable; write ${{{name}}}, or $${name} for a literal $"
            )


def _key_named(at: Path_, label: str) -> str:
    """How a message names the key at `at`: within a labelled entry (`source 'gh'`), the
    label and the path inside it (`source 'gh': headers.Authorization`), else the path."""
    key = ".".join(str(p) for p in (at[2:] if label else at))
    return f"{label}: {key}" if label else key


def _credential_position(at: Path_) -> bool:
    """Whether a key path holds a credential: under `params`, `headers`, `env`, `auth` or a
    login form, or at a key named like one (`token`, `password`, `webhook_url`, ...)."""
    return any(
        isinstance(part, str) and (part in _CREDENTIAL_KEYS or _SECRET_NAME.search(part))
        for part in at
    )


_CREDENTIAL_KEYS = frozenset({"params", "headers", "env", "auth", "login", "fields", "basic"})


def _names_credential(at: Path_) -> bool:
    """Whether the value at a key path is a credential a message must not show: under
    `headers`, `auth`, a login form... (`_CREDENTIAL_KEYS`), or at a key named like one
    (`token`, `api_key`); not below a name of the user's own that only looks like one (a
    metric `api_keys`, a KPI `monkey.x`), as `_credential_position` takes it."""
    last = next((part for part in reversed(at) if isinstance(part, str)), "")
    return bool(_SECRET_NAME.search(last)) or any(part in _CREDENTIAL_KEYS for part in at)


def _dotenv(path: Path, outside: Mapping[str, str]) -> Mapping[str, str]:
    """The variables of the `.env` file at `path` ({} without one). A value's `${NAME}`
    (python-dotenv's interpolation) is read from `outside` (the environment) first, then
    from the lines above it: the environment wins over `.env` there too, as it does for
    the config's own `${NAME}` (python-dotenv would take the file's first). A value in
    single quotes (`PASS='pa${X}'`) is kept as written, as a shell and Docker Compose keep
    it (python-dotenv would read the `${X}`). A file that cannot be read, is not UTF-8, or
    has a line python-dotenv cannot parse (a quote never closed) is a ConfigError naming
    the line but never its text, which may hold a secret: python-dotenv would only log a
    warning and leave the variable out."""
    if not path.is_file():
        return {}
    import io

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text; save the .env file as UTF-8") from None
    literal: dict[str, bool] = {}  # each name's last line: whether its value is in '...'
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise ConfigError(
                f"{path}:{binding.original.line}: cannot read this line; write NAME=value, and "
                "close a quote a value opens ('...' or \"...\")"
            )
        if binding.key is not None:
            literal[binding.key] = _SINGLE_QUOTED.match(binding.original.string) is not None
    from dotenv.variables import parse_variables

    values: dict[str, str | None] = {}
    for name, value in dotenv_values(stream=io.StringIO(text), interpolate=False).items():
        if value is not None and "${" in value and not literal.get(name):
            known = {**values, **outside}
            value = "".join(atom.resolve(known) for atom in parse_variables(value))
        values[name] = value
    return {k: v for k, v in values.items() if v is not None}


# a `.env` line whose value is in single quotes (python-dotenv's parser: `export `, a key
# bare or in '...', `=`): literal as in a shell and Docker Compose, where python-dotenv
# would read a `${NAME}` in it
_SINGLE_QUOTED = re.compile(r"\s*(?:export[^\S\r\n]+)?(?:'[^']+'|[^=#\s]+)[^\S\r\n]*=[^\S\r\n]*'")


class _LineFinder:
    """Maps a key path like ('sources', 2, 'url') to `file:line` using the YAML node tree of
    `text`, built on the first question (only an error asks one)."""

    def __init__(self, text: str, label: str) -> None:
        self.text = text
        self.label = label
        self._root: yaml.Node | None = None

    @property
    def root(self) -> yaml.Node | None:
        if self._root is None:
            self._root = _node_tree(self.text)
        return self._root

    def where(self, at: Path_) -> str:
        node = self.root
        line = None
        for part in at:
            child = self._child(node, part)
            if child is None:
                break
            node, line = child
        if line is None and node is not None and node is not self.root:
            line = node.start_mark.line + 1
        return f"{self.label}:{line}" if line else self.label

    def _node_at(self, at: Path_) -> Any:
        """The YAML node at key path `at`, or None where the file has no such key."""
        node = self.root
        for part in at:
            child = self._child(node, part)
            if child is None:
                return None
            node = child[0]
        return node

    def written(self, at: Path_) -> str | None:
        """The text of the plain (unquoted) scalar at `at` as the file writes it, else None."""
        import yaml

        node = self._node_at(at)
        if isinstance(node, yaml.ScalarNode) and not node.style:
            return str(node.value)
        return None

    def written_key(self, at: Path_, value: Any) -> tuple[str, Any] | None:
        """(text, value YAML reads) of the plain key of the mapping at `at` that is not a
        text and equals `value` (pydantic names a key `yes`, read as true, 1), else None."""
        import yaml

        key = self._key_node(at, value)
        return (str(key.value), yaml.safe_load(key.value)) if key is not None else None

    def key_where(self, at: Path_, value: Any) -> str | None:
        """`file:line` of the key `written_key` finds, else None."""
        key = self._key_node(at, value)
        return f"{self.label}:{key.start_mark.line + 1}" if key is not None else None

    def _key_node(self, at: Path_, value: Any) -> Any:
        import yaml

        node = self._node_at(at)
        if not isinstance(node, yaml.MappingNode):
            return None
        for key, _ in node.value:
            plain = isinstance(key, yaml.ScalarNode) and not key.style and key.tag != _STR
            if plain and yaml.safe_load(key.value) == value:
                return key
        return None

    @staticmethod
    def _child(node: Any, part: str | int) -> tuple[Any, int] | None:
        import yaml

        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(key.value) == str(part):
                    return value, key.start_mark.line + 1
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            item = node.value[part]
            return item, item.start_mark.line + 1
        return None
