"""EBERT model: shapes per input combination, gradients, loss references, determinism, attention
kernels, LN placement, padding invariance, and the static-shape batch checks."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from ebert_modelzoo.config.model import EBertFinetuneConfig, EBertPretrainConfig
from ebert_modelzoo.contract.batch import check_batch, state_mask_id
from ebert_modelzoo.evaluation.metrics import PretrainMetrics
from ebert_modelzoo.models.ebert import (
    EBertForFineTuningModel,
    EBertForPreTrainingModel,
    FinetuneOutput,
    PretrainOutput,
)
from ebert_modelzoo.models.embeddings import bins_to_tokens

VOCAB, TPB, BINS, TRACKS, CELLS, STATES = 11, 3, 4, 3, 5, 15
B, P, Q, K = 3, 4, 2, 2
SEQ = 1 + BINS * TPB + 1 + 2  # [CLS], DNA, [SEP], two [PAD]


def tiny(states: bool = True, signal: bool = True, cells: bool = True, **extra) -> dict:
    """Tiny encoder keys (hidden 32, 2 layers, 4 heads) with the chosen epigenetic inputs."""
    keys = dict(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_heads=4, filter_size=48,
        max_position_embeddings=32, tokens_per_bin=TPB,
        num_chromatin_states=STATES if states else 0,
        num_signal_tracks=TRACKS if signal else 0,
        num_cell_types=CELLS if cells else 0,
    )
    return {**keys, **extra}


def pretrain_config(state_objective: bool = False, **keys) -> EBertPretrainConfig:
    return EBertPretrainConfig(
        name="ebert", state_mlm_loss_weight=0.5 if state_objective else 0.0, **tiny(**keys)
    )


def finetune_config(head: str = "sequence", **keys) -> EBertFinetuneConfig:
    return EBertFinetuneConfig(name="ebert_finetune", num_labels=K, head=head, **tiny(**keys))


def make_batch(seed: int = 0, seq_len: int = SEQ, pad_from: tuple[int, ...] = (SEQ - 2,) * B) -> dict:
    """A full batch dict (every group) following the contract; sample b is real up to pad_from[b]."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (B, seq_len), generator=g, dtype=torch.int32)
    ids[:, 0] = 2  # [CLS]
    attention = torch.zeros(B, seq_len, dtype=torch.int32)
    for b, end in enumerate(pad_from):
        ids[b, end - 1] = 3  # [SEP]
        ids[b, end:] = 0  # [PAD]
        attention[b, :end] = 1
    states = torch.randint(0, STATES + 1, (B, BINS), generator=g, dtype=torch.int32)
    states[:, 1] = state_mask_id(STATES)
    signal_mask = (torch.rand(B, BINS, TRACKS, generator=g) > 0.3).float()
    return {
        "input_ids": ids,
        "attention_mask": attention,
        "masked_lm_positions": torch.randint(1, 1 + BINS * TPB, (B, P), generator=g, dtype=torch.int32),
        "labels": torch.randint(5, VOCAB, (B, P), generator=g, dtype=torch.int32),
        "masked_lm_mask": torch.tensor([[1.0, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]),
        "chromatin_states": states,
        "masked_state_positions": torch.tensor([[1, 3], [1, 0], [1, 2]], dtype=torch.int32),
        "masked_state_labels": torch.randint(1, STATES + 1, (B, Q), generator=g, dtype=torch.int32),
        "masked_state_mask": torch.tensor([[1.0, 1], [1, 0], [1, 1]]),
        "signal": torch.randn(B, BINS, TRACKS, generator=g) * signal_mask,
        "signal_mask": signal_mask,
        "cell_type_ids": torch.randint(0, CELLS, (B,), generator=g, dtype=torch.int32),
        "seq_labels": torch.randint(0, 2, (B, K), generator=g).float(),
        "seq_label_weights": torch.tensor([[1.0, 1], [0, 1], [1, 0]]),
        "bin_labels": torch.randint(0, 2, (B, BINS, K), generator=g).float(),
        "bin_label_weights": (torch.rand(B, BINS, K, generator=g) > 0.2).float(),
    }


def build(cls, config, seed: int = 0):
    torch.manual_seed(seed)
    return cls(config)


def test_batch_fixture_follows_contract():
    groups = ("dna", "mlm", "states", "state_mlm", "signal", "cell_type", "seq_labels", "bin_labels")
    assert check_batch(make_batch(), groups)["L"] == SEQ


@pytest.mark.parametrize(
    "states,signal,cells,state_objective",
    [c for c in itertools.product([False, True], repeat=4) if c[0] or not c[3]],
)
def test_pretrain_shapes_for_every_input_combination(states, signal, cells, state_objective):
    config = pretrain_config(state_objective, states=states, signal=signal, cells=cells)
    model = build(EBertForPreTrainingModel, config)
    batch = make_batch()
    before = {key: value.clone() for key, value in batch.items()}
    out = model.outputs(batch)
    assert isinstance(out, PretrainOutput)
    assert out.loss.shape == () and out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    assert out.mlm_logits.shape == (B, P, VOCAB) and out.mlm_logits.dtype == torch.float32
    if state_objective:
        assert out.state_logits.shape == (B, Q, STATES)
        expected = config.mlm_loss_weight * out.mlm_loss + 0.5 * out.state_loss
        torch.testing.assert_close(out.loss, expected)
    else:
        assert out.state_logits is None and out.state_loss is None
        torch.testing.assert_close(out.loss, out.mlm_loss)
    model.eval()
    torch.testing.assert_close(model(batch), model.outputs(batch).loss)
    assert batch.keys() == before.keys()
    assert all(torch.equal(batch[key], before[key]) for key in batch)  # forward does not mutate


@pytest.mark.parametrize("head", ["sequence", "bin"])
@pytest.mark.parametrize("epigenome", [False, True])
def test_finetune_shapes(head, epigenome):
    config = finetune_config(head, states=epigenome, signal=epigenome, cells=epigenome)
    model = build(EBertForFineTuningModel, config)
    out = model.outputs(make_batch())
    assert isinstance(out, FinetuneOutput)
    assert out.logits.shape == ((B, K) if head == "sequence" else (B, BINS, K))
    assert out.loss.shape == () and torch.isfinite(out.loss)


def test_gradient_reaches_every_epigenetic_parameter():
    model = build(EBertForPreTrainingModel, pretrain_config(True))
    model(make_batch()).backward()
    names = {name for name, _ in model.named_parameters()}
    assert {
        "ebert.embeddings.state_embeddings.weight", "ebert.embeddings.signal_projection.weight",
        "ebert.embeddings.signal_projection.bias", "ebert.embeddings.cell_type_embeddings.weight",
    } <= names
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("kind", ["pretrain", "sequence", "bin"])
def test_all_off_is_plain_bert_with_no_unused_parameter(kind):
    off = dict(states=False, signal=False, cells=False)
    if kind == "pretrain":
        model = build(EBertForPreTrainingModel, pretrain_config(**off))
    else:
        model = build(EBertForFineTuningModel, finetune_config(kind, **off))
    model(make_batch()).backward()  # extra epigenetic keys in the batch are ignored
    for name, param in model.named_parameters():
        assert not any(m in name for m in ("state", "signal", "cell_type")), name
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_epigenetic_inputs_change_the_output():
    model = build(EBertForPreTrainingModel, pretrain_config()).eval()
    batch = make_batch()
    base = model.ebert(batch)
    for key, value in [
        ("chromatin_states", (batch["chromatin_states"] + 1) % (STATES + 1)),
        ("signal", batch["signal"] + batch["signal_mask"]),
        ("cell_type_ids", (batch["cell_type_ids"] + 1) % CELLS),
    ]:
        assert not torch.allclose(model.ebert({**batch, key: value}), base), key


def test_missing_signal_is_not_zero_and_ignores_values_there():
    model = build(EBertForPreTrainingModel, pretrain_config(states=False, cells=False)).eval()
    batch = make_batch()
    measured_zero = {**batch, "signal": torch.zeros(B, BINS, TRACKS), "signal_mask": torch.ones(B, BINS, TRACKS)}
    missing = {**batch, "signal": torch.zeros(B, BINS, TRACKS), "signal_mask": torch.zeros(B, BINS, TRACKS)}
    assert not torch.allclose(model.ebert(measured_zero), model.ebert(missing))
    garbage = {**missing, "signal": torch.full((B, BINS, TRACKS), float("nan"))}
    torch.testing.assert_close(model.ebert(garbage), model.ebert(missing), rtol=0, atol=0)


def test_bins_to_tokens_layout():
    per_bin = torch.arange(1, 1 + 2 * BINS, dtype=torch.float32).view(2, BINS, 1)
    tokens = bins_to_tokens(per_bin, TPB, SEQ)
    assert tokens.shape == (2, SEQ, 1)
    for b in range(2):
        for p in range(SEQ):
            inside = 1 <= p <= BINS * TPB
            expected = per_bin[b, (p - 1) // TPB, 0] if inside else 0.0
            assert tokens[b, p, 0] == expected, (b, p)


def _full_logits(model: EBertForPreTrainingModel, batch: dict) -> torch.Tensor:
    """(B, L, V) logits decoded at every position: the reference for the gathered head."""
    hidden = model.ebert(batch)
    head = model.mlm_head
    return head.transform(hidden) @ model.ebert.embeddings.word_embeddings.weight.T + head.bias


def _selected_rows(batch: dict, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows, targets = [], []
    for b in range(B):
        for p in range(P):
            if batch["masked_lm_mask"][b, p] == 1:
                rows.append(logits[b, int(batch["masked_lm_positions"][b, p])])
                targets.append(int(batch["labels"][b, p]))
    return torch.stack(rows), torch.tensor(targets)


def test_masked_lm_loss_matches_full_sequence_reference():
    model = build(EBertForPreTrainingModel, pretrain_config()).eval()
    batch = make_batch()
    with torch.no_grad():
        out = model.outputs(batch)
        rows, targets = _selected_rows(batch, _full_logits(model, batch))
    torch.testing.assert_close(out.mlm_loss, F.cross_entropy(rows, targets), rtol=0, atol=1e-5)
    for b in range(B):
        for p in range(P):
            full = _full_logits(model, batch)[b, int(batch["masked_lm_positions"][b, p])]
            torch.testing.assert_close(out.mlm_logits[b, p], full, rtol=0, atol=1e-5)


def test_label_smoothing_matches_hand_formula():
    eps = 0.1
    model = build(EBertForPreTrainingModel, pretrain_config(label_smoothing=eps)).eval()
    batch = make_batch()
    with torch.no_grad():
        out = model.outputs(batch)
        rows, targets = _selected_rows(batch, _full_logits(model, batch))
    log_probs = torch.log_softmax(rows, dim=-1)
    nll = -log_probs[torch.arange(len(targets)), targets]
    reference = ((1 - eps) * nll + eps * (-log_probs).mean(dim=-1)).mean()
    torch.testing.assert_close(out.mlm_loss, reference, rtol=0, atol=1e-5)


def test_state_loss_matches_pooled_reference_and_skips_unknown_labels():
    model = build(EBertForPreTrainingModel, pretrain_config(True)).eval()
    batch = make_batch()
    with torch.no_grad():
        out = model.outputs(batch)
        hidden = model.ebert(batch)
        rows, targets = [], []
        for b in range(B):
            for q in range(Q):
                if batch["masked_state_mask"][b, q] == 1:
                    n = int(batch["masked_state_positions"][b, q])
                    pooled = hidden[b, 1 + n * TPB : 1 + (n + 1) * TPB].mean(dim=0)
                    rows.append(model.state_head.decoder(model.state_head.transform(pooled)))
                    targets.append(int(batch["masked_state_labels"][b, q]) - 1)
        reference = F.cross_entropy(torch.stack(rows), torch.tensor(targets))
        torch.testing.assert_close(out.state_loss, reference, rtol=0, atol=1e-5)
        unknown = batch["masked_state_labels"].clone()
        unknown[0, 1] = 0
        dropped = batch["masked_state_mask"].clone()
        dropped[0, 1] = 0
        a = model.outputs({**batch, "masked_state_labels": unknown}).state_loss
        b = model.outputs({**batch, "masked_state_mask": dropped}).state_loss
        torch.testing.assert_close(a, b)


def test_eval_metrics_agree_with_model_loss():
    model = build(EBertForPreTrainingModel, pretrain_config(True)).eval()
    batch = make_batch()
    with torch.no_grad():
        out = model.outputs(batch)
    metrics = PretrainMetrics()
    metrics.update(out, batch)
    result = metrics.compute()
    assert result["mlm_loss"] == pytest.approx(out.mlm_loss.item(), abs=1e-5)
    assert result["state_loss"] == pytest.approx(out.state_loss.item(), abs=1e-5)


def test_finetune_losses_match_hand_reference():
    for head in ("sequence", "bin"):
        model = build(EBertForFineTuningModel, finetune_config(head)).eval()
        batch = make_batch()
        with torch.no_grad():
            out = model.outputs(batch)
            hidden = model.ebert(batch)
            if head == "sequence":
                logits = model.head.classifier(torch.tanh(model.head.pooler(hidden[:, 0])))
                labels, weights = batch["seq_labels"], batch["seq_label_weights"]
            else:
                pooled = torch.stack(
                    [hidden[:, 1 + n * TPB : 1 + (n + 1) * TPB].mean(dim=1) for n in range(BINS)], dim=1
                )
                logits = model.head.classifier(pooled)
                labels, weights = batch["bin_labels"], batch["bin_label_weights"]
        torch.testing.assert_close(out.logits, logits, rtol=0, atol=1e-5)
        keep = weights.flatten() == 1
        reference = F.binary_cross_entropy_with_logits(logits.flatten()[keep], labels.flatten()[keep])
        torch.testing.assert_close(out.loss, reference, rtol=0, atol=1e-5)


def test_seed_reproduces_weights_and_outputs():
    config = pretrain_config(True)
    first, second = build(EBertForPreTrainingModel, config, 7), build(EBertForPreTrainingModel, config, 7)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name
    other = build(EBertForPreTrainingModel, config, 8)
    assert not torch.equal(other.ebert.embeddings.word_embeddings.weight, first.ebert.embeddings.word_embeddings.weight)
    batch = make_batch()
    torch.manual_seed(1)
    loss_a = first(batch)  # train mode: dropout draws from the seeded RNG
    torch.manual_seed(1)
    loss_b = second(batch)
    assert torch.equal(loss_a, loss_b)


def test_init_follows_bert():
    model = build(EBertForPreTrainingModel, pretrain_config(True, initializer_range=0.02))
    for name, param in model.named_parameters():
        if "LayerNorm" in name or "norm" in name:
            expected = 1.0 if name.endswith("weight") else 0.0
            assert torch.all(param == expected), name
        elif name.endswith("bias"):
            assert torch.all(param == 0), name
        else:
            assert param.abs().max() <= 0.04 and 0.01 < param.std() < 0.03, name


def test_sdpa_and_explicit_attention_agree():
    batch = make_batch(pad_from=(SEQ - 2, SEQ - 5, SEQ))
    sdpa = build(EBertForPreTrainingModel, pretrain_config(True, attention_kernel="sdpa")).eval()
    explicit = build(EBertForPreTrainingModel, pretrain_config(True, attention_kernel="explicit")).eval()
    explicit.load_state_dict(sdpa.state_dict())
    with torch.no_grad():
        a, b = sdpa.outputs(batch), explicit.outputs(batch)
    torch.testing.assert_close(a.mlm_logits, b.mlm_logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(a.state_logits, b.state_logits, rtol=0, atol=1e-5)


def test_post_ln_and_pre_ln_both_train():
    batch = make_batch()
    losses = []
    for norm_first in (False, True):
        model = build(EBertForPreTrainingModel, pretrain_config(norm_first=norm_first))
        assert (model.ebert.final_norm is not None) == norm_first
        loss = model(batch)
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None for p in model.parameters())
        losses.append(loss.item())
    assert losses[0] != losses[1]


@pytest.mark.parametrize("positions", ["learned", "fixed"])
def test_padding_does_not_change_real_positions(positions):
    config = pretrain_config(position_embedding_type=positions)
    model = build(EBertForPreTrainingModel, config).eval()
    short_len = SEQ - 2  # no [PAD]
    short = make_batch(seq_len=short_len, pad_from=(short_len,) * B)
    padded = dict(short)
    padded["input_ids"] = F.pad(short["input_ids"], (0, 6))
    padded["attention_mask"] = F.pad(short["attention_mask"], (0, 6))
    with torch.no_grad():
        a, b = model.ebert(short), model.ebert(padded)
        torch.testing.assert_close(b[:, :short_len], a, rtol=0, atol=1e-5)
        torch.testing.assert_close(model.outputs(padded).mlm_logits, model.outputs(short).mlm_logits, rtol=0, atol=1e-5)
    if positions == "fixed":
        assert not any("position" in name for name, _ in model.named_parameters())


def test_untied_decoder_has_its_own_weight():
    model = build(EBertForPreTrainingModel, pretrain_config(share_embedding_weights=False))
    assert model.mlm_head.decoder is not None
    model(make_batch()).backward()
    assert model.mlm_head.decoder.weight.grad.abs().sum() > 0


def test_pretrained_encoder_loads_into_finetuning_model():
    pretrained = build(EBertForPreTrainingModel, pretrain_config(), 1)
    finetune = build(EBertForFineTuningModel, finetune_config(), 2)
    encoder = {k[len("ebert."):]: v for k, v in pretrained.state_dict().items() if k.startswith("ebert.")}
    finetune.ebert.load_state_dict(encoder)
    batch = make_batch()
    pretrained.eval()
    finetune.eval()
    torch.testing.assert_close(finetune.ebert(batch), pretrained.ebert(batch))


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda b: b.pop("chromatin_states"), "chromatin_states"),
        (lambda b: b.update(signal=b["signal"][..., :2], signal_mask=b["signal_mask"][..., :2]), "dimension T"),
        (lambda b: b.update(input_ids=b["input_ids"].long()), "input_ids"),
        (lambda b: b.update(masked_lm_mask=b["masked_lm_mask"].int()), "masked_lm_mask"),
        (lambda b: b.update(typo_key=b["labels"]), "typo_key"),
    ],
)
def test_bad_batches_name_the_key(change, message):
    model = build(EBertForPreTrainingModel, pretrain_config())
    batch = make_batch()
    change(batch)
    with pytest.raises(ValueError, match=message):
        model(batch)


