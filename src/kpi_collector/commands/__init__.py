"""The `kpi` subcommands, one module per part; each imports heavy things only inside commands."""
