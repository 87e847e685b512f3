"""Training throughput of EBERT against transformers' BertForMaskedLM at identical dimensions.

Both models run in the same process, same threads, same dtype, same batch, same AdamW settings,
interleaved (bench.common.interleaved), medians reported; ratio = peer time / EBERT time (> 1:
EBERT faster). EBERT has its epigenetic inputs ON (15 chromatin states + 4 signal tracks).

Cases:
  ebert          EBertForPreTrainingModel as shipped: MLM logits only at the P masked positions, and
                 the last block computed only at those rows (sparse_final_layer, the default).
  ebert_dense    the same model with sparse_final_layer off: every block on all L rows, the FLOPs
                 of peer_gathered (the implementation compared at equal work).
  peer           BertForMaskedLM, its standard use: labels (B, L) with -100 at unmasked tokens, so
                 the head computes logits at all L tokens and the loss keeps the masked ones.
  peer_gathered  apples to apples: BertForMaskedLM's own encoder and head, the head applied only
                 to the P gathered masked positions (what EBERT does).

Each is timed forward-only (eval, no grad) and as a full training step (forward + backward +
AdamW step). The fraction of the machine's matmul roofline = analytic model FLOPs per step
(bench.flops) / step time / measured FLOP/s of a 2048^3 fp32 GEMM timed in the same run.

When CUDA is present the same comparison runs at ebert_base size, sequence 1024, bf16 autocast,
with MFU against the GPU's datasheet bf16 peak (bench.gemm.GPU_PEAK_BF16).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

from bench.common import bench_parser, interleaved, machine, summarize, synchronizer, usable_cores, write_json
from bench.flops import step_flops
from bench.gemm import gemm_call, gemm_flops, gemm_throughput, gpu_peak_bf16
from ebert_modelzoo.config.model import EBertPretrainConfig
from ebert_modelzoo.models.ebert import EBertForPreTrainingModel

RESULTS = Path(__file__).parent / "results" / "training.json"
CLS, SEP, PAD, FIRST_KMER = 2, 3, 0, 6


@dataclass(frozen=True)
class Shape:
    """One benchmarked model + batch shape. Bins fill the sequence as the data processors do:
    [CLS], num_bins * tokens_per_bin DNA tokens, [SEP], then [PAD] up to seq_len."""

    name: str
    hidden: int
    layers: int
    heads: int
    filter_size: int
    seq_len: int
    batch: int
    tokens_per_bin: int
    num_bins: int
    predictions: int
    vocab: int = 262  # 4-mer tokenizer of params/ebert_base.yaml
    states: int = 15
    tracks: int = 4

    @property
    def tokens(self) -> int:
        return self.batch * self.seq_len


SHAPES = {
    # BERT-base widths, 2 layers, batch 2 x 512: a CPU training step of about 2 s on 2 cores.
    "base_like": Shape("base_like", 768, 2, 12, 3072, 512, 2, 50, 10, 80),
    "tiny": Shape("tiny", 128, 2, 4, 512, 128, 32, 12, 10, 20),
}
QUICK_SHAPES = {"micro": Shape("micro", 32, 2, 4, 64, 32, 2, 5, 5, 4)}
# ebert_base at sequence 1024 (20 bins of 50 tokens), for the GPU run.
GPU_SHAPE = Shape("ebert_base_seq1024", 768, 12, 12, 3072, 1024, 8, 50, 20, 160)


def ebert_config(shape: Shape, sparse_final_layer: bool = True) -> EBertPretrainConfig:
    """EBERT with chromatin states and signal tracks on; BERT defaults (dropout 0.1, erf GELU)."""
    return EBertPretrainConfig(sparse_final_layer=sparse_final_layer,
        name="ebert", vocab_size=shape.vocab, hidden_size=shape.hidden,
        num_hidden_layers=shape.layers, num_heads=shape.heads, filter_size=shape.filter_size,
        max_position_embeddings=max(512, shape.seq_len), tokens_per_bin=shape.tokens_per_bin,
        num_chromatin_states=shape.states, num_signal_tracks=shape.tracks,
    )


def peer_model(shape: Shape) -> torch.nn.Module:
    """transformers BertForMaskedLM at the same dimensions (SDPA attention, tied decoder)."""
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=shape.vocab, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads, intermediate_size=shape.filter_size,
        max_position_embeddings=max(512, shape.seq_len), hidden_act="gelu",
        hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, layer_norm_eps=1e-12,
        tie_word_embeddings=True, attn_implementation="sdpa",
    )
    return BertForMaskedLM(config)


def make_batches(shape: Shape, seed: int = 0) -> tuple[dict, dict]:
    """(EBERT batch dict, peer inputs) holding the same tokens, padding and masked positions."""
    g = torch.Generator().manual_seed(seed)
    b, length, covered = shape.batch, shape.seq_len, shape.num_bins * shape.tokens_per_bin
    ids = torch.randint(FIRST_KMER, shape.vocab, (b, length), generator=g, dtype=torch.int32)
    ids[:, 0] = CLS
    ids[:, covered + 1] = SEP
    ids[:, covered + 2:] = PAD
    attention = torch.zeros(b, length, dtype=torch.int32)
    attention[:, : covered + 2] = 1
    order = torch.rand(b, covered, generator=g).argsort(dim=1)
    positions = (order[:, : shape.predictions].sort(dim=1).values + 1).to(torch.int32)
    labels = torch.gather(ids, 1, positions.long())
    ebert = {
        "input_ids": ids, "attention_mask": attention,
        "masked_lm_positions": positions, "labels": labels,
        "masked_lm_mask": torch.ones(b, shape.predictions),
        "chromatin_states": torch.randint(1, shape.states + 1, (b, shape.num_bins), generator=g,
                                          dtype=torch.int32),
        "signal": torch.randn(b, shape.num_bins, shape.tracks, generator=g),
        "signal_mask": (torch.rand(b, shape.num_bins, shape.tracks, generator=g) < 0.9).float(),
    }
    full_labels = torch.full((b, length), -100, dtype=torch.long)
    full_labels.scatter_(1, positions.long(), labels.long())
    peer = {
        "input_ids": ids.long(), "attention_mask": attention.long(), "labels": full_labels,
        "positions": positions.long(), "masked_labels": labels.long(),
    }
    return ebert, peer


def peer_loss(model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    """BertForMaskedLM's standard path: logits at every token, loss over labels != -100."""
    return model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                 labels=inputs["labels"]).loss


