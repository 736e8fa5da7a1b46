"""The project's own exception types. Every user-facing failure is one of these.

Each message names the problem and, where possible, the fix.
"""


class CfIapError(Exception):
    """Base class of every error this project raises on purpose."""


class InputError(CfIapError):
    """An input file or folder cannot be used (corrupt, wrong kind, wrong shape, ...)."""


class MissingTagsError(InputError):
    """A DICOM file lacks tags needed for the IAP record; ``missing`` lists their keywords."""

    def __init__(self, message: str, missing: list[str]):
        super().__init__(message)
        self.missing = list(missing)


class IAPValueError(CfIapError, ValueError):
    """An IAP value is outside the vocabulary or the valid range."""


class BundleError(CfIapError):
    """A model bundle or checkpoint is corrupt, incompatible or unsafe."""


class OutputExistsError(CfIapError, FileExistsError):
    """A writer refused to overwrite an existing output (pass ``overwrite=True``)."""


class CancelledError(CfIapError):
    """A long-running job was cancelled by its caller."""
