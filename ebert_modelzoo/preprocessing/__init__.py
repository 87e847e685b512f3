"""Files -> HDF5 shards: FASTA, bigWig, segmentation BEDs and labels to the layout of contract/schema.py.

May import: the package root's leaf modules and ``contract`` (schema); no torch, and nothing from
``data`` or further downstream (tests/test_import_rules.py).
"""
