"""Delivery: the engine that sends each run to every destination due, once per period."""
