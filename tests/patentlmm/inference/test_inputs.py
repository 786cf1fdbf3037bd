"""`describe`'s input checks with real parts: FIFOs, folders and missing files among the images, one writer per output
(real concurrent processes), and `--max-new-tokens` bounded by the model's positions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from helpers import REPO
from helpers.processes import held_lock
from patentlmm.cli import main
from patentlmm.inference.describe import DescribeOptions, describe, prepare_output
from patentlmm.inference.inputs import InputError

IDS = ["US20250204297A1__8", "US20250204297A1__12"]


def _describe_in_thread(*args, **kwargs):
    """`describe(...)` in a thread joined for at most 60 s: the outcome (the rows or the error), never a hang."""
    outcome = {}

    def target():
        try:
            outcome["rows"] = describe(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 (the test inspects it)
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "describe blocked"
    return outcome


def test_fifos_folders_and_missing_files_among_the_images_are_refused_before_anything_is_opened(tiny, figures,
                                                                                                tmp_path):  # fmt: skip
    model, processor = tiny
    fifo = tmp_path / "fig.png"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes: nothing may open it
    folder = tmp_path / "folder.png"
    folder.mkdir()
    good = figures[IDS[0]]["path"]
    output = tmp_path / "out.jsonl"
    images = [good, fifo, folder, tmp_path / "gone.png"]
    outcome = _describe_in_thread(model, DescribeOptions(images=images, output=output), processor=processor)
    assert isinstance(outcome.get("error"), InputError)
    assert str(outcome["error"]) == (
        f"Not image files: {fifo} (is a FIFO (named pipe), not a file), {folder} (is a folder, not a file), "
        f"{tmp_path / 'gone.png'} (no such file)."
    )
    assert not output.exists()
    fifo_output = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo_output)
    outcome = _describe_in_thread(model, DescribeOptions(images=[good], output=fifo_output), processor=processor)
    message = f"The output {fifo_output} is a FIFO (named pipe), not a file: give a JSONL file path."
    assert str(outcome["error"]) == message
    outcome = _describe_in_thread(model, DescribeOptions(dataset=str(fifo)), processor=processor)
    assert str(outcome["error"]) == (f"The dataset {fifo} is a FIFO (named pipe), not a file: give a datasets "
                                     "folder, a data file or a Hub id.")  # fmt: skip
    rows = _describe_in_thread(model, DescribeOptions(images=[good], output=output, max_new_tokens=1),
                               processor=processor)["rows"]  # fmt: skip
    assert [row["image_id"] for row in rows] == [IDS[0]]


def test_the_command_line_names_the_fifo(tiny_dir, figures, tmp_path, capsys):
    fifo = tmp_path / "incoming.png"
    os.mkfifo(fifo)
    with pytest.raises(SystemExit) as caught:
        main(["describe", "--model", str(tiny_dir), str(figures[IDS[0]]["path"]), str(fifo)])
    assert str(caught.value.code) == (
        f"patentlmm describe: Not image files: {fifo} (is a FIFO (named pipe), not a file)."
    )


def test_max_new_tokens_beyond_the_decoders_positions_is_refused_naming_the_option(tiny, tiny_dir, figures, tmp_path):
    model, processor = tiny
    positions = model.config.get_text_config().max_position_embeddings
    output = tmp_path / "out.jsonl"
    options = DescribeOptions(images=[figures[IDS[0]]["path"]], output=output, max_new_tokens=10**9)
    with pytest.raises(InputError) as caught:
        describe(model, options, processor=processor)
    message = str(caught.value)
    assert message.startswith(f"max_new_tokens (--max-new-tokens) is 1000000000, more than the model can hold: "
                              f"its decoder has {positions} positions and the prompt takes at least ")  # fmt: skip
    room = int(message.rsplit("at most ", 1)[1].rstrip("."))
    assert 0 < room < positions - processor.num_image_patches + 1
    assert not output.exists()
    argv = ["describe", "--model", str(tiny_dir), "--output", str(output), str(figures[IDS[0]]["path"])]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--max-new-tokens", str(room + 1)])
    assert str(exit_info.value.code) == f"patentlmm describe: {message.replace('1000000000', str(room + 1))}"
    assert not output.exists()


def test_a_second_describe_into_a_held_output_refuses_naming_the_holder(tiny, figures, tmp_path):
    model, processor = tiny
    output = tmp_path / "out.jsonl"
    options = DescribeOptions(images=[figures[IDS[0]]["path"]], output=output, max_new_tokens=1)
    with held_lock(tmp_path / ".out.jsonl.lock") as holder:
        with pytest.raises(RuntimeError) as caught:
            describe(model, options, processor=processor)
    assert str(caught.value) == (f"a describe writing {output} is already running (pid {holder} holds the lock "
                                 f"{tmp_path / '.out.jsonl.lock'}): wait for it to finish")  # fmt: skip
    assert not output.exists()
    assert [row["image_id"] for row in describe(model, options, processor=processor)] == [IDS[0]]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "patentlmm.cli", "describe", *args]


@pytest.mark.slow
def test_two_describe_processes_into_one_output_one_writer_each_figure_once(tiny_dir, figures, tmp_path):
    """Two real `patentlmm describe` processes on the same output: while the first holds the lock (stopped with
    SIGSTOP right after taking it, so the overlap is certain), the second exits 1 naming it; the first then finishes;
    every figure is in the output once; a rerun of the second completes with nothing left to do."""
    output = tmp_path / "out.jsonl"
    images = [str(figures[i]["path"]) for i in IDS]
    argv = _cli("--model", str(tiny_dir), "--max-new-tokens", "2", "--output", str(output), *images)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    first = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / ".out.jsonl.lock"
    try:
        for _ in range(1200):  # 120 s at most for its imports
            if lock.exists() and lock.read_text().strip() == str(first.pid):
                break
            assert first.poll() is None, first.communicate()
            time.sleep(0.1)
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        first.send_signal(signal.SIGCONT)
        _, first_err = first.communicate(timeout=240)
    finally:
        first.kill()
        first.wait()
    assert second.returncode == 1
    assert second.stderr.strip().splitlines()[-1] == (
        f"patentlmm describe: a describe writing {output} is already running (pid {first.pid} holds the lock {lock}): "
        "wait for it to finish"
    )
    assert first.returncode == 0, first_err
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert sorted(row["image_id"] for row in rows) == sorted(IDS)
    rerun = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0 and f"Wrote 0 descriptions to {output}" in rerun.stderr
    assert len(output.read_text().splitlines()) == 2


def test_ids_written_twice_count_once_on_resume_and_are_reported(tmp_path, caplog):
    output = tmp_path / "out.jsonl"
    rows = [{"image_id": i, "type": "brief", "prediction": "p"} for i in ("a", "b", "a", "c", "a", "b")]
    output.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with caplog.at_level("WARNING", logger="patentlmm.inference.describe"):
        assert prepare_output(output, "brief") == {"a", "b", "c"}
    assert [r.getMessage() for r in caplog.records] == [f"{output} holds 2 brief ids more than once (a, b): each "
                                                        "counts once."]  # fmt: skip
