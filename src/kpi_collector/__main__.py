"""`python -m kpi_collector` is the `kpi` command."""

from kpi_collector.cli import main

raise SystemExit(main())
