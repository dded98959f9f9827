"""Redaction of secret values (kpi_collector.secrets), with expected texts written by hand."""

from __future__ import annotations
