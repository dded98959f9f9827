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


def load(config: Path, env: dict[str, str], *, need_secrets: bool = True) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(config), "1" if need_secrets else "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


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
    its key; set (in the environment or `.env`), the cached config is not used."""
    config = tmp_path / "kpi.yaml"
    config.write_text(CONFIG)
    assert load(config, env)["sources"]["a"]["timeout"] == 7.25
    assert load(config, env)["from_cache"]
    changed = load(config, {**env, "T": "9.5"})
    assert not changed["from_cache"] and changed["sources"]["a"]["timeout"] == 9.5
    (tmp_path / ".env").write_text("T=11.5\n")  # .env beside the config counts too
    from_dotenv = load(config, env)
    assert not from_dotenv["from_cache"] and from_dotenv["sources"]["a"]["timeout"] == 11.5
    # a value a variable gave stays in the validated config: such a config is never cached
    assert not load(config, env)["from_cache"]
    (tmp_path / ".env").unlink()
    assert load(config, env)["from_cache"]  # the default again: the first cached config


def test_the_cache_keeps_no_secret(tmp_path: Path, env: dict[str, str]) -> None:
    """A config whose validation found a secret (from a variable or written in the file) is
    not cached; nor is one holding any value a variable gave; the variables' values are
    kept only as salted hashes."""
    import hashlib

    token = "tok-1f3a9c77e0"
    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n"
        "  - {name: api, type: http_json, url: 'http://127.0.0.1:9/api',"
        " headers: {Authorization: 'Bearer ${API_TOKEN}'}, metrics: {n: n}}\n"
    )
    secret_env = {**env, "API_TOKEN": token}
    assert not load(config, secret_env)["from_cache"]
    assert not load(config, secret_env)["from_cache"]
    assert cache_files(env) == []
    config.write_text(
        "sources:\n"
        "  - {name: api, type: http_json, url: 'http://127.0.0.1:9/api',"
        " headers: {Authorization: 'Bearer sk-written-in-the-file'}, metrics: {n: n}}\n"
    )
    assert not load(config, env)["from_cache"] and cache_files(env) == []
    # a source switched off and naming an unset token is left out: that config is cached,
    # with the token's absence in its key; once set, the token is in the config: not cached
    config.write_text(
        CONFIG + "  - {name: idle, type: http_json, enabled: false, url: 'http://127.0.0.1:9/x',"
        " headers: {Authorization: 'Bearer ${API_TOKEN}'}, metrics: {n: n}}\n"
    )
    assert "idle" not in load(config, env, need_secrets=False)["sources"]
    assert load(config, env, need_secrets=False)["from_cache"]
    with_token = load(config, secret_env, need_secrets=False)
    assert not with_token["from_cache"] and "idle" in with_token["sources"]
    for file in cache_files(env):
        data = file.read_bytes()
        assert token.encode() not in data
        assert hashlib.sha256(token.encode()).digest() not in data


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


def test_kpi_config_cache_0_turns_it_off(tmp_path: Path, env: dict[str, str]) -> None:
    config = tmp_path / "kpi.yaml"
    config.write_text(CONFIG)
    off = {**env, "KPI_CONFIG_CACHE": "0"}
    load(config, off)
    assert not load(config, off)["from_cache"] and cache_files(env) == []


def test_a_secret_already_known_to_the_process_still_keeps_its_config_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a process that met the token before (a second load), validating the config marks
    it secret again, and the config is still not cached."""
    from kpi_collector.config import load_config, plugins
    from kpi_collector.secrets import remember

    if plugins.has_extra():
        pytest.skip("a test registered plugins in this process: the cache is off")
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
    assert len(list(folder.iterdir())) == 1
    assert all(token.encode() not in f.read_bytes() for f in folder.iterdir())
