"""Volume jobs stream their slices in chunks: same results, whole-job progress, flat memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from pipeline_support import TARGET, gamma_volume

from napari_cf_iap.bundles.bundle import load_bundle
from napari_cf_iap.errors import CancelledError, InputError
from napari_cf_iap.pipeline import CounterfactualRequest, generate_counterfactual, predict_iap_raw
from napari_cf_iap.pipeline.bundle_access import preprocessing_of
from napari_cf_iap.pipeline.slices import model_stacks, rows, to_model_stack
from napari_cf_iap.sampling.counterfactual import CounterfactualSampler
from napari_cf_iap.volume import Volume


def _randomised(path, kind: str):
    """A private copy of the bundle whose zero-initialised layers got small random weights,
    so the network output (and any batch-composition effect) shows in the results."""
    loaded = load_bundle(path, "cpu", kind=kind)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in loaded.model.parameters():
            if param.numel() and not torch.any(param):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    return loaded


@pytest.fixture(scope="module")
def cddgm(tiny_bundles):
    return _randomised(tiny_bundles["cddgm"], "cddgm")


@pytest.fixture(scope="module")
def iap_bundle(tiny_bundles):
    return _randomised(tiny_bundles["iap_predictor"], "iap_predictor")


def _request(**kwargs) -> CounterfactualRequest:
    base = dict(target=TARGET, steps=6, guidance=2.0, sampler="ddim", ddim_steps=3)
    base.update(kwargs)
    return CounterfactualRequest(**base)


def _all_at_once(volume: Volume, request: CounterfactualRequest, loaded) -> np.ndarray:
    """The unchunked algorithm: every selected slice preprocessed, edited, restored at once."""
    indices = list(request.slices) if request.slices is not None else list(range(volume.shape[0]))
    stack = to_model_stack(volume, indices, preprocessing_of(loaded))
    vector = loaded.vocab.encode(loaded.vocab.validate(request.target))
    edited = (
        CounterfactualSampler(loaded.model, loaded.vocab, device="cpu")
        .generate(
            stack.images[:, None],
            vector,
            steps=request.steps,
            guidance=request.guidance,
            sampler=request.sampler,
            ddim_steps=request.ddim_steps,
            seeds=[request.seed + i for i in indices],
            batch_size=request.batch_size,
        )[:, 0]
        .numpy()
    )
    data = volume.data.astype(np.float32)
    if request.detail_transfer:
        data[indices] += stack.restore_delta(edited)
    else:
        data[indices] = stack.restore(edited)
    return data


@pytest.mark.parametrize("detail_transfer", [True, False])
def test_chunked_counterfactual_equals_the_unchunked_algorithm(cddgm, detail_transfer):
    volume = gamma_volume()
    request = _request(batch_size=2, seed=5, detail_transfer=detail_transfer)
    out = generate_counterfactual(volume, request, cddgm, device="cpu")
    reference = _all_at_once(volume, request, cddgm)
    np.testing.assert_array_equal(out.data, reference)  # same sampler batches: bit-exact
    assert np.abs(out.data - volume.data).max() > 1.0  # the edit did change the slices
    one_chunk = generate_counterfactual(volume, _request(batch_size=7, seed=5,
                                        detail_transfer=detail_transfer), cddgm)  # fmt: skip
    # other forward-pass batch shapes: equal up to float32 rounding of values ~100-1000
    np.testing.assert_allclose(out.data, one_chunk.data, rtol=1e-6, atol=1e-3)


def test_a_slice_renders_the_same_whatever_else_is_selected(cddgm):
    volume = gamma_volume()
    alone = generate_counterfactual(volume, _request(slices=[3], batch_size=1), cddgm)
    among = generate_counterfactual(volume, _request(slices=[0, 3, 4, 6], batch_size=1), cddgm)
    np.testing.assert_array_equal(alone.data[3], among.data[3])  # same batch shape: exact
    np.testing.assert_array_equal(among.data[[1, 2, 5]], volume.data[[1, 2, 5]])
    mixed = generate_counterfactual(volume, _request(slices=[1, 2, 3], batch_size=2), cddgm)
    np.testing.assert_allclose(alone.data[3], mixed.data[3], rtol=0, atol=1e-3)
    assert not np.allclose(alone.data[3], volume.data[3])


def test_progress_counts_slice_steps_over_the_whole_job(cddgm):
    reports = []
    generate_counterfactual(
        gamma_volume(n=5),
        _request(batch_size=2),
        cddgm,
        progress=lambda done, total, message: reports.append((done, total, message)),
    )
    done = [d for d, _, _ in reports]
    assert {t for _, t, _ in reports} == {5 * 3}  # 5 slices x 3 DDIM steps
    assert done == sorted(done) and len(set(done)) == len(done)  # strictly increasing
    assert done[-1] == 15 and len(reports) == 3 * 3  # 3 chunks (2, 2, 1) x 3 steps
    assert done[:3] == [2, 4, 6] and done[-3:] == [13, 14, 15]
    assert all("ddim" in m for _, _, m in reports)


def test_cancel_in_a_later_chunk_stops_the_job(cddgm):
    reports = []

    def progress(done, total, message):
        reports.append(done)

    with pytest.raises(CancelledError, match="after 8 of 21"):
        generate_counterfactual(
            gamma_volume(),
            _request(batch_size=2),
            cddgm,
            progress=progress,
            should_stop=lambda: bool(reports) and reports[-1] >= 8,
        )
    assert reports[-1] == 8  # nothing ran after the stop


def test_bad_input_is_refused_before_any_work(cddgm):
    volume = gamma_volume()
    calls = []
    bad = volume.data.copy()
    bad[-1, 5, 5] = np.nan  # in the last chunk
    with pytest.raises(InputError, match="NaN"):
        generate_counterfactual(
            volume.with_data(bad),
            _request(batch_size=1),
            cddgm,
            progress=lambda *a: calls.append(a),
        )
    flat = np.full_like(volume.data, 7.0)
    with pytest.raises(InputError, match="constant"):
        generate_counterfactual(
            volume.with_data(flat),
            _request(batch_size=2),
            cddgm,
            progress=lambda *a: calls.append(a),
        )
    assert calls == []
    mostly_flat = flat.copy()
    mostly_flat[5] = volume.data[5]  # only a later chunk has contrast: that is fine
    out = generate_counterfactual(volume.with_data(mostly_flat), _request(batch_size=2), cddgm)
    assert not np.allclose(out.data[5], mostly_flat[5])


def test_model_stacks_yield_chunks_in_order_and_views_for_runs(cddgm):
    volume = gamma_volume()
    parts = [p for p, _ in model_stacks(volume, [0, 1, 2, 4, 5], preprocessing_of(cddgm), 2)]
    assert parts == [[0, 1], [2, 4], [5]]
    assert rows([2, 3, 4]) == slice(2, 5) and rows([2, 4]) == [2, 4]
    with pytest.raises(CancelledError):
        list(model_stacks(volume, [0, 1, 2], preprocessing_of(cddgm), 1, lambda: True))


def _traced_peak(fn) -> tuple[int, object]:
    """Peak bytes numpy (and Python) allocated while ``fn`` ran, and its result."""
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, result


def test_counterfactual_memory_does_not_grow_with_the_slice_count(cddgm):
    request = _request(batch_size=2, ddim_steps=1)
    working = {}
    for n in (4, 16):
        volume = gamma_volume(n=n, hw=(128, 128))
        generate_counterfactual(volume, request, cddgm)  # warm-up (first-call allocations)
        peak, out = _traced_peak(lambda v=volume: generate_counterfactual(v, request, cddgm))
        working[n] = peak - out.data.nbytes  # the result itself must scale with n
    slice_bytes = 128 * 128 * 4
    # 12 more slices: the unchunked job held several full-resolution copies of all of them
    assert working[16] - working[4] < 2 * slice_bytes, working


def test_iap_prediction_streams_with_identical_results(iap_bundle):
    volume = gamma_volume()
    big, _ = predict_iap_raw(volume, iap_bundle, device="cpu", batch_size=7)
    small, _ = predict_iap_raw(volume, iap_bundle, device="cpu", batch_size=2)
    np.testing.assert_allclose(small, big, rtol=0, atol=1e-5)
    some, _ = predict_iap_raw(volume, iap_bundle, slices=[5, 1], batch_size=1)
    np.testing.assert_allclose(some, big[[1, 5]], rtol=0, atol=1e-5)
    reports = []
    predict_iap_raw(
        volume, iap_bundle, batch_size=3, progress=lambda d, t, m: reports.append((d, t))
    )
    assert reports == [(3, 7), (6, 7), (7, 7)]
    with pytest.raises(CancelledError, match="after 3 of 7"):
        predict_iap_raw(
            volume, iap_bundle, batch_size=3, progress=lambda d, t, m: reports.append((d, t)),
            should_stop=lambda: len(reports) > 3,
        )  # fmt: skip


def test_iap_prediction_memory_does_not_grow_with_the_slice_count(iap_bundle):
    working = {}
    for n in (4, 16):
        volume = gamma_volume(n=n, hw=(128, 128))
        predict_iap_raw(volume, iap_bundle, batch_size=2)
        working[n], _ = _traced_peak(lambda v=volume: predict_iap_raw(v, iap_bundle, batch_size=2))
    assert working[16] - working[4] < 128 * 128, working  # under a quarter slice


@pytest.fixture(scope="module")
def seg_bundle(tiny_bundles):
    return _randomised(tiny_bundles["segmenter"], "segmenter")


def test_segmentation_streams_with_identical_labels(seg_bundle):
    from napari_cf_iap.models.segmenter import segment_volume
    from napari_cf_iap.pipeline import segment

    volume = gamma_volume()
    whole = segment_volume(seg_bundle.model, volume, seg_bundle.preprocessing, batch_size=2)
    reports = []
    labels = segment(volume, seg_bundle, batch_size=2, progress=lambda d, t, m: reports.append(d))
    np.testing.assert_array_equal(labels, whole)  # same batches: identical labels
    assert labels.shape == volume.shape and labels.dtype == np.uint8
    assert reports == [2, 4, 6, 7]
    with pytest.raises(CancelledError, match="after 4 of 7"):
        segment(volume, seg_bundle, batch_size=2, should_stop=lambda: len(reports) > 5,
                progress=lambda d, t, m: reports.append(d))  # fmt: skip
    bad = volume.data.copy()
    bad[-1, 0, 0] = np.inf
    with pytest.raises(InputError, match="NaN or inf"):
        segment(volume.with_data(bad), seg_bundle, batch_size=2)


def test_segmentation_memory_does_not_grow_with_the_slice_count(seg_bundle):
    from napari_cf_iap.pipeline import segment

    working = {}
    for n in (4, 16):
        volume = gamma_volume(n=n, hw=(128, 128))
        segment(volume, seg_bundle, batch_size=2)
        peak, labels = _traced_peak(lambda v=volume: segment(v, seg_bundle, batch_size=2))
        working[n] = peak - labels.nbytes
    assert working[16] - working[4] < 128 * 128, working  # whole-volume preprocessing: 3x that
