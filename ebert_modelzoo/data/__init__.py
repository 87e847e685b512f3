"""Shards -> batches: the data processors that read a split folder and yield batch dicts.

    shards.py      vocab.txt and block reads from the HDF5 shards (data_params.json: contract/data_params.py)
    sampler.py     the epoch order (EpochPlan): blocks, streams, chunks, seeded permutations
    masking.py     dynamic MLM and masked-state masking (numpy)
    loader.py      ShardDataset (batches in EpochPlan order, ``sample_order``) and ResumableDataLoader
    motifs.py      position weight matrices, scanning, per-bin motif tracks (a processor input)
    processors.py  the pre-training and fine-tuning processors
    synthetic.py   random splits shaped from params (``--validate_only`` without data, tests)

May import: the package root's leaf modules, the params schema (``config``, whose ``config.data`` holds
the dataloader keys) and ``contract``; never ``preprocessing`` (the two
meet only in contract/) nor anything downstream (tests/test_import_rules.py).
"""
