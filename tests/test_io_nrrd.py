"""Duke-supplement style seg.nrrd masks: segment fields, layers, geometry alignment."""

from __future__ import annotations

import nrrd
import numpy as np
import pytest
from helpers_io import tree_hash

from napari_cf_iap.errors import InputError, OutputExistsError
from napari_cf_iap.io.nrrd_geometry import read_nrrd
from napari_cf_iap.io.nrrd_masks import (
    read_duke_masks,
    read_labels_nrrd,
    write_duke_mask_nrrd,
    write_labels_nrrd,
)
from napari_cf_iap.io.reader import read_volume
from napari_cf_iap.volume import Volume, affine_from_geometry

SHAPE = (5, 6, 7)  # (z, y, x)
SPACING = (2.0, 0.8, 0.7)
ORIGIN = np.array([-50.0, -60.0, 10.0])


def reference() -> Volume:
    affine = affine_from_geometry(ORIGIN, [1, 0, 0], [0, 1, 0], SPACING)
    return Volume(np.zeros(SHAPE, np.float32), SPACING, affine)


def masks() -> dict[str, np.ndarray]:
    breast = np.zeros(SHAPE, bool)
    breast[1:4, 1:5, 1:6] = True
    dense = np.zeros(SHAPE, bool)
    dense[2, 2:4, 2:4] = True
    vessels = np.zeros(SHAPE, bool)
    vessels[1:3, 3, 3:5] = True  # overlaps dense at (2, 3, 3)
    return {"breast": breast, "dense": dense, "vessels": vessels}


def expected_labels() -> np.ndarray:
    m = masks()
    labels = np.zeros(SHAPE, np.uint8)
    labels[m["breast"] | m["vessels"]] = 1
    labels[m["dense"]] = 2
    return labels


def slicer_header(space: str = "left-posterior-superior", origin=ORIGIN, flip_z: bool = False):
    """Space fields like 3D Slicer writes them for an axial LPS series."""
    directions = np.diag([SPACING[2], SPACING[1], SPACING[0]])
    origin = np.array(origin, dtype=float)
    if flip_z:
        origin = origin + directions[2] * (SHAPE[0] - 1)
        directions[2] = -directions[2]
    if space == "right-anterior-superior":
        directions = directions * [-1, -1, 1]
        origin = origin * [-1, -1, 1]
    return {"space": space, "space directions": directions, "space origin": origin}


def segment_fields(*segments: tuple[str, int, int]) -> dict[str, str]:
    fields = {"Segmentation_MasterRepresentation": "Binary labelmap"}
    for n, (name, value, layer) in enumerate(segments):
        fields.update(
            {
                f"Segment{n}_ID": f"Segment_{n + 1}",
                f"Segment{n}_Name": name,
                f"Segment{n}_LabelValue": str(value),
                f"Segment{n}_Layer": str(layer),
                f"Segment{n}_Extent": "0 6 0 5 0 4",
            }
        )
    return fields


def to_nrrd(array_zyx: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array_zyx.transpose(2, 1, 0)).astype(np.uint8)


def write_duke_pair(folder, *, space="left-posterior-superior", flip_z=False):
    m = masks()
    breast, dense, vessels = m["breast"], m["dense"], m["vessels"]
    if flip_z:
        breast, dense, vessels = breast[::-1], dense[::-1], vessels[::-1]
    header = slicer_header(space, flip_z=flip_z)
    breast_path = folder / "Segmentation_Breast_MRI_001_Breast.seg.nrrd"
    nrrd.write(
        str(breast_path),
        to_nrrd(breast.astype(np.uint8)),
        {**header, "kinds": ["domain"] * 3, **segment_fields(("Breast", 1, 0))},
        index_order="F",
    )
    # dense and vessels overlap, so Slicer stores them in two layers of a 4D file
    layers = np.stack([to_nrrd(dense.astype(np.uint8)), to_nrrd(vessels.astype(np.uint8) * 2)])
    header4 = {
        **header,
        "space directions": np.vstack([np.full(3, np.nan), header["space directions"]]),
        "kinds": ["list", "domain", "domain", "domain"],
        **segment_fields(("Dense", 1, 0), ("Vessels", 2, 1)),
    }
    dense_path = folder / "Segmentation_Breast_MRI_001_Dense_and_Vessels.seg.nrrd"
    nrrd.write(str(dense_path), layers, header4, index_order="F")
    return breast_path, dense_path


@pytest.mark.parametrize(
    ("space", "flip_z"),
    [
        ("left-posterior-superior", False),
        ("right-anterior-superior", False),
        ("left-posterior-superior", True),
    ],
)
def test_duke_pair_merges_to_training_labels(tmp_path, space, flip_z):
    breast_path, dense_path = write_duke_pair(tmp_path, space=space, flip_z=flip_z)
    before = tree_hash(tmp_path)
    labels = read_duke_masks(breast_path, dense_path, reference())
    assert tree_hash(tmp_path) == before
    assert labels.dtype == np.uint8 and labels.shape == SHAPE
    np.testing.assert_array_equal(labels, expected_labels())
    assert set(np.unique(labels)) == {0, 1, 2}


def test_without_reference_uses_the_breast_grid(tmp_path):
    breast_path, dense_path = write_duke_pair(tmp_path)
    np.testing.assert_array_equal(read_duke_masks(breast_path, dense_path), expected_labels())
    only_breast = read_duke_masks(breast_path)
    np.testing.assert_array_equal(only_breast, masks()["breast"].astype(np.uint8))


