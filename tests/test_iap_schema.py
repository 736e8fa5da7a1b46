"""The IAP schema: record normalisation, vocabulary, encoding and decoding."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.multival import MultiValue

from napari_cf_iap.errors import CfIapError, IAPValueError
from napari_cf_iap.iap import (
    CATEGORICAL_IAPS,
    CONTINUOUS_IAPS,
    IAPExtrapolationWarning,
    IAPRecord,
    IAPVocabulary,
)
from napari_cf_iap.iap.normalise import GE, SIEMENS

VOCAB = IAPVocabulary.duke_default()


def duke_record(**changes) -> IAPRecord:
    values = dict(
        manufacturer="SIEMENS",
        model_name="Avanto",
        field_strength=1.494,
        scan_options="PFP\\FS",
        flip_angle=10,
        slice_thickness=1.1,
        echo_time=2.5,
        repetition_time=5.5,
    )
    values.update(changes)
    return IAPRecord.create(**values)


# ---------------------------------------------------------------- normalisation
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Siemens Healthineers", SIEMENS),
        ("SIEMENS", SIEMENS),
        ("GE MEDICAL SYSTEMS", GE),
        ("ge  healthcare", GE),
    ],
)
def test_vendor_spellings(raw, expected):
    assert IAPRecord.create(manufacturer=raw).manufacturer == expected


@pytest.mark.parametrize(
    ("raw", "tesla"),
    [(1.494, 1.5), ("1.4939999580383", 1.5), (2.8936, 3.0), (3, 3.0), (15000, 1.5), (30000, 3.0)],
)
def test_field_strength_nominal(raw, tesla):
    assert IAPRecord.create(field_strength=raw).field_strength == tesla


def test_scan_options_str_multivalue_and_empty():
    assert IAPRecord.create(scan_options="SAT_GEMS\\PFP\\FS").scan_options == "SAT_GEMS\\PFP\\FS"
    multi = MultiValue(str, ["FAST_GEMS", "SAT_GEMS", "PFP", "FS"])
    assert IAPRecord.create(scan_options=multi).scan_options == "FAST_GEMS\\SAT_GEMS\\PFP\\FS"
    assert IAPRecord.create(scan_options="").scan_options == ""
    assert IAPRecord.create().scan_options is None


def test_missing_and_dict_round_trip():
    record = duke_record(echo_time=None)
    assert record.missing() == ["echo_time"]
    assert IAPRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


# ---------------------------------------------------------------- vocabulary
def test_encode_decode_round_trip_and_null_vector():
    record = duke_record()
    vector = VOCAB.encode(record)
    assert vector.shape == (VOCAB.dim,) and vector.dtype == np.float32
    n_cat = sum(len(VOCAB.categories[n]) for n in CATEGORICAL_IAPS)
    assert VOCAB.dim == n_cat + len(CONTINUOUS_IAPS)
    assert vector[:n_cat].sum() == 3.0  # one hot per categorical
    assert vector[n_cat] == pytest.approx(10 / 12)  # flip angle / max
    decoded = VOCAB.decode(vector)
    assert decoded.record.model_name == "Avanto" and decoded.record.manufacturer == SIEMENS
    assert decoded.record.field_strength == 1.5 and decoded.record.scan_options == "PFP\\FS"
    for name in CONTINUOUS_IAPS:
        assert getattr(decoded.record, name) == pytest.approx(getattr(record, name), rel=1e-6)
    assert decoded.confidence("model_name") == 1.0
    null = VOCAB.null_vector()
    assert null.shape == (VOCAB.dim,) and not null.any()


def test_decode_logits_gives_probabilities():
    vector = VOCAB.encode(duke_record()) * 5.0  # logits favouring the encoded categories
    decoded = VOCAB.decode(vector, logits=True)
    probs = decoded.probabilities["model_name"]
    assert sum(probs.values()) == pytest.approx(1.0)
    assert max(probs, key=probs.get) == "Avanto"


def test_vocabulary_json_round_trip(tmp_path):
    text = VOCAB.to_json()
    assert IAPVocabulary.from_json(text) == VOCAB
    (tmp_path / "vocab.json").write_text(VOCAB.to_json())
    loaded = IAPVocabulary.load(tmp_path / "vocab.json")
    assert loaded == VOCAB and loaded.dim == VOCAB.dim
    np.testing.assert_array_equal(loaded.encode(duke_record()), VOCAB.encode(duke_record()))
    with pytest.raises(IAPValueError):
        IAPVocabulary.from_json("{broken")


def test_out_of_vocabulary_category_names_allowed_values():
    with pytest.raises(IAPValueError, match="allowed") as info:
        VOCAB.encode(duke_record(model_name="Achieva"))
    assert "Avanto" in str(info.value) and "SIGNA HDx" in str(info.value)


def test_out_of_range_continuous_refused_or_extrapolated():
    with pytest.raises(IAPValueError, match="flip_angle 90"):
        VOCAB.encode(duke_record(flip_angle=90))
    with pytest.warns(IAPExtrapolationWarning):
        vector = VOCAB.encode(duke_record(flip_angle=90), allow_extrapolation=True)
    assert vector[VOCAB.slots[3].start] == pytest.approx(90 / 12)
    with pytest.raises(IAPValueError, match="> 0"):
        VOCAB.encode(duke_record(flip_angle=-1), allow_extrapolation=True)
    with pytest.raises(IAPValueError, match="echo_time.*supply them"):
        VOCAB.encode(duke_record(echo_time=None))


def test_from_records_builds_sorted_categories():
    records = [
        duke_record(model_name="Skyra", field_strength=2.8936, scan_options="SFS", flip_angle=12),
        duke_record(
            manufacturer="GE MEDICAL SYSTEMS",
            model_name="Optima MR450w",
            field_strength=1.5,
            scan_options="FS",
            echo_time=1.3,
        ),
        duke_record(),
    ]
    vocab = IAPVocabulary.from_records(records)
    assert vocab.categories["model_name"] == ["Avanto", "Optima MR450w", "Skyra"]
    assert vocab.categories["field_strength"] == ["1.5", "3"]
    assert vocab.categories["scan_options"] == ["FS", "PFP\\FS", "SFS"]
    assert vocab.continuous_range["flip_angle"] == (10.0, 12.0)
    assert vocab.continuous_range["echo_time"] == (1.3, 2.5)
    assert vocab.model_manufacturer["Optima MR450w"] == GE
    with pytest.raises(IAPValueError, match="lacks"):
        IAPVocabulary.from_records([duke_record(flip_angle=None)])


# ---------------------------------------------------------------- properties
_anything = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.text(max_size=5), max_size=3),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.fixed_dictionaries(
        {name: _anything for name in ("manufacturer", *CATEGORICAL_IAPS, *CONTINUOUS_IAPS)}
    )
)
def test_create_raises_only_project_errors(values):
    try:
        record = IAPRecord.create(**values)
    except CfIapError:
        return
    for name in CONTINUOUS_IAPS:
        value = getattr(record, name)
        assert value is None or np.isfinite(value)


@st.composite
def valid_records(draw):
    model = draw(st.sampled_from(VOCAB.categories["model_name"]))
    values = {
        "manufacturer": VOCAB.model_manufacturer[model],
        "model_name": model,
        "field_strength": draw(st.sampled_from(VOCAB.categories["field_strength"])),
        "scan_options": draw(st.sampled_from(VOCAB.categories["scan_options"])),
    }
    for name in CONTINUOUS_IAPS:
        low, high = VOCAB.continuous_range[name]
        values[name] = draw(st.floats(min_value=low, max_value=high))
    return IAPRecord.create(**values)


@settings(max_examples=100, deadline=None)
@given(valid_records())
def test_encode_decode_round_trip_property(record):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # valid records never extrapolate
        vector = VOCAB.encode(record)
    decoded = VOCAB.decode(vector).record
    for name in ("manufacturer", *CATEGORICAL_IAPS):
        assert getattr(decoded, name) == getattr(record, name)
    for name in CONTINUOUS_IAPS:
        assert getattr(decoded, name) == pytest.approx(getattr(record, name), rel=1e-6)


@pytest.mark.parametrize("name", ["flip_angle", "field_strength"])
def test_huge_integer_is_a_project_error(name):
    with pytest.raises(IAPValueError):
        IAPRecord.create(**{name: 10**400})
