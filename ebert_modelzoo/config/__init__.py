"""The params file's schema, one module per part, every key declared once with its type, its
constraints and its docstring (the user documentation of the key):

    base.py     strict section base classes (Model Zoo's config classes when installed), how a
                pydantic error becomes one line naming the key, ``read_yaml``
    params.py   the whole file in Model Zoo's trainer form (``Params``): backend, optimizer,
                schedulers, precision, loop, checkpoint, logging, callbacks, fit/validate/validate_all;
                cross-section checks; ``load_params``
    model.py    ``trainer.init.model``: the encoder and one class per registered model name
    data.py     the dataloader sections: one class per registered data processor name
    legacy.py   Model Zoo's legacy flat form converted to the trainer form before validation

The preprocessing YAML (a different file, read only by data_processing/) has its schema in
preprocessing/config.py, built on base.py. Errors are ``ParamsError`` (ebert_modelzoo/errors.py).

May import: the package root's leaf modules, pydantic and yaml, and ``cerebras.config_bases`` (the
bases of the sections); no stage subpackage, so every stage can import its section from here
(tests/test_import_rules.py).
"""
