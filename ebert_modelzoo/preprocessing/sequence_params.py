"""A ready-to-run fine-tuning params file for a dataset of labelled sequences.

create_sequence_data.py writes it next to the shards, so the next command is
``python run.py CPU -p <output_dir>/params.yaml -m train_and_eval``. The model is the tiny
DNA-only encoder of params/ebert_finetune_tiny.yaml (a shipped tiny pre-training checkpoint
loads into it); every value is commented so a user can scale it up.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

from ebert_modelzoo.atomic import atomic_write_text

_TEMPLATE = """\
# Fine-tuning EBERT on labelled sequences, written by create_sequence_data.py for {data_dir}.
#   python run.py CPU -p {params} -m train_and_eval      # train, evaluating on validation
#   python -m ebert_modelzoo.evaluation.predict -p {params} --out predictions.tsv   # scores of the test split
# DNA only (no epigenome), one score per label; the tiny encoder of params/ebert_finetune_tiny.yaml.
trainer:
  init:
    backend:
      backend_type: CPU            # `python run.py GPU|CSX` overrides it
    model_dir: {model_dir}  # checkpoints, events, eval/metrics_step_<N>.json
    seed: 1                        # the model's initial weights and dropout
    model:
      name: ebert_finetune         # multi-label classifier
      vocab_size: {vocab_size}              # 6 specials + 4^{k} {k}-mers
      tokens_per_bin: {tokens_per_bin}             # bin_size {bin_size} bp / k
      hidden_size: 64              # tiny; 768 for BERT-base (params/ebert_finetune_base.yaml)
      num_hidden_layers: 2         # tiny
      num_heads: 2                 # 32 per head
      filter_size: 256             # 4 x hidden
      max_position_embeddings: {max_pos}  # >= {n_tok} DNA tokens + [CLS] + [SEP]
      dropout_rate: 0.1            # BERT
      attention_dropout_rate: 0.1  # BERT
      num_chromatin_states: 0      # sequences carry no epigenome
      num_signal_tracks: 0
      num_cell_types: 0
      num_labels: {num_labels}                # {labels_comment}
      label_names: {labels}
      head: sequence               # one score per sequence and label
      classifier_dropout: 0.1      # BERT
    optimizer:
      AdamW:
        weight_decay: 0.01         # BERT
        betas: [0.9, 0.999]
        eps: 1.0e-6
    schedulers:                    # 10% warmup, then linear decay to 0; peak 1e-3 for the tiny model (BERT-base: 2e-5..5e-5)
      - SequentialLR:
          schedulers:
            - LinearLR: {{initial_learning_rate: 0.0, end_learning_rate: 1.0e-3, total_iters: {warmup}}}
            - LinearLR: {{initial_learning_rate: 1.0e-3, end_learning_rate: 0.0, total_iters: {decay}}}
    precision:
      enabled: false               # float32
      max_gradient_norm: 1.0       # BERT
    loop:
      max_steps: {max_steps}              # about {epochs} epochs of {n_train} training sequences at batch {batch}
      eval_frequency: {eval_frequency}         # auROC/auPRC per label on the validation split (train_and_eval)
      eval_steps: null             # the whole validation split
    checkpoint:
      steps: {eval_frequency}
      disable_strict_checkpoint_loading: true  # a pre-training checkpoint (fit.ckpt_path) has no classifier
    logging:
      log_steps: 10
    callbacks:
      - KeepNCheckpoints:
          n: 2                     # older checkpoints are pruned
  fit:
    train_dataloader:
      data_processor: EBertFinetuningDataProcessor
      data_dir: {train_dir}
      batch_size: {batch}
      shuffle: true
      shuffle_seed: 1
      max_sequence_length: {max_len}
      label_level: sequence
{val_section}    ckpt_path: {ckpt_path}  # a pre-training checkpoint to start from (null: from scratch)
{validate_section}"""

_LOADER = """\
      data_processor: EBertFinetuningDataProcessor
      data_dir: {data_dir}
      batch_size: {batch}
      shuffle: false
      drop_last: false
      max_sequence_length: {max_len}
      label_level: sequence
"""


def write_finetune_params(path: Path, splits: dict[str, Path], labels: list[str], k: int, bin_size: int,
                          window: int, n_train: int, init_checkpoint: Optional[Path] = None,
                          epochs: int = 10, batch: int = 32) -> Path:
    """Write the params file for the split folders ``splits`` (absolute paths go in)."""
    n_tok = window // k
    batch = max(1, min(batch, n_train))
    max_len = -(-(n_tok + 2) // 8) * 8
    max_steps = max(20, math.ceil(epochs * n_train / batch))
    warmup = max(1, max_steps // 10)
    loader = lambda split: _LOADER.format(data_dir=json.dumps(str(splits[split].resolve())), batch=batch, max_len=max_len)  # noqa: E731
    val_section = "    val_dataloader:\n" + loader("validation") if "validation" in splits else ""
    eval_split = "test" if "test" in splits else ("validation" if "validation" in splits else None)
    validate_section = ""
    if eval_split:
        validate_section = (f"  validate:                        # mode eval and predict: the {eval_split} split\n"
                            "    val_dataloader:\n" + loader(eval_split))
    text = _TEMPLATE.format(
        data_dir=splits["train"].resolve().parent, params=path, model_dir=json.dumps(str(path.resolve().parent / "model")),
        vocab_size=6 + 4 ** k, k=k, tokens_per_bin=bin_size // k, bin_size=bin_size,
        max_pos=max(256, max_len), n_tok=n_tok, num_labels=len(labels),
        labels_comment="one output per label column", labels=json.dumps(labels),
        warmup=warmup, decay=max_steps - warmup, max_steps=max_steps, epochs=epochs, n_train=n_train,
        batch=batch, eval_frequency=max(1, max_steps // 2), train_dir=json.dumps(str(splits["train"].resolve())), max_len=max_len,
        val_section=val_section, ckpt_path=json.dumps(str(init_checkpoint.resolve())) if init_checkpoint else "null",
        validate_section=validate_section,
    )
    atomic_write_text(path, text)
    return path
