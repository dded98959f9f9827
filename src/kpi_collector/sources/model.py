"""`Source`, the model every source type subclasses: the fields all sources share, checked
when the config is read. Its behaviour is in `sources.base.PlainSource`, which a run from the
config cache uses without pydantic; `from kpi_collector.sources.base import Source` serves this
class."""

from __future__ import annotations

from pydantic import ByteSize, Field, field_validator

from kpi_collector.config.plugins import Plugin
from kpi_collector.sources.base import QUEUE_MAX, QUEUE_PATTERN, PlainSource

__all__ = ["Source"]


class Source(PlainSource, Plugin):
    """Base of every source: a config model (pydantic; unknown keys are a ConfigError at
    load) whose subclasses set `type` (the name in `kpi.yaml`, registered as an entry point
    in the `kpi_collector.sources` group) and implement `collect` (and `backfill` when the
    service can give past values).

    Besides `name` and `enabled` (from Plugin) every source takes `timeout` (seconds per
    request attempt, > 0; None: the config's `defaults.timeout`) and `retries` (0 to 10;
    None: `defaults.retries`).
    """

    timeout: float | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0, le=10)
    #: the cap on one answer (HTTP body after decompression, a command's output); bytes
    #: or a size like "50MiB"; default `defaults.max_bytes`
    max_bytes: ByteSize | None = Field(default=None, gt=0)
    #: the Celery queue that collects it with the celery executor (`kpi worker --queues`)
    queue: str = Field(
        default="kpi",
        pattern=QUEUE_PATTERN,
        max_length=QUEUE_MAX,
        description="with `executor: celery`: the queue whose workers collect it "
        "(`kpi worker --queues NAME`); default kpi",
    )
    locale: str | None = Field(
        default=None,
        description="BCP 47 tag (de, de-CH, hi-IN): how the source's text writes numbers; "
        "default: the top-level `locale:`, else the page's lang, else en",
    )

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        from kpi_collector.config.locale import check_locale

        return value if value is None else check_locale(value)
