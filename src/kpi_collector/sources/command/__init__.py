"""`type: command`: run a program; its stdout is a number or a JSON object of numbers."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, field_validator

from kpi_collector.collect.extract import Metric, finish
from kpi_collector.errors import ExtractError, SourceError
from kpi_collector.secrets import redact, remember_values
from kpi_collector.sources.base import Source, SourceContext
from kpi_collector.sources.python import to_values


class Command(Source):
    type: ClassVar[str] = "command"

    command: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    metric: str = "value"  # the name of a plain-number output
    metrics: dict[str, Metric] = Field(default_factory=dict)

    @field_validator("command", mode="before")
    @classmethod
    def _argv(cls, value: object) -> object:
        if isinstance(value, str):
            raise ValueError("give the command as a list of arguments, e.g. [wc, -l, file.txt]")
        return value

    @field_validator("env")
    @classmethod
    def _secret_env(cls, value: dict[str, str]) -> dict[str, str]:
        remember_values(value)  # a program may print what it was given
        return value

    def metric_names(self) -> list[str]:
        return list(self.metrics) or [self.metric]

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        cwd = ctx.base_dir / self.cwd if self.cwd else ctx.base_dir
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=cwd,
                env={**os.environ, **self.env},
            )
        except OSError as exc:
            raise SourceError(f"cannot run {self.command[0]!r}: {exc.strerror or exc}") from None
        try:
            out, err = await proc.communicate()
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines()
            last = redact(lines[-1]) if lines else "no error output"
            raise SourceError(f"{self.command[0]!r} exited with {proc.returncode}: {last}")
        text = out.decode(errors="replace").strip()
        if text.startswith("{"):
            try:
                return to_values(json.loads(text), self.metrics, self.locale)
            except json.JSONDecodeError as exc:
                raise ExtractError(f"the output is not valid JSON: {exc}") from None
        metric = self.metrics.get(self.metric) or Metric()
        return {self.metric: finish(self.metric, text, metric, self.locale)}
