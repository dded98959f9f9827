"""The model of a metric (`metrics:` of a source): how to read one number, checked when the
config is read. Its behaviour is in `collect.extract.PlainMetric`, which a run from the config
cache uses without pydantic."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from kpi_collector.collect.extract import (
    PlainExpect,
    PlainMetric,
    _check_css,
    _compile_jmespath,
    _compile_xpath,
)
from kpi_collector.collect.patterns import compile_pattern
from kpi_collector.config.locale import check_locale
from kpi_collector.config.models import CONFIG_MODEL, refuse_bool_as_number

__all__ = ["CSS", "Expect", "JMESPath", "Metric", "XPath"]


class Expect(PlainExpect, BaseModel):
    """Bounds a value must fall in; a value outside is an error and is not stored."""

    model_config = CONFIG_MODEL
    min: float | None = None
    max: float | None = None

    _no_bool_numbers = field_validator("*", mode="before")(classmethod(refuse_bool_as_number))

    @model_validator(mode="after")
    def _a_range(self) -> Expect:
        if self.min is not None and self.max is not None and self.min > self.max:
            # no value could be stored: every one would be outside
            raise ValueError(
                f"min {self.min:g} is more than max {self.max:g}: no value could pass; swap them"
            )
        return self


def _not_a_boolean(value: Any) -> Any:
    """`map: {GREEN: true}`: YAML's true where a number goes is an error, not 1."""
    if isinstance(value, bool):
        raise PydanticCustomError("bool_not_number", "a boolean is not a number")
    return value


#: a number a `map:` gives a text: a boolean is refused, as everywhere a number goes
MappedNumber = Annotated[float, BeforeValidator(_not_a_boolean)]


class Metric(PlainMetric, BaseModel):
    """How to read one metric: an extractor (`jmespath`, `css` or `xpath`) and options."""

    model_config = CONFIG_MODEL

    jmespath: str | None = None
    css: str | None = None
    xpath: str | None = None
    query: str | None = None  # sql sources
    count: bool = False
    attr: str | None = None
    regex: str | None = None
    allow_zero: bool = False
    expect: Expect | None = None
    map: dict[str, MappedNumber] | None = None
    title: str | None = None
    unit: str | None = None
    locale: str | None = Field(
        default=None, description="BCP 47 tag: how this metric's text writes numbers"
    )

    @model_validator(mode="before")
    @classmethod
    def _not_empty(cls, data: Any) -> Any:
        if data is None:
            raise ValueError(
                "the metric is empty; if it is a selector starting with `#`, YAML read it as "
                'a comment: quote it, e.g. downloads: "#downloads"'
            )
        return data

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        return value if value is None else check_locale(value)

    @model_validator(mode="after")
    def _one_extractor(self) -> Metric:
        chosen = [k for k in ("jmespath", "css", "xpath", "query") if getattr(self, k)]
        if len(chosen) > 1:
            raise ValueError(f"give one extractor, not {' and '.join(chosen)}")
        if self.count:
            # the number of matches is the value: an option reading a match's text would
            # be skipped, and the count stored as if it were what that option read
            reading = [k for k in ("attr", "regex", "map") if getattr(self, k) is not None]
            if reading:
                raise ValueError(
                    f"`count: true` stores how many elements match, so `{reading[0]}:` (which "
                    "reads one match's text) would be ignored: drop one of them"
                )
        if self.regex is not None:
            compile_pattern(self.regex)  # ValueError says why
        if self.jmespath:
            _compile_jmespath(self.jmespath)
        if self.css:
            _check_css(self.css)
        if self.xpath:
            _compile_xpath(self.xpath)
        return self


def CSS(selector: str, **options: Any) -> Metric:
    """A metric read with a CSS selector: `CSS("a.post", count=True)`."""
    return Metric(css=selector, **options)


def XPath(expression: str, **options: Any) -> Metric:
    """A metric read with an XPath expression."""
    return Metric(xpath=expression, **options)


def JMESPath(expression: str, **options: Any) -> Metric:
    """A metric read from JSON with a JMESPath expression."""
    return Metric(jmespath=expression, **options)
