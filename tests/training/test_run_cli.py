"""run.py as a user runs it (real subprocesses, real model, real shards): training, resume
equivalence after a clean stop and after SIGKILL, fine-tuning from a pre-training checkpoint,
evaluation modes, and one-line errors."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ebert_modelzoo.training.checkpoint import list_checkpoints
from tests.run_cases import data_for
from tests.run_cases import write_params as write_shipped_params

from .fixtures import (
    REPO,
    finetune_params,
    logged_losses,
    pretrain_params,
    run_py,
    write_params,
)

N = 10  # resume point; straight runs go to 2N


@pytest.fixture(scope="module")
def straight(tmp_path_factory, data) -> Path:
    """2N steps in one train_and_eval run (checkpoints every 5, evaluation every 10)."""
    root = tmp_path_factory.mktemp("straight")
    params = write_params(root / "p.yaml", pretrain_params(data, root / "model", max_steps=2 * N))
    run_py("CPU", "--params", str(params), "--mode", "train_and_eval")
    return root / "model"


def final_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(list_checkpoints(model_dir)[-1][1], weights_only=True)["model"]


def assert_same_run(a: Path, b: Path, steps: range) -> None:
    la, lb = logged_losses(a), logged_losses(b)
    for step in steps:
        assert lb[step] == pytest.approx(la[step], abs=1e-6), step
    wa, wb = final_weights(a), final_weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=0, atol=1e-6)


def test_training_lowers_the_loss_and_writes_checkpoints_events_metrics(straight):
    losses = logged_losses(straight)
    assert sorted(losses) == list(range(1, 2 * N + 1))
    first, last = sum(losses[s] for s in range(1, 6)) / 5, sum(losses[s] for s in range(16, 21)) / 5
    assert last < first - 0.1, (first, last)
    assert [step for step, _ in list_checkpoints(straight)] == [5, 10, 15, 20]
    assert not [p for p in straight.iterdir() if p.name.endswith(".tmp")]
    for step in (10, 20):
        metrics = (straight / "eval" / f"metrics_step_{step}.json").read_text()
        assert '"mlm_accuracy"' in metrics and '"mlm_perplexity"' in metrics and f'"step": {step}' in metrics
    state = torch.load(straight / "checkpoint_20.mdl", weights_only=True)
    assert set(state) >= {"model", "optimizer", "schedulers", "step", "rng", "data_state", "params"}
    assert state["step"] == 20 and state["params"]["trainer"]["init"]["model"]["name"] == "ebert"


def test_resume_after_a_stop_matches_the_straight_run(tmp_path, data, straight):
    params = write_params(tmp_path / "p.yaml", pretrain_params(data, tmp_path / "model", max_steps=2 * N))
    run_py("CPU", "--params", str(params), "--mode", "train_and_eval", "--num_steps", str(N))
    assert list_checkpoints(tmp_path / "model")[-1][0] == N
    resumed = run_py("CPU", "--params", str(params), "--mode", "train_and_eval")
    assert f"checkpoint_{N}.mdl (checkpoint of step {N}" in resumed.stdout
    assert_same_run(straight, tmp_path / "model", range(N + 1, 2 * N + 1))


def logged_rates(model_dir: Path) -> dict[int, float]:
    """step -> learning rate from train_log.jsonl (a resumed run's values win)."""
    lines = (model_dir / "train_log.jsonl").read_text().splitlines()
    return {record["step"]: record["lr"] for record in map(json.loads, lines)}


def test_resume_with_the_schedule_but_not_the_optimizer_keeps_the_learning_rate(tmp_path, data, straight):
    params = write_params(tmp_path / "p.yaml", pretrain_params(data, tmp_path / "model", max_steps=2 * N))
    run_py("CPU", "--params", str(params), "--mode", "train", "--num_steps", str(N))
    run_py("CPU", "--params", str(params), "--mode", "train",
           "--load_checkpoint_states", "model,schedulers,step,dataloader,rng")
    rates, expected = logged_rates(tmp_path / "model"), logged_rates(straight)
    assert [step for step in rates if step > N] == list(range(N + 1, 2 * N + 1))
    assert {step: rates[step] for step in range(N + 1, 2 * N + 1)} == pytest.approx(
        {step: expected[step] for step in range(N + 1, 2 * N + 1)}, rel=1e-6)


def test_resume_after_sigkill_matches_the_straight_run(tmp_path, data, straight):
    model_dir = tmp_path / "model"
    params = write_params(tmp_path / "p.yaml", pretrain_params(data, model_dir, max_steps=2 * N))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(REPO / "run.py"), "CPU", "--params", str(params),
                             "--mode", "train_and_eval"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not (model_dir / "checkpoint_5.mdl").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "run ended before its first checkpoint"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = list_checkpoints(model_dir)[-1][0]
    assert killed_at < 2 * N, "the run finished before it could be killed"
    run_py("CPU", "--params", str(params), "--mode", "train_and_eval")
    assert_same_run(straight, model_dir, range(killed_at + 1, 2 * N + 1))


def test_finetune_from_a_pretraining_checkpoint(tmp_path, data, straight):
    params = finetune_params(data, tmp_path / "fine")
    params["trainer"]["fit"]["ckpt_path"] = str(straight / "checkpoint_20.mdl")
    path = write_params(tmp_path / "fine.yaml", params)
    done = run_py("CPU", "--params", str(path), "--mode", "train_and_eval")
    assert "'ebert' checkpoint: loading its weights only" in done.stdout
    assert "non-strictly" in done.stdout
    start = torch.load(straight / "checkpoint_20.mdl", weights_only=True)["model"]
    tuned = torch.load(tmp_path / "fine" / "checkpoint_6.mdl", weights_only=True)["model"]
    assert any(k.startswith("head.") for k in tuned) and not any(k.startswith("mlm_head.") for k in tuned)
    assert start["ebert.embeddings.word_embeddings.weight"].shape == tuned["ebert.embeddings.word_embeddings.weight"].shape
    import json

    metrics = json.loads((tmp_path / "fine" / "eval" / "metrics_step_6.json").read_text())
    for name in ("CTCF", "NRF1", "REST", "mean"):
        assert f"auroc/{name}" in metrics and f"auprc/{name}" in metrics
        assert f"recall_at_10_fdr/{name}" in metrics and f"recall_at_50_fdr/{name}" in metrics
    assert set(metrics["per_cell_type"]) == {"GM12878", "K562"}

    # strict loading of the same checkpoint names the mismatched weights
    params["trainer"]["init"]["checkpoint"]["disable_strict_checkpoint_loading"] = False
    params["trainer"]["init"]["model_dir"] = str(tmp_path / "strict")
    done = run_py("CPU", "--params", str(write_params(tmp_path / "strict.yaml", params)), check=1)
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "missing from the checkpoint: head." in done.stderr and "--disable_strict_checkpoint_loading" in done.stderr


def test_eval_and_eval_all(tmp_path, data, straight):
    params = write_params(tmp_path / "p.yaml", pretrain_params(data, straight))
    run_py("CPU", "--params", str(params), "--mode", "eval_all", "--model_dir", str(tmp_path / "copy"), check=1)
    done = run_py("CPU", "--params", str(params), "--mode", "eval_all")
    evaluated = [int(line.split("of step ")[1].split(";")[0]) for line in done.stdout.splitlines() if "(checkpoint of step " in line]
    assert evaluated == [5, 10, 15, 20]
    for step in (5, 15):
        assert (straight / "eval" / f"metrics_step_{step}.json").is_file()
    done = run_py("CPU", "--params", str(params), "--mode", "eval", "--checkpoint_path",
                  str(straight / "checkpoint_10.mdl"), "--num_steps", "1")
    assert "eval at step 10" in done.stdout


def test_bad_params_exit_2_with_one_line_naming_the_key(tmp_path, data):
    params = pretrain_params(data, tmp_path / "model")
    params["trainer"]["init"]["model"]["hidden_sizee"] = 3
    path = write_params(tmp_path / "bad.yaml", params)
    done = run_py("CPU", "--params", str(path), check=2)
    assert done.stderr == f"error: {path}: trainer.init.model.hidden_sizee: unknown key (did you mean 'hidden_size'?)\n"


def test_model_data_mismatch_names_both_files(tmp_path, data):
    params = pretrain_params(data, tmp_path / "model")
    params["trainer"]["init"]["model"]["vocab_size"] = 11
    path = write_params(tmp_path / "p.yaml", params)
    done = run_py("CPU", "--params", str(path), check=2)
    assert str(path) in done.stderr and str(data["pre_train"] / "data_params.json") in done.stderr
    assert "trainer.init.model.vocab_size is 11" in done.stderr and done.stderr.count("\n") == 1


def test_missing_data_folder_exits_1(tmp_path, data):
    params = pretrain_params(data, tmp_path / "model")
    params["trainer"]["fit"]["train_dataloader"]["data_dir"] = str(tmp_path / "nowhere")
    done = run_py("CPU", "--params", str(write_params(tmp_path / "p.yaml", params)), check=1)
    assert done.stderr.startswith("error: ") and str(tmp_path / "nowhere") in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_mismatched_or_broken_checkpoint_exits_1(tmp_path, data, straight):
    params = pretrain_params(data, tmp_path / "model")
    params["trainer"]["init"]["model"].update(hidden_size=48, num_heads=2)
    path = write_params(tmp_path / "p.yaml", params)
    done = run_py("CPU", "--params", str(path), "--checkpoint_path", str(straight / "checkpoint_20.mdl"), check=1)
    assert "checkpoint does not match the model, shapes differ" in done.stderr and "(32,) vs model (48,)" in done.stderr
    broken = tmp_path / "broken.mdl"
    broken.write_bytes(b"not a checkpoint")
    done = run_py("CPU", "--params", str(path), "--checkpoint_path", str(broken), check=1)
    assert f"{broken}: not a readable checkpoint" in done.stderr and done.stderr.count("\n") == 1


def test_default_params_are_announced(tmp_path):
    done = run_py("CPU", "--model_dir", str(tmp_path / "m"), "--max_steps", "1", check=None)
    assert "params/ebert_tiny.yaml" in done.stdout
    if done.returncode:  # without the demo's data the run stops with a one-line error
        assert done.returncode == 1 and "demo_output/data/pretraining/train" in done.stderr


def test_csx_without_cerebras_is_a_clear_error(tmp_path, data):
    path = write_params(tmp_path / "p.yaml", pretrain_params(data, tmp_path / "model"))
    done = run_py("CSX", "--params", str(path), check=1)
    assert "CSX needs cerebras.pytorch" in done.stderr and "tools/cerebras_venv.sh ensure" in done.stderr


def test_mode_predict_points_at_the_predict_command():
    done = run_py("CPU", "-m", "predict", check=2)
    assert "python -m ebert_modelzoo.evaluation.predict -p PARAMS --out predictions.tsv" in done.stderr.splitlines()[-1]


def test_eval_without_checkpoint_says_where_it_looked(tmp_path, data):
    params = pretrain_params(data, tmp_path / "model")
    params["trainer"]["init"]["model_dir"] = "relative/model"
    path = write_params(tmp_path / "p.yaml", params)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "run.py"), "CPU", "--params", str(path), "-m", "eval"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert f"{tmp_path / 'relative' / 'model'}: no checkpoint to evaluate" in last
    assert "read from the current folder" in last and "-o/--model_dir" in last


