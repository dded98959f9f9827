"""`type: python`: a function returning `{name: number}`, sync or async, given or imported."""

from __future__ import annotations

from kpi_collector.sources import Function
from tests.fakes.collect import run


def get_blog_stats() -> dict[str, int]:
    return {"posts": 12, "authors": 3}


async def get_async_stats() -> dict[str, float]:
    return {"mrr": 1234.5}


def test_python_functions_sync_and_async() -> None:
    result = run(
        get_blog_stats,
        Function(get_async_stats, name="billing"),
        Function("tests.test_connectors_python:get_blog_stats", name="imported"),
    )
    assert result.values == {
        "get_blog_stats.posts": 12,
        "get_blog_stats.authors": 3,
        "billing.mrr": 1234.5,
        "imported.posts": 12,
        "imported.authors": 3,
    }


def test_python_function_errors() -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("database is down")

    def wrong_shape() -> list[int]:
        return [1]

    result = run(broken, wrong_shape)
    assert result.errors["broken"] == "RuntimeError: database is down"
    assert "expected a mapping" in result.errors["wrong_shape"]
