"""The README's main command, `python -m ebert_modelzoo.demo`, run for real (``--quick``) as a
subprocess once; then its outputs, its console summary and a rerun that reuses finished work."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from ebert_modelzoo.config.base import read_yaml
from ebert_modelzoo.config.params import load_params
from ebert_modelzoo.contract import schema
from ebert_modelzoo.demo.runs import FINETUNE_PARAMS, PRETRAIN_PARAMS, peak_learning_rate, plan_runs
from ebert_modelzoo.demo.stages import COMPARISONS
from ebert_modelzoo.evaluation.predict import Predictions, predict
from ebert_modelzoo.evaluation.report import METRICS, VariantScores, variant_metrics

REPO = Path(__file__).resolve().parents[2]
VARIANTS = ("EBERT DNA + epigenome + motif tracks", "EBERT DNA + epigenome, linear term", "EBERT DNA + epigenome",
            "EBERT DNA only", "EBERT epigenome only",
            "EBERT DNA + epigenome + motif tracks, from scratch", "motif + accessibility baseline",
            "epigenome logistic regression", "4-mer logistic regression", "CNN peer (DNA + epigenome)")
TFS = ("CTCF", "NRF1", "JUND", "REST")
FINE_TUNING = ("finetune_motifs", "finetune_linear", "finetune_dna_epigenome", "finetune_dna_only", "finetune_epigenome_only",
               "finetune_scratch")
SEEDS = (1, 2)  # --quick
RUNS = ("pretrain_dna_epigenome", "pretrain_dna_only") + tuple(f"{v}_seed{s}" for v in FINE_TUNING for s in SEEDS)


def run_demo(output_dir: Path) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ebert_modelzoo.demo", "--quick", "--no_progress",
                           "--output_dir", str(output_dir)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    return done, time.perf_counter() - began


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    done, seconds = run_demo(out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done, seconds


def results(out: Path) -> dict:
    return json.loads((out / "report" / "results.json").read_text())


def test_datasets_are_built_by_the_pipeline(demo):
    out, _, _ = demo
    for kind in ("pretraining", "finetuning"):
        for split in ("train", "validation", "test"):
            params = json.loads((out / "data" / kind / split / "data_params.json").read_text())
            assert params["kind"] == kind and params["split"] == split
            assert params["cell_types"][3] == "sim_tissue1" and params["tokens_per_bin"] == 50
            assert all((out / "data" / kind / split / s["file"]).is_file() for s in params["shards"])
    assert json.loads((out / "data" / "finetuning" / "test" / "data_params.json").read_text())["labels"]


def test_every_run_finished_with_a_checkpoint_params_and_log(demo):
    out, _, _ = demo
    for name in RUNS:
        params = load_params(out / "params" / f"{name}.yaml")
        steps = params.trainer.init.loop.max_steps
        assert Path(params.trainer.init.model_dir) == out / "runs" / name
        state = torch.load(out / "runs" / name / f"checkpoint_{steps}.mdl", weights_only=True)
        assert state["step"] == steps
        log = [json.loads(line) for line in (out / "runs" / name / "train_log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in log][-1] == steps and all(np.isfinite(r["loss"]) for r in log)
    dna_only = load_params(out / "params" / "finetune_dna_only_seed1.yaml").trainer
    assert dna_only.init.model.num_signal_tracks == 0 and not dna_only.fit.train_dataloader.use_signal
    assert dna_only.init.model.num_motif_tracks == 0 and dna_only.fit.train_dataloader.motif_file is None
    assert not load_params(out / "params" / "finetune_epigenome_only_seed1.yaml").trainer.fit.train_dataloader.use_dna
    assert load_params(out / "params" / "finetune_scratch_seed2.yaml").trainer.fit.ckpt_path is None
    motifs = load_params(out / "params" / "finetune_motifs_seed2.yaml").trainer
    assert motifs.init.model.num_motif_tracks == 4 and motifs.fit.train_dataloader.motif_window_bp == 400
    assert motifs.init.seed == motifs.fit.train_dataloader.shuffle_seed == 2
    paper = load_params(out / "params" / "finetune_dna_epigenome_seed1.yaml").trainer.init.model
    assert paper.num_motif_tracks == 0 and paper.head_linear_bins == 0 and dna_only.init.model.head_linear_bins == 0
    linear = load_params(out / "params" / "finetune_linear_seed1.yaml").trainer
    assert linear.init.model.num_motif_tracks == 0 and linear.init.model.head_linear_bins == 5
    assert motifs.init.model.head_linear_bins == 5 and motifs.init.model.head_linear_scale == 30
    for name in RUNS[2:]:  # every fine-tuning run trains on bound windows 8x, scores every window once
        trainer = load_params(out / "params" / f"{name}.yaml").trainer
        assert trainer.fit.train_dataloader.bound_repeats == 8
        assert trainer.fit.val_dataloader.bound_repeats == trainer.validate_.val_dataloader.bound_repeats == 1
    pretraining = load_params(out / "params" / "pretrain_dna_epigenome.yaml").trainer.init.model
    assert pretraining.state_mlm_loss_weight > 0 and pretraining.num_signal_tracks == 3
    # fine-tuning runs were evaluated during training: the validation points of the training curves
    assert sorted(p.name for p in (out / "runs" / "finetune_motifs_seed1" / "eval").glob("metrics_step_*.json"))


def test_predictions_are_in_the_baselines_sample_order(demo):
    out, _, _ = demo
    test_windows = json.loads((out / "data" / "finetuning" / "test" / "data_params.json").read_text())["num_windows"]
    labels = None
    for name in RUNS[2:]:
        found = Predictions.load(next((out / "runs" / name).glob("predictions_test_step_*.npz")))
        assert found.cell_types == ("sim_tissue1",) and found.label_names == TFS
        assert found.scores.shape == (1, test_windows, 4) and np.isfinite(found.scores).all()
        if labels is not None:
            assert np.array_equal(found.labels, labels)
        labels = found.labels
    assert 0 < labels.mean() < 0.05  # rare binding, as the simulator says


def test_predictions_follow_the_shards_and_match_the_trainers_metrics(demo):
    """Scores land on the right (cell type, window): labels equal the shards' own, read with h5py,
    and metrics recomputed from the arrays equal those of the trainer's evaluation pass."""
    out, _, _ = demo
    params_file = out / "params" / "finetune_motifs_seed1.yaml"
    found = predict(load_params(params_file), params_file)
    split = out / "data" / "finetuning" / "test"
    data_params = json.loads((split / "data_params.json").read_text())
    cell = data_params["cell_types"].index("sim_tissue1")
    raw = []
    for shard in data_params["shards"]:
        with h5py.File(split / shard["file"], "r") as handle:
            raw.append(handle[schema.DATASET_LABELS][cell])
    raw = np.concatenate(raw)
    assert np.array_equal(found.labels[0], (raw == schema.LABEL_BOUND).astype(np.float32))
    assert np.array_equal(found.weights[0], (raw != schema.LABEL_AMBIGUOUS).astype(np.float32))
    recomputed = variant_metrics(VariantScores("a", found.label_names, found.scores, found.labels, found.weights))
    for tf in TFS:
        assert recomputed[tf]["auprc"] == pytest.approx(found.metrics[f"auprc/{tf}"], abs=1e-6)
        assert recomputed[tf]["auroc"] == pytest.approx(found.metrics[f"auroc/{tf}"], abs=1e-6)
    cached = Predictions.load(out / "runs" / "finetune_motifs_seed1" / f"predictions_test_step_{found.step}.npz")
    assert np.allclose(cached.scores, found.scores, atol=1e-5)  # other thread count: other summation order


