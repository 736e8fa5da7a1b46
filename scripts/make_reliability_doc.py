"""Write ``docs/reliability.md`` by running the reliability corpus (tests/reliability_corpus.py).

Every row of the tables is what actually happened when the bad input was tried now: the error
type and its exact message (paths shown relative to the case folder), or the graceful result,
and the exit status of the equivalent ``cf-iap`` command. Nothing in the tables is written by
hand. Usage::

    python scripts/make_reliability_doc.py            # writes docs/reliability.md
    python scripts/make_reliability_doc.py --stdout   # prints it instead
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("CF_IAP_DEVICE", "cpu")

TOPICS = (
    ("DICOM", "DICOM files and folders"),
    ("Files", "Paths and file types"),
    ("NIfTI", "NIfTI volumes and sidecars"),
    ("NRRD", "NRRD images and masks"),
    ("Pixels", "Pixel values"),
    ("IAPs", "Target acquisition parameters"),
    ("Pipeline", "Pipeline"),
    ("Bundles", "Model bundles"),
    ("Checkpoints", "Checkpoints from elsewhere (import)"),
    ("Outputs", "Outputs and options"),
)


def _clean(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def _cell(text: str) -> str:
    """Markdown table cell: escape what would be read as markup, keep line breaks."""
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\n", "<br>")


def run_corpus(bundles: dict[str, Path], scratch: Path) -> list[dict]:
    from reliability_corpus import (
        CORPUS,
        CorpusEnv,
        build_case,
        execute,
        torch_threads,
        verify,
        verify_cli,
    )

    rows = []
    with torch_threads(1):
        for n, case in enumerate(CORPUS):
            env = CorpusEnv(scratch / f"case{n:02d}", bundles)
            names = {
                f"{env.root}/": "",
                str(env.root): ".",
                f"{bundles['cddgm'].parent}/": "bundles/",
            }
            row = {"case": case, "status": "ok", "cli": ""}
            try:
                built = build_case(case, env)
                outcome = execute(case, built, env)
                verify(case, built, outcome, env)
                kind = type(outcome.error).__name__ if outcome.error else "graceful"
                row["outcome"] = kind
                row["seen"] = _clean(outcome.summary, names)
            except Exception as exc:  # noqa: BLE001 - reported in the table, never hidden
                row["status"] = "MISMATCH"
                row["outcome"] = f"UNEXPECTED {type(exc).__name__}"
                row["seen"] = _clean(f"{exc}", names)
                traceback.print_exc()
            if case.cli is not None:
                cli_env = CorpusEnv(scratch / f"cli{n:02d}", bundles)
                names = {f"{cli_env.root}/": "", **names}
                try:
                    built = build_case(case, cli_env)
                    code, lines = verify_cli(case, built, cli_env)
                    shown = _clean("\n".join(lines), names)
                    row["cli"] = f"`cf-iap {case.cli(built, cli_env)[0]}` exits {code}"
                    if case.error is not None and row["seen"] not in shown:
                        row["cli"] += f": {shown}"
                except Exception as exc:  # noqa: BLE001
                    row["status"] = "MISMATCH"
                    row["cli"] = f"UNEXPECTED: {_clean(str(exc), names)}"
                    traceback.print_exc()
            rows.append(row)
            print(f"{row['status']:>8}  {case.id}", file=sys.stderr)
    return rows


def measure_memory(bundles: dict[str, Path]) -> dict:
    from reliability_corpus import rss_growth_mb, torch_threads

    with torch_threads(1):
        return rss_growth_mb(bundles, runs=20)


def training_status() -> str:
    """What tests/test_reliability_training.py checks, and its declared expected failure."""
    try:
        import test_reliability_training as module
    except Exception:  # noqa: BLE001 - the training package is optional
        return "Not covered: the training package (training/cf_iap_training) is not installed."
    text = (
        "`tests/test_reliability_training.py` trains a tiny cDDGM for "
        f"{module.MAX_STEPS} steps without interruption, and again in a separate process that "
        f"is killed with SIGKILL inside step {module.KILL_IN_STEP}, mid-epoch, then resumed "
        "with `--resume`. The killed run leaves a whole `last.ckpt` (no torn file) and the "
        "resumed run reaches the same step with its optimiser and EMA state carried over."
    )
    marks = getattr(module.test_resumed_state_equals_uninterrupted, "pytestmark", [])
    xfail = [m for m in marks if m.name == "xfail"]
    if xfail:
        text += (
            " Equality of the final weights with the uninterrupted run is an expected failure "
            f"for now: {xfail[0].kwargs.get('reason', '')}."
        )
    else:
        text += " Its final weights equal those of the uninterrupted run (max difference < 1e-5)."
    return text


def render(rows: list[dict], memory: dict, bound: float) -> str:
    n_error = sum(1 for r in rows if r["case"].error is not None)
    n_cli = sum(1 for r in rows if r["case"].cli is not None)
    bad = [r["case"].id for r in rows if r["status"] != "ok"]
    out = [
        "# Reliability: bad inputs and what the user sees",
        "",
        "<!-- Generated by scripts/make_reliability_doc.py from tests/reliability_corpus.py. "
        "Do not edit by hand: change the corpus or the code and run the script again. -->",
        "",
        f"The corpus holds **{len(rows)} bad inputs**. Each was built and tried when this page "
        "was generated; the tables show the outcome that actually occurred. "
        f"{n_error} are refused with an error of the project's own type whose message names the "
        f"problem and the fix; {len(rows) - n_error} have a documented graceful result. "
        f"{n_cli} are also run through the `cf-iap` command line, which must exit with status 2 "
        "and print the message without a traceback. `tests/test_reliability_corpus.py` asserts "
        "all of this, and that no input file changes by a single byte.",
        "",
    ]
    if bad:
        out += [f"**Mismatches with the expected outcome: {', '.join(bad)}.**", ""]
    else:
        out += ["Every case gave exactly its expected outcome.", ""]
    out += [
        "Paths in messages are shown relative to the case's scratch folder "
        "(`input/...`, `out/...`); the bundles are tiny untrained test bundles.",
        "",
    ]
    for topic, title in TOPICS:
        chosen = [r for r in rows if r["case"].topic == topic]
        if not chosen:
            continue
        out += [
            f"## {title}",
            "",
            "| Case | Bad input | Operation | Outcome | What the user sees | Command line |",
            "|---|---|---|---|---|---|",
        ]
        for r in chosen:
            case = r["case"]
            out.append(
                f"| `{case.id}` | {_cell(case.description)} | `{case.operation}` | "
                f"{r['outcome']} | {_cell(r['seen'])} | {_cell(r['cli']) if r['cli'] else '-'} |"
            )
        out.append("")
    out += [
        "## No data loss",
        "",
        "- Inputs are hashed (sha256 of every file) before and after every corpus operation, "
        "every command-line run and the ordinary `counterfactual`, `predict-iap` and `segment` "
        "jobs on DICOM and NIfTI; they are byte-identical "
        "(`tests/test_reliability_corpus.py`, `tests/test_reliability_data_safety.py`).",
        "- Every writer (DICOM series, NIfTI + sidecar, seg.nrrd, model bundle) writes to a "
        "temporary sibling and renames it into place. A failure injected mid-write leaves "
        "neither the target nor a temporary file; a failed overwrite leaves the old output intact.",
        "- Writers refuse to overwrite unless told to (`overwrite=True`, `--overwrite`); the "
        "command line checks `--out` before any work starts.",
        "- A disk error during a command-line job prints one line and exits with status 1.",
        "",
        "## Cancellation and repetition",
        "",
        "- Cancelling generation, segmentation or IAP prediction (`should_stop`) raises "
        "`CancelledError` at the next step or slice chunk; the input is unchanged and a later "
        "run gives the same result as a fresh one. Ctrl-C during a command-line job, while "
        "generating or while writing, exits with status 130 and leaves no output "
        "(`tests/test_reliability_cancel_repeat.py`).",
        f"- Memory: {memory['runs']} repeated pipeline runs (counterfactual, IAP prediction and "
        f"segmentation of a {memory['shape']} volume with the tiny bundles, after one warm-up "
        f"run) grew the resident set size by **{memory['growth_mb']:.1f} MB** "
        f"(peak {memory['peak_growth_mb']:.1f} MB; process at {memory['before_mb']:.0f} MB after "
        f"warm-up). The stated bound, asserted in the test, is {bound:.0f} MB.",
        "",
        "## Training faults",
        "",
        f"- {training_status()}",
        "",
        "## Limits",
        "",
        "- Images larger than 2**31 voxels are refused before any allocation (the header is "
        "read first); set `CF_IAP_MAX_VOXELS` to change the limit.",
        "- Checkpoints are read with `torch.load(weights_only=True)`; bundles only from "
        "safetensors. Neither path can execute code stored in a file.",
        "",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "reliability.md"))
    parser.add_argument("--stdout", action="store_true")
    args = parser.parse_args(argv)

    from bundle_factory import make_tiny_bundles
    from reliability_corpus import RSS_BOUND_MB

    with tempfile.TemporaryDirectory(prefix="cf-iap-reliability-") as tmp:
        scratch = Path(tmp)
        bundles = make_tiny_bundles(scratch / "bundles")
        rows = run_corpus(bundles, scratch / "cases")
        memory = measure_memory(bundles)
    text = render(rows, memory, RSS_BOUND_MB)
    if args.stdout:
        print(text)
    else:
        from napari_cf_iap.io.atomic import atomic_write_text

        atomic_write_text(args.out, text, overwrite=True)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
