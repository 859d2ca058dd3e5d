"""Image observations: a pixel env (``env.py``, numpy) and a depthwise-separable encoder
for SB3 training (``encoder.py``, torch imported inside its functions)."""
