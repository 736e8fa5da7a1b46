"""Every bad input of the corpus gives its exact expected outcome, in Python and on the CLI.

Each run also checks that no input file (nor the shared test bundles) changed by a byte.
"""

from __future__ import annotations

import pytest
from helpers_io import tree_hash
from reliability_corpus import (
    CORPUS,
    CorpusEnv,
    build_case,
    execute,
    torch_threads,
    verify,
    verify_cli,
)


@pytest.fixture(autouse=True)
def _single_threaded_torch():
    with torch_threads(1):
        yield


def _hashes(env: CorpusEnv) -> dict[str, str]:
    out = tree_hash(env.inputs)
    for path in env.bundles.values():
        out.update(tree_hash(path))
    return out


@pytest.fixture
def env(tmp_path, tiny_bundles) -> CorpusEnv:
    return CorpusEnv(tmp_path, tiny_bundles)


def test_corpus_covers_the_issue_list():
    ids = {case.id for case in CORPUS}
    for wanted in (
        "dicom-truncated-header",
        "dicom-not-image",
        "dicom-missing-iap-tags",
        "dicom-two-series",
        "dicom-non-uniform-spacing",
        "dicom-duplicate-position",
        "dicom-single-slice",
        "dicom-rgb",
        "nifti-4d",
        "pixels-nan-edit",
        "pixels-constant-edit",
        "dicom-enormous-matrix",
        "nifti-no-sidecar",
        "nrrd-mask-geometry-mismatch",
        "iap-flip-angle-90",
        "iap-flip-angle-90-extrapolate",
        "bundle-wrong-architecture",
        "bundle-wrong-vocabulary",
        "bundle-truncated-weights",
        "checkpoint-pickle-payload",
        "checkpoint-flash-attention",
    ):
        assert wanted in ids
    assert len(CORPUS) >= 50


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.id)
def test_outcome_and_inputs_untouched(case, env):
    built = build_case(case, env)
    before = _hashes(env)
    assert before, "the case built no input files"
    outcome = execute(case, built, env)
    verify(case, built, outcome, env)
    assert _hashes(env) == before, "an input file was modified"


@pytest.mark.parametrize("case", [c for c in CORPUS if c.cli], ids=lambda c: c.id)
def test_cli_prints_one_clear_error(case, env):
    built = build_case(case, env)
    before = _hashes(env)
    verify_cli(case, built, env)
    assert _hashes(env) == before, "an input file was modified"
    if case.after is not None:
        case.after(built, env)
