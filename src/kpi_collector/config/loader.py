"""Reading `kpi.yaml`: YAML with line numbers, `${VAR}` expansion, validation with errors that
name the file, the line, the source and the key, and say how to fix it.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kpi_collector.config.models import Config, Settings, Unchecked
from kpi_collector.errors import ConfigError
from kpi_collector.secrets import FromVariables, remember

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
    chosen = path or os.environ.get("KPI_CONFIG") or CONFIG_NAME
    found = Path(chosen)
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
) -> Config:
    """Read, expand and validate a config file.

    With `need_secrets=False` (commands that only read the store: history, report, serve),
    a source or destination that names an unset variable is left out instead of failing.
    With `need_store=False` too (deployment snippets), a `store:` naming an unset variable
    is kept as written: it is not opened.
    """
    found = find_config(path)
    try:
        text = found.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{found}: cannot read it: {exc.strerror}") from None
    return parse_config(text, path=found, need_secrets=need_secrets, need_store=need_store)


def parse_config(
    text: str,
    *,
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    need_secrets: bool = True,
    need_store: bool = True,
) -> Config:
    """Validate config text; `path` names it in errors and anchors relative paths and `.env`
    (`need_secrets`, `need_store`: see `load_config`)."""
    import yaml

    label = str(path) if path else CONFIG_NAME
    try:
        root, data = _parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{label}:{mark.line + 1}" if mark else label
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: the top level must be a mapping of keys like `sources:`")
    lines = _LineFinder(root, label)
    environment = dict(_dotenv(path.parent / ".env") if path else {})
    environment.update(os.environ if env is None else env)
    # a switched-off entry, or any entry when the command only reads the store, may name
    # variables that are not set: it is left out (its place kept, for line numbers)
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
            switched_off = not need_secrets or item.get("enabled") is False
            if switched_off and _unresolved(item, environment):
                indexes.add(index)
                name = str(item.get("name") or item.get("type"))
                if key == "sources":
                    unchecked_sources.add(name)
                if item.get("enabled") is not False:
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
    if store is not None:
        data["store"] = store

    settings = _validate(Settings, data, lines, (), "")
    from kpi_collector.config.plugins import destination_type, source_type

    sources = []
    seen: dict[str, int] = {}
    for index, item in enumerate(settings.sources):
        if index in left_out["sources"]:
            continue
        at: Path_ = ("sources", index)
        kind = _kind(item, lines, at, "source")
        label_ = f"source {item.get('name') or kind!r}" if item.get("name") else f"sources[{index}]"
        cls = _resolve(source_type, kind, lines, at)
        source = _validate(cls, {k: v for k, v in item.items() if k != "type"}, lines, at, label_)
        _unique(source.name, index, seen, lines, at, "source")
        sources.append(source)
    destinations = []
    seen = {}
    for index, item in enumerate(settings.destinations):
        if index in left_out["destinations"]:
            continue
        at = ("destinations", index)
        kind = _kind(item, lines, at, "destination")
        cls = _resolve(destination_type, kind, lines, at)
        label_ = f"destination {item.get('name') or kind!r}"
        destination = _validate(
            cls, {k: v for k, v in item.items() if k != "type"}, lines, at, label_
        )
        _unique(destination.name, index, seen, lines, at, "destination")
        destinations.append(destination)
    config = Config(settings, sources, destinations, path=path, unchecked=unchecked)
    if need_secrets:  # with every source left out, references cannot be checked
        _check_references(config, lines, unchecked_sources)
    return config


def _checked_cron(value: Any, lines: _LineFinder, at: Path_) -> str:
    from kpi_collector.config.cron import check_cron

    try:
        return check_cron(str(value))
    except ValueError as exc:
        raise ConfigError(f"{lines.where(at)}: schedule: {exc}") from None


def _unique(
    name: str, index: int, seen: dict[str, int], lines: _LineFinder, at: Path_, what: str
) -> None:
    if name in seen:
        raise ConfigError(
            f"{lines.where((*at, 'name'))}: duplicate {what} name {name!r} "
            f"(also {what}s[{seen[name]}]); give each {what} its own `name:`"
        )
    seen[name] = index


def _parse_yaml(text: str) -> tuple[Any, Any]:
    """Parse once: the node tree (for line numbers) and the data built from it (libyaml when present)."""
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        try:
            data = _plain_data(root, loader)
        except _NotPlain:
            data = loader.construct_document(root)
    finally:
        loader.dispose()
    return root, data


class _NotPlain(Exception):
    """The document uses YAML beyond plain mappings, lists and scalars (merge keys...)."""


_STR, _MAP, _SEQ = (f"tag:yaml.org,2002:{t}" for t in ("str", "map", "seq"))


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
    for error in exc.errors()[:5]:
        loc = tuple(
            p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        key = ".".join(str(p) for p in loc)
        prefix = f"{lines.where(at + loc)}: {label + ': ' if label else ''}"
        kind = error["type"]
        if kind == "extra_forbidden":
            name = str(loc[-1]) if loc else "?"
            known = _known_keys(model, loc[:-1])
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
            message = error["msg"].removeprefix("Value error, ")
            messages.append(f"{prefix}{key + ': ' if key else ''}{message}")
    return "\n".join(messages)


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
    from kpi_collector.config.alerts import alert_problems

    for at, message in alert_problems(config):
        raise ConfigError(f"{lines.where(at)}: {message}")
    star = config.settings.north_star
    if star and star not in known:
        star_source = names.get(star.partition(".")[0])
        # ids of sources left out unchecked, or whose metrics are only known at run time
        open_ids = star_source is not None and not star_source.metric_names()
        if not open_ids and star.partition(".")[0] not in unchecked:
            close = difflib.get_close_matches(star, sorted(known), n=1, cutoff=0.6)
            some = ", ".join(sorted(known)[:5]) + (", ..." if len(known) > 5 else "")
            fix = f"did you mean {close[0]!r}?" if close else f"KPI ids here: {some or 'none'}"
            raise ConfigError(
                f"{lines.where(('north_star',))}: north_star {star!r} is not a KPI id of this "
                f"config; {fix}"
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
    known = set(config.kpi_ids())
    # ids of sources whose metrics are only known at run time are accepted by their prefix
    open_prefixes = {s.name for s in config.sources if not s.metric_names()} | unchecked
    known |= {i for f in parsed.values() for i in f.inputs if i.partition(".")[0] in open_prefixes}
    try:
        order_formulas(parsed, known)
    except ValueError as exc:
        raise ConfigError(f"{lines.where(('kpis',))}: kpis: {exc}") from None


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


def _expand(value: Any, env: Mapping[str, str], lines: _LineFinder, at: Path_) -> Any:
    if isinstance(value, str):
        return _expand_text(value, env, lines, at)
    if isinstance(value, list):
        return [_expand(v, env, lines, (*at, i)) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _expand(v, env, lines, (*at, k)) for k, v in value.items()}
    return value


def _expand_text(text: str, env: Mapping[str, str], lines: _LineFinder, at: Path_) -> str:
    if "$" not in text:
        return text
    used: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        used.append(name)
        value = env.get(name)
        if not value:  # unset or empty: like the shell's ${X:-default}, "" is no value
            if default is None:
                # an empty secret would go out as `Bearer ` with nothing after it
                key = ".".join(str(p) for p in at)
                state = "is not set" if value is None else "is set but empty"
                raise ConfigError(
                    f"{lines.where(at)}: {key} uses ${{{name}}}, which {state}; set it in the "
                    f"environment or in .env beside the config, or give a default: ${{{name}:-...}}"
                )
            value = default
        if _SECRET_NAME.search(name):
            remember(value)
        return value

    expanded = FromVariables(_VAR.sub(substitute, text))
    expanded.variables = tuple(dict.fromkeys(used))
    return expanded


def _dotenv(path: Path) -> Mapping[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


class _LineFinder:
    """Maps a key path like ('sources', 2, 'url') to `file:line` using the YAML node tree."""

    def __init__(self, root: yaml.Node | None, label: str) -> None:
        self.root = root
        self.label = label

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
