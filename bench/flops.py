"""Analytic FLOP count of one BERT-style masked-LM step (the numerator of the roofline fraction).

Convention (as in the scaling-law and MFU literature): a matmul with a weight of W parameters
applied to n token vectors costs 2 * W * n FLOPs forward and twice that backward, so a training
step costs 3x its forward. Counted per step, with B batch, L tokens, H hidden, F filter, V vocab:

  encoder weights   2 * layers * (4 H^2 + 2 H F) * B L        (Q, K, V, output, two FFN dense)
  attention         2 * layers * 2 * B L^2 H                    (Q K^T and probs V, all heads)
  MLM head          2 * (H^2 + H V) * head_tokens               (transform dense + tied decoder)
  signal input      2 * (2 T H) * B N                           (EBERT's projection of T tracks)

EBERT's sparse final layer (models/encoder.py) computes the last block only at R = ``final_layer_rows``
rows: there K and V still cost 2 * 2 H^2 * B L, but Q, output and the feed-forward cost
2 * (2 H^2 + 2 H F) * R and attention 2 * 2 * R L H; the counts below are of the FLOPs done.
``head_tokens`` is B * P for EBERT (logits only at the P masked positions) and B * L for
transformers' BertForMaskedLM (logits at every token, loss at the masked ones). Biases,
LayerNorm, softmax, GELU, embedding look-ups and the optimizer are not matmuls and are left out.
"""
from __future__ import annotations


def step_flops(
    *,
    hidden: int,
    layers: int,
    filter_size: int,
    vocab: int,
    batch: int,
    seq_len: int,
    head_tokens: int,
    signal_tracks: int = 0,
    num_bins: int = 0,
    final_layer_rows: int | None = None,
) -> dict[str, float]:
    """Forward FLOPs per component, their sum, and the training-step total (3x forward).
    ``final_layer_rows`` None: the last block computes all B * L rows."""
    tokens = batch * seq_len
    rows = tokens if final_layer_rows is None else final_layer_rows
    every_row = 4 * hidden**2 + 2 * hidden * filter_size
    forward = {
        "encoder_matmuls": 2.0 * ((layers - 1) * every_row * tokens + 2 * hidden**2 * tokens
                                  + (2 * hidden**2 + 2 * hidden * filter_size) * rows),
        "attention": 2.0 * 2 * seq_len * hidden * ((layers - 1) * tokens + rows),
        "mlm_head": 2.0 * (hidden**2 + hidden * vocab) * head_tokens,
        "signal_projection": 2.0 * (2 * signal_tracks * hidden) * batch * num_bins,
    }
    total = sum(forward.values())
    return {**{f"forward_{key}": value for key, value in forward.items()},
            "forward": total, "train_step": 3.0 * total}
