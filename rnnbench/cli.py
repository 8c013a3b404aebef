"""Command-line plumbing shared by ``run.py`` and ``python -m rnnbench.*`` entry points."""

import re
import sys

from absl import flags


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a one-line error for a bad flag or config override.

  ml_collections reports a misspelled ``--config.a.b`` as a KeyError/AttributeError deep in a
  traceback; this prints its message (which names the field and suggests the right one) instead.
  """
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    sys.exit(f"{argv[0]}: {e}\nPass --helpfull to see the flags.")
  except OVERRIDE_ERRORS as e:
    sys.exit(f"{argv[0]}: bad config override: {override_error(e)}")


# What ml_collections raises for a bad ``--config.a.b=value``.
OVERRIDE_ERRORS = (AttributeError, KeyError, TypeError, ValueError)


def override_error(e: Exception, what: str = "config") -> str:
  """One line for a bad override: the field and, for a misspelling, the right name."""
  text = str(e.args[0] if e.args else e)
  hint = re.search(r"Did you mean \"(\w+)\" instead of \"(\w+)\"", text)
  if hint:
    text = f"no {what} field {hint[2]!r}; did you mean {hint[1]!r}?"
  return text
