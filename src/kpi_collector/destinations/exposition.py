"""The Prometheus text exposition format (version 0.0.4), as `/metrics` serves it and the
`pushgateway` destination pushes it: label values escaped, numbers spelled as Prometheus
spells them (`+Inf`, `-Inf`, `NaN`)."""

from __future__ import annotations

import math

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def label(value: str) -> str:
    """A label value for inside double quotes: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def number(value: float) -> str:
    """A sample value: Python's `inf`/`nan` are not the format's `+Inf`/`NaN`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
