"""What a run reports: console lines, TensorBoard events (model_dir/train, model_dir/eval),
evaluation metrics as JSON (model_dir/eval/metrics_step_<N>.json) and the training loss as JSON
lines (model_dir/train_log.jsonl: one ``{"step", "loss", "lr", "samples_per_sec"}`` per log line)."""
from __future__ import annotations

import json
import logging
import math
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Mapping, Optional

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ebert_modelzoo.atomic import atomic_write_text

LOGGER = logging.getLogger("ebert_modelzoo")


def metrics_path(model_dir: str | Path, step: int, name: str = "eval") -> Path:
    """Where the metrics of the evaluation at ``step`` are written."""
    return Path(model_dir) / name / f"metrics_step_{step}.json"


def train_log_path(model_dir: str | Path) -> Path:
    """The JSONL training log of a run (one object per logged step)."""
    return Path(model_dir) / "train_log.jsonl"


def _truncate_train_log(path: Path, step: int) -> None:
    """Drop the lines after ``step`` (a resumed run logs those steps again), atomically."""
    if not path.is_file():
        return
    def keep(line: str) -> bool:
        try:
            return json.loads(line).get("step", 0) <= step
        except ValueError:  # a line cut short by a killed run
            return False

    lines = path.read_text().splitlines()
    kept = [line for line in lines if line.strip() and keep(line)]
    if len(kept) == len(lines):
        return
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))


def write_metrics(model_dir: str | Path, step: int, metrics: Mapping[str, Any], name: str = "eval") -> Path:
    """Write ``metrics`` (plus the step) as JSON, atomically; NaN becomes null."""
    path = metrics_path(model_dir, step, name)
    path.parent.mkdir(parents=True, exist_ok=True)

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, Mapping):
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    atomic_write_text(path, json.dumps({"step": step, **clean(dict(metrics))}, indent=2, sort_keys=True) + "\n")
    return path


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metric dicts -> {"a/b/c": value} for TensorBoard (non-numbers dropped)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


class RunReporter:
    """Console and TensorBoard output of one process (silent on non-main ranks)."""

    def __init__(self, model_dir: str | Path, enabled: bool, samples_per_step: int, tokens_per_sample: int) -> None:
        self.model_dir = Path(model_dir)
        self.enabled = enabled
        self.samples_per_step = samples_per_step
        self.tokens_per_sample = tokens_per_sample
        self._writers: dict[str, SummaryWriter] = {}
        self._last_time: Optional[float] = None
        self._last_step = 0
        self._began: Optional[tuple[float, int]] = None
        self._end: Optional[int] = None
        self._bar: Optional[tqdm] = None
        self._redirect = ExitStack()

    def _writer(self, name: str) -> SummaryWriter:
        if name not in self._writers:
            self._writers[name] = SummaryWriter(log_dir=str(self.model_dir / name))
        return self._writers[name]

    def start(self, step: int, end: Optional[int] = None) -> None:
        """Start the throughput clock at ``step``; the JSONL log keeps only the steps up to it.
        With ``end`` each step line carries an ETA, and on a terminal a progress bar runs."""
        self._last_time, self._last_step = time.perf_counter(), step
        self._began, self._end = (self._last_time, step), end
        if self.enabled:
            _truncate_train_log(train_log_path(self.model_dir), step)
        if self.enabled and end is not None and sys.stderr.isatty():
            self._redirect.enter_context(logging_redirect_tqdm([logging.getLogger()]))  # log lines above the bar
            self._bar = tqdm(total=end, initial=step, unit="step", desc="training", dynamic_ncols=True, leave=False)

    def advance(self, step: int) -> None:
        """Move the progress bar (if any) to ``step``."""
        if self._bar is not None:
            self._bar.update(step - self._bar.n)

    def train(self, step: int, loss: float, learning_rate: float) -> None:
        """Log one training line; throughput is measured since the previous line."""
        now = time.perf_counter()
        elapsed = now - (self._last_time or now)
        steps = step - self._last_step
        samples_per_s = steps * self.samples_per_step / elapsed if elapsed > 0 else 0.0
        self._last_time, self._last_step = now, step
        if not self.enabled:
            return
        eta = ""
        if self._end is not None and self._began is not None and step > self._began[1]:
            left = (now - self._began[0]) / (step - self._began[1]) * (self._end - step)
            eta = f", ETA {int(left // 60)}m{int(left % 60):02d}s"
        self.advance(step)
        LOGGER.info(
            "step %d, loss %.5f, lr %.3e, %.1f samples/s, %.0f tokens/s%s",
            step, loss, learning_rate, samples_per_s, samples_per_s * self.tokens_per_sample, eta,
        )
        writer = self._writer("train")
        writer.add_scalar("loss", loss, step)
        writer.add_scalar("lr", learning_rate, step)
        writer.add_scalar("samples_per_sec", samples_per_s, step)
        writer.add_scalar("tokens_per_sec", samples_per_s * self.tokens_per_sample, step)
        self.model_dir.mkdir(parents=True, exist_ok=True)
        with open(train_log_path(self.model_dir), "a") as handle:
            record = {"step": step, "loss": loss, "lr": learning_rate, "samples_per_sec": round(samples_per_s, 3)}
            handle.write(json.dumps(record) + "\n")

    def eval(self, step: int, metrics: Mapping[str, Any], name: str = "eval") -> Optional[Path]:
        """Log evaluation metrics to the console, TensorBoard (model_dir/<name>) and JSON
        (model_dir/<name>/metrics_step_<step>.json)."""
        if not self.enabled:
            return None
        flat = flatten(metrics)
        shown = ", ".join(f"{k} {v:.5g}" for k, v in flat.items() if "/" not in k or k.count("/") == 1 and k.endswith("/mean"))
        LOGGER.info("%s at step %d: %s", name, step, shown)
        writer = self._writer(name)
        for key, value in flat.items():
            writer.add_scalar(key, value, step)
        writer.flush()
        return write_metrics(self.model_dir, step, metrics, name)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._redirect.close()
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
