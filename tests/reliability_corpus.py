"""The reliability corpus: every bad input we try, the operation run on it, and the outcome.

Each :class:`BadInput` builds its input under ``env.inputs`` (a fresh folder), runs one
operation (``read_volume``, a pipeline job with the tiny test bundles, bundle loading,
checkpoint import, ...) and states the exact expected outcome: either an error of our own type
whose message matches ``message`` (naming the problem and the fix), or a documented graceful
result checked by ``check``. ``cli`` gives the equivalent ``cf-iap`` command line, which must
exit with status 2 and print the same message on one line (no traceback).

``tests/test_reliability_corpus.py`` runs the corpus; ``scripts/make_reliability_doc.py``
runs it again and writes ``docs/reliability.md`` from the outcomes.
"""

from __future__ import annotations

import contextlib
import gc
import io
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import reliability_builders as rb
import torch

from napari_cf_iap.errors import (
    BundleError,
    CfIapError,
    IAPValueError,
    InputError,
    OutputExistsError,
)
from napari_cf_iap.iap.vocabulary import IAPExtrapolationWarning
from napari_cf_iap.io import read_duke_masks, read_volume

# ---------------------------------------------------------------------- framework


@dataclass
class CorpusEnv:
    """Where one case runs: a scratch folder and the tiny test bundles."""

    root: Path
    bundles: dict[str, Path]

    @property
    def inputs(self) -> Path:
        return self.root / "input"

    @property
    def outputs(self) -> Path:
        return self.root / "out"

    def bundle(self, kind: str) -> str:
        return str(self.bundles[kind])


Built = dict[str, Any]


@dataclass(frozen=True)
class BadInput:
    """One bad input and its expected outcome (an error of ``error`` type, or ``check`` passes)."""

    id: str
    topic: str
    description: str
    operation: str
    build: Callable[[CorpusEnv], Built]
    run: Callable[[Built, CorpusEnv], Any]
    error: type[CfIapError] | None = None
    message: str = ""
    check: Callable[[Any, Built, CorpusEnv], str] | None = None
    warns: type[Warning] | None = None
    cli: Callable[[Built, CorpusEnv], list[str]] | None = None
    after: Callable[[Built, CorpusEnv], None] | None = None

    def __post_init__(self) -> None:
        assert (self.error is None) != (self.check is None), self.id
        assert self.error is None or self.message, self.id


@dataclass
class Outcome:
    """What happened: the error raised (ours), or the result; plus the warnings emitted."""

    error: CfIapError | None
    result: Any
    warnings: list[warnings.WarningMessage] = field(default_factory=list)
    summary: str = ""


def build_case(case: BadInput, env: CorpusEnv) -> Built:
    """Create the case's input under ``env.inputs`` (and an empty ``env.outputs``)."""
    env.inputs.mkdir(parents=True, exist_ok=True)
    env.outputs.mkdir(parents=True, exist_ok=True)
    return case.build(env)


def execute(case: BadInput, built: Built, env: CorpusEnv) -> Outcome:
    """Run the operation; our errors become the outcome, any other exception propagates."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = case.run(built, env)
        except CfIapError as exc:
            return Outcome(exc, None, list(caught))
    return Outcome(None, result, list(caught))


def verify(case: BadInput, built: Built, outcome: Outcome, env: CorpusEnv) -> None:
    """Assert that ``outcome`` is the one the case expects (fills ``outcome.summary``)."""
    if case.error is not None:
        assert outcome.error is not None, f"{case.id}: expected {case.error.__name__}, got a result"
        assert isinstance(outcome.error, case.error), (
            f"{case.id}: expected {case.error.__name__}, got {type(outcome.error).__name__}: "
            f"{outcome.error}"
        )
        text = str(outcome.error)
        assert re.search(case.message, text, re.S), f"{case.id}: {case.message!r} not in {text!r}"
        outcome.summary = text
    else:
        assert outcome.error is None, f"{case.id}: unexpected {outcome.error!r}"
        outcome.summary = case.check(outcome.result, built, env)
    if case.warns is not None:
        found = [w for w in outcome.warnings if issubclass(w.category, case.warns)]
        assert found, f"{case.id}: expected a {case.warns.__name__}"
        outcome.summary += f" Warning ({case.warns.__name__}): {found[0].message}"
    if case.after is not None:
        case.after(built, env)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``cf-iap`` in-process: (exit code, stdout, stderr); warnings are kept out of stderr."""
    from napari_cf_iap.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def visible_lines(stream: str) -> list[str]:
    """What a terminal shows: for each line, the text after its last carriage return."""
    lines = [line.rsplit("\r", 1)[-1].rstrip() for line in stream.split("\n")]
    return [line for line in lines if line]


def verify_cli(case: BadInput, built: Built, env: CorpusEnv) -> tuple[int, list[str]]:
    """Run the case's command line and assert exit status and message; return what was shown."""
    argv = case.cli(built, env)
    code, _, err = run_cli(argv)
    lines = visible_lines(err)
    assert "Traceback" not in err, f"{case.id}: traceback on stderr:\n{err}"
    if case.error is None:
        assert code == 0, f"{case.id}: exit {code}\n{err}"
        return code, lines
    assert code == 2, f"{case.id}: exit {code}\n{err}"
    prefix = f"cf-iap {argv[0]}: error: "
    assert lines and lines[0].startswith(prefix), f"{case.id}: stderr {lines}"
    assert all(line.startswith(" ") for line in lines[1:]), f"{case.id}: stderr {lines}"
    shown = "\n".join(lines)[len(prefix) :]
    assert re.search(case.message, shown, re.S), f"{case.id}: {case.message!r} not in {shown!r}"
    return code, lines


