"""ebert-modelzoo: Epigenomic BERT (DNA + cell-type epigenome) as a Cerebras Model Zoo plugin."""
__version__ = "0.1.0"
