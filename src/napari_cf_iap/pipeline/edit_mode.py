"""Which edit a counterfactual runs: the paper's SDEdit, or the twin edit (needs source IAPs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import IAPValueError
from ..volume import Volume
from .requests import CounterfactualRequest

FALLBACK_EDIT_MODE = "sdedit"
EDIT_MODES = ("sdedit", "twin")


@dataclass(frozen=True)
class EditChoice:
    """The edit mode used, the source's encoded IAPs for a twin edit, and why (if) the bundle's
    default was not followed."""

    mode: str
    reference: np.ndarray | None = None
    note: str | None = None


def choose_edit(
    request: CounterfactualRequest, defaults: dict[str, Any], volume: Volume, vocab: Any
) -> EditChoice:
    """The request's edit mode, else the bundle's recommended one.

    A twin edit renders the slices under their own IAPs too, so it needs them. Asked for
    explicitly without them, it is refused with what to do; chosen only as the bundle's
    default, the edit falls back to SDEdit and ``note`` says so.
    """
    mode = request.edit_mode or defaults.get("edit_mode", FALLBACK_EDIT_MODE)
    if mode not in EDIT_MODES:
        raise IAPValueError(f"edit mode must be one of {EDIT_MODES}, got {mode!r}")
    if mode == "sdedit":
        return EditChoice("sdedit")
    try:
        return EditChoice("twin", vocab.encode(volume.iap, allow_extrapolation=True))
    except IAPValueError as exc:
        problem = f"the twin edit needs the source's IAPs: {exc}"
        if request.edit_mode == "twin":
            raise IAPValueError(
                f"{problem}. Or choose edit mode 'sdedit', which needs only the target."
            ) from None
        return EditChoice("sdedit", note=f"{problem}; used sdedit instead")
