"""napari-cf-iap: counterfactual MRI acquisition-parameter editing with a conditional DDGM.

Importing this package is cheap: torch, MONAI and napari are only imported by the submodules
that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
