"""``train --init-from BUNDLE``: start a run from a bundle's weights (fine-tuning).

The run takes the bundle's IAP vocabulary (so the condition vectors keep their meaning) and
must build exactly the bundle's architecture; the optimiser, step count and EMA start afresh.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_cf_iap.errors import InputError

from .export import BUNDLE_KIND


def load_start_bundle(path: str | Path, model: str) -> Any:
    """The bundle at ``path``, checked to be of the kind ``model`` trains."""
    from napari_cf_iap.bundles import load_bundle

    bundle = load_bundle(path, kind=BUNDLE_KIND[model])
    if bundle.vocab is None:
        raise InputError(f"--init-from {path} carries no IAP vocabulary")
    return bundle


def check_same_architecture(bundle: Any, config: Any) -> None:
    """Refuse a bundle whose architecture differs from the run's (names the differences)."""
    mine, theirs = config.to_dict(), bundle.config.to_dict()
    differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if differ:
        detail = ", ".join(f"{k}: run {mine.get(k)!r} vs bundle {theirs.get(k)!r}" for k in differ)
        raise InputError(
            f"--init-from {bundle.path} has another architecture than this run ({detail}); "
            "use the preset (and --image-size) the bundle was trained with"
        )


def init_record(bundle: Any) -> dict[str, Any]:
    """What run.json and the bundle provenance record about the starting weights."""
    return {
        "bundle": str(Path(bundle.path).resolve()),
        "sha256": bundle.sha256,
        "steps": (bundle.provenance or {}).get("steps"),
    }
