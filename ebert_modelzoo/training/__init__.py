"""Training: one step function, one loop, two backends (plain torch and cerebras.pytorch).

    loop.py, step.py, tasks.py   the Trainer, its step, and what differs between the two tasks
    label_weights.py, schedules.py, optim.py, reporting.py, checkpoint.py, backends/
    cstorch_format.py            reads cstorch.save checkpoints with h5py (no Cerebras import)
    optimizer_state.py           optimizer, schedule and loss-scale states between the backends

May import: the package root, ``config``, ``contract``, ``data``, ``models``, ``evaluation.metrics``
(the eval metrics); of the Cerebras edge only what picks the cstorch backend (``cerebras``'s
``cstorch_installed`` and, lazily, ``cerebras.backend``, in backends/__init__.py); nothing else of
``evaluation`` (tests/test_import_rules.py).
"""
