"""Evaluation: how good a trained model is, and against what.

    metrics.py          MLM metrics, auROC, auPRC, recall at FDR, PR curve (numpy, host side)
    sample_scores.py    per-sample scores [C, W, K] with labels and weights, their .npz
    predict.py          a fine-tuned checkpoint's scores on one split (``python -m
                        ebert_modelzoo.evaluation.predict``), in the loader's own sample order
    prediction_files.py those scores as TSV, BED, bedGraph, bigWig or .npz
    baselines.py        the motif + accessibility baseline
    floor_baselines.py  the sanity floors (logistic regressions on the epigenome, on 4-mer counts)
    cnn_peer.py         the CNN peer
    report.py           the report folder (markdown, JSON, seed-aware bootstrap verdict)
    report_plots.py     its PNGs

May import: the package root's contracts, ``data``, ``models`` and ``training`` (prediction runs
the trainer's own evaluation). Imported by ``interpret``, ``demo`` and ``cli`` only; the one
exception is ``metrics``, a leaf (numpy alone) that ``training`` calls for its eval metrics.
tests/test_import_rules.py enforces this.
"""