def test_cropped_segmentation_is_placed_on_the_image_grid(tmp_path):
    m = masks()["breast"]
    crop = m[1:4, 1:5, 1:6]  # Slicer may save only the segment's extent
    origin = ORIGIN + np.array([1 * SPACING[2], 1 * SPACING[1], 1 * SPACING[0]])
    header = {
        **slicer_header(origin=origin),
        "kinds": ["domain"] * 3,
        **segment_fields(("Breast", 1, 0)),
    }
    path = tmp_path / "crop.seg.nrrd"
    nrrd.write(str(path), to_nrrd(crop.astype(np.uint8)), header, index_order="F")
    np.testing.assert_array_equal(read_duke_masks(path, reference=reference()), m.astype(np.uint8))


def test_geometry_mismatch_names_both_grids(tmp_path):
    breast_path, _ = write_duke_pair(tmp_path)
    wrong = reference()
    wrong.affine[:3, 0] *= 1.5  # different slice spacing
    with pytest.raises(InputError, match=r"shape \(5, 6, 7\).*image shape \(5, 6, 7\)"):
        read_duke_masks(breast_path, reference=wrong)
    shifted = reference()
    shifted.affine[:3, 3] += [0.35, 0, 0]  # half a voxel
    with pytest.raises(InputError, match="origin"):
        read_duke_masks(breast_path, reference=shifted)
    small = Volume(np.zeros((2, 6, 7), np.float32), SPACING, reference().affine)
    with pytest.raises(InputError, match="outside the image"):
        read_duke_masks(breast_path, reference=small)


def test_unknown_segment_names(tmp_path):
    header = {**slicer_header(), "kinds": ["domain"] * 3, **segment_fields(("Segment_1", 1, 0))}
    data = to_nrrd(masks()["dense"].astype(np.uint8))
    breast_path = tmp_path / "b.seg.nrrd"
    dense_path = tmp_path / "d.seg.nrrd"
    nrrd.write(str(breast_path), data, header, index_order="F")
    nrrd.write(str(dense_path), data, header, index_order="F")
    # an unnamed segment in the breast file is the breast
    assert read_duke_masks(breast_path).max() == 1
    with pytest.raises(InputError, match="Segment_1"):
        read_duke_masks(breast_path, dense_path)
    labels = read_duke_masks(breast_path, dense_path, segment_labels={"Segment_1": 2})
    assert labels.max() == 2


def test_writer_round_trip_and_slicer_fields(tmp_path):
    ref = reference()
    labels = expected_labels()
    breast_path = write_duke_mask_nrrd(labels, ref, tmp_path / "b.seg.nrrd", kind="breast")
    dense_path = write_duke_mask_nrrd(labels, ref, tmp_path / "d.seg.nrrd", kind="dense")
    header = nrrd.read_header(str(breast_path))
    assert header["Segment0_Name"] == "Breast"
    assert header["Segment0_LabelValue"] == "1" and header["Segment0_Layer"] == "0"
    assert header["space"] == "left-posterior-superior"
    np.testing.assert_allclose(header["space origin"], ORIGIN)
    assert nrrd.read_header(str(dense_path))["Segment0_Name"] == "Dense"
    np.testing.assert_array_equal(read_duke_masks(breast_path, dense_path, ref), labels)
    with pytest.raises(OutputExistsError):
        write_duke_mask_nrrd(labels, ref, breast_path, kind="breast")
    with pytest.raises(InputError, match="differs"):
        write_duke_mask_nrrd(labels[:2], ref, tmp_path / "x.seg.nrrd", kind="breast")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.seg.nrrd", "d.seg.nrrd"]


def test_generic_labels_and_reader_dispatch(tmp_path):
    ref = reference()
    labels = expected_labels()
    path = write_labels_nrrd(labels, ref, tmp_path / "labels.seg.nrrd")
    volume = read_labels_nrrd(path, reference=ref)
    np.testing.assert_array_equal(volume.data, labels)
    np.testing.assert_allclose(volume.affine, ref.affine)
    via_reader = read_volume(path)
    assert via_reader.metadata["layer_type"] == "labels"
    np.testing.assert_array_equal(via_reader.data, labels)
    # multi-layer Duke file: each segment keeps its own label value
    _, dense_path = write_duke_pair(tmp_path)
    merged = read_labels_nrrd(dense_path).data
    assert set(np.unique(merged)) == {0, 1, 2}


def test_scalar_nrrd_image(tmp_path):
    image = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE)
    header = {**slicer_header(), "kinds": ["domain"] * 3}
    nrrd.write(
        str(tmp_path / "img.nrrd"),
        np.ascontiguousarray(image.transpose(2, 1, 0)),
        header,
        index_order="F",
    )
    volume = read_nrrd(tmp_path / "img.nrrd")
    np.testing.assert_array_equal(volume.data, image)
    np.testing.assert_allclose(volume.affine, reference().affine)
    assert read_volume(tmp_path / "img.nrrd").metadata.get("layer_type") is None
    (tmp_path / "bad.nrrd").write_bytes(b"not nrrd")
    with pytest.raises(InputError, match="NRRD"):
        read_volume(tmp_path / "bad.nrrd")