@contextlib.contextmanager
def torch_threads(n: int = 1):
    """Run torch single-threaded: the tiny test networks gain nothing from threads, and on a
    loaded 2-core machine OpenMP's spinning threads made them 10-30x slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ---------------------------------------------------------------------- operations
def read(built: Built, env: CorpusEnv) -> Any:
    return read_volume(built["path"])


def counterfactual(pairs: tuple[str, ...] = (), *, allow_extrapolation: bool = False):
    """The CLI's counterfactual path: read, apply ``--target`` pairs, generate (tiny bundle)."""

    def run(built: Built, env: CorpusEnv) -> Any:
        from napari_cf_iap.cli.common import parse_target
        from napari_cf_iap.pipeline import CounterfactualRequest, generate_counterfactual

        volume = built.get("volume") or read_volume(built["path"])
        request = CounterfactualRequest(
            target=parse_target(list(pairs), volume.iap), allow_extrapolation=allow_extrapolation
        )
        bundle = built.get("bundle", env.bundle("cddgm"))
        return generate_counterfactual(volume, request, bundle, device="cpu")

    return run


def counterfactual_cli(pairs: tuple[str, ...] = (), *extra: str):
    def argv(built: Built, env: CorpusEnv) -> list[str]:
        targets = [a for p in pairs for a in ("--target", p)]
        bundle = str(built.get("bundle", env.bundle("cddgm")))
        out = str(env.outputs / "cf.nii.gz")
        path = str(built["path"])
        return ["counterfactual", path, *targets, "--bundle", bundle, "--out", out, *extra]

    return argv


def predict_cli(built: Built, env: CorpusEnv) -> list[str]:
    return ["predict-iap", str(built["path"]), "--bundle", env.bundle("iap_predictor")]


def segment_run(built: Built, env: CorpusEnv) -> Any:
    from napari_cf_iap.pipeline import segment

    return segment(read_volume(built["path"]), env.bundle("segmenter"), device="cpu")


def predict_run(built: Built, env: CorpusEnv) -> Any:
    from napari_cf_iap.pipeline import predict_iap

    return predict_iap(read_volume(built["path"]), env.bundle("iap_predictor"), device="cpu")


def load_bundle_run(built: Built, env: CorpusEnv) -> Any:
    from napari_cf_iap.bundles import load_bundle

    return load_bundle(built["bundle"])


def import_run(built: Built, env: CorpusEnv) -> Any:
    from napari_cf_iap.bundles.importer import import_authors_checkpoint

    return import_authors_checkpoint(built["path"], env.outputs / "imported", vocab=rb.VOCAB)


def import_cli(built: Built, env: CorpusEnv) -> list[str]:
    return ["bundles", "import", str(built["path"]), "--out", str(env.outputs / "imported")]


# ---------------------------------------------------------------------- builders / checks
def at(name: str, make: Callable[[Path, CorpusEnv], Any]) -> Callable[[CorpusEnv], Built]:
    """A builder that calls ``make(env.inputs / name, env)`` and records the path."""

    def build(env: CorpusEnv) -> Built:
        path = env.inputs / name
        extra = make(path, env)
        return {"path": path, **(extra if isinstance(extra, dict) else {})}

    return build


def good_nifti(env: CorpusEnv) -> Built:
    return {"path": rb.nifti(env.inputs / "scan.nii.gz")}


def bundle_copy(edit: Callable[[Path], Any], kind: str = "cddgm"):
    def build(env: CorpusEnv) -> Built:
        bundle = rb.copy_bundle(env.bundles[kind], env.inputs / "bundle")
        edit(bundle)
        return {**good_nifti(env), "bundle": bundle}

    return build


def no_output(built: Built, env: CorpusEnv) -> None:
    leftovers = sorted(p.name for p in env.outputs.iterdir())
    assert not leftovers, f"partial output left behind: {leftovers}"


def marker_absent(built: Built, env: CorpusEnv) -> None:
    assert not built["marker"].exists(), "the pickle payload was executed"
    no_output(built, env)


def _shape(volume: Any) -> str:
    return f"volume of shape {tuple(volume.shape)}"


def check_missing_tags(expected: list[str]):
    def check(volume: Any, built: Built, env: CorpusEnv) -> str:
        assert volume.metadata["missing_tags"] == expected, volume.metadata["missing_tags"]
        assert volume.metadata["missing_iaps"] == volume.iap.missing()
        return (
            f"Loads ({_shape(volume)}); metadata['missing_tags'] = {expected}; the napari "
            "reader shows them and offers manual entry."
        )

    return check


def check_single_slice(volume: Any, built: Built, env: CorpusEnv) -> str:
    assert volume.shape == (1, 16, 12)
    assert volume.spacing[0] == 0.8  # SliceThickness of the header
    return f"Loads as a {_shape(volume)}, slice spacing from SliceThickness (0.8 mm)."


def check_invalid_tag(volume: Any, built: Built, env: CorpusEnv) -> str:
    assert "FlipAngle" in volume.metadata["missing_tags"]
    assert volume.iap.flip_angle is None
    assert "FlipAngle" in volume.iap.extras["invalid_tags"]
    return (
        f"Loads ({_shape(volume)}); FlipAngle counts as missing and its raw value is kept in "
        f"iap.extras['invalid_tags'] = {volume.iap.extras['invalid_tags']}."
    )


