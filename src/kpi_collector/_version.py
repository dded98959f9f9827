"""The package version, in one place (read by the HTTP User-Agent and `kpi --version`)."""

__version__ = "0.1.0"