def test_sequence_too_short_for_bins_or_too_long_for_positions():
    model = build(EBertForPreTrainingModel, pretrain_config(tokens_per_bin=TPB + 2))
    with pytest.raises(ValueError, match="tokens_per_bin"):
        model(make_batch())
    model = build(EBertForPreTrainingModel, pretrain_config(max_position_embeddings=SEQ - 1))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(make_batch())


@pytest.mark.parametrize(
    "cls,config",
    [
        (EBertForPreTrainingModel, pretrain_config(True)),
        (EBertForPreTrainingModel, pretrain_config(states=False, signal=False, cells=False)),
        (EBertForFineTuningModel, finetune_config("sequence", attention_kernel="explicit")),
        (EBertForFineTuningModel, finetune_config("bin")),
        (EBertForFineTuningModel, finetune_config(vocab_size=22, dna_conv_filters=4, dna_conv_width=5)),
        (EBertForFineTuningModel, finetune_config(pooling="center_bins", num_bins=BINS, pooled_bins=2,
                                                  positive_weight=[2.0, 4.0])),
    ],
)
def test_forward_and_backward_run_on_meta_tensors(cls, config):
    """Meta tensors have shapes but no values: nonzero(), boolean indexing, .item() and any other
    data-dependent op fail here, as they fail when Cerebras traces the step."""
    with torch.device("meta"):
        model = cls(config)
    batch = {key: value.to("meta") for key, value in make_batch().items()}
    loss = model(batch)
    loss.backward()
    assert loss.shape == () and loss.device.type == "meta"
    with pytest.raises(NotImplementedError):
        batch["masked_lm_mask"][batch["masked_lm_mask"] > 0]  # the proxy does catch boolean indexing