def peer_gathered_loss(model: torch.nn.Module, inputs: dict) -> torch.Tensor:
    """The peer's encoder and MLM head, the head applied only at the masked positions."""
    hidden = model.bert(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])[0]
    index = inputs["positions"].unsqueeze(-1).expand(-1, -1, hidden.shape[-1])
    logits = model.cls(torch.gather(hidden, 1, index))
    return F.cross_entropy(logits.flatten(0, 1).float(), inputs["masked_labels"].flatten())


def _to(data: dict, device: torch.device) -> dict:
    return {key: value.to(device) for key, value in data.items()}


def _optimizer(model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """The same AdamW for every case (BERT's settings), torch's fused kernel (CPU and CUDA)."""
    return torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01, eps=1e-6, fused=True)


def _cases(shape: Shape, device: torch.device, autocast: Optional[torch.dtype]) -> dict[str, Any]:
    """Models, inputs and loss functions of the three cases (same seed for both model inits)."""
    ebert_batch, peer_inputs = make_batches(shape)
    torch.manual_seed(0)
    ebert = EBertForPreTrainingModel(ebert_config(shape)).to(device)
    torch.manual_seed(0)
    dense = EBertForPreTrainingModel(ebert_config(shape, sparse_final_layer=False)).to(device)
    torch.manual_seed(0)
    peer = peer_model(shape).to(device)
    ebert_batch, peer_inputs = _to(ebert_batch, device), _to(peer_inputs, device)
    return {
        "ebert": (ebert, lambda: ebert(ebert_batch)),
        "ebert_dense": (dense, lambda: dense(ebert_batch)),
        "peer": (peer, lambda: peer_loss(peer, peer_inputs)),
        "peer_gathered": (peer, lambda: peer_gathered_loss(peer, peer_inputs)),
    }


def _autocast(device: torch.device, dtype: Optional[torch.dtype]) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _forward_fn(model: torch.nn.Module, loss_fn: Callable, device, autocast) -> Callable[[], None]:
    def run() -> None:
        model.eval()
        with torch.no_grad(), _autocast(device, autocast):
            loss_fn()
    return run


def _train_fn(model: torch.nn.Module, loss_fn: Callable, optimizer, device, autocast) -> Callable[[], None]:
    def run() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, autocast):
            loss = loss_fn()
        loss.backward()
        optimizer.step()
    return run


