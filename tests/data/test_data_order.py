"""Sample order: every sample once per epoch, seeded, worker-independent, resumable, disjoint reads."""
from __future__ import annotations

import pytest
import torch

from ebert_modelzoo.data.sampler import EpochPlan, make_blocks, streams_for_workers

from .helpers import assert_same_batches, pretraining, sample_keys
from .split_builder import build_split


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return build_split(tmp_path_factory.mktemp("order"), shard_windows=(50, 37, 13))


def _plan(total_windows, batch_size, drop_last, streams=4, chunk_batches=3, epoch=0, shuffle=True):
    blocks = make_blocks(total_windows, [0, 1], block_windows=5)
    return EpochPlan(blocks, batch_size, seed=7, epoch=epoch, shuffle=shuffle, drop_last=drop_last,
                     streams=streams, chunk_batches=chunk_batches)


def _plan_samples(plan, batch_size):
    """Every (shard, window, cell) of every batch position, in emission order."""
    out = []
    for position in range(plan.num_batches):
        chunk, batch = plan.locate(position)
        samples = [(p.shard, w, p.cell) for p in plan.pieces(chunk) for w in range(p.start, p.stop)]
        rows = plan.chunk_permutation(chunk)[batch * batch_size : (batch + 1) * batch_size]
        out.append([samples[r] for r in rows])
    return out