def test_default_params_read_their_paths_from_the_repository(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "run.py"), "CPU", "-m", "eval", "-o", "elsewhere"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert f"its relative paths are read from {REPO}" in done.stdout
    assert done.returncode == 1 and f"{tmp_path / 'elsewhere'}: no checkpoint to evaluate" in done.stderr


def test_csx_flags_are_rejected_elsewhere(tmp_path, data):
    path = write_params(tmp_path / "p.yaml", pretrain_params(data, tmp_path / "model"))
    done = run_py("CPU", "--params", str(path), "--validate_only", check=2)
    assert "--validate_only is only for target CSX" in done.stderr
    done = run_py("CSX", "--params", str(path), "--validate_only", "--compile_only", check=2)
    assert "not allowed with argument" in done.stderr


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node 2 ARGS`` in the repository root, one thread a rank."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )


def test_gloo_data_parallel_matches_one_process():
    """Without DDP on gloo, ranks start from rank 0's weights and average their gradients after
    backward: two ranks on half a batch each train like one process on the whole batch."""
    done = torchrun("-m", "tests.training.gloo_ranks")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    # the two ranks share one stdout pipe, so their lines may interleave
    assert sorted(re.findall(r"rank (\d) ok", done.stdout)) == ["0", "1"]


def test_gloo_runs_end_without_an_abort_at_exit():
    """A finished gloo run must exit 0: without end_process, gloo worker threads that outlive the
    process group aborted 7 of 20 such runs at interpreter shutdown on this machine."""
    for attempt in range(6):
        done = torchrun("-m", "tests.training.gloo_ranks")
        assert done.returncode == 0, f"attempt {attempt}: " + done.stderr[-1500:]


