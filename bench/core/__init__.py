"""Foundations: errors, the clock, the recipe schema, the results table, prices, statistics, the event log.

Nothing here imports torch or a bench package outside core: every layer above stands on these."""
