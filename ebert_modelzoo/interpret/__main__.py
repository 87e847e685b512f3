"""``python -m ebert_modelzoo.interpret``: see cli.py."""
import sys

from ebert_modelzoo.interpret.cli import main

sys.exit(main())
