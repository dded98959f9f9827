"""Collection: the fan-in engine, the shared HTTP layer and metric extraction."""
