"""What a fine-tuned EBERT sees, per cell type: attributions, motifs, variant effects.

Every tool reads a trained fine-tuning run (its params YAML and checkpoint) and a split folder of
its data (the shards hold the DNA once per window and the epigenome per cell type), so the DNA
and the epigenome of any (window, cell type) can be recombined at will:

    scoring.py     the run's model and the split's windows; batched logits of edited samples
    attribution.py in-silico saturation mutagenesis, gradient x input and integrated gradients
    outputs.py     .npz, bigWig and sequence-logo files of attributions
    motif_discovery.py  TF-MoDISco-lite motifs from attributions, TOMTOM matches against JASPAR
    variants.py    per-cell-type variant effects from a VCF (and "what if" epigenome swaps)
    truth.py       the checks against a simulation's known truth (planted motifs, open chromatin)
    report_section.py  both checks per TF and run as one result, its figure, the demo report's section
    cli.py         ``python -m ebert_modelzoo.interpret {attribute,motifs,variants,truth}``

Shapes: S bases per window (tokens_per_window x k), K labels, base codes A0 C1 G2 T3 N4.
The optional libraries (captum, logomaker, modisco-lite, memelite, cyvcf2) are the package's
``interpret`` extra. May import the package root, ``contract``, ``data``, ``models``, ``training``
and ``evaluation`` (tests/test_import_rules.py).
"""
