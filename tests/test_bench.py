"""Benchmark code: the analytic FLOP counter against a hand count, the benchmark batches against
the batch contract, the GPU peak table, and the runner's JSON/summary from a --quick run (every
benchmark, run once), peak-RSS measuring, missing inputs said so, targets rendered.
Nothing here measures or asserts speed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.bench_training import QUICK_SHAPES, SHAPES, ebert_config, make_batches, model_flops
from bench.common import run_measured, target, write_json
from bench.flops import step_flops
from bench.gemm import gpu_peak_bf16
from bench.summary import write_summary
from ebert_modelzoo.contract.batch import check_batch
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
    assert flops["ebert_dense"]["forward_encoder_matmuls"] == flops["peer"]["forward_encoder_matmuls"]
    assert flops["ebert_dense"]["forward_attention"] == flops["peer"]["forward_attention"]
    assert flops["ebert"]["forward_encoder_matmuls"] < flops["ebert_dense"]["forward_encoder_matmuls"]


def test_sparse_final_layer_flops_hand_count():
    # hidden 4, 2 layers, filter 8, batch 2 x seq 3; the last block computes 2 of the 6 rows.
    flops = step_flops(hidden=4, layers=2, filter_size=8, vocab=10, batch=2, seq_len=3,
                       head_tokens=2, final_layer_rows=2)
    first = 2 * (4 * 16 + 2 * 4 * 8) * 6  # every weight on all 6 rows: 1536
    last = 2 * (2 * 16) * 6 + 2 * (2 * 16 + 2 * 4 * 8) * 2  # K, V on 6 rows; Q, out, FFN on 2
    assert flops["forward_encoder_matmuls"] == first + last
    assert flops["forward_attention"] == 2 * 2 * 3 * 4 * 6 + 2 * 2 * 3 * 4 * 2  # 2 rows x 3 keys
    dense = step_flops(hidden=4, layers=2, filter_size=8, vocab=10, batch=2, seq_len=3, head_tokens=2)
    assert dense["forward_encoder_matmuls"] == 2 * first


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


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    """``python -m bench --quick`` run once: every benchmark at its small size."""
    out = tmp_path_factory.mktemp("quick")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results-dir", str(out)],
        cwd=ROOT, env=bench_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return out


def bench_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def test_quick_run_writes_json_and_summary(quick_results):
    tmp_path = quick_results
    data = json.loads((tmp_path / "training.json").read_text())
    assert data["benchmark"] == "training" and data["quick"] is True
    assert data["gemm"]["flop_per_s"] > 0
    entry = data["shapes"]["micro"]
    for mode in ("forward", "train_step"):
        cases = entry[mode]["cases"]
        assert set(cases) == {"ebert", "ebert_dense", "peer", "peer_gathered"}
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
    # the other benchmarks ran at their quick sizes into the same folder and judged nothing
    for name in ("preprocessing", "data_processor", "cerebras_lowering", "own_data", "reliability", "interpret",
                 "cpu_allocator"):
        other = json.loads((tmp_path / f"{name}.json").read_text())
        assert other["benchmark"] == name and other["quick"] is True
        assert other["targets"] and all(t["met"] is None for t in other["targets"].values())
        assert f"## {name} ({name}.json)" in summary
    assert "## Targets" in summary
    allocator = json.loads((tmp_path / "cpu_allocator.json").read_text())["shapes"]["demo_tiny"]
    if allocator["keep_applied"]:  # glibc: keeping freed memory removes the steps' page faults
        faults = {s: allocator["medians"][s]["minor_faults_per_step"] for s in ("default", "keep")}
        assert faults["keep"] < faults["default"] / 10, faults


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


def test_quick_preprocessing_figures_are_consistent(quick_results):
    data = json.loads((quick_results / "preprocessing.json").read_text())
    if not data["available"]:
        assert "smalt-examples" in data["reason"] and "throughput" not in data
        return
    tp = data["throughput"]
    assert tp["windows"] > 0 and tp["pipeline_mbp_per_s"] > 0 and tp["reference_mbp_per_s"] > 0
    assert abs(tp["speedup"] - tp["reference_s"] / tp["pipeline_s"]) < 0.01 * tp["speedup"] + 0.01
    memory = data["memory"]
    small, whole = memory["runs"]["0.5_mb"], memory["runs"]["whole_chromosome"]
    assert small["region_mbp"] == 0.5 and whole["region_mbp"] == memory["chromosome_mb"] == 2.0
    assert small["peak_rss_mb"] > 0 and whole["peak_rss_mb"] > 0
    assert data["targets"]["peak_rss_whole_chrX_mb"]["measured"] == whole["peak_rss_mb"]


def test_quick_data_processor_figures_are_consistent(quick_results):
    data = json.loads((quick_results / "data_processor.json").read_text())
    if not data["available"]:
        assert "smalt-examples" in data["reason"] and "models" not in data
        return
    assert "preprocessing pipeline" in data["setup"]["data"]
    one_worker = data["samples_per_s_one_worker_dataloader"]
    assert one_worker > 0 and data["samples_per_s_in_process"] > 0
    assert set(data["models"]) == {"ebert_tiny_class", "base_like"}
    for name, model in data["models"].items():
        consumed = model["batch"] / model["step"]["median_s"]
        assert abs(model["samples_per_s"] - consumed) <= 0.01 + 1e-3 * consumed
        assert abs(model["ratio_one_worker_over_model"] - one_worker / consumed) <= 0.1 + 1e-3 * one_worker / consumed
        assert data["targets"][f"one_worker_over_{name}"]["measured"] == model["ratio_one_worker_over_model"]


def test_quick_interpret_figures_are_consistent(quick_results):
    data = json.loads((quick_results / "interpret.json").read_text())
    tiny = data["models"]["ebert_tiny"]
    timings, variants = tiny["timings"], tiny["variants"]
    assert tiny["variants_per_s_per_cell_type"] == pytest.approx(variants / timings["variants_batched"]["median_s"])
    assert tiny["naive_variants_per_s_per_cell_type"] == pytest.approx(
        data["setup"]["per_model"]["ebert_tiny"]["naive_variants"] / timings["variants_naive"]["median_s"])
    assert tiny["variants_speedup"] == pytest.approx(
        tiny["variants_per_s_per_cell_type"] / tiny["naive_variants_per_s_per_cell_type"])
    assert tiny["ism_windows_per_s"] == pytest.approx(100 / 1000 / timings["ism_batched"]["median_s"])
    assert data["targets"]["ebert_tiny_variants_per_s_per_cell_type"]["measured"] == tiny["variants_per_s_per_cell_type"]


@pytest.mark.parametrize("script", ["bench_preprocessing.py", "bench_data_processor.py"])
def test_without_the_chrx_source_the_bench_says_so(script, tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), "--source", str(tmp_path / "absent.fa.gz"),
                           "--out", str(out)], cwd=ROOT, env=bench_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["available"] is False and "absent.fa.gz" in data["reason"] and "smalt-examples" in data["reason"]
    assert all(t["measured"] is None and t["met"] is None for t in data["targets"].values())


def test_without_the_cerebras_venv_the_bench_says_so(tmp_path):
    out = tmp_path / "out.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_cerebras_lowering.py"), "--out", str(out)],
                          cwd=ROOT, env=bench_env(EBERT_CEREBRAS_VENV=str(tmp_path / "no_venv")),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["available"] is False and str(tmp_path / "no_venv") in data["reason"]
    assert data["targets"]["validate_only_wall_s"]["measured"] is None and "lowering" not in data


def test_run_measured_reports_the_childs_own_peak_rss():
    # This process holds torch (hundreds of MB); a bare interpreter's peak must not inherit that.
    bare = run_measured([sys.executable, "-c", "pass"])
    big = run_measured([sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    assert bare["returncode"] == 0 and big["returncode"] == 0
    assert bare["peak_rss_mb"] < 100 and big["peak_rss_mb"] >= 200
    failed = run_measured([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"])
    assert failed["returncode"] == 3 and failed["output"] == "boom\n"


def test_summary_shows_each_target_met_or_not(tmp_path):
    write_json(tmp_path / "a.json", {"benchmark": "a", "conditions": {"cpu": "X", "cores": 2, "model_threads": 1,
                                                                      "load_average_1min_at_start": 3.0},
                                     "targets": {"fast": target(">= 5x", 6.0, True), "slow": target("<= 1", 2.0, False),
                                                 "info": target("none stated", 1.5, None)},
                                     "figures": {"x": 1}})
    write_json(tmp_path / "b.json", {"benchmark": "b", "conditions": {}, "available": False, "reason": "no venv",
                                     "targets": {"t": target("n", None, None)}})
    text = write_summary(tmp_path).read_text()
    assert "| a.json | fast | >= 5x | 6.000 | **met** | X, 2 cores; load 3.0 at start; model threads 1 |" in text
    assert "| a.json | slow | <= 1 | 2.000 | **not met** |" in text and "| a.json | info | none stated | 1.500 | n/a |" in text
    assert "| b.json | t | n | not measured | n/a |" in text and "Not measured: no venv" in text
    assert "- figures.x: 1" in text


def test_quick_own_data_figures_are_consistent(quick_results):
    data = json.loads((quick_results / "own_data.json").read_text())
    assert data["benchmark"] == "own_data" and data["quick"] is True
    for part in ("tables", "regions"):
        entry = data[part]
        assert entry["pipeline_sequences_per_s"] > 0 and entry["reference_sequences_per_s"] > 0
        assert abs(entry["speedup"] - entry["reference_s"] / entry["pipeline_s"]) < 0.01 * entry["speedup"] + 0.01
    assert data["predictions"]["tsv_rows_per_s"] > 0 and data["predictions"]["bigwig_values_per_s"] > 0
    memory = data["memory"]
    assert memory["large"]["rows"] == 10 * memory["small"]["rows"] and memory["small"]["peak_rss_mb"] > 0
    assert all(t["met"] is None for t in data["targets"].values())
