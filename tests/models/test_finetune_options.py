"""Fine-tuning options: positive_weight (explicit and auto), pooling: center_bins."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ebert_modelzoo.config.base import parse_section
from ebert_modelzoo.config.model import EBertFinetuneConfig
from ebert_modelzoo.config.params import load_params
from ebert_modelzoo.contract import schema
from ebert_modelzoo.errors import ParamsError
from ebert_modelzoo.models.ebert import EBertForFineTuningModel
from ebert_modelzoo.models.heads import SequenceClassificationHead
from ebert_modelzoo.training.label_weights import auto_positive_weight, resolve_positive_weight
from ebert_modelzoo.training.tasks import DataSource, Task
from tests.data.helpers import finetuning
from tests.data.split_builder import build_split
from tests.models.test_model import BINS, TPB, build, finetune_config, make_batch, tiny
from tests.training.fixtures import LABELS, finetune_params, make_data, run_py, write_params


def _hand_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, positive: list[float]) -> torch.Tensor:
    """-(w_k y log p + (1 - y) log(1 - p)) averaged over the labelled entries, written out."""
    total, count = 0.0, 0.0
    for index in np.ndindex(*labels.shape):
        if weights[index] == 0:
            continue
        p = 1.0 / (1.0 + math.exp(-float(logits[index])))
        y = float(labels[index])
        total += -(positive[index[-1]] * y * math.log(p) + (1 - y) * math.log(1 - p))
        count += 1
    return torch.tensor(total / count)


@pytest.mark.parametrize("head", ["sequence", "bin"])
def test_positive_weight_loss_matches_hand_formula(head):
    positive = [3.0, 0.5]
    model = build(EBertForFineTuningModel, finetune_config(head, positive_weight=positive)).eval()
    unweighted = build(EBertForFineTuningModel, finetune_config(head)).eval()
    batch = make_batch()
    with torch.no_grad():
        out, plain = model.outputs(batch), unweighted.outputs(batch)
    prefix = "seq" if head == "sequence" else "bin"
    labels, weights = batch[f"{prefix}_labels"], batch[f"{prefix}_label_weights"]
    torch.testing.assert_close(out.logits, plain.logits)  # the weight changes the loss only
    torch.testing.assert_close(out.loss, _hand_bce(out.logits, labels, weights, positive), rtol=0, atol=1e-5)
    torch.testing.assert_close(plain.loss, _hand_bce(out.logits, labels, weights, [1.0, 1.0]), rtol=0, atol=1e-5)
    assert not torch.allclose(out.loss, plain.loss)
    assert "positive_weight" not in model.state_dict()  # fixed by the config, not a checkpoint entry


def test_center_bins_pooling_reads_exactly_the_central_bins_tokens():
    config = EBertFinetuneConfig(name="ebert_finetune", num_labels=2, pooling="center_bins", num_bins=5,
                                 pooled_bins=3, **tiny(max_position_embeddings=40))
    head = SequenceClassificationHead(config)
    # bins 1, 2, 3 of 0..4 = tokens 1 + 1*TPB .. 1 + 4*TPB - 1
    expected = torch.arange(1 + TPB, 1 + 4 * TPB)
    torch.testing.assert_close(head.token_positions(2), expected.expand(2, -1))
    cls_config = EBertFinetuneConfig(name="ebert_finetune", num_labels=2, **tiny())
    torch.testing.assert_close(SequenceClassificationHead(cls_config).token_positions(3),
                               torch.zeros(3, 1, dtype=torch.long))


def test_center_bins_logits_use_only_the_central_tokens():
    config = finetune_config(pooling="center_bins", num_bins=BINS, pooled_bins=2)
    model = build(EBertForFineTuningModel, config).eval()
    batch = make_batch()
    with torch.no_grad():
        out = model.outputs(batch)
        hidden = model.ebert(batch)
        pooled = hidden[:, 1 + TPB : 1 + 3 * TPB].mean(dim=1)
        reference = model.head.classifier(torch.tanh(model.head.pooler(pooled)))
    torch.testing.assert_close(out.logits, reference, rtol=0, atol=1e-6)
    cls_model = build(EBertForFineTuningModel, finetune_config()).eval()
    with torch.no_grad():
        assert not torch.allclose(cls_model.outputs(batch).logits, out.logits)


@pytest.mark.parametrize("keys,message", [
    ({"positive_weight": [1.0]}, "positive_weight has 1 values but num_labels is 2"),
    ({"positive_weight": [1.0, 0.0]}, "positive_weight values must be finite and > 0"),
    ({"positive_weight": "balanced"}, "trainer.init.model.positive_weight"),
    ({"pooling": "center_bins"}, "pooling center_bins needs num_bins"),
    ({"pooling": "center_bins", "num_bins": 4, "pooled_bins": 1}, "pooled_bins must be in [1, num_bins]"),
    ({"pooling": "center_bins", "num_bins": 4, "pooled_bins": 5}, "pooled_bins must be in [1, num_bins]"),
    ({"pooling": "center_bins", "num_bins": 4, "head": "bin"}, "pooling 'center_bins' is for head: sequence"),
    ({"pooling": "mean"}, "trainer.init.model.pooling"),
])
def test_bad_options_name_the_key(keys, message):
    data = {"name": "ebert_finetune", "num_labels": 2, **tiny(), **keys}
    with pytest.raises(ParamsError) as err:
        parse_section(EBertFinetuneConfig, data, "trainer.init.model", "p.yaml")
    assert message in str(err.value) and str(err.value).startswith("p.yaml: trainer.init.model")


def test_unresolved_auto_is_refused_by_the_model():
    with pytest.raises(ValueError, match="positive_weight 'auto' must be resolved"):
        EBertForFineTuningModel(finetune_config(positive_weight="auto"))


def test_label_counts_match_the_stored_labels(tmp_path):
    split = build_split(tmp_path / "s", labels=("A", "B", "C"), seed=4)
    for cells, labels in ((None, None), (["K562", "HepG2"], ["C", "A"])):
        processor = finetuning(split, cell_types=cells, labels=labels)
        positives, labelled = processor.label_counts()
        rows = [split.cell_types.index(c) for c in cells] if cells else slice(None)
        cols = [split.label_names.index(n) for n in labels] if labels else slice(None)
        stored = split.labels[rows][..., cols].reshape(-1, len(processor.label_names))
        np.testing.assert_array_equal(positives, (stored == schema.LABEL_BOUND).sum(axis=0))
        np.testing.assert_array_equal(labelled, (stored != schema.LABEL_AMBIGUOUS).sum(axis=0))


def test_auto_positive_weight_formula_and_errors():
    assert auto_positive_weight(np.array([10, 1]), np.array([1000, 50])) == [9.95, 7.0]
    with pytest.raises(ValueError, match="label 1 has 0 positives of 40"):
        auto_positive_weight(np.array([3, 0]), np.array([40, 40]))


def _auto_params(tmp_path: Path) -> tuple[dict, dict]:
    data = make_data(tmp_path / "data")
    params = finetune_params(data, tmp_path / "run")
    params["trainer"]["init"]["model"]["positive_weight"] = "auto"
    return data, params


def test_auto_resolves_from_the_training_split(tmp_path):
    data, params = _auto_params(tmp_path)
    source = write_params(tmp_path / "p.yaml", params)
    resolved = resolve_positive_weight(load_params(source), source)
    labels = build_split(tmp_path / "again", seed=2, tracks=("DNase", "H3K27ac"), num_states=5, labels=LABELS).labels
    flat = labels.reshape(-1, len(LABELS))
    pos, total = (flat == 1).sum(axis=0), (flat != -1).sum(axis=0)
    expected = [float(f"{math.sqrt((t - p) / p):.4g}") for p, t in zip(pos, total)]
    assert resolved.trainer.init.model.positive_weight == expected
    assert resolved.to_dict()["trainer"]["init"]["model"]["positive_weight"] == expected


def test_auto_without_training_data_names_the_key(tmp_path):
    _, params = _auto_params(tmp_path)
    del params["trainer"]["fit"]
    source = write_params(tmp_path / "p.yaml", params)
    with pytest.raises(ParamsError, match="trainer.init.model.positive_weight: 'auto' needs trainer.fit"):
        resolve_positive_weight(load_params(source), source)


def test_num_bins_is_checked_against_the_data(tmp_path):
    data, params = _auto_params(tmp_path)
    params["trainer"]["init"]["model"].update(pooling="center_bins", num_bins=7, pooled_bins=1)
    source = write_params(tmp_path / "p.yaml", params)
    loaded = load_params(source)
    task = Task(loaded.trainer.init.model)
    with pytest.raises(ParamsError, match=r"trainer.init.model.num_bins is 7 but trainer.fit.train_dataloader .* gives 6"):
        task.check_data(DataSource(loaded.trainer.fit.train_dataloader), source, "trainer.fit.train_dataloader")


def test_label_names_when_given_are_checked_against_the_data(tmp_path):
    """Model Zoo's Trainer names its per-label metrics by model.label_names: they must be the
    data's labels in the data's order."""
    data, params = _auto_params(tmp_path)
    params["trainer"]["init"]["model"]["label_names"] = list(reversed(LABELS))
    source = write_params(tmp_path / "p.yaml", params)
    loaded = load_params(source)
    with pytest.raises(ParamsError, match=r"trainer\.init\.model\.label_names is \[.*\] but trainer\.fit\.train_dataloader .* gives \["):
        Task(loaded.trainer.init.model).check_data(
            DataSource(loaded.trainer.fit.train_dataloader), source, "trainer.fit.train_dataloader")
    params["trainer"]["init"]["model"]["label_names"] = list(LABELS)
    loaded = load_params(write_params(tmp_path / "p.yaml", params))
    Task(loaded.trainer.init.model).check_data(
        DataSource(loaded.trainer.fit.train_dataloader), source, "trainer.fit.train_dataloader")


def test_run_py_trains_with_auto_weights_and_center_pooling_and_records_the_weights(tmp_path):
    data, params = _auto_params(tmp_path)
    params["trainer"]["init"]["model"].update(pooling="center_bins", num_bins=6, pooled_bins=2)
    source = write_params(tmp_path / "p.yaml", params)
    done = run_py("CPU", "-p", str(source), "-m", "train")
    expected = resolve_positive_weight(load_params(source), source).trainer.init.model.positive_weight
    assert f"positive_weight auto -> {expected}" in done.stdout + done.stderr
    state = torch.load(tmp_path / "run" / "checkpoint_6.mdl", weights_only=True)
    assert state["params"]["trainer"]["init"]["model"]["positive_weight"] == expected
    assert len(expected) == len(LABELS) and expected != [1.0] * len(LABELS)


def _epoch_samples(processor):
    """(cell index, window) of every sample of epoch 0, in the order the loader reads them."""
    plan = processor.dataset().plan(0, 0)
    offsets = np.concatenate(([0], np.cumsum(processor.params.shard_windows)))
    samples = []
    for chunk in sorted({plan.locate(position)[0] for position in range(plan.num_batches)}):
        samples += [(p.cell, int(offsets[p.shard]) + w) for p in plan.pieces(chunk) for w in range(p.start, p.stop)]
    return samples


def test_bound_repeats_show_each_bound_sample_that_many_times(tmp_path):
    split = build_split(tmp_path / "s", labels=("A", "B"), seed=5)
    once = finetuning(split, shuffle=True, drop_last=False)
    thrice = finetuning(split, shuffle=True, drop_last=False, bound_repeats=3)
    stored = split.labels  # [C, W, K]
    bound = (stored == schema.LABEL_BOUND).any(axis=-1)
    assert 0 < bound.sum() < bound.size
    shard, window, cell = thrice.bound_samples()
    offsets = np.concatenate(([0], np.cumsum(thrice.params.shard_windows)))
    assert len(thrice.params.shard_windows) > 1
    assert sorted(zip(cell.tolist(), (offsets[shard] + window).tolist())) == sorted(zip(*np.nonzero(bound)))
    batches = list(thrice.create_dataloader())
    seen = sum(len(b["seq_labels"]) for b in batches)
    assert seen == bound.size + 2 * bound.sum() == len(list(_epoch_samples(thrice)))
    assert sum(len(b["seq_labels"]) for b in once.create_dataloader()) == bound.size
    # every bound sample's labels arrive three times, the others once
    positives = sum(b["seq_labels"].sum(0) for b in batches).numpy()
    np.testing.assert_array_equal(positives, 3 * (stored == schema.LABEL_BOUND).sum(axis=(0, 1)))
    np.testing.assert_array_equal(thrice.label_counts()[0], positives)
    counts = {}
    for sample in _epoch_samples(thrice):
        counts[sample] = counts.get(sample, 0) + 1
    assert all(counts[(c, w)] == (3 if bound[c, w] else 1) for c in range(bound.shape[0]) for w in range(bound.shape[1]))
    # the validation/eval loaders keep every sample once
    with pytest.raises(ParamsError, match="bound_repeats must be >= 1"):
        finetuning(split, bound_repeats=0)


def test_head_linear_term_reads_the_central_bins_inputs_and_their_products():
    with pytest.raises(ValueError, match="head_linear_bins needs head: sequence and num_bins"):
        finetune_config(head_linear_bins=1)
    with pytest.raises(ValueError, match="head_linear_bins must be 0, or in"):
        finetune_config(head_linear_bins=2, num_bins=5)
    config = finetune_config(num_bins=BINS, head_linear_bins=2, head_linear_scale=4.0, num_motif_tracks=2,
                             dropout_rate=0.0, attention_dropout_rate=0.0, classifier_dropout=0.0)
    torch.manual_seed(0)
    model = EBertForFineTuningModel(config).eval()
    batch = make_batch()
    batch["motif_scores"] = torch.rand(batch["signal"].shape[:2] + (2,))
    tracks = config.num_signal_tracks
    width = 2 * tracks + 2 + (config.num_chromatin_states + 1) + 2 * tracks
    assert model.head.linear.weight.shape == (config.num_labels, 2 * width)
    assert torch.count_nonzero(model.head.linear.weight) == 0  # starts as the plain head
    model(batch).backward()
    assert model.head.linear.weight.grad.abs().sum() > 0
    with torch.no_grad():
        model.head.linear.weight.normal_()
    encoder_out = model.ebert(batch, model.head.token_positions(batch["input_ids"].shape[0]))
    base = model.head(encoder_out, batch)
    for bin_, changes in ((0, False), (1, True), (2, True), (3, False)):
        edited = dict(batch, motif_scores=batch["motif_scores"].clone())
        edited["motif_scores"][:, bin_] += 1.0
        assert torch.allclose(model.head(encoder_out, edited), base) != changes
    # the product motif x signal is a feature of its own: with every other weight 0 it alone moves the logits
    with torch.no_grad():
        model.head.linear.weight.zero_()
        model.head.linear.weight[0, width - 1] = 1.0  # centre-left bin (first of three), last motif x last track
    plain = model.head(encoder_out, batch)
    from ebert_modelzoo.models.heads import linear_inputs
    inputs = linear_inputs(batch, model.head.config_counts, model.head.linear_bins)
    signal = torch.where(batch["signal_mask"] > 0, batch["signal"], torch.zeros_like(batch["signal"]))
    expected = batch["motif_scores"][:, 1, 1] * signal[:, 1, tracks - 1]
    torch.testing.assert_close(inputs[:, width - 1], expected)
    no_term = EBertForFineTuningModel(config.model_copy(update={"head_linear_bins": 0})).eval()
    no_term.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("head.linear")})
    torch.testing.assert_close(plain - no_term.head(encoder_out, batch),
                               4.0 * torch.stack([expected] + [torch.zeros_like(expected)] * (config.num_labels - 1), 1))
