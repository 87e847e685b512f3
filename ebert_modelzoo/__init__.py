"""ebert-modelzoo: Epigenomic BERT (DNA + cell-type epigenome) as a Cerebras Model Zoo plugin."""
__version__ = "0.1.0"

# Model Zoo finds models only through its registry: EBERT is registered when (if ever) its
# registry is imported; a no-op when Model Zoo is not installed (cerebras/autoregister.py).
from ebert_modelzoo.cerebras.autoregister import install as _register_with_modelzoo

_register_with_modelzoo()
