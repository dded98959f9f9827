"""The run: the fan-in engine, formulas (derived KPIs), backfill and the run's result."""
