"""Model Zoo-style entry point: `python run.py {CPU,GPU,CSX} --params P --mode M` (see README.md)."""
import sys

from ebert_modelzoo.cli.run import main

if __name__ == "__main__":
    sys.exit(main())
