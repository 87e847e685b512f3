"""The data input function the cstorch backend hands to ``cstorch.utils.data.DataLoader``.

On CSX, cerebras.pytorch 2.10 does not stream the user node's loader: it serializes the input
function and its arguments with dill (``fw_user_serialize`` in cerebras/appliance/
appliance_client.py), and each input worker of the cluster deserializes them, which imports the
function's module, calls ``input_fn(*args)`` once and iterates the result again at every epoch's
end (cerebras/pytorch/utils/data/streamer/). Hence a function at module level whose arguments
are plain values (the dataloader section as a dict, and the position to start from), and a
loader with cstorch's ``RestartableDataLoader`` methods, through which the workers report the
data position at checkpoint steps.

No Cerebras import here: the workers need only this package and its data dependencies.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping

from ebert_modelzoo.data.loader import ResumableDataLoader
from ebert_modelzoo.data.processors import PROCESSORS
from ebert_modelzoo.training.backends.base import Batch


def worker_config(config: Any) -> dict[str, Any]:
    """A validated dataloader section as plain values for ``input_fn``, with ``data_dir`` made
    absolute (a worker does not share the user node's working directory)."""
    plain = config.model_dump(mode="json")
    plain["data_dir"] = str(Path(config.data_dir).resolve())
    return plain


def input_fn(loader_config: Mapping[str, Any], position: Mapping[str, int]) -> "RestartableLoader":
    """The loader of ``loader_config`` (``worker_config``'s dict) starting at ``position``
    (the processor loader's ``state_dict``).

    Raises:
        ValueError: ``data_processor`` names no registered processor, or ``position`` lies
            outside the data.
    """
    name = loader_config.get("data_processor")
    if name not in PROCESSORS:
        raise ValueError(f"dataloader data_processor {name!r} is not one of {sorted(PROCESSORS)}")
    loader = PROCESSORS[name](dict(loader_config)).create_dataloader()
    loader.load_state_dict(position)
    return RestartableLoader(loader)


class RestartableLoader:
    """The processor's loader as cstorch iterates it: each iteration is the rest of one epoch.

    ``state_dict`` / ``load_state_dict`` / ``aggregate_state_dict`` / ``deaggregate_state_dict``
    are cstorch's ``RestartableDataLoader`` protocol; the backend runs one input worker per
    system, so the aggregate of the workers' states is the one state.
    """

    def __init__(self, loader: ResumableDataLoader) -> None:
        self.loader = loader

    def __iter__(self) -> Iterator[Batch]:
        batches = len(self.loader.dataset)
        if batches == 0:
            raise ValueError("the dataloader produced no batch (fewer samples than batch_size with drop_last?)")
        state = self.loader.state_dict()
        if state["batch"] >= batches:
            # Resumed exactly at an epoch's end: cstorch takes an empty iteration for no data.
            self.loader.load_state_dict({"epoch": state["epoch"] + 1, "batch": 0})
        return iter(self.loader)

    def state_dict(self) -> dict[str, int]:
        """Where the next batch comes from (epoch, batch)."""
        return self.loader.state_dict()

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        """Continue from a position saved by ``state_dict``."""
        self.loader.load_state_dict(state)

    def aggregate_state_dict(self, worker_states: list[dict[str, int]]) -> dict[str, int]:
        """The position to checkpoint, from the input workers' states.

        Raises:
            ValueError: more than one worker reported (the workers would each have streamed
                the whole sequence).
        """
        if len(worker_states) != 1:
            raise ValueError(f"expected the state of one input worker, got {len(worker_states)}")
        return dict(worker_states[0])

    def deaggregate_state_dict(self, aggregated_state_dict: Mapping[str, int]) -> dict[str, int]:
        """The one worker's position from a checkpointed one."""
        return dict(aggregated_state_dict)
