"""Property tests: garbage DICOM tags, sidecars, CLI targets and IAP vectors fail only with our
own error types, and IAP encode/decode round trips hold (also when extrapolating).

Tag values are stored as raw bytes under any VR, so pydicom converts them lazily exactly as it
does for a real file read from disk (wrong VRs, odd lengths, NaN strings, huge numbers, odd
multi-values, broken sequences).
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from reliability_builders import series

from napari_cf_iap.errors import CfIapError
from napari_cf_iap.iap import IAPRecord, IAPVocabulary
from napari_cf_iap.iap.record import CATEGORICAL_IAPS, CONTINUOUS_IAPS
from napari_cf_iap.iap.vocabulary import IAPExtrapolationWarning
from napari_cf_iap.io import iap_from_dataset, read_volume
from napari_cf_iap.io.dicom_tags import IAP_TAGS
from napari_cf_iap.io.nifti import iap_from_sidecar
from napari_cf_iap.volume import Volume

VOCAB = IAPVocabulary.duke_default()
SETTINGS = settings(
    max_examples=int(os.environ.get("CF_IAP_HYPOTHESIS_EXAMPLES", 60)),  # CI: modest
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_TEXT_VALUES = [
    b"",
    b" ",
    b"nan",
    b"NaN",
    b"inf",
    b"-inf",
    b"1e999",
    b"-1e999",
    b"99999999999999999999999999",
    b"0",
    b"-0",
    b"-7",
    b"1.5",
    b"3",
    b"15000",
    b"2.8936",
    b"abc",
    b"1\\2\\3",
    b"\\\\",
    b"1.2.3",
    b"FS\\PFP\\\x00",
    b"\xff\xfe\xfd",
    b"1A",
    b"SIEMENS",
    b"GE MEDICAL SYSTEMS",
]
_VRS = ["DS", "IS", "LO", "SH", "CS", "FD", "FL", "US", "SS", "UL", "SL", "UN", "OB", "SQ", "UI"]
_SEQUENCE_BYTES = [
    b"\xfe\xff\x00\xe0\xff\xff\xff\xff",  # an item of undefined length that never ends
    b"\xfe\xff\x00\xe0\x08\x00\x00\x00\x18\x00\x14\x13\x02\x00\x00\x00",  # item longer than data
    b"\xfe\xff\xdd\xe0\x00\x00\x00\x00",  # a lone sequence delimiter
]

raw_bytes = st.one_of(
    st.sampled_from(_TEXT_VALUES),
    st.sampled_from(_SEQUENCE_BYTES),
    st.binary(max_size=24),
    st.lists(st.sampled_from(_TEXT_VALUES), min_size=2, max_size=4).map(b"\\".join),
)
raw_element = st.tuples(st.sampled_from(_VRS), raw_bytes)

_IAP_KEYWORDS = list(IAP_TAGS.values()) + [
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
]
_GEOMETRY_KEYWORDS = [
    "Rows",
    "Columns",
    "NumberOfFrames",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PixelSpacing",
    "RescaleSlope",
    "RescaleIntercept",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "BitsAllocated",
    "PixelRepresentation",
    "SeriesNumber",
    "SeriesInstanceUID",
    "SpacingBetweenSlices",
    "AcquisitionNumber",
    "FrameOfReferenceUID",
]


def _raw(keyword: str, vr: str, value: bytes) -> RawDataElement:
    tag = Tag(tag_for_keyword(keyword))
    return RawDataElement(tag, vr, len(value), value, 0, False, True)


def _assert_sane(record: IAPRecord) -> None:
    for name in CONTINUOUS_IAPS:
        value = getattr(record, name)
        assert value is None or math.isfinite(value)
    assert record.field_strength is None or record.field_strength > 0


# ---------------------------------------------------------------------- DICOM IAP tags
@SETTINGS
@given(st.dictionaries(st.sampled_from(_IAP_KEYWORDS), raw_element, max_size=8))
def test_iap_from_dataset_on_garbage_tags(tags):
    ds = Dataset()
    for keyword, (vr, value) in tags.items():
        ds[Tag(tag_for_keyword(keyword))] = _raw(keyword, vr, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            record, missing = iap_from_dataset(ds)
        except CfIapError:
            return
    _assert_sane(record)
    assert set(missing) <= set(IAP_TAGS.values())
    for name, keyword in IAP_TAGS.items():
        assert (getattr(record, name) is None) == (keyword in missing)


@pytest.fixture(scope="module")
def base_series(tmp_path_factory) -> Path:
    return series(tmp_path_factory.mktemp("base") / "series", [0.0, 1.5])


@SETTINGS
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_GEOMETRY_KEYWORDS + _IAP_KEYWORDS),
            raw_element,
            st.sampled_from(["both", "first"]),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_read_volume_on_garbage_headers(base_series, tmp_path_factory, edits):
    folder = tmp_path_factory.mktemp("fuzz")
    files = sorted(base_series.glob("*.dcm"))
    for n, path in enumerate(files):
        ds = pydicom.dcmread(path)
        for keyword, (vr, value), which in edits:
            if which == "both" or n == 0:
                ds[Tag(tag_for_keyword(keyword))] = _raw(keyword, vr, value)
        try:
            ds.save_as(folder / path.name)
        except Exception:  # pydicom cannot even write this header: not an input we can get
            assume(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            volume = read_volume(folder)
        except CfIapError as exc:
            assert str(exc)
            return
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    assert isinstance(volume, Volume)
    assert volume.data.ndim == 3 and volume.data.size > 0
    assert np.all(np.isfinite(volume.affine))
    _assert_sane(volume.iap)


# ---------------------------------------------------------------------- sidecars and CLI
_json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
)
_json_value = st.one_of(
    _json_scalar,
    st.lists(_json_scalar, max_size=3),
    st.dictionaries(st.text(max_size=3), _json_scalar, max_size=2),
)
_BIDS = [
    "Manufacturer",
    "ManufacturersModelName",
    "MagneticFieldStrength",
    "ScanOptions",
    "FlipAngle",
    "SliceThickness",
    "EchoTime",
    "RepetitionTime",
]


@SETTINGS
@given(st.dictionaries(st.sampled_from(_BIDS), _json_value, max_size=8))
def test_sidecar_parsing_on_garbage_values(sidecar):
    try:
        record, missing = iap_from_sidecar(sidecar)
    except CfIapError:
        return
    _assert_sane(record)
    assert set(missing) <= set(_BIDS)


@SETTINGS
@given(st.lists(st.text(max_size=20), max_size=4))
def test_cli_target_parsing_on_garbage(pairs):
    from napari_cf_iap.cli.common import parse_target

    try:
        record = parse_target(pairs, IAPRecord())
    except CfIapError:
        return
    _assert_sane(record)


# ---------------------------------------------------------------------- IAP encoding
_any_number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from([0, -0.0, 1e-300, 1e300]),
)


@st.composite
def arbitrary_records(draw):
    values = {}
    for name in CATEGORICAL_IAPS:
        pool = VOCAB.categories[name]
        values[name] = draw(st.one_of(st.none(), st.sampled_from(pool), st.text(max_size=8)))
    for name in CONTINUOUS_IAPS:
        values[name] = draw(st.one_of(st.none(), _any_number))
    try:
        return IAPRecord.create(**values)
    except CfIapError:
        assume(False)


@SETTINGS
@given(arbitrary_records(), st.booleans())
def test_encode_fails_only_with_our_errors(record, extrapolate):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            vector = VOCAB.encode(record, allow_extrapolation=extrapolate)
        except CfIapError:
            return
    assert vector.shape == (VOCAB.dim,) and np.all(np.isfinite(vector))
    for slot in VOCAB.slots:
        block = vector[slot.start : slot.stop]
        if slot.categorical:
            assert sorted(block.tolist()) == [0.0] * (len(block) - 1) + [1.0]
        else:
            assert block[0] > 0
    outside = [
        name
        for name in CONTINUOUS_IAPS
        if not VOCAB.continuous_range[name][0]
        <= getattr(record, name)
        <= VOCAB.continuous_range[name][1]
    ]
    assert extrapolate or not outside
    flagged = [w for w in caught if issubclass(w.category, IAPExtrapolationWarning)]
    assert len(flagged) == len(outside)


@st.composite
def valid_records_any_range(draw):
    model = draw(st.sampled_from(VOCAB.categories["model_name"]))
    values = {
        "manufacturer": VOCAB.model_manufacturer[model],
        "model_name": model,
        "field_strength": draw(st.sampled_from(VOCAB.categories["field_strength"])),
        "scan_options": draw(st.sampled_from(VOCAB.categories["scan_options"])),
    }
    for name in CONTINUOUS_IAPS:
        values[name] = draw(st.floats(min_value=1e-3, max_value=1e4))
    return IAPRecord.create(**values)


@SETTINGS
@given(valid_records_any_range())
def test_round_trip_also_when_extrapolating(record):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IAPExtrapolationWarning)
        vector = VOCAB.encode(record, allow_extrapolation=True)
    decoded = VOCAB.decode(vector).record
    for name in ("manufacturer", *CATEGORICAL_IAPS):
        assert getattr(decoded, name) == getattr(record, name)
    for name in CONTINUOUS_IAPS:
        assert getattr(decoded, name) == pytest.approx(getattr(record, name), rel=1e-6)


@SETTINGS
@given(
    st.one_of(
        st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=VOCAB.dim + 2),
        st.lists(st.floats(-50, 50), min_size=VOCAB.dim, max_size=VOCAB.dim),
    ),
    st.booleans(),
)
def test_decode_fails_only_with_our_errors_and_is_stable(values, logits):
    try:
        predicted = VOCAB.decode(np.array(values, dtype=np.float64), logits=logits)
    except CfIapError:
        return
    for probs in predicted.probabilities.values():
        assert sum(probs.values()) == pytest.approx(1.0)
        assert all(0 <= p <= 1 for p in probs.values())
    record = predicted.record
    assume(all((getattr(record, n) or 0) > 0 for n in CONTINUOUS_IAPS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IAPExtrapolationWarning)
        try:
            vector = VOCAB.encode(record, allow_extrapolation=True)
        except CfIapError:  # e.g. a decoded value too large to encode again
            return
    again = VOCAB.decode(vector).record
    assert again == record or all(
        getattr(again, n) == pytest.approx(getattr(record, n), rel=1e-6)
        if n in CONTINUOUS_IAPS
        else getattr(again, n) == getattr(record, n)
        for n in ("manufacturer", *CATEGORICAL_IAPS, *CONTINUOUS_IAPS)
    )
