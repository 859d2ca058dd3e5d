"""Model-based training: PETS (a probabilistic ensemble and a CEM planner) with the deployed
policy distilled from the planner.

- :mod:`~rlbudget.agents.model_based.ensemble`: the dynamics model;
- :mod:`~rlbudget.agents.model_based.planner`: CEM with trajectory sampling through it;
- :mod:`~rlbudget.agents.model_based.student`: the small MLP distilled from the planner;
- :mod:`~rlbudget.agents.model_based.pets`: the training loop (:func:`train_pets`).

torch is imported only inside their functions.
"""
