"""`kpi demo`: local stand-ins for a startup's KPI sources, a config pointing at them, history."""
