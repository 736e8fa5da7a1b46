"""Each benchmark's core runs at a toy size and returns sane numbers (no timing assertions)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks import common  # noqa: E402
from benchmarks.fixtures import randomise_zero_parameters  # noqa: E402
from napari_cf_iap.iap import IAPRecord  # noqa: E402
from napari_cf_iap.models.cddgm import ConditionalDenoiser  # noqa: E402
from napari_cf_iap.models.config import CDDGMConfig  # noqa: E402

CPU = torch.device("cpu")
SIEMENS = IAPRecord.create(
    manufacturer="SIEMENS", model_name="Skyra", field_strength=3.0, scan_options="FS",
    flip_angle=10.0, slice_thickness=1.0, echo_time=1.4, repetition_time=4.2,
)  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a loaded 2-core machine two threads stall each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_model() -> ConditionalDenoiser:
    torch.manual_seed(0)
    model = ConditionalDenoiser(CDDGMConfig.tiny(21))
    randomise_zero_parameters(model)
    return model.eval()


def test_interleaved_times_every_variant_and_reports_ratios():
    calls: list[str] = []
    variants = {"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2}
    times, results = common.interleaved(variants, CPU, repeats=3, warmup=1)
    assert calls.count("a") == calls.count("b") == 4
    assert calls[:4] == ["a", "b", "b", "a"]  # round-robin, alternating order
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
    assert all(t >= 0 for v in times.values() for t in v) and results == {"a": 1, "b": 2}
    assert common.median([3.0, 1.0, 2.0]) == 2.0
    assert common.matmul_ceiling(CPU, n=64, repeats=1) > 0


def test_doc_sections_are_replaced_in_place_and_ordered(tmp_path):
    doc = tmp_path / "benchmarks.md"
    common.write_section("gui", "GUI", "first gui", CPU, doc, command="x")
    common.write_section("throughput", "T", "old", CPU, doc, command="x")
    common.write_section("throughput", "T", "new | table", CPU, doc, command="y")
    text = doc.read_text()
    assert text.startswith("# Benchmarks")
    assert text.count("<!-- BEGIN throughput-cpu -->") == 1 and "old" not in text
    assert text.index("throughput-cpu") < text.index("gui-cpu")  # SECTIONS order
    assert "new | table" in text and "first gui" in text and "Commit: `" in text
    assert "load average" in text and "torch " in text
    table = common.markdown_table(["a", "b"], [[1, "x|y"]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x\\|y |"]


def test_throughput_naive_and_product_agree(tiny_model):
    from benchmarks.bench_throughput import measure, table

    result = measure(tiny_model, CPU, label="tiny", slices=2, steps=3, repeats=1, weights="x")
    assert result.speedup > 0 and result.naive_step_s > 0 and result.product_step_s > 0
    assert math.isfinite(result.max_abs_diff)
    assert result.max_abs_diff <= 1e-4  # same weights, inputs and seeds
    assert "speed-up" in table([result], CPU)


def test_flop_count_and_levers(tiny_model):
    from benchmarks.attention_roofline import MATMULS, SDPA
    from benchmarks.bench_flops import count_flops, measure, table, time_breakdown

    flops = count_flops(tiny_model)
    assert flops.total > 0 and flops.conv > 0 and flops.attention > 0 and flops.linear > 0
    assert flops.conv + flops.attention + flops.linear == pytest.approx(flops.total)
    assert flops.fused_counted <= flops.total
    flops, times, ceilings = measure(tiny_model, CPU, batch=1, repeats=1, matmul_n=256)
    assert len(times) == 5 and all(v[0] > 0 for v in times.values())
    assert list(ceilings) == ["fp32 matmul 256²", SDPA, MATMULS]
    split = time_breakdown(tiny_model, CPU, 1)
    assert {"attention", "convolution"} <= set(split) and all(v >= 0 for v in split.values())
    text = table("tiny", tiny_model.config, flops, 1, times, ceilings, breakdown=split)
    assert "GFLOP/s" in text and "op kind" in text and "Attention roofline" in text


def test_attention_roofline_shape_and_bound():
    from benchmarks.attention_roofline import largest_attention, roofline_fraction
    from napari_cf_iap.models.config import CDDGMConfig

    shape = largest_attention(CDDGMConfig.paper(iap_dim=21))
    assert (shape.heads, shape.tokens, shape.head_dim) == (16, 56 * 56, 8)  # 128 ch at 56²
    assert shape.flop == pytest.approx(4 * 16 * 3136**2 * 8)
    # all at the ceiling -> 100 %; a quarter of the FLOPs at a tenth of the rate -> 1/(0.75+2.5)
    assert roofline_fraction(100.0, 0.0, 50.0, 5.0) == pytest.approx(1.0)
    assert roofline_fraction(100.0, 25.0, 50.0, 5.0) == pytest.approx(1 / 3.25)


def test_attention_kernels_skip_the_bare_matmuls_when_the_scores_would_not_fit():
    from benchmarks.attention_roofline import (
        MATMULS,
        SDPA,
        AttentionShape,
        attention_kernels,
    )

    small = attention_kernels(AttentionShape(2, 64, 8), CPU)
    assert set(small) == {SDPA, MATMULS}
    out = {name: fn() for name, fn in small.items()}
    assert out[SDPA].shape == out[MATMULS].shape == (1, 2, 64, 8)
    huge = AttentionShape(16, 3136, 8)  # 16 GPU-batch images: 10 GB of scores
    assert set(attention_kernels(huge, CPU, batch=16)) == {SDPA}
    assert set(attention_kernels(huge, CPU, batch=1)) == {SDPA, MATMULS}  # 629 MB


def test_samplers_evaluate_on_tiny_bundles(tiny_bundles, capsys, monkeypatch):
    from benchmarks import bench_samplers as bs
    from napari_cf_iap.bundles.bundle import load_bundle

    cddgm = load_bundle(tiny_bundles["cddgm"], "cpu")
    predictor = load_bundle(tiny_bundles["iap_predictor"], "cpu")
    eval_set = bs.build_eval_set(cddgm.vocab, 2, 1, shape=(4, 48, 48))
    assert eval_set.n_slices == 2 and len(eval_set.records) == 2
    assert bs.stack([s.truth for s in eval_set.subjects], eval_set).shape == (2, 1, 48, 48)
    rows = bs.evaluate(cddgm, predictor, eval_set, bs.grid([4], [2]), 2.0, 4, CPU)
    assert [r["variant"].model_calls for r in rows] == [4, 2]
    assert [v.model_calls for v in bs.grid([4], [2], "twin")] == [8, 4]  # source rendering too
    for r in rows:
        assert -1.0 <= r["ssim"] <= 1.0 and 0.0 <= r["fooling"] <= 100.0 and r["mae"] >= 0
    variants, times = bs.time_against_ddpm(cddgm, eval_set, 4, [2], 2.0, 1, 1, CPU)
    assert len(variants) == 2 and all(len(v) == 1 for v in times.values())

    monkeypatch.setattr(bs, "shipped_bundle", lambda kind: None)
    assert bs.main(["--no-write"]) == 0
    assert "bundles not available" in capsys.readouterr().out


def test_segmentation_and_end_to_end_on_tiny_bundles(tiny_bundles):
    from benchmarks.bench_segmentation import end_to_end, segmentation_throughput
    from napari_cf_iap.bundles.bundle import load_bundle
    from napari_cf_iap.simulator import simulate_volume

    volume = simulate_volume(1, shape=(4, 32, 32)).volume
    bundles = {k: load_bundle(p, "cpu") for k, p in tiny_bundles.items()}
    times = segmentation_throughput(volume, bundles["segmenter"], CPU, repeats=1)
    assert set(times) == {"batch 16", "batch 1"} and all(v[0] > 0 for v in times.values())
    stages = end_to_end(volume, bundles, CPU, "ddim", ddim_steps=2)
    assert set(stages) == {"counterfactual", "IAP prediction", "segmentation"}
    assert all(s > 0 for s in stages.values())


def test_memory_sampler_sees_an_allocation_and_child_reports_stages(tiny_bundles):
    from benchmarks.bench_memory import PeakSampler, child, render

    sampler = PeakSampler()
    before = sampler.rss()
    peak, _ = sampler.measure(lambda: np.ones(40 * 2**20 // 8).sum())
    assert peak - before > 20 * 2**20
    paths = {k: str(v) for k, v in tiny_bundles.items()}
    results = [child(n, paths, "cpu", base=(4, 32)) for n in (1, 2)]
    for r in results:
        assert r["volume_mb"] == pytest.approx(r["slices"] * 1.0)  # 512² float32 = 1 MB
        assert r["counterfactual"]["output_mb"] == pytest.approx(r["volume_mb"])
        assert r["segmentation"]["peak_mb"] >= r["baseline_mb"] > 0
    assert "no growth with N" in render(results, {"cddgm": "tiny"}, CPU)


def test_gui_heartbeat_and_preview_latency(make_napari_viewer, tiny_bundles):
    from benchmarks import bench_gui as bg

    viewer = make_napari_viewer()
    volume = bg.gui_volume((4, 32, 32))
    widget, _ = bg.setup_widget(viewer, volume, tiny_bundles["cddgm"], SIEMENS)
    heartbeat = bg.Heartbeat()
    presses = bg.run_press_stalls(widget, heartbeat, presses=2, window=0.3, timeout=60)
    assert len(presses) == 2 and all(p > 0 for p in presses)
    assert [layer.name for layer in viewer.layers] == ["scan"]  # cancelled: layers removed
    spans: dict = {}
    gaps, duration, worst_at, show_s = bg.volume_run_stalls(widget, heartbeat, 60, spans)
    assert gaps and all(g > 0 for g in gaps) and duration > 0 and worst_at >= 0
    assert 0 < show_s < duration
    assert viewer.layers[-1].name.startswith("CF ")
    assert all(gen in (0, 1, 2) and length >= 0 for gen, length, _ in spans["gc"])
    widget.sampling.edit_mode.setCurrentText("twin")  # the simulated scan has its IAPs
    previews = bg.preview_latencies(widget, repeats=1, timeout=60)
    (p,) = previews
    assert p["total"] >= p["compute"] > 0 and p["debounce"] > 0
    assert p["reused"] == 1  # the slider moved a target: the first preview's source rendering
    from benchmarks.gui_segmentation import segmentation_stalls

    scan = viewer.layers["scan"]
    seg = segmentation_stalls(viewer, scan, tiny_bundles["segmenter"], heartbeat, 60, settle=0.2)
    assert len(seg) == 2 and all(r["gaps"] and "2 bundle(s)" in r["status"] for r in seg)
    assert [layer.name for layer in viewer.layers][-2:] == [
        "seg default segmenter <- scan",
        "seg second bundle <- scan",
    ]
    text = bg.render(volume, "tiny", gaps, gaps, duration, worst_at, show_s, previews,
                     widget.sampling.request_kwargs(), {}, spans, None, presses,
                     seg)  # fmt: skip
    assert "segmentation, 2 bundles + scores vs ground truth (new Labels layers)" in text
    assert "longest stall" in text and "Live preview" in text
    assert "Run pressed, new result layer (2 presses" in text and "garbage collector" in text
    assert "source rendering was reused in 1 of 1" in text


def test_run_all_builds_one_command_per_benchmark(monkeypatch):
    from benchmarks import run_all

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.setattr(run_all.shutil, "which", lambda name: "/usr/bin/xvfb-run")
    args = run_all.argparse.Namespace(
        device="cuda", threads=1, repeats=2, no_write=True, cddgm="B", iap=None, seg=None
    )
    for name, (module, _) in run_all.BENCHMARKS.items():
        cmd = run_all.command(name, args)
        assert module in cmd and "--device" in cmd and "cuda" in cmd and "--no-write" in cmd
        assert ("--cddgm" in cmd) and cmd[cmd.index("--cddgm") + 1] == "B"
    assert run_all.command("gui", args)[0] == "/usr/bin/xvfb-run"


def test_twin_reuse_benchmark_measures_both_variants(tiny_bundles):
    from benchmarks import bench_twin_reuse as bt

    volume = bt.slices_volume(4, 32)
    result = bt.measure(tiny_bundles["cddgm"], volume, repeats=1, device="cpu")
    assert result["reused"] == 4  # every slice of the second edit reused its rendering
    assert result["max_diff"] < 1e-4
    assert all(len(v) == 1 and v[0] > 0 for v in result["times"].values())
    text = bt.render(result, volume, "tiny")
    assert "source rendering kept" in text and "4 of 4 slices reused" in text
