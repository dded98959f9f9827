"""The cache of validated configs (`kpi_collector.config.cache`): used again only while the
file, the variables it names and the installed code are the same; never a secret in it.

Each load runs in a fresh process, as `kpi` does; whether it came from the cache shows in
what the process had to import: building a config parses YAML, a cached one does not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]

LOAD = """
import json, sys
from kpi_collector.config import load_config
config = load_config(sys.argv[1], need_secrets=sys.argv[2] == "1")
print(json.dumps({
    "from_cache": "yaml" not in sys.modules,
    "sources": {s.name: s.model_dump(mode="json") for s in config.sources},
}))
"""


def python(script: str, *args: str, env: dict[str, str]) -> str:
    """The standard output of `python -c SCRIPT ARGS` in a process of its own (a fresh
    interpreter: whether `yaml` was imported tells a cached load from a parsed one)."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def load(config: Path, env: dict[str, str], *, need_secrets: bool = True) -> dict[str, Any]:
    return dict(json.loads(python(LOAD, str(config), "1" if need_secrets else "0", env=env)))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    base["PYTHONPATH"] = str(ROOT)
    base["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return base


def cache_files(env: dict[str, str]) -> list[Path]:
    folder = Path(env["XDG_CACHE_HOME"]) / "kpi-collector"
    return sorted(folder.iterdir()) if folder.is_dir() else []


CONFIG = """\
sources:
  - {name: a, type: command, command: [echo, "1"], timeout: "${T:-7.25}"}
  - {name: b, type: html, url: "http://127.0.0.1:9/b", metrics: {n: {css: p, count: true}}}
"""


def test_a_config_is_used_again_from_the_cache_until_the_file_changes(
    tmp_path: Path, env: dict[str, str]
) -> None:
    config = tmp_path / "kpi.yaml"
    config.write_text(CONFIG)
    first = load(config, env)
    assert not first["from_cache"]
    (written,) = cache_files(env)
    assert written.stat().st_mode & 0o077 == 0  # the owner's only
    again = load(config, env)
    assert again["from_cache"] and again["sources"] == first["sources"]
    config.write_text(CONFIG.replace("127.0.0.1:9/b", "127.0.0.1:9/c"))
    changed = load(config, env)
    assert not changed["from_cache"]
    assert changed["sources"]["b"]["url"] == "http://127.0.0.1:9/c"
    assert load(config, env)["from_cache"]


def test_a_changed_variable_rebuilds_the_config(tmp_path: Path, env: dict[str, str]) -> None:
    """Unset, `${T:-7.25}` gives its default and the config is cached with T's absence in
    its key; set (in the environment or `.env`), the cached config is not used, and the
    config built with T's value is cached in its place."""
    config = tmp_path / "kpi.yaml"
    config.write_text(CONFIG)
    assert load(config, env)["sources"]["a"]["timeout"] == 7.25
    assert load(config, env)["from_cache"]
    changed = load(config, {**env, "T": "9.5"})
    assert not changed["from_cache"] and changed["sources"]["a"]["timeout"] == 9.5
    (tmp_path / ".env").write_text("T=11.5\n")  # .env beside the config counts too
    from_dotenv = load(config, env)
    assert not from_dotenv["from_cache"] and from_dotenv["sources"]["a"]["timeout"] == 11.5
    again = load(config, env)
    assert again["from_cache"] and again["sources"]["a"]["timeout"] == 11.5
    (tmp_path / ".env").unlink()
    default = load(config, env)
    assert not default["from_cache"] and default["sources"]["a"]["timeout"] == 7.25


def test_the_cache_keeps_no_secret(tmp_path: Path, env: dict[str, str]) -> None:
    """A config holding a token from a variable is cached with the variable's name where the
    token goes (and only a salted hash of its value in the key): read back, the token is
    there again and still redacted. A secret written in the file itself is never cached."""
    import hashlib

    token = "tok-1f3a9c77e0"
    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n"
        "  - {name: api, type: http_json, url: 'http://127.0.0.1:9/api',"
        " headers: {Authorization: 'Bearer ${API_TOKEN}'}, metrics: {n: n}}\n"
    )
    secret_env = {**env, "API_TOKEN": token}
    probe = (
        "import sys\n"
        "from kpi_collector.config import load_config\n"
        "from kpi_collector.secrets import redact, reveal\n"
        "config = load_config(sys.argv[1])\n"
        "header = config.sources[0].headers['Authorization']\n"
        "print('yaml' not in sys.modules, reveal(header) == 'Bearer ' + sys.argv[2],"
        " redact('sent ' + sys.argv[2]))\n"
    )

    def read() -> str:
        return python(probe, str(config), token, env=secret_env).strip()

    assert read() == "False True sent ***"
    assert read() == "True True sent ***"  # from the cache: the token filled in, redacted
    (file,) = cache_files(env)
    data = file.read_bytes()
    assert token.encode() not in data
    assert hashlib.sha256(token.encode()).digest() not in data
    changed = {**env, "API_TOKEN": "tok-other-value-99"}
    assert not load(config, changed)["from_cache"]
    for file in cache_files(env):
        assert b"tok-other-value-99" not in file.read_bytes()
    config.write_text(
        "sources:\n"
        "  - {name: api, type: http_json, url: 'http://127.0.0.1:9/api',"
        " headers: {Authorization: 'Bearer sk-written-in-the-file'}, metrics: {n: n}}\n"
    )
    assert not load(config, env)["from_cache"]
    assert not load(config, env)["from_cache"]
    for file in cache_files(env):
        assert b"sk-written-in-the-file" not in file.read_bytes()


