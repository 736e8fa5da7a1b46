"""Model bundles (safetensors + JSON), the default-bundle registry and the checkpoint importer."""

from .bundle import (
    FORMAT_VERSION,
    KINDS,
    LoadedBundle,
    build_model,
    default_preprocessing,
    load_bundle,
    read_manifest,
    save_bundle,
    sha256_file,
)
from .registry import (
    DEFAULT_BUNDLES,
    DEFAULT_FOR_KIND,
    BundleInfo,
    get_bundle,
    list_bundles,
    resolve_bundle,
    unload,
    weights_root,
)

__all__ = [
    "DEFAULT_BUNDLES",
    "DEFAULT_FOR_KIND",
    "FORMAT_VERSION",
    "KINDS",
    "BundleInfo",
    "LoadedBundle",
    "build_model",
    "default_preprocessing",
    "get_bundle",
    "list_bundles",
    "load_bundle",
    "read_manifest",
    "resolve_bundle",
    "save_bundle",
    "sha256_file",
    "unload",
    "weights_root",
]