def check_no_sidecar(volume: Any, built: Built, env: CorpusEnv) -> str:
    assert volume.iap.missing() == list(volume.metadata["missing_iaps"])
    assert len(volume.metadata["missing_tags"]) == 8
    assert volume.metadata["sidecar"] is None
    return (
        f"Loads ({_shape(volume)}); every IAP is unknown: metadata['missing_tags'] = "
        f"{volume.metadata['missing_tags']}."
    )


def check_bad_sidecar_values(volume: Any, built: Built, env: CorpusEnv) -> str:
    invalid = volume.iap.extras["invalid_tags"]
    assert set(invalid) == {"FlipAngle", "EchoTime", "MagneticFieldStrength"}, invalid
    assert {"FlipAngle", "EchoTime", "MagneticFieldStrength"} <= set(
        volume.metadata["missing_tags"]
    )
    assert volume.iap.repetition_time == 5.5
    return f"Loads; unusable values count as missing and are kept: invalid_tags = {invalid}."


def check_same_shape(result: Any, built: Built, env: CorpusEnv) -> str:
    volume = built.get("volume") or read_volume(built["path"])
    assert result.shape == volume.shape
    assert np.all(np.isfinite(result.data))
    return f"Runs: a counterfactual {_shape(result)}, same geometry as the source."


def check_constant_segment(labels: Any, built: Built, env: CorpusEnv) -> str:
    assert labels.shape == (4, 24, 20) and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2}
    return f"Runs: labels of shape {labels.shape} (a constant slice is not rescaled, no NaN)."


def check_flash_import(path: Any, built: Built, env: CorpusEnv) -> str:
    from napari_cf_iap.bundles import load_bundle

    loaded = load_bundle(path)
    assert "SDPA" in loaded.provenance["attention"]
    assert torch.allclose(
        rb.model_outputs(loaded.model), rb.model_outputs(built["model"]), atol=1e-5
    )
    return (
        "Imports; the bundle reproduces the source network's outputs; provenance notes: "
        f"{loaded.provenance['attention']!r}."
    )


def check_extrapolated(result: Any, built: Built, env: CorpusEnv) -> str:
    assert result.iap.flip_angle == 90
    assert np.all(np.isfinite(result.data))
    return f"Runs ({_shape(result)}, target FA 90) and says so explicitly."


# ---------------------------------------------------------------------- the corpus
def _two_series(path: Path, env: CorpusEnv) -> None:
    rb.series(path, [0, 1, 2], rb.SERIES_A, description="t1 pre")
    rb.series(path, [0, 1, 2], rb.SERIES_B, description="t1 post", name_prefix="b_")


def _missing_iap_series(path: Path, env: CorpusEnv) -> None:
    rb.series(path, [0, 1, 2])
    rb.edit_headers(path, FlipAngle=None, EchoTime=None)


def _invalid_flip_angle(path: Path, env: CorpusEnv) -> None:
    rb.series(path, [0, 1, 2])
    for file in sorted(path.glob("*.dcm")):
        rb.raw_tag_value(file, "FlipAngle", b"abc")


def _enormous(path: Path, env: CorpusEnv) -> None:
    rb.series(path, [0, 1])
    rb.edit_headers(path, Rows=65535, Columns=65535)


def _mask_mismatch(path: Path, env: CorpusEnv) -> Built:
    volume, mask = rb.image_and_shifted_mask(path)
    return {"volume": volume, "mask": mask}


def _pickle_ckpt(path: Path, env: CorpusEnv) -> Built:
    marker = env.root / "payload-ran"
    extra = {"callbacks": {"ModelCheckpoint": rb.PicklePayload(marker)}}
    rb.authors_checkpoint(path, rb.tiny_source_model(), flash_attention=False, extra=extra)
    return {"marker": marker}


def _raw_pickle(path: Path, env: CorpusEnv) -> Built:
    marker = env.root / "payload-ran"
    rb.raw_pickle(path, marker)
    return {"marker": marker}


def _flash_ckpt(path: Path, env: CorpusEnv) -> Built:
    model = rb.tiny_source_model()
    rb.authors_checkpoint(path, model, flash_attention=True)
    return {"model": model}


def _nan_volume(value: float):
    def make(path: Path, env: CorpusEnv) -> None:
        data = rb.make_volume((4, 24, 20), seed=3).data.copy()
        data[1, 5:9, 4:8] = value
        rb.nifti(path, data)

    return make


def _constant(path: Path, env: CorpusEnv) -> None:
    rb.nifti(path, np.full((4, 24, 20), 300.0, np.float32))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _cut_pixels(path: Path, env: CorpusEnv) -> None:
    rb.series(env.root / "whole", [0.0])
    data = (env.root / "whole" / "file_000.dcm").read_bytes()
    _write(path, data[:-100])


def _truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _only_readme(bundle: Path) -> None:
    for path in bundle.iterdir():
        path.unlink()
    _write(bundle / "README", b"not a bundle")


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


_EXISTING = b"an existing result the user wants to keep\n"


def _existing(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_EXISTING)
    return path


def _write_over(path: Path) -> Any:
    from napari_cf_iap.io import write_nifti

    return write_nifti(rb.make_volume((4, 24, 20)), path)


