"""Volume-level counterfactual generation: the job behind ``cf-iap counterfactual`` and the GUI."""

from __future__ import annotations

import numpy as np

from ..errors import IAPValueError
from ..volume import Volume
from .bundle_access import BundleLike, get_bundle, preprocessing_of
from .requests import CounterfactualRequest, ProgressCallback, StopCheck
from .slices import select_slices, to_model_stack

FALLBACK_STEPS = 50
FALLBACK_GUIDANCE = 3.0


def resolved_settings(request: CounterfactualRequest, defaults: dict) -> tuple[int, float]:
    """(steps, guidance): the request's values, else the bundle's recommended defaults."""
    steps = request.steps if request.steps is not None else defaults.get("steps", FALLBACK_STEPS)
    guidance = request.guidance
    if guidance is None:
        guidance = defaults.get("guidance", FALLBACK_GUIDANCE)
    return int(steps), float(guidance)


def generate_counterfactual(
    volume: Volume,
    request: CounterfactualRequest,
    bundle: BundleLike = None,
    *,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
) -> Volume:
    """Re-render ``volume`` (or the requested slices) as if acquired with ``request.target``.

    The result has the source's shape and geometry; slices that were not edited are copies of
    the source. With ``request.detail_transfer`` the model-resolution change is upsampled and
    added to the full-resolution source, so anatomy finer than the model's grid is kept;
    otherwise the model output itself is upsampled. Slice ``i`` always uses seed
    ``request.seed + i``, so a slice renders the same whatever else is selected.
    Raises :class:`~napari_cf_iap.errors.CancelledError` when ``should_stop()`` turns true.
    """
    from ..sampling.counterfactual import CounterfactualSampler

    loaded = get_bundle("cddgm", bundle, device)
    if loaded.vocab is None:
        raise IAPValueError(f"bundle {loaded.path} carries no IAP vocabulary")
    target = loaded.vocab.validate(request.target, allow_extrapolation=request.allow_extrapolation)
    vector = loaded.vocab.encode(target, allow_extrapolation=request.allow_extrapolation)
    steps, guidance = resolved_settings(request, loaded.inference_defaults)
    indices = select_slices(volume, request.slices)
    preprocessing = preprocessing_of(loaded)
    stack = to_model_stack(volume, indices, preprocessing)

    sampler = CounterfactualSampler(loaded.model, loaded.vocab, device=device)
    edited = sampler.generate(
        stack.images[:, None],
        vector,
        steps=steps,
        guidance=guidance,
        sampler=request.sampler,
        ddim_steps=request.ddim_steps,
        seeds=[request.seed + i for i in indices],
        batch_size=request.batch_size,
        progress=progress,
        should_stop=should_stop,
    )[:, 0].numpy()

    data = np.array(volume.data, dtype=np.float32, copy=True)
    if request.detail_transfer:
        data[indices] += stack.restore_delta(edited)
    else:
        data[indices] = stack.restore(edited)
    metadata = dict(volume.metadata)
    metadata["counterfactual"] = {
        "source_iap": volume.iap.to_dict(),
        "target_iap": target.to_dict(),
        "steps": steps,
        "guidance": guidance,
        "sampler": request.sampler,
        "ddim_steps": request.ddim_steps if request.sampler == "ddim" else None,
        "seed": request.seed,
        "slices": indices,
        "detail_transfer": request.detail_transfer,
        "bundle": str(loaded.path),
        "bundle_sha256": loaded.sha256,
    }
    return volume.with_data(data, iap=target, metadata=metadata)
