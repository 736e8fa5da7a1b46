"""Volume-level counterfactual generation: the job behind ``cf-iap counterfactual`` and the GUI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CancelledError, IAPValueError
from ..sampling.reference_cache import ReferenceCache
from ..volume import Volume
from .bundle_access import BundleLike, get_bundle, preprocessing_of
from .edit_mode import choose_edit
from .requests import CounterfactualRequest, ProgressCallback, StopCheck
from .slices import model_stacks, rows, select_slices

FALLBACK_STEPS = 50
FALLBACK_GUIDANCE = 3.0
FALLBACK_SAMPLER = "ddpm"
FALLBACK_DDIM_STEPS = 10

#: ``on_chunk(slice_indices, finished_slices)``; called from the worker thread.
ChunkCallback = Callable[[list[int], np.ndarray], None]


@dataclass(frozen=True)
class SamplerSettings:
    """The noise level, guidance and sampler an edit runs with."""

    steps: int
    guidance: float
    sampler: str
    ddim_steps: int


def resolved_settings(request: CounterfactualRequest, defaults: dict) -> SamplerSettings:
    """The request's settings, else the bundle's recommended ones, else the fallbacks."""

    def pick(name: str, fallback: Any) -> Any:
        value = getattr(request, name)
        return value if value is not None else defaults.get(name, fallback)

    return SamplerSettings(
        steps=int(pick("steps", FALLBACK_STEPS)),
        guidance=float(pick("guidance", FALLBACK_GUIDANCE)),
        sampler=str(pick("sampler", FALLBACK_SAMPLER)),
        ddim_steps=int(pick("ddim_steps", FALLBACK_DDIM_STEPS)),
    )


def generate_counterfactual(
    volume: Volume,
    request: CounterfactualRequest,
    bundle: BundleLike = None,
    *,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    should_stop: StopCheck | None = None,
    on_chunk: ChunkCallback | None = None,
    reference_cache: ReferenceCache | None = None,
) -> Volume:
    """Re-render ``volume`` (or the requested slices) as if acquired with ``request.target``.

    The result has the source's shape and geometry; slices that were not edited are copies of
    the source. ``request.edit_mode`` chooses the paper's SDEdit or the twin edit (see
    :class:`CounterfactualRequest`). With ``request.detail_transfer`` the model-resolution
    change is upsampled and added to the full-resolution source, so anatomy finer than the
    model's grid is kept;
    otherwise the model output itself is upsampled. Slice ``i`` always uses seed
    ``request.seed + i``, so a slice renders the same whatever else is selected.

    The selected slices stream through in chunks of ``request.batch_size``: preprocess, edit,
    write the restored chunk into the result, drop it. Memory beyond the result therefore does
    not grow with the slice count. ``progress(done, total, message)`` counts slice-steps over
    the whole job (total = slices x sampler steps). ``on_chunk(indices, slices)`` gets each
    finished chunk as it is written: its slice indices and a read-only array of shape
    ``(len(indices), y, x)`` holding exactly the values the returned volume has there (each
    selected slice arrives once; a viewer can show the result while it grows).
    Raises :class:`~napari_cf_iap.errors.CancelledError` when ``should_stop()`` turns true.

    ``reference_cache`` (a twin edit only) keeps each slice's reference rendering, which does
    not depend on the target: editing the same slices again with the same noise level,
    sampler, guidance and seed, to another target, denoises only towards the target (half the
    work). The result's metadata counts the slices that reused one (``reference_reused``).
    """
    from ..sampling.counterfactual import CounterfactualSampler

    loaded = get_bundle("cddgm", bundle, device)
    if loaded.vocab is None:
        raise IAPValueError(f"bundle {loaded.path} carries no IAP vocabulary")
    target = loaded.vocab.validate(request.target, allow_extrapolation=request.allow_extrapolation)
    vector = loaded.vocab.encode(target, allow_extrapolation=request.allow_extrapolation)
    chosen = resolved_settings(request, loaded.inference_defaults)
    edit = choose_edit(request, loaded.inference_defaults, volume, loaded.vocab)
    indices = select_slices(volume, request.slices)
    sampler = CounterfactualSampler(loaded.model, loaded.vocab, device=device)
    cache = None
    if reference_cache is not None and edit.reference is not None:
        cache = reference_cache.for_model(loaded.sha256 or str(loaded.path))
    hits_before = cache.hits if cache is not None else 0
    per_slice = sampler.step_count(chosen.steps, chosen.sampler, chosen.ddim_steps)
    total = len(indices) * per_slice
    batch = max(1, int(request.batch_size))
    stacks = model_stacks(volume, indices, preprocessing_of(loaded), batch, should_stop)

    data = np.array(volume.data, dtype=np.float32, copy=True)
    job = _JobProgress(progress, total, f"{chosen.sampler} slice-steps")
    try:
        for part, stack in stacks:
            edited = sampler.generate(
                stack.images[:, None],
                vector,
                steps=chosen.steps,
                guidance=chosen.guidance,
                sampler=chosen.sampler,
                ddim_steps=chosen.ddim_steps,
                seeds=[request.seed + i for i in part],
                batch_size=batch,
                progress=job.chunk(len(part) * per_slice),
                should_stop=should_stop,
                reference_vec=edit.reference,
                reference_cache=cache,
            )[:, 0].numpy()
            where = rows(part)
            if request.detail_transfer:
                data[where] += stack.restore_delta(edited)
            else:
                data[where] = stack.restore(edited)
            del edited, stack
            if on_chunk is not None:
                on_chunk(list(part), _read_only(data[where]))
    except CancelledError:
        raise CancelledError(
            f"counterfactual generation cancelled after {job.done} of {total} slice-steps"
        ) from None
    metadata = dict(volume.metadata)
    metadata["counterfactual"] = {
        "source_iap": volume.iap.to_dict(),
        "target_iap": target.to_dict(),
        "steps": chosen.steps,
        "guidance": chosen.guidance,
        "edit_mode": edit.mode,
        "edit_mode_note": edit.note,
        "reference_reused": (cache.hits - hits_before) if cache is not None else 0,
        "sampler": chosen.sampler,
        "ddim_steps": chosen.ddim_steps if chosen.sampler == "ddim" else None,
        "seed": request.seed,
        "slices": indices,
        "detail_transfer": request.detail_transfer,
        "bundle": str(loaded.path),
        "bundle_sha256": loaded.sha256,
    }
    return volume.with_data(data, iap=target, metadata=metadata)


def _read_only(block: np.ndarray) -> np.ndarray:
    """``block`` (a view into the result where the rows are consecutive) made read-only, so a
    callback cannot alter the result it is shown."""
    block = block.view()
    block.flags.writeable = False
    return block


class _JobProgress:
    """Maps each chunk's sampler progress onto slice-steps of the whole job."""

    def __init__(self, progress: ProgressCallback | None, total: int, label: str) -> None:
        self.progress = progress
        self.total = total
        self.label = label
        self.done = 0

    def chunk(self, span: int) -> ProgressCallback:
        """The sampler callback for the next chunk, worth ``span`` slice-steps."""
        offset = self.done

        def report(done: int, chunk_total: int, _message: str) -> None:
            self.done = offset + (span * done) // max(1, chunk_total)
            if self.progress is not None:
                self.progress(self.done, self.total, f"{self.label} {self.done}/{self.total}")

        return report
