"""The one error type of the preprocessing pipeline, and how its command lines report errors."""
from __future__ import annotations

import sys

from ebert_modelzoo.config_base import ParamsError
from ebert_modelzoo.errors import one_line
from ebert_modelzoo.folder_lock import FolderLockedError


class InputError(ValueError):
    """An input file is missing, malformed or inconsistent; the message is one line naming it."""


BAD_INPUT = (ParamsError, InputError, FileNotFoundError, FolderLockedError)
"""What a preprocessing command line answers with exit status 2."""
REPORTED = (*BAD_INPUT, OSError)
"""Everything it reports as one line; any other OSError (an output folder that cannot be created
or written) gives exit status 1."""


def report(err: BaseException) -> int:
    """Print ``err`` as one ``error:`` line on stderr; the exit status: 2 bad input, 1 otherwise."""
    print(f"error: {one_line(str(err))}", file=sys.stderr)
    return 2 if isinstance(err, BAD_INPUT) else 1
