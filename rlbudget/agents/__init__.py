"""Built-in numpy agents (tabular, linear) and, later, Stable-Baselines3 training."""
