"""What a file that ``torch.load(weights_only=True)`` refused actually is, in words.

Either a real pickle-based checkpoint that would import Python objects (refused for safety,
naming them) or no readable checkpoint at all: empty, truncated, a foreign zip, a Git LFS
pointer, a web page, text, safetensors or unknown bytes, each with what to do. Used by the
authors'-checkpoint importer and by the training package's own checkpoint loader.
"""

from __future__ import annotations

import contextlib
import pickle
import pickletools
import re
import zipfile
from pathlib import Path

import torch

from ..errors import BundleError

# Leading bytes of the two formats torch.save writes, and of files people mistake for checkpoints.
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_PICKLE_PROTO = 0x80  # a pickle stream of protocol >= 2 starts with the PROTO opcode
_LEGACY_TORCH_MAGIC = pickle.dumps(torch.serialization.MAGIC_NUMBER, protocol=2)
_HEAD_BYTES = 1024
_REFETCH = "download or copy the checkpoint again and compare its size or checksum with the source"


def describe_load_failure(path: Path, exc: Exception) -> BundleError:
    """The error to show for a file ``torch.load(weights_only=True)`` could not read."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError as os_exc:
        return BundleError(f"cannot read {path}: {os_exc}")
    kind = _sniff(head, size)
    if kind in ("zip", "torch-legacy", "pickle"):
        found = _unsafe_globals(path, kind, exc)
        if found is not None:
            return _unsafe_pickle_error(path, found, torch_format=kind != "pickle")
    if kind == "zip":
        return BundleError(f"{path} {_describe_zip(path, size, exc)}")
    if kind == "torch-legacy":
        what = (
            "is cut short"
            if isinstance(exc, EOFError) or "truncated" in str(exc)
            else f"is damaged ({_first_line(exc)})"
        )
        return BundleError(
            f"{path} starts like a legacy (pre-1.6) torch.save checkpoint but {what}; {_REFETCH}"
        )
    if kind == "pickle":
        if _pickle_globals(path) is None:
            return BundleError(f"{path} is a Python pickle stream that is cut short; {_REFETCH}")
        return BundleError(
            f"{path} is a plain Python pickle of plain data, not a checkpoint written by "
            "torch.save; re-save its 'state_dict' and 'hyper_parameters' with torch.save"
        )
    return BundleError(f"{path} {_DESCRIBE[kind](head, size)}")


def _sniff(head: bytes, size: int) -> str:
    """What the leading bytes of a file look like."""
    if size == 0:
        return "empty"
    if head.startswith(_ZIP_MAGIC) or head.startswith(_EMPTY_ZIP_MAGIC):
        return "zip"
    if head.startswith(_LEGACY_TORCH_MAGIC):
        return "torch-legacy"
    if head[0] == _PICKLE_PROTO and len(head) > 1 and 2 <= head[1] <= pickle.HIGHEST_PROTOCOL:
        return "pickle"
    if size >= 10 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    text = head.decode("utf-8", errors="replace")
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text)
    if b"\x00" not in head and printable >= 0.95 * len(text):
        lowered = text.lstrip().lower()
        if lowered.startswith("version https://git-lfs"):
            return "lfs-pointer"
        if lowered.startswith(("<!doctype html", "<html", "<?xml")):
            return "html"
        return "text"
    return "unknown"


def _preview(head: bytes) -> str:
    text = head[:60].decode("utf-8", errors="replace").splitlines()
    return repr(text[0] if text else "")


_DESCRIBE = {
    "empty": lambda head, size: (
        f"is empty (0 bytes), so the download or copy did not complete; {_REFETCH}"
    ),
    "safetensors": lambda head, size: (
        "is a safetensors file (tensors only, no hyper_parameters), not a Lightning .ckpt; "
        "import the authors' Lightning checkpoint, or open a napari-cf-iap bundle folder "
        "(which keeps its weights as safetensors) directly"
    ),
    "lfs-pointer": lambda head, size: (
        f"is a Git LFS pointer ({size} bytes of text), not the checkpoint itself; fetch the "
        "real file with `git lfs pull` in the repository it came from"
    ),
    "html": lambda head, size: (
        f"is a web page ({size} bytes of HTML, starting {_preview(head)}), not a checkpoint: "
        "the download link probably returned a login, quota or error page; download the file "
        "itself"
    ),
    "text": lambda head, size: (
        f"is a text file ({size} bytes, starting {_preview(head)}), not a checkpoint; pick the "
        "Lightning .ckpt file"
    ),
    "unknown": lambda head, size: (
        f"is not a PyTorch checkpoint: its {size} bytes start with {head[:8].hex(' ')} and match "
        "none of the formats torch.save writes (a zip archive or a pickle stream) nor "
        f"safetensors; the file is corrupt or of another kind; {_REFETCH}"
    ),
}


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _unsafe_globals(path: Path, kind: str, exc: Exception) -> list[str] | None:
    """The Python objects a pickle-based checkpoint would import, or None if it needs none."""
    if kind == "zip":
        with contextlib.suppress(Exception):
            names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
            if names:
                return list(names)
    if kind == "pickle":
        return _pickle_globals(path) or None
    # torch's weights-only unpickler names the first global it refused
    match = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    if match:
        return [match.group(1)]
    if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in str(exc):
        return []
    return None


def _pickle_globals(path: Path) -> list[str] | None:
    """The ``module.name`` globals of the file's first pickle, read without unpickling.

    None when the stream is malformed or cut short.
    """
    names: list[str] = []
    strings: list[str] = []
    try:
        with path.open("rb") as fh:
            for opcode, arg, _ in pickletools.genops(fh):
                if opcode.name in ("GLOBAL", "INST"):
                    names.append(str(arg).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # noqa: BLE001 - genops raises ValueError and others on a cut stream
        return None
    return list(dict.fromkeys(names))


def _describe_zip(path: Path, size: int, exc: Exception) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return (
            f"starts like a zip archive (the format torch.save writes) but its end is missing "
            f"or damaged ({size} bytes; a truncated download or copy?); {_REFETCH}"
        )
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        shown = ", ".join(names[:3]) or "no entries"
        return (
            f"is a zip archive ({shown}) but not a PyTorch checkpoint (no data.pkl); if it "
            "holds the checkpoint, extract the .ckpt file from it and import that"
        )
    return (
        f"is a zip-based PyTorch checkpoint whose contents are damaged ({_first_line(exc)}); "
        f"{_REFETCH}"
    )


def _unsafe_pickle_error(path: Path, found: list[str], *, torch_format: bool) -> BundleError:
    what = "a PyTorch checkpoint that contains" if torch_format else "a plain Python pickle with"
    listed = f" ({', '.join(found[:5])})" if found else ""
    return BundleError(
        f"{path} is {what} pickled Python objects{listed} that would execute code when "
        "unpickled; napari-cf-iap reads only tensors and plain data from checkpoints and "
        "refuses to execute pickle payloads. If you trust the file, re-save only its "
        "'state_dict' and 'hyper_parameters' (plain dicts of tensors, numbers and strings) "
        "with torch.save and import that"
    )
