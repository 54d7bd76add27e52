"""The one exception type for bad user input.

Everything a user types (a spec, a claim, a CLI option) that we reject raises `UserError` with a
single-line message; the CLI prints it to stderr and exits 2. Internal bugs stay ordinary exceptions.
"""


class UserError(ValueError):
    """Bad input from a user: one line, printed as is, exit status 2."""

    def __init__(self, message: str):
        # one line only: the CLI contract is a single clear line on stderr
        super().__init__(" ".join(str(message).split()))
