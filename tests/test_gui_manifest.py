"""The npe2 manifest is valid, every python_name imports, widgets sit in napari menus."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import napari_cf_iap

MANIFEST = Path(napari_cf_iap.__file__).with_name("napari.yaml")


@pytest.fixture(scope="module")
def manifest():
    from npe2 import PluginManifest

    return PluginManifest.from_file(MANIFEST)


def test_manifest_is_discovered_by_napari(manifest):
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    assert pm.get_manifest("napari-cf-iap").name == manifest.name == "napari-cf-iap"


def test_every_python_name_imports(manifest):
    names = [command.python_name for command in manifest.contributions.commands]
    assert len(names) == 11
    for python_name in names:
        module, attribute = python_name.split(":")
        assert callable(getattr(importlib.import_module(module), attribute)), python_name


def test_contributions_cover_reader_writers_samples_widgets(manifest):
    contributions = manifest.contributions
    reader = contributions.readers[0]
    assert reader.accepts_directories and "*.nii.gz" in reader.filename_patterns
    writers = contributions.writers
    writer_types = sorted((w.layer_types[0], w.filename_extensions[0]) for w in writers)
    assert writer_types == [
        ("image", ".dcm"),
        ("image", ".nii.gz"),
        ("labels", ".nii.gz"),
        ("labels", ".seg.nrrd"),
    ]
    assert {s.key for s in contributions.sample_data} == {"ge_15t", "siemens_3t"}
    widget_commands = {w.command for w in contributions.widgets}
    menu_commands = {item.command for items in contributions.menus.values() for item in items}
    assert widget_commands == menu_commands and len(widget_commands) == 4
    assert all(menu.startswith("napari/layers/") for menu in contributions.menus)