def model_flops(shape: Shape) -> dict[str, dict[str, float]]:
    """Analytic FLOPs per step of each case (the peers differ only in how many tokens reach the head)."""
    common = dict(hidden=shape.hidden, layers=shape.layers, filter_size=shape.filter_size,
                  vocab=shape.vocab, batch=shape.batch, seq_len=shape.seq_len)
    gathered = shape.batch * shape.predictions
    epigenome = dict(signal_tracks=shape.tracks, num_bins=shape.num_bins)
    return {
        "ebert": step_flops(**common, head_tokens=gathered, final_layer_rows=gathered, **epigenome),
        "ebert_dense": step_flops(**common, head_tokens=gathered, **epigenome),
        "peer": step_flops(**common, head_tokens=shape.tokens),
        "peer_gathered": step_flops(**common, head_tokens=gathered),
    }


def run_shape(
    shape: Shape,
    repeats: int,
    device: torch.device = torch.device("cpu"),
    autocast: Optional[torch.dtype] = None,
    roofline_flop_per_s: Optional[float] = None,
    clock: Callable[[], float] = time.perf_counter,
    gemm_size: Optional[int] = None,
) -> dict[str, Any]:
    """Forward and training-step timings of the three cases at one shape, with ratios.

    With ``gemm_size`` a fp32 GEMM of that size is a fourth interleaved case, and each mode's
    fraction_of_roofline divides the model FLOP/s by that GEMM's FLOP/s measured in the same
    rounds (so both see the same machine load); otherwise ``roofline_flop_per_s`` (the GPU's
    datasheet peak) is the denominator.
    """
    cases = _cases(shape, device, autocast)
    flops = model_flops(shape)
    optimizers = {id(model): _optimizer(model, device) for model, _ in cases.values()}
    sync = synchronizer(device)
    result: dict[str, Any] = {"shape": asdict(shape), "tokens_per_step": shape.tokens,
                              "model_flops": flops}
    for mode, make in (
        ("forward", lambda m, f: _forward_fn(m, f, device, autocast)),
        ("train_step", lambda m, f: _train_fn(m, f, optimizers[id(m)], device, autocast)),
    ):
        fns = {name: make(m, f) for name, (m, f) in cases.items()}
        if gemm_size:
            fns["gemm"] = gemm_call(gemm_size)
        times = interleaved(fns, repeats=repeats, warmup=1, sync=sync, clock=clock)
        gemm_stats = summarize(times.pop("gemm")) if gemm_size else None
        if gemm_stats:
            gemm_stats["flop_per_s"] = gemm_flops(gemm_size) / gemm_stats["median_s"]
            roofline_flop_per_s = gemm_stats["flop_per_s"]
        stats = {name: summarize(t) for name, t in times.items()}
        for name, entry in stats.items():
            achieved = flops[name][mode] / entry["median_s"]
            entry["tokens_per_s"] = shape.tokens / entry["median_s"]
            entry["model_flop_per_s"] = achieved
            if roofline_flop_per_s:
                entry["fraction_of_roofline"] = achieved / roofline_flop_per_s
        ebert_time = stats["ebert"]["median_s"]
        result[mode] = {
            "cases": stats,
            "roofline_flop_per_s": roofline_flop_per_s,
            "gemm_interleaved": gemm_stats,
            "ratio_peer_over_ebert": stats["peer"]["median_s"] / ebert_time,
            "ratio_peer_gathered_over_ebert": stats["peer_gathered"]["median_s"] / ebert_time,
            "ratio_peer_gathered_over_ebert_dense":
                stats["peer_gathered"]["median_s"] / stats["ebert_dense"]["median_s"],
        }
    return result


def gpu_section(repeats: int) -> dict[str, Any]:
    """ebert_base at sequence 1024 in bf16 autocast against the peer, or why it did not run."""
    if not torch.cuda.is_available():
        return {"available": False,
                "reason": "torch.cuda.is_available() is False: no CUDA device in this run, so no "
                          "GPU figure is reported"}
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = gpu_peak_bf16(name)
    result = run_shape(GPU_SHAPE, repeats, device, torch.bfloat16, peak[1] if peak else None)
    return {"available": True, "device": name, "autocast": "bfloat16",
            "peak_bf16_flop_per_s": peak[1] if peak else None,
            "peak_table_key": peak[0] if peak else None,
            "mfu_note": "fraction_of_roofline = model FLOPs per second / peak_bf16_flop_per_s (MFU)"
                        if peak else f"{name!r} is not in bench.gemm.GPU_PEAK_BF16: no MFU",
            **result}


