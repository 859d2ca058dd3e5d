"""Emulated latency of an exported C policy on Cortex-M cores (issue 16, item 1).

Optional: needs ``arm-none-eabi-gcc`` on the PATH and the ``emulate`` extra (unicorn,
capstone). :func:`unavailable` says in one line why a device cannot be emulated here;
:func:`emulate_policy` gives min/mean/max cycles, seconds and energy per decision, every
emulated action checked against numpy's. Nothing here is imported by ``rlbudget plan``.
"""

from rlbudget.emulate.latency import (
    EmulatedLatency,
    emulate_policy,
    emulated_core,
    profile_latency,
    unavailable,
)

__all__ = ["EmulatedLatency", "emulate_policy", "emulated_core", "profile_latency", "unavailable"]
