"""Hand-over from our ``cszoo`` to Cerebras Model Zoo's own command line."""
from __future__ import annotations

import sys
from typing import Optional, Sequence


def run_modelzoo_cli(argv: Optional[Sequence[str]]) -> int:
    """Model Zoo's own CLI, with EBERT registered (importing ebert_modelzoo did that)."""
    from cerebras.modelzoo.cli.main import main as modelzoo_main

    if argv is not None:
        sys.argv = ["cszoo", *argv]
    modelzoo_main()
    return 0
