"""Shared test configuration. torch is imported before any Qt binding (pytorch#11326)."""

import os

os.environ.setdefault("CF_IAP_DEVICE", "cpu")
os.environ.setdefault("CF_IAP_SYNC_WORKERS", "0")

try:  # import order matters: torch before Qt
    import torch

    # Tiny test networks are dominated by per-op overhead: one thread is faster than two and
    # does not thrash when CI or other jobs share the cores (measured 10-30x under load).
    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency
    pass


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory):
    """{"cddgm": Path, "iap_predictor": Path, "segmenter": Path} of tiny untrained bundles."""
    from bundle_factory import make_tiny_bundles

    return make_tiny_bundles(tmp_path_factory.mktemp("bundles"))