def test_report_schema_and_files(demo):
    out, _, _ = demo
    data = results(out)
    assert [v["name"] for v in data["variants"]] == list(VARIANTS)
    seeds = {v["name"]: v["seeds"]["seeds"] for v in data["variants"]}
    assert all(seeds[name] == list(SEEDS) for name in VARIANTS[:6] + VARIANTS[-1:])
    assert all(seeds[name] == [None] for name in VARIANTS[6:9])
    for variant in data["variants"]:
        assert set(variant["metrics"]) == set(TFS) | {"mean"}
        for values in variant["metrics"].values():
            assert set(values) == set(METRICS)
            assert all(v is None or 0.0 <= v <= 1.0 for v in values.values())
    assert data["evaluation"]["cell_types"] == ["sim_tissue1"]
    assert data["evaluation"]["regions"] == ["chrX:49000000-49500000", "chrX:50500000-51500000"]
    # every verdict also on each test stretch alone, the windows split as the shards hold them
    assert [p["region"] for p in data["by_region"]] == data["evaluation"]["regions"]
    assert sum(p["windows"] for p in data["by_region"]) == data["evaluation"]["samples"]
    assert all(len(p["comparisons"]) == len(COMPARISONS) for p in data["by_region"])
    # 10 kb bootstrap blocks at the test split's 200 bp stride
    assert data["evaluation"]["block_windows"] == 50 and "in blocks of 50 consecutive windows" in data["verdict"]
    assert [c["question"] for c in data["comparisons"]] == [c.question for c in COMPARISONS]
    assert all(c["answer"] in ("yes", "no", "unclear") for c in data["comparisons"])
    assert set(data["extra"]["runs"]) == set(RUNS) and data["extra"]["mode"] == "quick"
    table = (out / "report" / "results.md").read_text()
    for tf in TFS:
        for name in VARIANTS:
            assert f"| {tf} | {name} |" in table
    # the known-truth section (ebert_modelzoo/interpret/report_section.py), whatever the quick model learned
    assert "## What the model learned: planted motifs and open chromatin" in table
    for tf in TFS:
        assert f"\n| {tf} | " in table.split("## What the model learned")[1]
    truth = json.loads((out / "report" / "interpretation.json").read_text())
    # (a), handed the motifs as tracks: ISM (through them) and gradient x input (the DNA tokens alone); (a0): gradient
    assert [(t["variant"], t["tf"]) for t in truth] == [(v, tf) for v in ("(a)", "(a0)") for tf in TFS]
    assert all(t["core_mutation"]["sites"] > 0 and t["core_mutation"]["cell_type"] == "sim_tissue1" for t in truth)
    assert [[r["method"] for r in t["recoveries"]] for t in truth] == [["ism", "gradient"]] * 4 + [["gradient"]] * 4
    assert all(t["motif_inputs"] for t in truth[:4]) and not any(t["motif_inputs"] for t in truth[4:])
    assert "(a) is handed the planted matrices" in table
    for plot in ("pr_curves.png", "auprc.png", "training_curves.png", "interpretation.png"):
        raw = (out / "report" / plot).read_bytes()
        assert raw[:8] == b"\x89PNG\r\n\x1a\n" and len(raw) > 10_000
        width, height = int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")
        assert width >= 400 and height >= 300


