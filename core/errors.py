"""The base of every error that means "fix your input or your configuration"."""


class InputError(ValueError):
  """Bad input data, dataset spec, config or release; the message names the field, file or
  row and the fix. Runners print the message alone (no traceback) and exit with 1."""