def _assert_unchanged(path: Path) -> None:
    assert path.read_bytes() == _EXISTING, "an existing output was overwritten"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def _slices_run(built: Built, env: CorpusEnv, slices: list[int]) -> Any:
    from napari_cf_iap.pipeline import CounterfactualRequest, generate_counterfactual

    volume = read_volume(built["path"])
    request = CounterfactualRequest(target=rb.full_iap(), slices=slices)
    return generate_counterfactual(volume, request, env.bundle("cddgm"), device="cpu")


SKYRA = ("model=Skyra", "field=3", "scan_options=FS")

CORPUS: list[BadInput] = [
    # ------------------------------------------------------------------ DICOM files
    BadInput(
        "dicom-truncated-header",
        "DICOM",
        "MR_small.dcm cut after 600 bytes (the header ends mid-element)",
        "read_volume(file)",
        at("cut.dcm", lambda p, e: rb.truncated_copy("MR_small.dcm", p, 600)),
        read,
        InputError,
        r"cut\.dcm is (corrupt or )?truncated",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-truncated-pixels",
        "DICOM",
        "a one-slice series file with the last 100 bytes of its pixel data missing",
        "read_volume(file)",
        at("cut.dcm", _cut_pixels),
        read,
        InputError,
        r"cannot decode the pixel data of .*cut\.dcm.*truncated",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-truncated-in-folder",
        "DICOM",
        "a 3-slice series folder in which one file is cut after 600 bytes",
        "read_volume(folder)",
        at(
            "series",
            lambda p, e: (
                rb.series(p, [0, 1, 2]),
                (p / "file_001.dcm").write_bytes((p / "file_001.dcm").read_bytes()[:600]),
            ),
        ),
        read,
        InputError,
        r"corrupt DICOM file\(s\) sit next to series .*Repair or remove them",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-garbage",
        "DICOM",
        "a file with the DICM magic followed by 2000 random bytes",
        "read_volume(file)",
        at("junk.dcm", lambda p, e: rb.garbage_dicom(p)),
        read,
        InputError,
        r"junk\.dcm is (corrupt|truncated)",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-empty-file",
        "DICOM",
        "a zero-byte file named .dcm",
        "read_volume(file)",
        at("empty.dcm", lambda p, e: _write(p, b"")),
        read,
        InputError,
        r"empty\.dcm is not a DICOM file",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-not-image",
        "DICOM",
        "a DICOM Structured Report (no pixel data)",
        "read_volume(file)",
        at("report.dcm", lambda p, e: rb.copy_pkg("reportsi.dcm", p)),
        read,
        InputError,
        r"report\.dcm is a DICOM file without image data",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-folder-without-images",
        "DICOM",
        "a folder holding an RT structure set and a text file",
        "read_volume(folder)",
        at(
            "folder",
            lambda p, e: (rb.copy_pkg("rtstruct.dcm", p / "rs.dcm"), _write(p / "notes.txt", b"x")),
        ),
        read,
        InputError,
        r"no DICOM image series found in .*1 DICOM file\(s\) hold no image",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-empty-folder",
        "DICOM",
        "an empty folder",
        "read_volume(folder)",
        at("empty", lambda p, e: p.mkdir()),
        read,
        InputError,
        r"no DICOM image series found in .*empty",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-missing-iap-tags",
        "DICOM",
        "a series without FlipAngle and EchoTime (and, like MR_small, MagneticFieldStrength)",
        "read_volume(folder)",
        at("series", _missing_iap_series),
        read,
        check=check_missing_tags(["MagneticFieldStrength", "FlipAngle", "EchoTime"]),
    ),
    BadInput(
        "dicom-missing-iap-tags-edit",
        "DICOM",
        "the same series, edited to a Siemens Skyra 3T target without giving FA and TE",
        "counterfactual(--target model=Skyra field=3 scan_options=FS st=1 tr=4.5)",
        at("series", _missing_iap_series),
        counterfactual((*SKYRA, "st=1", "tr=4.5")),
        IAPValueError,
        r"IAPs flip_angle, echo_time are missing .*--target fa=VALUE --target te=VALUE",
        cli=counterfactual_cli((*SKYRA, "st=1", "tr=4.5")),
        after=no_output,
    ),
    BadInput(
        "dicom-invalid-iap-value",
        "DICOM",
        "a series whose FlipAngle (DS) holds the text 'abc'",
        "read_volume(folder)",
        at("series", _invalid_flip_angle),
        read,
        check=check_invalid_tag,
    ),
    BadInput(
        "dicom-two-series",
        "DICOM",
        "two series (pre and post contrast) mixed in one folder",
        "read_volume(folder)",
        at("mixed", _two_series),
        read,
        InputError,
        r"holds 2 DICOM series; choose one by passing its series_uid \(--series-uid on the "
        r"command line\):\n  - #1 't1 post': 3 images .*\n  - #1 't1 pre': 3 images",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-non-uniform-spacing",
        "DICOM",
        "slices at z = 0, 1, 2, 4, 5 mm (one missing)",
        "read_volume(folder)",
        at("series", lambda p, e: rb.series(p, [0, 1, 2, 4, 5])),
        read,
        InputError,
        r"non-uniform slice spacing: gaps range 1-2 mm.*A slice may be missing",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-duplicate-position",
        "DICOM",
        "two slices at the same position (z = 1 mm twice), no phase tags",
        "read_volume(folder)",
        at("series", lambda p, e: rb.series(p, [0, 1, 1, 2])),
        read,
        InputError,
        r"duplicate slice position \[-10\.0, -20\.0, 1\.0\] in \['file_000\.dcm', "
        r"'file_002\.dcm'\].*Remove duplicate files",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-single-slice",
        "DICOM",
        "a series of one slice",
        "read_volume(folder)",
        at("series", lambda p, e: rb.series(p, [7.5])),
        read,
        check=check_single_slice,
    ),
    BadInput(
        "dicom-single-slice-edit",
        "Pipeline",
        "a one-slice series edited to a complete Skyra 3T target",
        "counterfactual(--target model=Skyra field=3 scan_options=FS fa=10 st=1 te=1.5 tr=4.5)",
        at("series", lambda p, e: rb.series(p, [7.5])),
        counterfactual((*SKYRA, "fa=10", "st=1", "te=1.5", "tr=4.5")),
        check=check_same_shape,
    ),
    BadInput(
        "dicom-rgb",
        "DICOM",
        "an RGB secondary-capture image",
        "read_volume(file)",
        at("rgb.dcm", lambda p, e: rb.copy_pkg("SC_rgb_small_odd.dcm", p)),
        read,
        InputError,
        r"rgb\.dcm is a colour image \(RGB, 3 sample\(s\) per pixel\); only greyscale MR",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-palette-colour",
        "DICOM",
        "a PALETTE COLOR image (one sample per pixel, but colour)",
        "read_volume(file)",
        at("palette.dcm", lambda p, e: rb.copy_pkg("examples_palette.dcm", p)),
        read,
        InputError,
        r"palette\.dcm is a colour image \(PALETTE COLOR, 1 sample\(s\) per pixel\); only "
        r"greyscale MR",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-multiframe-without-geometry",
        "DICOM",
        "a multi-frame RT dose grid (no per-frame functional groups)",
        "read_volume(file)",
        at("dose.dcm", lambda p, e: rb.copy_pkg("rtdose.dcm", p)),
        read,
        InputError,
        r"multi-frame image without per-frame geometry.*convert it to single-frame DICOM or NIfTI",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-invalid-number-of-frames",
        "DICOM",
        "NumberOfFrames stored as '1A' (invalid IS value)",
        "read_volume(file)",
        at("badvr.dcm", lambda p, e: rb.copy_pkg("badVR.dcm", p)),
        read,
        InputError,
        r"invalid NumberOfFrames '1A'; the header is corrupt",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-enormous-matrix",
        "DICOM",
        "two slices whose headers claim Rows = Columns = 65535",
        "read_volume(folder)",
        at("series", _enormous),
        read,
        InputError,
        r"file_000\.dcm claims an image of 1 x 65535 x 65535 = 4,294,836,225 voxels, more than "
        r"the limit"
        r".*CF_IAP_MAX_VOXELS",
        cli=predict_cli,
    ),
    BadInput(
        "dicom-enormous-frame-count",
        "DICOM",
        "an Enhanced MR file whose NumberOfFrames claims 2**31 - 1 frames",
        "read_volume(folder)",
        at("enhanced", lambda p, e: rb.enhanced_with_frames(p, e.root, 2**31 - 1)),
        read,
        InputError,
        r"claims an image of 2147483647 x 256 x 256 .*the header is probably corrupt",
        cli=predict_cli,
    ),
    # ------------------------------------------------------------------ other files
    BadInput(
        "path-missing",
        "Files",
        "a path that does not exist",
        "read_volume(path)",
        lambda env: {"path": env.inputs / "absent.nii.gz"},
        read,
        InputError,
        r"absent\.nii\.gz does not exist",
        cli=predict_cli,
    ),
    BadInput(
        "file-unsupported",
        "Files",
        "a PNG file",
        "read_volume(file)",
        at("photo.png", lambda p, e: _write(p, b"\x89PNG\r\n\x1a\n" + bytes(64))),
        read,
        InputError,
        r"cannot read photo\.png: supported inputs are a DICOM folder or file",
        cli=predict_cli,
    ),
    BadInput(
        "nifti-no-sidecar",
        "NIfTI",
        "a NIfTI volume without a JSON sidecar",
        "read_volume(file)",
        at("scan.nii.gz", lambda p, e: rb.nifti(p, sidecar=False)),
        read,
        check=check_no_sidecar,
    ),
    BadInput(
        "nifti-no-sidecar-edit",
        "NIfTI",
        "the same NIfTI edited with only model, field and scan options given",
        "counterfactual(--target model=Skyra field=3 scan_options=FS)",
        at("scan.nii.gz", lambda p, e: rb.nifti(p, sidecar=False)),
        counterfactual(SKYRA),
        IAPValueError,
        r"IAPs flip_angle, slice_thickness, echo_time, repetition_time are missing.*IAP table"
        r".*--target fa=VALUE --target st=VALUE --target te=VALUE --target tr=VALUE.*"
        r"FlipAngle, SliceThickness, EchoTime, RepetitionTime in a BIDS JSON sidecar",
        cli=counterfactual_cli(SKYRA),
        after=no_output,
    ),
    BadInput(
        "nifti-sidecar-invalid-json",
        "NIfTI",
        "a sidecar that is not valid JSON",
        "read_volume(file)",
        at(
            "scan.nii.gz",
            lambda p, e: (rb.nifti(p, sidecar=False), _write(p.parent / "scan.json", b"{oops")),
        ),
        read,
        InputError,
        r"sidecar .*scan\.json is not valid JSON",
        cli=predict_cli,
    ),
    BadInput(
        "nifti-sidecar-bad-values",
        "NIfTI",
        "a sidecar with FlipAngle 'ninety', EchoTime 'NaN' and MagneticFieldStrength -3",
        "read_volume(file)",
        at(
            "scan.nii.gz",
            lambda p, e: (
                rb.nifti(p, sidecar=False),
                _write(
                    p.parent / "scan.json",
                    b'{"FlipAngle": "ninety", "EchoTime": "NaN", "MagneticFieldStrength": -3,'
                    b' "RepetitionTime": 0.0055}',
                ),
            ),
        ),
        read,
        check=check_bad_sidecar_values,
    ),
    BadInput(
        "nifti-4d",
        "NIfTI",
        "a 4D NIfTI (8 x 8 x 4 voxels, 3 time points)",
        "read_volume(file)",
        at("dyn.nii.gz", lambda p, e: rb.nifti_raw(p, np.zeros((8, 8, 4, 3), np.int16))),
        read,
        InputError,
        r"has shape \(8, 8, 4, 3\); only 3D volumes are supported \(split 4D series first\)",
        cli=predict_cli,
    ),
    BadInput(
        "nifti-rgb",
        "NIfTI",
        "an RGB NIfTI (RGB24 voxels)",
        "read_volume(file)",
        at(
            "rgb.nii",
            lambda p, e: rb.nifti_raw(
                p, np.zeros((4, 4, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
            ),
        ),
        read,
        InputError,
        r"holds RGB/structured voxels; only scalar volumes are supported",
        cli=predict_cli,
    ),
    BadInput(
        "nifti-corrupt",
        "NIfTI",
        "random bytes named .nii.gz",
        "read_volume(file)",
        at("bad.nii.gz", lambda p, e: _write(p, bytes(range(256)) * 4)),
        read,
        InputError,
        r"cannot read NIfTI file .*bad\.nii\.gz",
        cli=predict_cli,
    ),
    BadInput(
        "nifti-enormous-header",
        "NIfTI",
        "a 40-byte .nii.gz whose header claims 30000 x 30000 x 30000 voxels",
        "read_volume(file)",
        at("huge.nii.gz", lambda p, e: rb.nifti_lying_header(p, (30000, 30000, 30000))),
        read,
        InputError,
        r"huge\.nii\.gz claims an image of 30000 x 30000 x 30000 = 27,000,000,000,000 voxels",
        cli=predict_cli,
    ),
    BadInput(
        "nrrd-enormous-header",
        "NRRD",
        "an NRRD whose header claims 30000 x 30000 x 30000 voxels",
        "read_volume(file)",
        at("huge.nrrd", lambda p, e: rb.nrrd_lying_header(p, (30000, 30000, 30000))),
        read,
        InputError,
        r"huge\.nrrd claims an image of 30000 x 30000 x 30000",
        cli=predict_cli,
    ),
    BadInput(
        "nrrd-corrupt",
        "NRRD",
        "an NRRD header followed by a broken gzip stream",
        "read_volume(file)",
        at(
            "broken.nrrd",
            lambda p, e: _write(
                p,
                b"NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4 4\nendian: little\n"
                b"encoding: gzip\n\n\x1f\x8bgarbage",
            ),
        ),
        read,
        InputError,
        r"cannot read NRRD file .*broken\.nrrd",
        cli=predict_cli,
    ),
    BadInput(
        "nrrd-mask-geometry-mismatch",
        "NRRD",
        "a Duke breast mask whose grid is shifted half a voxel from its image",
        "read_duke_masks(mask, reference=image)",
        at("masks", _mask_mismatch),
        lambda b, e: read_duke_masks(b["mask"], reference=b["volume"]),
        InputError,
        r"mask Segmentation_Breast_MRI_001_Breast\.seg\.nrrd does not match the image geometry"
        r".*Use the segmentation made on this series",
    ),
    # ------------------------------------------------------------------ pixel values
    BadInput(
        "pixels-nan-edit",
        "Pixels",
        "a NIfTI with a 4 x 4 patch of NaN in slice 1",
        "counterfactual(--target model=Skyra field=3 scan_options=FS)",
        at("nan.nii.gz", _nan_volume(np.nan)),
        counterfactual(SKYRA),
        InputError,
        r"the image contains NaN or inf values; fix or mask them",
        cli=counterfactual_cli(SKYRA),
        after=no_output,
    ),
    BadInput(
        "pixels-inf-segment",
        "Pixels",
        "a NIfTI with a 4 x 4 patch of +inf in slice 1",
        "segment(volume)",
        at("inf.nii.gz", _nan_volume(np.inf)),
        segment_run,
        InputError,
        r"the image contains NaN or inf values; fix or mask them",
        cli=lambda b, e: [
            "segment",
            str(b["path"]),
            "--bundle",
            e.bundle("segmenter"),
            "--out",
            str(e.outputs / "labels.seg.nrrd"),
        ],
        after=no_output,
    ),
    BadInput(
        "pixels-nan-predict",
        "Pixels",
        "a NIfTI with a 4 x 4 patch of NaN in slice 1",
        "predict_iap(volume)",
        at("nan.nii.gz", _nan_volume(np.nan)),
        predict_run,
        InputError,
        r"the image contains NaN or inf values",
        cli=predict_cli,
    ),
    BadInput(
        "pixels-constant-edit",
        "Pixels",
        "a constant image (every voxel 300)",
        "counterfactual(--target model=Skyra field=3 scan_options=FS)",
        at("flat.nii.gz", _constant),
        counterfactual(SKYRA),
        InputError,
        r"the selected slices are constant \(no contrast\); nothing to process",
        cli=counterfactual_cli(SKYRA),
        after=no_output,
    ),
    BadInput(
        "pixels-constant-segment",
        "Pixels",
        "a constant image (every voxel 300)",
        "segment(volume)",
        at("flat.nii.gz", _constant),
        segment_run,
        check=check_constant_segment,
    ),
    # ------------------------------------------------------------------ IAP values
    BadInput(
        "iap-flip-angle-90",
        "IAPs",
        "target flip angle 90 degrees (trained range 7-12)",
        "counterfactual(--target fa=90)",
        good_nifti,
        counterfactual(("fa=90",)),
        IAPValueError,
        r"flip_angle 90 is outside the trained range \[7, 12\]; choose a value in range or "
        r"allow extrapolation",
        cli=counterfactual_cli(("fa=90",)),
        after=no_output,
    ),
    BadInput(
        "iap-flip-angle-90-extrapolate",
        "IAPs",
        "target flip angle 90 degrees with extrapolation allowed",
        "counterfactual(--target fa=90 --allow-extrapolation)",
        good_nifti,
        counterfactual(("fa=90",), allow_extrapolation=True),
        check=check_extrapolated,
        warns=IAPExtrapolationWarning,
    ),
    BadInput(
        "iap-unknown-model",
        "IAPs",
        "target scanner model 'Ingenia' (not in the vocabulary)",
        "counterfactual(--target model=Ingenia)",
        good_nifti,
        counterfactual(("model=Ingenia",)),
        IAPValueError,
        r"model_name 'Ingenia' is not in this model's vocabulary; allowed: \['Avanto'",
        cli=counterfactual_cli(("model=Ingenia",)),
        after=no_output,
    ),
    BadInput(
        "iap-negative-echo-time",
        "IAPs",
        "target echo time -1 ms",
        "counterfactual(--target te=-1)",
        good_nifti,
        counterfactual(("te=-1",)),
        IAPValueError,
        r"echo_time must be > 0, got -1",
        cli=counterfactual_cli(("te=-1",)),
        after=no_output,
    ),
    BadInput(
        "iap-not-a-number",
        "IAPs",
        "target flip angle 'ten'",
        "counterfactual(--target fa=ten)",
        good_nifti,
        counterfactual(("fa=ten",)),
        IAPValueError,
        r"flip angle 'ten' is not a number",
        cli=counterfactual_cli(("fa=ten",)),
    ),
    BadInput(
        "iap-unknown-key",
        "IAPs",
        "a --target key that is not an IAP (coil=breast)",
        "counterfactual(--target coil=breast)",
        good_nifti,
        counterfactual(("coil=breast",)),
        IAPValueError,
        r"--target 'coil=breast' is not KEY=VALUE with KEY one of \[",
        cli=counterfactual_cli(("coil=breast",)),
    ),
    # ------------------------------------------------------------------ bundles
    BadInput(
        "bundle-wrong-architecture",
        "Bundles",
        "bundle.json says channels (16, 32) but the weights are for (8, 16)",
        "load_bundle(folder)",
        bundle_copy(lambda b: rb.edit_manifest(b, lambda m: m["config"].update(channels=[16, 32]))),
        load_bundle_run,
        BundleError,
        r"the weights do not fit the architecture in the config: \d+ tensor\(s\) with a "
        r"different shape",
        cli=counterfactual_cli(SKYRA),
    ),
    BadInput(
        "bundle-wrong-vocabulary",
        "Bundles",
        "bundle.json carries a vocabulary with one scanner model fewer",
        "load_bundle(folder)",
        bundle_copy(
            lambda b: rb.edit_manifest(b, lambda m: m.update(vocabulary=rb.smaller_vocabulary()))
        ),
        load_bundle_run,
        BundleError,
        r"IAP vocabulary mismatch: the vocabulary encodes vectors of length \d+ but the cddgm "
        r"network was built for length \d+",
        cli=counterfactual_cli(SKYRA),
    ),
    BadInput(
        "bundle-truncated-weights",
        "Bundles",
        "weights.safetensors cut to half its size (interrupted download)",
        "load_bundle(folder)",
        bundle_copy(lambda b: _truncate_half(b / "weights.safetensors")),
        load_bundle_run,
        BundleError,
        r"weights\.safetensors is truncated or corrupt .*re-download or re-export the bundle",
        cli=counterfactual_cli(SKYRA),
    ),
    BadInput(
        "bundle-modified-weights",
        "Bundles",
        "one byte of a tensor in weights.safetensors changed",
        "load_bundle(folder)",
        bundle_copy(lambda b: _flip_last_byte(b / "weights.safetensors")),
        load_bundle_run,
        BundleError,
        r"does not match its checksum in bundle\.json .*modified or damaged",
        cli=counterfactual_cli(SKYRA),
    ),
    BadInput(
        "bundle-newer-format",
        "Bundles",
        "bundle.json declares format_version 99",
        "load_bundle(folder)",
        bundle_copy(lambda b: rb.edit_manifest(b, lambda m: m.update(format_version=99))),
        load_bundle_run,
        BundleError,
        r"uses bundle format 99, newer than this napari-cf-iap supports .*upgrade",
        cli=counterfactual_cli(SKYRA),
    ),
    BadInput(
        "bundle-not-a-bundle",
        "Bundles",
        "a folder holding only a README",
        "load_bundle(folder)",
        bundle_copy(_only_readme),
        load_bundle_run,
        BundleError,
        r"is not a model bundle",
        cli=counterfactual_cli(SKYRA),
    ),
    BadInput(
        "bundle-wrong-kind",
        "Bundles",
        "a segmenter bundle passed where the cDDGM is needed",
        "counterfactual(--bundle <segmenter>)",
        lambda env: {**good_nifti(env), "bundle": env.bundles["segmenter"]},
        counterfactual(SKYRA),
        BundleError,
        r"is a segmenter bundle, but a cddgm bundle is needed here",
        cli=counterfactual_cli(SKYRA),
    ),
    # ------------------------------------------------------------------ checkpoints
    BadInput(
        "checkpoint-pickle-payload",
        "Checkpoints",
        "a Lightning checkpoint whose callbacks hold an object that runs code when unpickled",
        "import_authors_checkpoint(ckpt)",
        at("evil.ckpt", _pickle_ckpt),
        import_run,
        BundleError,
        r"contains pickled Python objects .*refuses to execute pickle payloads",
        cli=import_cli,
        after=marker_absent,
    ),
    BadInput(
        "checkpoint-raw-pickle",
        "Checkpoints",
        "a plain pickle (not a torch zip) carrying the same payload",
        "import_authors_checkpoint(ckpt)",
        at("evil.pkl", _raw_pickle),
        import_run,
        BundleError,
        r"evil\.pkl (contains|is a plain Python pickle with) pickled Python objects",
        cli=import_cli,
        after=marker_absent,
    ),
    BadInput(
        "checkpoint-not-a-checkpoint",
        "Checkpoints",
        "random bytes named .ckpt",
        "import_authors_checkpoint(ckpt)",
        at("junk.ckpt", lambda p, e: _write(p, b"\x00\x01 not a checkpoint")),
        import_run,
        BundleError,
        r"junk\.ckpt is not a PyTorch checkpoint: its 19 bytes start with 00 01",
        cli=import_cli,
        after=no_output,
    ),
    BadInput(
        "checkpoint-flash-attention",
        "Checkpoints",
        "a monai-generative checkpoint saved with use_flash_attention=True (xformers)",
        "import_authors_checkpoint(ckpt)",
        at("authors.ckpt", _flash_ckpt),
        import_run,
        check=check_flash_import,
    ),
    # ------------------------------------------------------------------ outputs / options
    BadInput(
        "output-exists",
        "Outputs",
        "--out names an existing file and --overwrite is not given",
        "write_nifti(result, existing)",
        lambda env: {**good_nifti(env), "existing": _existing(env.outputs / "cf.nii.gz")},
        lambda b, e: _write_over(b["existing"]),
        OutputExistsError,
        r"cf\.nii\.gz already exists; choose another (path or pass overwrite=True|--out or add "
        r"--overwrite)",
        cli=counterfactual_cli(SKYRA),
        after=lambda b, e: _assert_unchanged(b["existing"]),
    ),
    BadInput(
        "slices-out-of-range",
        "Outputs",
        "--slices 99 on a 4-slice volume",
        "counterfactual(--slices 99)",
        good_nifti,
        lambda b, e: _slices_run(b, e, [99]),
        InputError,
        r"slice indices \[99\] are outside the volume \(0\.\.3\)",
        cli=counterfactual_cli(SKYRA, "--slices", "99"),
        after=no_output,
    ),
]


CASES = {case.id: case for case in CORPUS}
assert len(CASES) == len(CORPUS), "duplicate case ids"


# ---------------------------------------------------------------------- repetition
#: The stated bound on resident-memory growth over 20 repeated pipeline runs.
RSS_BOUND_MB = 50.0


def rss_growth_mb(
    bundles: dict[str, Path], runs: int = 20, shape: tuple[int, int, int] = (2, 36, 32)
) -> dict:
    """Resident memory growth (MB) over ``runs`` pipeline runs after one warm-up run.

    One run = counterfactual + IAP prediction + segmentation of the same small volume with the
    tiny bundles (cached after the warm-up, as in a napari session).
    """
    import psutil

    from napari_cf_iap.pipeline import (
        CounterfactualRequest,
        generate_counterfactual,
        predict_iap,
        segment,
    )

    volume = rb.make_volume(shape, seed=11)
    request = CounterfactualRequest(target=rb.full_iap(), steps=2)
    process = psutil.Process()

    def once() -> None:
        result = generate_counterfactual(volume, request, bundles["cddgm"], device="cpu")
        predicted = predict_iap(result, bundles["iap_predictor"], device="cpu")
        labels = segment(result, bundles["segmenter"], device="cpu")
        assert result.shape == labels.shape == volume.shape and predicted.record.model_name

    once()  # warm-up: bundle cache, torch kernels, allocator pools
    gc.collect()
    before = process.memory_info().rss
    samples = []
    for _ in range(runs):
        once()
        gc.collect()
        samples.append(process.memory_info().rss)
    return {
        "runs": runs,
        "shape": shape,
        "before_mb": before / 2**20,
        "growth_mb": (samples[-1] - before) / 2**20,
        "peak_growth_mb": (max(samples) - before) / 2**20,
    }
