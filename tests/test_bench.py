"""Benchmark code: the analytic FLOP counter against a hand count, the benchmark batches against
the batch contract, the GPU peak table, and the runner's JSON/summary from a --quick run.
Nothing here measures or asserts speed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from bench.bench_training import QUICK_SHAPES, SHAPES, ebert_config, make_batches, model_flops
from bench.flops import step_flops
from bench.gemm import gpu_peak_bf16
from ebert_modelzoo.batch import check_batch
from ebert_modelzoo.models.ebert import input_dims

ROOT = Path(__file__).resolve().parents[1]


def test_step_flops_hand_count():
    # hidden 4, 1 layer, filter 8, vocab 10, batch 2 x seq 3, 2 head tokens, 1 track over 1 bin.
    flops = step_flops(hidden=4, layers=1, filter_size=8, vocab=10, batch=2, seq_len=3,
                       head_tokens=2, signal_tracks=1, num_bins=1)
    assert flops["forward_encoder_matmuls"] == 2 * (4 * 16 + 2 * 4 * 8) * 6  # 1536
    assert flops["forward_attention"] == 2 * 2 * 2 * 9 * 4  # QK^T and PV: 288
    assert flops["forward_mlm_head"] == 2 * (16 + 40) * 2  # 224
    assert flops["forward_signal_projection"] == 2 * (2 * 4) * 2  # 32
    assert flops["forward"] == 2080 and flops["train_step"] == 6240


def test_peer_head_sees_every_token_ebert_only_masked_ones():
    shape = SHAPES["tiny"]
    flops = model_flops(shape)
    head = 2 * (shape.hidden**2 + shape.hidden * shape.vocab)
    assert flops["peer"]["forward_mlm_head"] == head * shape.batch * shape.seq_len
    assert flops["ebert"]["forward_mlm_head"] == head * shape.batch * shape.predictions
    assert flops["peer_gathered"]["forward_mlm_head"] == flops["ebert"]["forward_mlm_head"]
    assert flops["ebert"]["forward_encoder_matmuls"] == flops["peer"]["forward_encoder_matmuls"]


def test_bench_batches_follow_the_contract_and_agree():
    for shape in (*SHAPES.values(), *QUICK_SHAPES.values()):
        ebert, peer = make_batches(shape, seed=1)
        config = ebert_config(shape)
        dims = check_batch(ebert, ("dna", "states", "signal", "mlm"), input_dims(config))
        assert dims["L"] == shape.seq_len and dims["N"] == shape.num_bins
        covered = shape.num_bins * shape.tokens_per_bin
        positions = ebert["masked_lm_positions"].long()
        assert positions.min() >= 1 and positions.max() <= covered
        assert all(len(set(row.tolist())) == shape.predictions for row in positions)
        assert torch.equal(ebert["attention_mask"].sum(1), torch.full((shape.batch,), covered + 2))
        labels = peer["labels"]
        assert int((labels != -100).sum()) == shape.batch * shape.predictions
        assert torch.equal(labels.gather(1, positions), ebert["labels"].long())
        assert torch.equal(peer["input_ids"], ebert["input_ids"].long())


def test_gpu_peak_table():
    assert gpu_peak_bf16("NVIDIA H100 80GB HBM3") == ("H100", 989.4e12)
    assert gpu_peak_bf16("NVIDIA H100 PCIe") == ("H100 PCIe", 756.0e12)
    assert gpu_peak_bf16("NVIDIA A100-SXM4-80GB") == ("A100", 312.0e12)
    assert gpu_peak_bf16("Some Unknown GPU") is None


def test_quick_run_writes_json_and_summary(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results-dir", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "training.json").read_text())
    assert data["benchmark"] == "training" and data["quick"] is True
    assert data["gemm"]["flop_per_s"] > 0
    entry = data["shapes"]["micro"]
    for mode in ("forward", "train_step"):
        cases = entry[mode]["cases"]
        assert set(cases) == {"ebert", "peer", "peer_gathered"}
        for case in cases.values():
            assert case["repeats"] == 2 and 0 < case["min_s"] <= case["median_s"] <= case["max_s"]
            assert case["fraction_of_roofline"] > 0
        assert entry[mode]["gemm_interleaved"]["flop_per_s"] == entry[mode]["roofline_flop_per_s"] > 0
        ratio = cases["peer"]["median_s"] / cases["ebert"]["median_s"]
        assert abs(entry[mode]["ratio_peer_over_ebert"] - ratio) < 1e-12
    if not torch.cuda.is_available():
        assert data["gpu"]["available"] is False and data["gpu"]["reason"]
    summary = (tmp_path / "SUMMARY.md").read_text()
    assert "EBERT vs transformers BertForMaskedLM" in summary and "### micro" in summary


def test_gpu_code_path_runs_under_bf16_autocast_on_cpu():
    # The CUDA section is run_shape with bf16 autocast and a datasheet-peak roofline; run that
    # code on CPU at the micro shape so it is exercised where no GPU is lent.
    from bench.bench_training import gpu_section, run_shape

    result = run_shape(QUICK_SHAPES["micro"], repeats=1, autocast=torch.bfloat16, roofline_flop_per_s=1e12)
    for mode in ("forward", "train_step"):
        assert result[mode]["roofline_flop_per_s"] == 1e12 and result[mode]["gemm_interleaved"] is None
        assert all(case["fraction_of_roofline"] > 0 for case in result[mode]["cases"].values())
    if not torch.cuda.is_available():
        section = gpu_section(1)
        assert section["available"] is False and "CUDA" in section["reason"] and "train_step" not in section
