"""ebert-modelzoo: Epigenomic BERT (DNA + cell-type epigenome) as a Cerebras Model Zoo plugin."""
__version__ = "0.1.0"

# Model Zoo finds models only through its registry; a no-op when Model Zoo is not installed.
from ebert_modelzoo.cerebras.registry import register_with_modelzoo as _register_with_modelzoo

_register_with_modelzoo()
