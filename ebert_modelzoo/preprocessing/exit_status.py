"""How the preprocessing command lines report an error: one ``error:`` line and an exit status
(the error types are in ebert_modelzoo/errors.py)."""
from __future__ import annotations

import sys

from ebert_modelzoo.errors import BadInputError, FolderLockedError, one_line

BAD_INPUT = (BadInputError, FileNotFoundError, FolderLockedError)
"""What a preprocessing command line answers with exit status 2."""
REPORTED = (*BAD_INPUT, OSError)
"""Everything it reports as one line; any other OSError (an output folder that cannot be created
or written) gives exit status 1."""


def report(err: BaseException) -> int:
    """Print ``err`` as one ``error:`` line on stderr; the exit status: 2 bad input, 1 otherwise."""
    print(f"error: {one_line(str(err))}", file=sys.stderr)
    return 2 if isinstance(err, BAD_INPUT) else 1