def test_dropout_keeps_the_expected_fraction_and_scale():
    from ebert_modelzoo.models.dropout import Dropout, dropout

    x = torch.ones(200_000)
    torch.manual_seed(0)
    out = dropout(x, 0.25, training=True)
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.005
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.75))
    torch.manual_seed(0)
    assert torch.equal(dropout(x, 0.25, training=True), out)  # seeded
    assert torch.equal(dropout(x, 0.25, training=False), x)
    assert torch.equal(Dropout(0.25).eval()(x), x)


def test_attention_dropout_is_unbiased_on_the_cpu_training_path():
    from ebert_modelzoo.models.encoder import SelfAttention, additive_attention_mask

    torch.manual_seed(0)
    config = EBertPretrainConfig(name="ebert", **tiny(attention_dropout_rate=0.5))
    attention = SelfAttention(config)
    hidden = torch.randn(1, 6, 32)
    mask = additive_attention_mask(torch.tensor([[1, 1, 1, 1, 1, 0]], dtype=torch.int32), torch.float32)
    with torch.no_grad():
        expected = attention.eval()(hidden, mask)
        attention.train()
        mean = torch.stack([attention(hidden, mask) for _ in range(4000)]).mean(0)
    assert torch.allclose(mean, expected, atol=0.02)
    assert not torch.allclose(attention(hidden, mask), expected, atol=1e-3)  # dropout is on


