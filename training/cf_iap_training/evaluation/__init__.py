"""Evaluation: the paper's Tables 1-4 and more on any trained bundles.

Modules (import them directly; this package import is light):

- ``metrics``: SSIM, PSNR, MMD, FID (MONAI), IAP fooling, segmentation scores;
- ``features``: feature extractors for FID (the IAP predictor's penultimate layer by default,
  or a local ResNet weights file);
- ``baselines``: "do nothing" and histogram matching to an image of the target protocol;
- ``edit_set``: the test slices, their shuffled target IAPs and the borrowed ("shuffled") images;
- ``ground_truth``: the simulator's true re-acquisition of a test slice at its target IAPs;
- ``scoring``: one method's edits scored on every metric;
- ``table1``, ``sweep`` (Tables 3/4 + ground truth), ``table2`` (segmentation),
  ``context_compare``, ``reproduce`` (end to end), ``report`` and ``figures``;
- ``cli_commands``: ``cf-iap-train evaluate | sweep | reproduce``.
"""
