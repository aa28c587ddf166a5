"""The error the ingestion raises for bad input."""

from core import errors


class IngestionError(errors.InputError):
  """Raw input cannot be ingested; the message names the file, column or row and the fix.

  Raised before or after the Beam pipeline runs (never from inside a worker), so a user sees
  this message and not a runner traceback.
  """
