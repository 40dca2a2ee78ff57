"""The machine a run lands on: what it can do, its environment, process groups, telemetry, FLOP counts."""
