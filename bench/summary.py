"""bench/results/SUMMARY.md from every results/*.json: the training comparison as tables, the
other benchmarks' top-level figures as lists (each benchmark's JSON stays the full record)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ebert_modelzoo.atomic import atomic_write_text


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f}"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _gflops(value: Any) -> str:
    return "n/a" if value is None else f"{value / 1e9:,.1f}"


def _shape_line(shape: dict) -> str:
    return (f"hidden {shape['hidden']}, {shape['layers']} layers, {shape['heads']} heads, filter "
            f"{shape['filter_size']}, batch {shape['batch']} x seq {shape['seq_len']}, vocab "
            f"{shape['vocab']}, {shape['predictions']} masked positions/sample, EBERT inputs: "
            f"{shape['states']} chromatin states + {shape['tracks']} signal tracks over "
            f"{shape['num_bins']} bins x {shape['tokens_per_bin']} tokens")


def _comparison(name: str, entry: dict) -> list[str]:
    lines = [f"### {name}", "", _shape_line(entry["shape"]), "",
             "EBERT dense: the same model with `sparse_final_layer: false` (every block on all rows), "
             "the work of the gathered peer.", "",
             "| mode | EBERT ms | EBERT dense ms | peer ms | peer (gathered) ms | peer / EBERT "
             "| gathered peer / EBERT | equal work: gathered peer / EBERT dense | EBERT tokens/s "
             "| roofline GFLOP/s | EBERT of roofline | EBERT dense of roofline | peer of roofline |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode in ("forward", "train_step"):
        cases = entry[mode]["cases"]
        lines.append(
            f"| {mode} | {_ms(cases['ebert']['median_s'])} | {_ms(cases['ebert_dense']['median_s'])} "
            f"| {_ms(cases['peer']['median_s'])} "
            f"| {_ms(cases['peer_gathered']['median_s'])} | {entry[mode]['ratio_peer_over_ebert']:.3f} "
            f"| {entry[mode]['ratio_peer_gathered_over_ebert']:.3f} "
            f"| {entry[mode]['ratio_peer_gathered_over_ebert_dense']:.3f} "
            f"| {cases['ebert']['tokens_per_s']:,.0f} "
            f"| {_gflops(entry[mode]['roofline_flop_per_s'])} "
            f"| {_pct(cases['ebert'].get('fraction_of_roofline'))} "
            f"| {_pct(cases['ebert_dense'].get('fraction_of_roofline'))} "
            f"| {_pct(cases['peer'].get('fraction_of_roofline'))} |")
    return lines + [""]


def training_section(data: dict, source: str) -> list[str]:
    """Markdown for a training benchmark JSON (``source``: its file name)."""
    gemm = data["gemm"]
    load, cores = data["machine"]["load_average_1min_at_start"], data["machine"]["cores"]
    lines = [f"## Training throughput: EBERT vs transformers BertForMaskedLM ({source})", ""]
    steady = data["settings"]["threads"] == 1 and data["settings"]["clock"] == "cpu"
    if load is not None and load > cores and steady:
        lines += [f"Shared machine (load average {load:.1f} on {cores} cores at the start): timed in "
                  "CPU seconds of one thread, which leaves out the time other jobs held the core.", ""]
    elif load is not None and load > cores:
        lines += [f"**Shared machine:** load average {load:.1f} on {cores} cores at the start; other "
                  "jobs took CPU time during the run, so absolute times and roofline fractions are "
                  "unreliable and ratios noisy (with several threads a descheduled one stalls the "
                  "rest). A `--threads 1 --clock cpu` run is the steadier reference.", ""]
    lines += [
        f"Machine: {data['machine']['cpu']}, {data['settings']['threads']} threads, torch "
        f"{data['machine']['torch']}, load average at start {data['machine']['load_average_1min_at_start']}. "
        f"{data['settings']['repeats']} interleaved rounds, medians of {data['settings']['clock']} "
        "time; ratio > 1 means EBERT is faster.",
        f"Optimizer (all cases): {data['settings']['optimizer']}. Peer: {data['settings']['peer']}.",
        f"Roofline: {data['roofline_note']} (GEMM alone at the start: "
        f"{gemm['flop_per_s'] / 1e9:,.1f} GFLOP/s).",
        "",
    ]
    for name, entry in data["shapes"].items():
        lines += _comparison(name, entry)
    gpu = data["gpu"]
    lines += ["### GPU", ""]
    if not gpu.get("available") or "train_step" not in gpu:
        lines += [f"Not measured: {gpu.get('reason')}", ""]
    else:
        lines += [f"{gpu['device']}, bf16 autocast; peak {gpu['peak_bf16_flop_per_s']} FLOP/s "
                  f"({gpu['mfu_note']})", ""]
        lines += _comparison(gpu["shape"]["name"], gpu)[2:]
    if data["targets"]:
        lines += ["### Targets (measured, informational)", "", "| target | wanted | measured | met |",
                  "|---|---|---|---|"]
        for key, target in data["targets"].items():
            lines.append(f"| {key} | {target['target']} | {target['measured']:.3f} | {target['met']} |")
        lines.append("")
    return lines


def revision_section(data: dict, source: str) -> list[str]:
    """Markdown for a bench/compare_revision.py JSON: EBERT before (at a revision) and after."""
    lines = [f"## Model before/after ({source})", "",
             f"EBERT at {data['revision']} ({data.get('commit', '?')[:10]}) vs the work tree vs the peer; "
             f"{data['threads']} thread(s), {data['clock']} clock, {data['repeats']} interleaved rounds, medians.",
             "", "| shape | mode | before ms | after ms | peer ms | before / after | peer / before | peer / after |",
             "|---|---|---|---|---|---|---|---|"]
    for shape, modes in data["shapes"].items():
        for mode, entry in modes.items():
            median = entry["median_s"]
            lines.append(f"| {shape} | {mode} | {_ms(median['ebert_at_revision'])} | {_ms(median['ebert'])} "
                         f"| {_ms(median['peer'])} | {entry['revision_over_worktree']:.3f} "
                         f"| {entry['peer_over_revision']:.3f} | {entry['peer_over_worktree']:.3f} |")
    return lines + [""]


def _flat(data: Any, prefix: str = "") -> list[str]:
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines += _flat(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float, str, bool)) or value is None:
            lines.append(f"- {prefix}{key}: {value}")
    return lines


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    return "not measured" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _met(entry: dict) -> str:
    if entry["met"] is None:
        return "n/a"
    return "**met**" if entry["met"] else "**not met**"


def _conditions(data: dict) -> str:
    """Threads, workers and machine load of one results JSON, in words."""
    cond = data.get("conditions") or {**data.get("machine", {}), **data.get("settings", {})}
    parts = [f"{cond.get('cpu', '?')}, {cond.get('cores', '?')} cores"]
    load = cond.get("load_average_1min_at_start")
    if load is not None:
        parts.append(f"load {load:.1f} at start")
    for key in ("threads", "torch_threads", "model_threads", "processor_workers", "pipeline_workers", "memory_run_workers",
                "clock"):
        if key in cond:
            parts.append(f"{key.replace('_', ' ')} {cond[key]}")
    if data.get("quick"):
        parts.append("--quick (not judged)")
    return "; ".join(parts)


def targets_section(results: list[tuple[str, dict]]) -> list[str]:
    """One table: every target of every benchmark, measured value, met or not, conditions."""
    lines = ["## Targets", "", "| results | figure | target | measured | met | conditions |",
             "|---|---|---|---|---|---|"]
    for source, data in results:
        for key, entry in (data.get("targets") or {}).items():
            lines.append(f"| {source} | {key} | {entry['target']} "
                         f"| {_value(entry['measured'])} | {_met(entry)} | {_conditions(data)} |")
        if data.get("available") is False:
            lines.append(f"| {source} | (all) | | not measured | n/a | {data['reason']} |")
    return lines + [""]


def bench_section(data: dict, source: str) -> list[str]:
    """Markdown for a data-path or Cerebras benchmark JSON: conditions, then every figure."""
    lines = [f"## {data['benchmark']} ({source})", "", f"Conditions: {_conditions(data)}.", ""]
    if data.get("available") is False:
        return lines + [f"Not measured: {data['reason']}", ""]
    skip = {"benchmark", "conditions", "targets", "available", "quick"}
    return lines + _flat({k: v for k, v in data.items() if k not in skip}) + [""]


def write_summary(results_dir: Path) -> Path:
    """Render every JSON in ``results_dir`` into ``results_dir/SUMMARY.md``; returns its path."""
    results = [(path.name, json.loads(path.read_text())) for path in sorted(results_dir.glob("*.json"))]
    lines = ["# Benchmark summary", "", "Generated by `python -m bench` from the JSON files beside it. "
             "Targets are informational: nothing asserts them.", ""]
    lines += targets_section(results)
    for name, data in results:
        if data.get("benchmark") == "training":
            lines += training_section(data, name)
        elif "revision" in data and "shapes" in data:
            lines += revision_section(data, name)
        elif "benchmark" in data:
            lines += bench_section(data, name)
        else:
            lines += [f"## {Path(name).stem}", "", *_flat(data), ""]
    out = results_dir / "SUMMARY.md"
    atomic_write_text(out, "\n".join(lines))
    return out