def test_epigenome_model_beats_chance(demo):
    out, _, _ = demo
    metrics = {v["name"]: v["metrics"] for v in results(out)["variants"]}
    assert metrics["EBERT DNA + epigenome"]["mean"]["auroc"] > 0.6
    assert metrics["EBERT DNA + epigenome + motif tracks"]["mean"]["auroc"] > 0.6
    assert metrics["epigenome logistic regression"]["mean"]["auroc"] > 0.8
    assert metrics["motif + accessibility baseline"]["mean"]["auroc"] > 0.9


def test_console_summary(demo):
    out, done, _ = demo
    summary = done.stdout[done.stdout.index("EBERT demo: test split"):]
    for name in VARIANTS:
        assert name in summary
    assert "Does the epigenome help?" in summary and "Does pre-training help?" in summary
    assert f"Report: {out / 'report'}/" in summary
    assert "$ python run.py CPU -p " in done.stdout  # every run's command is printed
    assert "$ python data_processing/create_pretraining_data.py --config" in done.stdout


def test_rerun_reuses_finished_work_and_restarts_a_changed_run(demo):
    out, first, seconds = demo
    before = results(out)
    state = out / ".demo_state" / "finetune_scratch_seed1.json"
    timings = before["extra"]["seconds"]
    state.write_text(json.dumps({"fingerprint": "an older run"}))
    done, again = run_demo(out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipping" in done.stdout and "finished shards" in done.stdout
    assert done.stdout.count("nothing to train") == len(RUNS) - 1
    assert "finetune_scratch_seed1: its settings, data, code or starting checkpoint changed; starting it over" in done.stdout
    assert done.stdout.count("scoring the test split with") == 1
    assert again < seconds
    after = results(out)
    assert after["variants"][:4] == before["variants"][:4]
    # the report keeps the first run's timings of the work this rerun found finished
    reused = set(after["extra"]["reused_from_an_earlier_run"])
    assert "finetune_motifs_seed1" in reused and "finetune_scratch_seed1" not in reused
    assert all(after["extra"]["seconds"][name] == timings[name] for name in reused)
    # runs trained two at a time: each run's own seconds, and the training phase's wall time
    assert before["extra"]["jobs"] == 2 and "training" in timings and all(name in timings for name in RUNS)


def test_default_pretraining_run_is_the_shipped_default_params():
    """`python run.py CPU` (params/ebert_tiny.yaml) is the demo's run (i), so `-m eval` works after make demo."""
    runs = {r.name: r for r in plan_runs(Path("demo_output"), quick=False)}

    def normalised(data: dict) -> dict:
        def walk(value, key=""):
            if isinstance(value, dict):
                return {k: walk(v, k) for k, v in value.items()}
            if key == "motif_file" and value:
                return str(REPO / value)  # the demo resolves it against the repository
            return str(Path(value)) if key in ("data_dir", "model_dir", "ckpt_path") and value else value
        return walk(data)

    assert normalised(runs["pretrain_dna_epigenome"].params) == normalised(read_yaml(PRETRAIN_PARAMS))
    assert normalised(runs["finetune_motifs_seed1"].params) == normalised(read_yaml(FINETUNE_PARAMS))
    assert runs["finetune_scratch_seed3"].params["trainer"]["init"]["loop"] == read_yaml(FINETUNE_PARAMS)["trainer"]["init"]["loop"]


def test_default_plan_trains_the_linear_term_variants_for_the_shipped_steps_and_the_others_for_fewer():
    """(a), (a1), (c) and (e) train for the shipped params' 1,200 steps with their schedule; (a0)
    and (b) for 600 steps, their warmup and decay scaled from the same peak learning rate."""
    runs = {r.name: r for r in plan_runs(Path("demo_output"), quick=False)}
    shipped = read_yaml(FINETUNE_PARAMS)["trainer"]["init"]
    for name in ("finetune_motifs", "finetune_linear", "finetune_epigenome_only", "finetune_scratch"):
        for seed in (1, 2, 3):
            init = runs[f"{name}_seed{seed}"].params["trainer"]["init"]
            assert init["loop"] == shipped["loop"] and init["schedulers"] == shipped["schedulers"]
            assert runs[f"{name}_seed{seed}"].max_steps == 1200
    for name in ("finetune_dna_epigenome", "finetune_dna_only"):
        init = runs[f"{name}_seed1"].params["trainer"]["init"]
        assert init["loop"]["max_steps"] == init["loop"]["eval_frequency"] == init["checkpoint"]["steps"] == 600
        phases = init["schedulers"][0]["SequentialLR"]["schedulers"]
        assert [p["LinearLR"]["total_iters"] for p in phases] == [60, 540]
        assert peak_learning_rate(runs[f"{name}_seed1"].params) == peak_learning_rate(read_yaml(FINETUNE_PARAMS))
    assert {r.max_steps for r in plan_runs(Path("demo_output"), quick=True) if r.stage == "fine-tuning"} == {60}


@pytest.mark.parametrize("config, kind, params", [
    ("roadmap_hg38_pretraining.yaml", "pretraining", "ebert_base.yaml"),
    ("encode_dream_finetuning.yaml", "finetuning", "ebert_finetune_base.yaml"),
])
def test_real_scale_configs_fit_the_base_params(config, kind, params):
    """The shipped real-scale preprocessing configs are valid and make the data ebert_base expects."""
    from ebert_modelzoo.preprocessing.config import load_config
    from ebert_modelzoo.tokenizer import DNATokenizer

    data = load_config(REPO / "data_processing" / "configs" / config, kind)
    base = load_params(REPO / "params" / params).trainer
    model, loader = base.init.model, base.fit.train_dataloader
    k, windows = data.tokenizer.k, data.windows
    assert DNATokenizer(k).vocab_size == model.vocab_size
    assert windows.bin_size // k == model.tokens_per_bin
    assert windows.window_length // k + 2 <= loader.max_sequence_length <= model.max_position_embeddings
    assert data.chromatin_states.num_states == model.num_chromatin_states
    assert len(data.signal.tracks or []) >= model.num_signal_tracks
    assert Path(loader.data_dir).parent == Path(data.output.output_dir).relative_to(REPO)
