"""Benchmarks of napari-cf-iap (run ``python -m benchmarks.run_all`` from the repository root)."""