@pytest.mark.parametrize("norm_first,kernel", [(False, "sdpa"), (True, "sdpa"), (False, "explicit")])
@pytest.mark.parametrize("task", ["pretrain", "pretrain_states", "finetune_cls", "finetune_center"])
def test_sparse_final_layer_matches_dense_loss_and_every_gradient(task, norm_first, kernel):
    """The last block computed only at the rows the heads read gives the loss and gradients of
    computing every row (eval mode: dropout off, so both draw nothing)."""
    keys = dict(norm_first=norm_first, attention_kernel=kernel)
    if task.startswith("pretrain"):
        make = lambda sparse: pretrain_config(task == "pretrain_states", sparse_final_layer=sparse, **keys)
        cls = EBertForPreTrainingModel
    else:
        pooling = dict(pooling="center_bins", num_bins=BINS, pooled_bins=2) if task == "finetune_center" else {}
        make = lambda sparse: finetune_config(sparse_final_layer=sparse, **pooling, **keys)
        cls = EBertForFineTuningModel
    sparse, dense = build(cls, make(True)).eval(), build(cls, make(False)).eval()
    dense.load_state_dict(sparse.state_dict())
    batch = make_batch(pad_from=(SEQ - 2, SEQ - 4, SEQ))
    losses = [model(batch) for model in (sparse, dense)]
    for loss in losses:
        loss.backward()
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=1e-6)
    for (name, a), (_, b) in zip(sparse.named_parameters(), dense.named_parameters()):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_sparse_final_layer_returns_the_rows_asked_for():
    model = build(EBertForPreTrainingModel, pretrain_config()).eval()
    batch = make_batch()
    positions = torch.tensor([[0, 5, 5], [1, 2, 3], [SEQ - 1, 0, 7]])
    with torch.no_grad():
        full = model.ebert(batch)
        rows = model.ebert(batch, positions)
    assert rows.shape == (B, 3, 32)
    torch.testing.assert_close(rows, torch.stack([full[b, positions[b]] for b in range(B)]),
                               rtol=0, atol=1e-5)


def test_cpu_keep_mask_rate_is_p_rounded_to_16_bits_and_unbiased():
    from ebert_modelzoo.models.dropout import LEVELS, keep_mask

    like = torch.empty(1_000_003)  # not a multiple of 4: the last 64-bit draw is partly used
    for p in (0.1, 0.5, 0.9):
        torch.manual_seed(1)
        keep, scale = keep_mask(like, p)
        rate = round(p * LEVELS) / LEVELS
        assert keep.dtype == like.dtype and keep.shape == like.shape
        assert set(keep.unique().tolist()) == {0.0, 1.0}
        assert abs(1 - keep.float().mean().item() - rate) < 0.002, p
        assert scale * (1 - rate) == pytest.approx(1.0, abs=1e-12)
        # no bias between the four 16-bit slots of one draw (a sign bit left 0 would show here)
        slots = keep[:1_000_000].view(-1, 4).float().mean(0)
        assert (slots - slots.mean()).abs().max() < 0.005, slots