def test_torchrun_data_parallel_on_cpu(tmp_path, data):
    """Two processes (gloo): each takes half of every global batch; rank 0 alone reports and
    writes checkpoints."""
    path = write_params(tmp_path / "p.yaml", pretrain_params(data, tmp_path / "model", loop={"max_steps": 4}))
    done = torchrun(str(REPO / "run.py"), "CPU", "--params", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("training steps 1..4") == 1
    assert [s for s, _ in list_checkpoints(tmp_path / "model")] == [4]
    assert sorted(logged_losses(tmp_path / "model")) == [1, 2, 3, 4]


def test_resume_at_an_epoch_end_matches_the_straight_run(tmp_path):
    """The shipped tiny config on two shards of 16 windows: 10 batches an epoch, so the resumed
    run starts exactly at an epoch's end (its next epoch begins before the RNG state is restored)."""
    data = data_for("ebert_tiny.yaml", tmp_path / "data", learnable=True, shard_windows=(16, 16))
    init = {"logging": {"log_steps": 1}, "checkpoint": {"steps": N}}
    runs = {}
    for name in ("straight", "resumed"):
        runs[name] = tmp_path / name
        params = write_shipped_params("ebert_tiny.yaml", tmp_path / f"{name}.yaml", data, runs[name], init)
        if name == "resumed":
            run_py("CPU", "--params", str(params), "--max_steps", str(2 * N), "--num_steps", str(N))
            state = torch.load(runs[name] / f"checkpoint_{N}.mdl", weights_only=True)
            assert state["data_state"] == {"epoch": 0, "batch": N}
        run_py("CPU", "--params", str(params), "--max_steps", str(2 * N))
    assert_same_run(runs["straight"], runs["resumed"], range(N + 1, 2 * N + 1))