@pytest.mark.parametrize(
    "store",
    [
        "postgresql+psycopg://kpi:pw-in-the-file-77@127.0.0.1:1/kpi",
        "mysql+pymysql://kpi:pw%2Fin%40the-file-77@127.0.0.1:1/kpi",
        "postgresql+psycopg:///kpi?host=127.0.0.1&user=kpi&password=pw-in-the-file-77",
    ],
)
def test_a_store_url_with_its_password_in_the_file_is_never_cached(
    tmp_path: Path, env: dict[str, str], store: str
) -> None:
    """The store's password written in the config file itself is a secret there like any
    other: the config is not cached (it was, the password in clear in the cache file); from
    a variable (`${DATABASE_URL}`) it is cached with the variable's name in its place."""
    config = tmp_path / "kpi.yaml"
    config.write_text(f'store: "{store}"\n' + CONFIG)
    assert not load(config, env)["from_cache"]
    assert not load(config, env)["from_cache"]
    for file in cache_files(env):
        assert b"in-the-file-77" not in file.read_bytes() and b"the-file" not in file.read_bytes()
    config.write_text('store: "${DATABASE_URL}"\n' + CONFIG)
    with_variable = {**env, "DATABASE_URL": store}
    assert not load(config, with_variable)["from_cache"]
    assert load(config, with_variable)["from_cache"]
    for file in cache_files(env):
        assert b"in-the-file-77" not in file.read_bytes() and b"the-file" not in file.read_bytes()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped"])