@pytest.mark.parametrize("windows", [(50, 37, 13), (3,), (200, 1)])
@pytest.mark.parametrize("batch_size", [1, 4, 7])
@pytest.mark.parametrize("drop_last", [True, False])
def test_plan_covers_each_sample_once(windows, batch_size, drop_last):
    plan = _plan(windows, batch_size, drop_last)
    batches = _plan_samples(plan, batch_size)
    flat = [s for b in batches for s in b]
    total = 2 * sum(windows)
    assert len(set(flat)) == len(flat)
    assert len(flat) == (total // batch_size * batch_size if drop_last else total)
    assert all(len(b) == batch_size for b in batches[: total // batch_size])


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_each_chunk_belongs_to_one_worker(workers):
    plan = _plan((50, 37, 13), 4, False, streams=streams_for_workers(workers, 4))
    for start in (0, 5):
        owner = {}
        for worker in range(workers):
            for position in plan.worker_positions(worker, workers, start):
                chunk, _ = plan.locate(position)
                assert owner.setdefault(chunk, worker) == worker


def test_plan_depends_on_seed_and_epoch():
    a, b = (_plan_samples(_plan((50, 37), 4, True, epoch=e), 4) for e in (0, 1))
    assert a != b and a == _plan_samples(_plan((50, 37), 4, True), 4)
    ordered = _plan_samples(_plan((50, 37), 4, True, shuffle=False), 4)
    assert ordered[0] == [(0, w, 0) for w in range(4)]


def _keys(split, batches):
    return [sample_keys(split, b) for b in batches]


def _loader(split, tuning, **config):
    if tuning:  # small blocks and chunks, so the epoch has several full rounds besides the tail
        config["shuffle_block_windows"] = 5
    processor = pretraining(split, **config)
    if tuning:
        processor.streams, processor.chunk_batches = 4, 2
    return processor.create_dataloader()


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("tuning", [False, True])
def test_same_config_same_batches_and_workers_do_not_matter(split, tuning):
    runs = [list(_loader(split, tuning, use_cell_type=True, num_workers=n)) for n in (0, 0, 2, 4)]
    for other in runs[1:]:
        assert_same_batches(runs[0], other)
    different = list(_loader(split, tuning, use_cell_type=True, shuffle_seed=1))
    assert _keys(split, different) != _keys(split, runs[0])


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("workers,tuning", [(2, False), (3, True)])
def test_workers_cover_every_sample_once(split, workers, tuning):
    loader = _loader(split, tuning, use_cell_type=True, num_workers=workers, batch_size=10)
    keys = [k for b in loader for k in sample_keys(split, b)]
    assert sorted(keys) == [(w, c) for w in range(100) for c in range(3)]


@pytest.mark.parametrize("workers,tuning", [(0, False), (2, True)])
def test_resume_yields_the_remaining_batches(split, workers, tuning):
    config = dict(use_cell_type=True, num_workers=workers, state_mask_rate=0.3, max_state_predictions=2)
    full_loader = _loader(split, tuning, **config)
    epoch0, epoch1 = list(full_loader), list(full_loader)

    interrupted = _loader(split, tuning, **config)
    for step, _ in zip(range(13), interrupted):
        pass
    state = interrupted.state_dict()
    assert state == {"epoch": 0, "batch": 13}

    resumed = _loader(split, tuning, **config)
    resumed.load_state_dict(state)
    assert_same_batches(list(resumed), epoch0[13:])
    assert_same_batches(list(resumed), epoch1)


def test_load_state_dict_rejects_bad_state(split):
    loader = pretraining(split).create_dataloader()
    with pytest.raises(ValueError, match="'batch' is missing"):
        loader.load_state_dict({"epoch": 0})
    with pytest.raises(ValueError, match="outside"):
        loader.load_state_dict({"epoch": 0, "batch": len(loader) + 1})


def test_persistent_workers_follow_epochs_and_resume(split):
    reference = _loader(split, True, use_cell_type=True)
    expected = list(reference) + list(reference)
    loader = _loader(split, True, use_cell_type=True, num_workers=2, persistent_workers=True)
    assert_same_batches(list(loader) + list(loader), expected)
    loader.load_state_dict({"epoch": 1, "batch": 5})
    assert_same_batches(list(loader), expected[len(expected) // 2 + 5 :])


@pytest.fixture(scope="module")
def small_split(tmp_path_factory):
    """Shards of uneven sizes, all smaller than a block: epochs of a few batches."""
    return build_split(tmp_path_factory.mktemp("small"), shard_windows=(9, 6, 4), cell_types=("GM12878", "K562"))


def _stream(loader, count):
    """``count`` batches over epoch ends, pulled as the trainer does: iterate the loader again
    whenever a pass ends, stop right after the last batch wanted."""
    out = []
    while len(out) < count:
        for batch in loader:
            out.append(batch)
            if len(out) == count:
                break
    return out


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("workers,drop_last", [(0, True), (0, False), (2, False)])
def test_resume_at_every_batch_across_epochs(small_split, workers, drop_last):
    """A state saved after any k batches (epoch ends included) continues with batches k, k+1, ..."""
    config = dict(use_cell_type=True, num_workers=workers, drop_last=drop_last, batch_size=5,
                  state_mask_rate=0.3, max_state_predictions=2, persistent_workers=workers > 0)
    straight = _stream(_loader(small_split, False, **config), 3 * len(_loader(small_split, False, **config)))
    assert len({tuple(map(tuple, sample_keys(small_split, b))) for b in straight}) == len(straight)
    states, stepped = [], _loader(small_split, False, **config)
    for _ in straight:  # the trainer's way: one batch, then the state after it
        states.append(stepped.state_dict())
        _stream(stepped, 1)
    n = len(stepped)  # right after an epoch's last batch the state still points at its end
    assert states[n - 1 : n + 2] == [{"epoch": 0, "batch": n - 1}, {"epoch": 0, "batch": n}, {"epoch": 1, "batch": 1}]
    reused = _loader(small_split, False, **config)  # persistent workers follow every new state
    for k, state in enumerate(states):
        resumed = reused if workers else _loader(small_split, False, **config)
        resumed.load_state_dict(state)
        assert_same_batches(_stream(resumed, len(straight) - k), straight[k:])


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("workers", [0, 2])
def test_epochs_leave_the_global_torch_rng_alone(small_split, workers):
    """Starting an epoch must not draw from torch's global RNG (dropout's): a resumed run starts
    its next epoch before the checkpoint's RNG state is restored, an uninterrupted one after."""
    loader = _loader(small_split, False, num_workers=workers)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    _stream(loader, 2 * len(loader) + 1)
    loader.load_state_dict({"epoch": 1, "batch": len(loader)})
    _stream(loader, 2)
    assert torch.equal(torch.get_rng_state(), before)
