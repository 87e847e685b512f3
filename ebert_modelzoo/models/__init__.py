"""The model: EBERT's embeddings, encoder, heads and the pre-training / fine-tuning wrappers.

    embeddings.py  DNA tokens + positions + one cell type's epigenome
    encoder.py     the transformer encoder (EBertModel)
    heads.py       MLM, masked-state, sequence and bin heads
    ebert.py       the pre-training and fine-tuning models with their losses
    dropout.py     inverted dropout with a cheaper CPU keep-mask
    convert.py     start EBERT from a transformers BERT masked-LM checkpoint

May import: torch, the params schema (``config``, whose ``config.model`` is this model's section), the package root's leaf modules and the torch-only or pure
Python parts of the contract (``contract.batch``, ``contract.layout``); no data or training code
(tests/test_import_rules.py).
"""
