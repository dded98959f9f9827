"""Each numbers test starts with empty caches (the CLDR conventions, the locales, the
translation table), so what it checks is computed while it runs: a cache filled before the
test (at import, or in the process `make mutate` forks each mutant from) would hide a broken
computation behind a result made by the code before the change."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _fresh_number_caches() -> Iterator[None]:
    from kpi_collector.collect import numbers

    numbers._cldr_data.cache_clear()
    numbers._cldr.cache_clear()
    numbers._world_currencies.cache_clear()
    numbers.number_locale.cache_clear()
    numbers._NORMAL.clear()
    yield
