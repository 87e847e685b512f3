"""The JSONL training log (training/reporting.py): one line per logged step, trimmed on resume."""
import json

from ebert_modelzoo.training.reporting import RunReporter, train_log_path


def steps_logged(model_dir):
    return [json.loads(line)["step"] for line in train_log_path(model_dir).read_text().splitlines()]


def test_log_lines_and_resume_trimming(tmp_path):
    reporter = RunReporter(tmp_path, True, samples_per_step=4, tokens_per_sample=8)
    reporter.start(0)
    for step in (10, 20, 30):
        reporter.train(step, loss=1.0 / step, learning_rate=1e-3)
    reporter.close()
    record = json.loads(train_log_path(tmp_path).read_text().splitlines()[0])
    assert set(record) == {"step", "loss", "lr", "samples_per_sec"} and record["loss"] == 0.1
    with open(train_log_path(tmp_path), "a") as handle:
        handle.write('{"step": 40, "lo')  # a line cut short by a killed run
    resumed = RunReporter(tmp_path, True, 4, 8)
    resumed.start(20)  # resumed from the checkpoint of step 20: steps 30 and 40 are logged again
    assert steps_logged(tmp_path) == [10, 20]
    resumed.train(30, loss=0.5, learning_rate=1e-3)
    resumed.close()
    assert steps_logged(tmp_path) == [10, 20, 30]


def test_silent_ranks_write_nothing(tmp_path):
    reporter = RunReporter(tmp_path, False, 4, 8)
    reporter.start(0)
    reporter.train(10, loss=1.0, learning_rate=1e-3)
    assert not train_log_path(tmp_path).exists()
