"""Training: the optimiser and its schedules, and the loop that runs a model to its target."""
