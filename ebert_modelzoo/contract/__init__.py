"""What crosses a stage boundary, defined once: preprocessing writes it, data reads it, the model
and the trainer consume it.

    schema.py       the on-disk split folder: file and dataset names, shapes, label codes
    data_params.py  data_params.json: ``data_params_header`` builds the keys every writer writes,
                    ``load_data_params`` reads and checks them into ``DataParams`` (``DatasetError``);
                    ``DATA_DECIDED_SIZES``, the model sizes the data decides
    layout.py       the token/bin layout of a sample ([CLS] at 0, bin b's tokens from
                    1 + b * tokens_per_bin): pure Python on ints, numpy arrays or torch tensors
    batch.py        the batch dict (keys, dtypes, dims, groups) and ``check_batch``

May import: the package root's leaf modules (``errors`` for ``DatasetError``), numpy, and in
``batch`` torch. ``schema``, ``data_params`` and ``layout`` import no torch, so preprocessing can use them;
``layout`` is pure Python, so the model imports it next to torch. Nothing here imports another
subpackage: preprocessing and data both import this, and neither imports the other
(tests/test_import_rules.py).
"""