def test_a_damaged_cache_is_rebuilt(tmp_path: Path, env: dict[str, str], damage: str) -> None:
    config = tmp_path / "kpi.yaml"
    config.write_text(CONFIG)
    first = load(config, env)
    (file,) = cache_files(env)
    data = file.read_bytes()
    if damage == "garbage":
        file.write_bytes(b"\x80\x05not a pickle at all")
    elif damage == "truncated":
        file.write_bytes(data[: len(data) // 2])
    else:  # the header intact, one byte of the pickle changed
        file.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    rebuilt = load(config, env)
    assert not rebuilt["from_cache"] and rebuilt["sources"] == first["sources"]
    assert file.read_bytes() != data or damage == "flipped"
    assert load(config, env)["from_cache"]


def test_an_upgraded_distribution_rebuilds_the_config(tmp_path: Path, env: dict[str, str]) -> None:
    """A plugin's version is in its `*.dist-info` folder's name on `sys.path`."""
    config = tmp_path / "kpi.yaml"
    config.write_text(CONFIG)
    site = tmp_path / "site"
    (site / "kpi_plugin_x-1.0.dist-info").mkdir(parents=True)
    env = {**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{site}"}
    load(config, env)
    assert load(config, env)["from_cache"]
    (site / "kpi_plugin_x-1.0.dist-info").rename(site / "kpi_plugin_x-1.1.dist-info")
    assert not load(config, env)["from_cache"]
    assert load(config, env)["from_cache"]


def copy_of_the_package(folder: Path) -> Path:
    """This package's code copied into `folder` (first on `sys.path` through PYTHONPATH)."""
    import shutil

    source = ROOT / "src" / "kpi_collector"
    target = folder / "kpi_collector"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_a_changed_file_of_the_package_rebuilds_the_config(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """From a source checkout (or an editable install) each of its files counts."""
    config = tmp_path / "kpi.yaml"
    config.write_text(CONFIG)
    package = copy_of_the_package(tmp_path / "src")
    env = {**env, "PYTHONPATH": f"{tmp_path / 'src'}{os.pathsep}{ROOT}"}
    load(config, env)
    assert load(config, env)["from_cache"]
    with (package / "collect" / "extract.py").open("a") as code:
        code.write("\n# changed\n")
    assert not load(config, env)["from_cache"]
    assert load(config, env)["from_cache"]


def test_a_reinstalled_package_rebuilds_the_config(tmp_path: Path, env: dict[str, str]) -> None:
    """Installed from a wheel, the package's code is its distribution's RECORD, which every
    install writes again (here: another build of the same version)."""
    config = tmp_path / "kpi.yaml"
    config.write_text(CONFIG)
    site = tmp_path / "site"
    copy_of_the_package(site)
    record = site / "kpi_collector-0.1.0.dist-info" / "RECORD"
    record.parent.mkdir()
    installed = distribution("kpi-collector")  # its types are found through entry points
    for name in ("METADATA", "entry_points.txt"):
        (record.parent / name).write_text(installed.read_text(name) or "")
    record.write_text("kpi_collector/__init__.py,sha256=one,100\n")
    env = {**env, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}"}
    load(config, env)
    assert load(config, env)["from_cache"]
    record.write_text("kpi_collector/__init__.py,sha256=another,101\n")
    assert not load(config, env)["from_cache"]
    assert load(config, env)["from_cache"]


def test_kpi_config_cache_0_turns_it_off(tmp_path: Path, env: dict[str, str]) -> None:
    config = tmp_path / "kpi.yaml"
    config.write_text(CONFIG)
    off = {**env, "KPI_CONFIG_CACHE": "0"}
    load(config, off)
    assert not load(config, off)["from_cache"] and cache_files(env) == []


def test_a_secret_already_known_to_the_process_still_keeps_its_config_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a process that met the token before, validating a config marks it secret again:
    from a variable it is cached as the variable's name; written in the file, not cached."""
    from kpi_collector.config import load_config, plugins
    from kpi_collector.secrets import remember

    # a test before this one may have registered plugin types in this process, which turns
    # the cache off: this test's config uses built-in types only, so set those aside
    monkeypatch.setattr(plugins, "_extra", {group: {} for group in plugins._extra})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KPI_CONFIG_CACHE", raising=False)
    folder = tmp_path / "cache" / "kpi-collector"
    plain = tmp_path / "plain" / "kpi.yaml"
    plain.parent.mkdir()
    plain.write_text(CONFIG)
    load_config(plain)
    assert len(list(folder.iterdir())) == 1  # a config without secrets is cached here
    token = "tok-known-before-5c1d"
    remember(token)
    monkeypatch.setenv("API_TOKEN", token)
    secret = tmp_path / "secret" / "kpi.yaml"
    secret.parent.mkdir()
    secret.write_text(
        "sources:\n"
        "  - {name: api, type: http_json, url: 'http://127.0.0.1:9/api',"
        " headers: {Authorization: 'Bearer ${API_TOKEN}'}, metrics: {n: n}}\n"
    )
    load_config(secret)
    load_config(secret)
    assert len(list(folder.iterdir())) == 2  # cached, the token as its variable's name
    assert all(token.encode() not in f.read_bytes() for f in folder.iterdir())
    literal = tmp_path / "literal" / "kpi.yaml"
    literal.parent.mkdir()
    literal.write_text(
        "sources:\n"
        "  - {name: api, type: http_json, url: 'http://127.0.0.1:9/api',"
        f" headers: {{Authorization: 'Bearer {token}'}}, metrics: {{n: n}}}}\n"
    )
    load_config(literal)  # the token written in the file: not cached, though known before
    assert len(list(folder.iterdir())) == 2


SHARED = """\
locale: de
sources:
  - {name: a, type: html, url: "http://127.0.0.1:9/a", metrics: {n: {css: p, count: true}}}
  - {name: b, type: html, url: "http://127.0.0.1:9/b", metrics: {n: {css: p, count: true}}}
  - {name: c, type: html, url: "http://127.0.0.1:9/c", metrics: {n: {css: p, count: 1}}}
  - {name: d, type: html, url: "http://127.0.0.1:9/d", metrics: {n: {css: p}, m: {css: q}}}
  - {name: e, type: html, url: "http://127.0.0.1:9/e", metrics: {n: {css: p, map: {x: 1}}}}
  - {name: f, type: html, url: "http://127.0.0.1:9/f", metrics: {n: {css: p, map: {x: 1}}}}
"""

SHARING = """
import json, sys
from kpi_collector.config import load_config
config = load_config(sys.argv[1])
spec = {s.name: s.metrics for s in config.sources}
print(json.dumps({
    "from_cache": "yaml" not in sys.modules,
    "same": [[x, y] for x in spec for y in spec if x < y
             and any(m is n for m in spec[x].values() for n in spec[y].values())],
    "sources": {s.name: s.model_dump(mode="json", exclude_unset=True) for s in config.sources},
    "raw_kept": len(config.settings.sources),
}))
"""


def test_equal_metric_specs_are_one_object_built_or_from_the_cache(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Sources whose metric specs are equal (a 50,000-source config counting one selector)
    hold one spec object, from YAML and from the cache alike; specs that differ in a value
    or in what was written (`count: 1` is `true` too, `map:` cannot be compared cheaply)
    stay their own, and each source's values and set fields are as written."""
    config = tmp_path / "kpi.yaml"
    config.write_text(SHARED)

    def run() -> dict[str, Any]:
        return dict(json.loads(python(SHARING, str(config), env=env)))

    built, cached = run(), run()
    assert (built["from_cache"], cached["from_cache"]) == (False, True)
    # a and b are equal; c has count: 1, validated to true: equal values, equal fields set;
    # d's `n` sets no `count`; e and f hold a map
    expected = [["a", "b"], ["a", "c"], ["b", "c"]]
    assert built["same"] == cached["same"] == expected
    assert built["sources"] == cached["sources"]
    assert built["sources"]["d"] == {
        "name": "d",
        "url": "http://127.0.0.1:9/d",
        "metrics": {"n": {"css": "p"}, "m": {"css": "q"}},
        "locale": "de",
    }
    assert built["sources"]["e"]["metrics"] == {"n": {"css": "p", "map": {"x": 1.0}}}
    # the raw entries are not kept beside the validated sources
    assert built["raw_kept"] == cached["raw_kept"] == 0


PAGES = """\
timezone: Europe/Berlin
defaults: {{max_bytes: 1MiB, timeout: 5}}
kpis:
  blog.posts: {{title: Posts, target: 100}}
  both: {{formula: "blog.posts + api.value"}}
alerts:
  - {{kpi: blog.posts, below: 1, for: 2}}
sources:
  - {{name: blog, type: html, url: "{url}/blog", metrics: {{posts: {{css: a.anthrazit, count: true}}}}}}
  - name: api
    type: http_json
    url: "{url}/auth/bearer"
    auth: {{bearer: "${{TOKEN}}"}}
    metrics: {{value: value}}
  - name: key
    type: http_json
    url: "{url}/auth/header"
    auth: {{header: {{X-Api-Key: "${{TOKEN}}"}}}}
    metrics: {{value: value}}
  - name: member
    type: html
    url: "{url}/private"
    login: {{url: "{url}/login", fields: {{email: "${{EMAIL}}", password: "${{TOKEN}}"}}}}
    metrics: {{total: "#total"}}
"""


def test_a_cached_run_of_page_and_api_sources_never_imports_pydantic(
    tmp_path: Path, env: dict[str, str], site: tuple[str, Any]
) -> None:
    """`html` and `http_json` sources (auth, a login form, metrics), KPIs, alerts and
    defaults are cached as their plain classes: the second `kpi run` imports neither
    pydantic nor a config model, and stores the same values the first one did."""
    from tests.conftest import TOKEN

    url, _ = site
    config = tmp_path / "kpi.yaml"
    config.write_text(PAGES.format(url=url))
    run_env = {**env, "TOKEN": TOKEN, "EMAIL": "me@example.com", "PYTHONPATH": str(ROOT / "src")}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "kpi_collector", "-c", str(config), "run"],
            capture_output=True,
            text=True,
            env=run_env,
            cwd=tmp_path,
            timeout=120,
        )

    first, second = run(), run()
    assert first.returncode == 0, first.stderr[-2000:]
    assert second.returncode == 0, second.stderr[-2000:]
    imported = {line.rpartition("|")[2].strip() for line in second.stderr.splitlines()}
    assert "yaml" not in imported  # from the cache
    assert not {name for name in imported if name.startswith("pydantic")}
    models = {"kpi_collector.config.models", "kpi_collector.sources.model"}
    assert not models & imported
    assert "run 1: 5 values, 0 errors" in first.stdout
    assert "run 2: 5 values, 0 errors" in second.stdout
    for kpi in ("Posts", "both", "api.value", "key.value", "member.total"):  # Posts: a title
        (row,) = [line for line in second.stdout.splitlines() if line.startswith(f"{kpi} ")]
        assert row.endswith("±0"), row  # the value the built config's run stored
    assert TOKEN not in second.stdout + second.stderr


CACHED = """
import json, sys
from kpi_collector.config import load_config
config = load_config(sys.argv[1])
blog, api, member = config.sources
copy = blog.model_copy(update={"url": "http://127.0.0.1:9/other"})
print(json.dumps({
    "from_cache": "yaml" not in sys.modules,
    "pydantic": "pydantic" in sys.modules,
    "types": [type(s).__name__ for s in config.sources],
    "ids": config.kpi_ids(),
    "order": config.order(["both", "api.value", "blog.posts"]),
    "alert": [config.settings.alerts[0].key, config.settings.alerts[0].hold_checks],
    "max_bytes": config.defaults.max_bytes,
    "auth": repr(api.auth.bearer),
    "login": member.login.fields["email"].get(),
    "replaced": blog.replaced(url="http://x/").url,
    "copy": [type(copy).__name__, copy.url, blog.url],
}))
"""


def test_cached_objects_answer_as_their_models(tmp_path: Path, env: dict[str, str]) -> None:
    """A config read from the cache holds plain objects: their fields, properties and methods
    give what the models give, and pydantic's API (`model_copy`) still answers, importing
    pydantic only then."""
    config = tmp_path / "kpi.yaml"
    written = PAGES.format(url="http://127.0.0.1:9")
    basic = written.index("  - name: key\n")
    config.write_text(written[:basic] + written[written.index("  - name: member\n") :])
    run_env = {**env, "TOKEN": "tok-5e9b2a", "EMAIL": "me@example.com"}
    built = json.loads(python(CACHED, str(config), env=run_env))
    cached = json.loads(python(CACHED, str(config), env=run_env))
    assert (built["from_cache"], cached["from_cache"]) == (False, True)
    assert built["types"] == ["HTML", "HttpJson", "HTML"]
    assert cached["types"] == ["PlainHTML", "PlainHttpJson", "PlainHTML"]
    for key in ("ids", "order", "alert", "max_bytes", "auth", "login", "replaced", "copy"):
        assert cached[key] == built[key], key
    assert cached["copy"] == ["HTML", "http://127.0.0.1:9/other", "http://127.0.0.1:9/blog"]
    assert cached["max_bytes"] == 1024 * 1024 and cached["auth"] == "Secret('***')"
    assert cached["pydantic"]  # model_copy built the model


def test_a_third_party_source_keeps_its_own_class_in_the_cache(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A plugin's source type (a model without a plain class of its own) is cached as itself,
    beside the built-ins cached as plain objects."""
    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n"
        "  - {name: d, type: dice, sides: 8}\n"
        "  - {name: p, type: html, url: 'http://127.0.0.1:9/p', metrics: {n: p}}\n"
    )
    script = (
        "import json, sys\nfrom kpi_collector.config import load_config\n"
        "c = load_config(sys.argv[1])\n"
        "print(json.dumps([[type(s).__name__, s.kpi_ids()] for s in c.sources]))\n"
    )
    built = json.loads(python(script, str(config), env=env))
    cached = json.loads(python(script, str(config), env=env))
    assert built == [["Dice", ["d.sides", "d.faces_sum"]], ["HTML", ["p.n"]]]
    assert cached == [["Dice", ["d.sides", "d.faces_sum"]], ["PlainHTML", ["p.n"]]]


PLUGIN = """
from typing import ClassVar
from kpi_collector.sources.base import Source

class Coin(Source):
    type: ClassVar[str] = "coin"
    sides: int = SIDES

    def metric_names(self) -> list[str]:
        return ["sides"]

    async def collect(self, ctx):
        return {"sides": self.sides}
"""


def test_a_changed_plugin_in_a_checkout_rebuilds_the_config(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A plugin installed from a checkout (editable: its code is not copied, so no installer
    writes anything when it changes) had its config from the cache after its code changed:
    a new default (or a check it added) was not seen until the config file changed."""
    checkout = tmp_path / "checkout"
    info = checkout / "kpi_coin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kpi-coin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[kpi_collector.sources]\ncoin = kpi_coin:Coin\n")
    module = checkout / "kpi_coin.py"
    module.write_text(PLUGIN.replace("SIDES", "2"))
    env = {**env, "PYTHONPATH": f"{ROOT}{os.pathsep}{checkout}"}
    config = tmp_path / "kpi.yaml"
    config.write_text("sources:\n  - {name: c, type: coin}\n")
    assert load(config, env)["sources"]["c"]["sides"] == 2
    assert load(config, env)["from_cache"]
    module.write_text(PLUGIN.replace("SIDES", "3"))  # the plugin's author changes it
    again = load(config, env)
    assert not again["from_cache"]
    assert again["sources"]["c"]["sides"] == 3
