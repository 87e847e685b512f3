"""Build an EBERT fine-tuning dataset from labelled sequences: `python data_processing/create_sequence_data.py --help`."""
import sys

from ebert_modelzoo.preprocessing.sequence_cli import main

if __name__ == "__main__":
    sys.exit(main())
