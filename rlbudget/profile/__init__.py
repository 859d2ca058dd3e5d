"""Measuring a policy: returns (evaluate); memory, latency and the verdict come later."""
