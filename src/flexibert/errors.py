"""One exception type for every user-facing input problem.

The CLI turns it into a one-line message and exit code 2; library callers can
catch it like any ``ValueError``.
"""


class FlexiBertError(ValueError):
    """Bad user input: a card, spec, data file or checkpoint that cannot be used."""
