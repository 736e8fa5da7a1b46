"""generate_counterfactual's ``on_chunk``: each finished chunk, exactly as the result holds it."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_support import TARGET, gamma_volume

from napari_cf_iap.errors import CancelledError
from napari_cf_iap.pipeline import CounterfactualRequest, generate_counterfactual


def _request(**kwargs) -> CounterfactualRequest:
    base = dict(target=TARGET, steps=6, guidance=2.0, sampler="ddim", ddim_steps=2, seed=3)
    base.update(kwargs)
    return CounterfactualRequest(**base)


@pytest.mark.parametrize(
    ("slices", "batch_size", "detail_transfer"),
    [(None, 3, True), ([0, 2, 3, 6], 2, False), ([5], 8, True)],
)
def test_chunks_assemble_to_the_returned_volume(tiny_bundles, slices, batch_size, detail_transfer):
    volume = gamma_volume()
    source = volume.data.copy()
    seen: list[tuple[list[int], np.ndarray]] = []
    request = _request(slices=slices, batch_size=batch_size, detail_transfer=detail_transfer)

    def on_chunk(indices, block):
        assert not block.flags.writeable  # the callback cannot alter the result
        seen.append((list(indices), np.array(block, copy=True)))

    out = generate_counterfactual(
        volume, request, tiny_bundles["cddgm"], device="cpu", on_chunk=on_chunk
    )
    chosen = list(range(volume.shape[0])) if slices is None else slices
    flat = [i for indices, _ in seen for i in indices]
    assert sorted(flat) == chosen and len(flat) == len(set(flat))  # each slice exactly once
    assert all(len(indices) <= batch_size for indices, _ in seen)
    assert len(seen) == -(-len(chosen) // batch_size)  # one call per chunk
    assembled = np.full(volume.shape, np.nan, dtype=np.float32)
    for indices, block in seen:
        assert block.shape == (len(indices), *volume.shape[1:]) and block.dtype == np.float32
        assembled[indices] = block
    np.testing.assert_array_equal(assembled[chosen], out.data[chosen])
    assert np.isnan(np.delete(assembled, chosen, axis=0)).all()  # nothing else was sent
    np.testing.assert_array_equal(volume.data, source)  # the input is untouched

    plain = generate_counterfactual(volume, request, tiny_bundles["cddgm"], device="cpu")
    np.testing.assert_array_equal(plain.data, out.data)  # the callback changes nothing
    assert plain.metadata == out.metadata


def test_cancel_stops_the_chunks(tiny_bundles):
    seen: list[list[int]] = []
    with pytest.raises(CancelledError):
        generate_counterfactual(
            gamma_volume(),
            _request(batch_size=2),
            tiny_bundles["cddgm"],
            device="cpu",
            on_chunk=lambda indices, block: seen.append(indices),
            should_stop=lambda: len(seen) >= 1,
        )
    assert seen == [[0, 1]]  # stopped after the first chunk; no later chunk was sent
