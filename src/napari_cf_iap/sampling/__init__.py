"""Counterfactual sampling: the noise schedule (``sampling.schedule``) and the guided SDEdit
sampler (``sampling.counterfactual.CounterfactualSampler``). Import the submodules directly."""
