"""`type: huggingface` against a local copy of the Hugging Face Hub API."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kpi_collector.sources.huggingface import HuggingFace
from kpi_collector.sources.huggingface.fake import FakeHub, Repo
from tests.cli import run_kpi, store_dump, stored_values
from tests.conftest import Waits
from tests.fakes.collect import collect, outcome

TOKEN = "hf_testtoken000000000000000000000001"


@pytest.fixture
def hub():
    repos = [
        Repo("model", "acme/tiny", likes=12, downloads=3400),
        Repo("model", "acme/big", likes=30, downloads=100_000),
        Repo("model", "acme/internal", likes=1, downloads=50, private=True),
        Repo("dataset", "acme/corpus", likes=5, downloads=700),
        Repo("space", "acme/demo", likes=8),
        Repo("model", "other/thing", likes=99, downloads=99),
    ]
    # 25 more models, to spread the org's list over pages
    repos += [Repo("model", f"acme/m{i}", likes=i, downloads=10 * i) for i in range(25)]
    fake = FakeHub(repos=repos, tokens={TOKEN: {"acme"}}, page_size=10)
    with fake.serve():
        yield fake


def test_one_model(hub: FakeHub) -> None:
    assert collect(HuggingFace(repo="acme/tiny", api_url=hub.url)) == {
        "downloads": 3400.0,
        "likes": 12.0,
    }
    assert hub.requests[0].path == "/api/models/acme/tiny"


def test_a_dataset_and_a_space(hub: FakeHub) -> None:
    dataset = HuggingFace(repo="acme/corpus", repo_type="dataset", api_url=hub.url)
    assert collect(dataset) == {"downloads": 700.0, "likes": 5.0}
    space = HuggingFace(repo="acme/demo", repo_type="space", api_url=hub.url)
    assert collect(space) == {"likes": 8.0}


def test_an_org_sums_every_page_of_every_type(hub: FakeHub) -> None:
    values = collect(HuggingFace(author="acme", api_url=hub.url))
    # public models: tiny, big and m0..m24; the dataset; the Space has likes only
    models_downloads = 3400 + 100_000 + sum(10 * i for i in range(25))
    models_likes = 12 + 30 + sum(range(25))
    assert values == {
        "downloads": float(models_downloads + 700),
        "likes": float(models_likes + 5 + 8),
    }
    assert hub.calls("/api/models") == 3  # 27 public models, 10 a page
    assert hub.calls("/api/datasets") == 1 and hub.calls("/api/spaces") == 1


def test_a_mirror_whose_links_name_the_hub_is_read_through_the_mirror(hub: FakeHub) -> None:
    """A mirror (or a proxy) hands on the Hub's Link headers, which name huggingface.co: the
    cursor is asked of `api_url`, and the token never goes to the host in the link."""
    hub.link_base = "https://huggingface.co"
    source = HuggingFace(author="acme", repo_type="model", token=TOKEN, api_url=hub.url)
    assert collect(source)["likes"] == float(12 + 30 + 1 + sum(range(25)))
    assert hub.calls("/api/models") == 3
    assert all(r.query.get("author") == "acme" for r in hub.requests)


def test_a_token_counts_private_repositories(hub: FakeHub) -> None:
    source = HuggingFace(
        author="acme", repo_type="model", token=TOKEN, api_url=hub.url, metrics=["likes"]
    )
    assert collect(source) == {"likes": float(12 + 30 + 1 + sum(range(25)))}
    assert hub.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_config_mistakes_are_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="unknown metric 'stars' for type 'huggingface'"):
        HuggingFace(repo="a/b", metrics=["stars"])
    with pytest.raises(ValidationError, match="exactly one of `repo:`"):
        HuggingFace(repo="a/b", author="a")
    with pytest.raises(ValidationError, match="Spaces have no download count"):
        HuggingFace(repo="a/b", repo_type="space", metrics=["downloads"])
    with pytest.raises(ValidationError, match="not a repository like"):
        HuggingFace(repo="gpt2")


def test_missing_or_private_repo_names_repo_and_token(hub: FakeHub) -> None:
    result = outcome(HuggingFace(repo="acme/internal", api_url=hub.url))
    ((_, message, transient),) = result.errors
    assert "no model 'acme/internal'" in message and "`repo:`" in message
    assert "needs `token:`" in message and not transient
    assert collect(HuggingFace(repo="acme/internal", token=TOKEN, api_url=hub.url)) == {
        "downloads": 50.0,
        "likes": 1.0,
    }


def test_wrong_token_names_the_key(hub: FakeHub) -> None:
    wrong = "hf_wrongtoken00000000000000000000009"
    result = outcome(HuggingFace(repo="acme/tiny", token=wrong, api_url=hub.url))
    ((_, message, _),) = result.errors
    assert "Invalid credentials in Authorization header" in message and "`token`" in message
    assert wrong not in message


def test_an_author_with_nothing_names_the_key(hub: FakeHub) -> None:
    result = outcome(HuggingFace(author="nobody", api_url=hub.url))
    ((_, message, _),) = result.errors
    assert "lists no models, datasets, spaces by 'nobody'" in message and "`author:`" in message


def test_rate_limit_is_waited_out(hub: FakeHub) -> None:
    hub.inject(429, {"error": "Too Many Requests"}, headers={"Retry-After": "0"})
    assert collect(HuggingFace(repo="acme/tiny", api_url=hub.url, metrics=["likes"])) == {
        "likes": 12.0
    }
    assert hub.calls() == 2


def test_kpi_run_end_to_end(hub: FakeHub, tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(
        "timezone: UTC\nsources:\n"
        f'  - {{name: hf, type: huggingface, author: acme, repo_type: dataset, token: "${{HF_TOKEN}}", '
        f'api_url: "{hub.url}"}}\n'
    )
    (tmp_path / ".env").write_text(f"HF_TOKEN={TOKEN}\n")
    ran = run_kpi(tmp_path, "run", "--format", "json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    dump = store_dump(tmp_path)
    assert stored_values(tmp_path) == {"hf.downloads": 700.0, "hf.likes": 5.0}
    for text in (ran.stdout, ran.stderr, dump):
        assert TOKEN not in text


HUB_POLICY = {"RateLimit-Policy": '"fixed window";"api";q=500;w=300'}


def test_a_spent_window_is_waited_for_by_the_ratelimit_header(hub: FakeHub, waits: Waits) -> None:
    """The Hub answers 429 without Retry-After, with the IETF draft's `RateLimit: "api";r=0;
    t=55` (t: seconds to the window's reset); it was backed off 1 s, 2 s in vain."""
    hub.inject(
        429, {"error": "Too Many Requests"}, headers={"RateLimit": '"api";r=0;t=3', **HUB_POLICY}
    )
    assert collect(HuggingFace(repo="acme/tiny", api_url=hub.url, metrics=["likes"])) == {
        "likes": 12.0
    }
    assert waits.asked == [3.25]


def test_a_window_resetting_later_than_the_budget_says_when(hub: FakeHub) -> None:
    hub.inject(
        429, {"error": "Too Many Requests"}, headers={"RateLimit": '"api";r=0;t=600', **HUB_POLICY}
    )
    result = outcome(HuggingFace(repo="acme/tiny", api_url=hub.url))
    ((_, message, transient),) = result.errors
    assert "rate limit reached" in message and "it resets at" in message and "in 10 min" in message
    assert transient and hub.calls() == 1


def test_a_private_repo_the_token_cannot_read_says_so(hub: FakeHub) -> None:
    other = "hf_othertoken0000000000000000000002"
    hub.tokens[other] = {"someone-else"}
    result = outcome(HuggingFace(repo="acme/internal", token=other, api_url=hub.url))
    ((_, message, _),) = result.errors
    assert "no model 'acme/internal'" in message and other not in message
    assert "or it is private or gated and the token cannot read it" in message
