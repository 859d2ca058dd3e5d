"""Contextual bandits: one-step decisions learned online or from logged data, deployed as
a linear policy (argmax over per-arm linear scores)."""
