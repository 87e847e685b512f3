"""ebert-modelzoo: Epigenomic BERT (DNA + cell-type epigenome) as a Cerebras Model Zoo plugin.

The root holds the cross-cutting modules every stage may import: the tokenizer, errors (every
error type, ``errors``), crash-safe writes (``atomic``), folder locks and owned folders; and the
params schema, the subpackage ``config``. The stages are subpackages: ``preprocessing`` (files -> shards),
``contract`` (what crosses a stage boundary), ``data`` (shards -> batches), ``models``,
``training``, ``evaluation``, ``interpret``, ``demo``, ``cli`` and the Cerebras edge
``cerebras``; tests/test_import_rules.py checks who imports whom.
"""
__version__ = "0.1.0"

# Model Zoo finds models only through its registry: EBERT is registered when (if ever) its
# registry is imported; a no-op when Model Zoo is not installed (cerebras/autoregister.py).
from ebert_modelzoo.cerebras.autoregister import install as _register_with_modelzoo

_register_with_modelzoo()
