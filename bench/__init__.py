"""bench: reproducible time-to-accuracy benchmarks for deep-learning training."""

__version__ = "0.1.0"
