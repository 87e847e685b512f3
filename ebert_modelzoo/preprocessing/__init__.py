"""Files -> HDF5 shards: FASTA, bigWig, segmentation BEDs and labels to the layout of contract/schema.py.

Its own YAML's schema is config.py (on the params schema's bases, ``config.base``); command lines
report errors through exit_status.py.

May import: the package root's leaf modules, ``config.base`` and ``contract`` (schema); no torch, and nothing from
``data`` or further downstream (tests/test_import_rules.py).
"""
