"""Alerts: rules on the stored history, fired and resolved once, sent through `notify` destinations."""