TARGETS = {"base_like": 1.05, "tiny": 1.3}
ROOFLINE_TARGET = 0.75


def targets(shapes: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets against what this run measured (informational; never asserted)."""
    out: dict[str, Any] = {}
    for name, minimum in TARGETS.items():
        if name in shapes:
            ratio = shapes[name]["train_step"]["ratio_peer_over_ebert"]
            out[f"{name}_train_ratio"] = {"target": minimum, "measured": ratio, "met": ratio >= minimum}
    if "base_like" in shapes:
        fraction = shapes["base_like"]["train_step"]["cases"]["ebert"].get("fraction_of_roofline")
        if fraction is not None:
            out["base_like_ebert_fraction_of_gemm"] = {
                "target": ROOFLINE_TARGET, "measured": fraction, "met": fraction >= ROOFLINE_TARGET}
    return out


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def run(
    quick: bool = False,
    repeats: Optional[int] = None,
    results: Path = RESULTS,
    threads: Optional[int] = None,
    clock: str = "wall",
) -> dict[str, Any]:
    """The whole training benchmark; writes ``results`` and returns what it wrote.

    ``threads`` defaults to the usable cores. ``clock="cpu"`` times CPU seconds of this process
    instead of wall time: with one thread on a shared machine it leaves out the time other jobs
    hold the core (the GEMM roofline is then timed the same way).
    """
    torch.set_num_threads(threads or usable_cores())
    shapes = QUICK_SHAPES if quick else SHAPES
    repeats = repeats or (2 if quick else 5)
    timer = CLOCKS[clock]
    gemm_size = 256 if quick else 2048
    gemm = gemm_throughput(size=gemm_size, repeats=3 if quick else 7, clock=timer)
    measured = {name: run_shape(shape, repeats, clock=timer, gemm_size=gemm_size)
                for name, shape in shapes.items()}
    data = {
        "benchmark": "training",
        "quick": quick,
        "machine": machine(),
        "settings": {
            "dtype": "float32 (CPU)", "threads": torch.get_num_threads(), "repeats": repeats,
            "clock": clock,
            "order": "interleaved; each round runs ebert, ebert_dense, peer, peer_gathered, "
                     "the next reversed",
            "optimizer": "torch.optim.AdamW(lr=1e-4, weight_decay=0.01, eps=1e-6, fused=True) "
                         "for every case",
            "dropout": 0.1, "ebert_epigenetic_inputs": "15 chromatin states + 4 signal tracks",
            "peer": "transformers BertForMaskedLM, attn_implementation='sdpa'",
        },
        "gemm": gemm,
        "roofline_note": f"fraction_of_roofline = analytic model FLOPs per step (bench/flops.py) / "
                         f"median step time / median FLOP/s of a {gemm_size}^3 fp32 GEMM timed as "
                         f"one more interleaved case in the same rounds",
        "shapes": measured,
        "gpu": gpu_section(repeats) if not quick else {"available": torch.cuda.is_available(),
                                                        "reason": "skipped in --quick"},
        "targets": targets(measured),
    }
    write_json(results, data)
    return data


def main() -> None:
    parser = bench_parser(__doc__, "tiny shapes, 2 repeats (seconds; for tests)", RESULTS)
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds per case (default 5)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: usable cores)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or CPU seconds of this process (steadier on a shared machine)")
    args = parser.parse_args()
    data = run(quick=args.quick, repeats=args.repeats, results=args.out, threads=args.threads,
               clock=args.clock)
    for name, shape in data["shapes"].items():
        for mode in ("forward", "train_step"):
            entry = shape[mode]
            fraction = entry["cases"]["ebert"].get("fraction_of_roofline", float("nan"))
            print(f"{name:10s} {mode:10s} ebert {entry['cases']['ebert']['median_s']*1e3:8.1f} ms  "
                  f"peer {entry['cases']['peer']['median_s']*1e3:8.1f} ms  "
                  f"ratio {entry['ratio_peer_over_ebert']:.3f}  "
                  f"(gathered peer {entry['ratio_peer_gathered_over_ebert']:.3f}; "
                  f"equal work {entry['ratio_peer_gathered_over_ebert_dense']:.3f})  "
                  f"ebert roofline {fraction:.1%}")
    print(f"GEMM {data['gemm']['flop_per_s']/1e9:.1f} GFLOP/s; GPU: {data['gpu'].get('reason', 'measured')}")


if __name__ == "__main__":
    main()
