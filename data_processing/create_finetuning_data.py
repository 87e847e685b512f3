"""Build the EBERT finetuning dataset: `python data_processing/create_finetuning_data.py --config CFG`."""
import sys

from ebert_modelzoo.preprocessing.cli import main

if __name__ == "__main__":
    sys.exit(main("finetuning"))
