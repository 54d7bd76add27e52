"""The one exception type for bad user input.

Everything a user types (a spec, a claim, a CLI option) that we reject raises `UserError` with a
single-line message; the CLI prints it to stderr and exits 2. Internal bugs stay ordinary exceptions.
"""


def shown(text) -> str:
    """`text` safe to echo on a terminal: control characters (newlines, ANSI escape codes)
    written as escapes, so that a name from a file cannot forge or recolour output lines."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(text))


class UserError(ValueError):
    """Bad input from a user: one line, printed as is, exit status 2."""

    def __init__(self, message: str):
        # one line only: the CLI contract is a single clear line on stderr
        super().__init__(shown(" ".join(str(message).split())))
