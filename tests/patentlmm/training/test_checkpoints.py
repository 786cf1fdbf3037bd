"""Checkpoints under faults, in real training processes: SIGTERM (a cluster's preemption) finishes the step, saves and
exits 0 saying how to resume; SIGKILL or a full disk (RLIMIT_FSIZE) during a save leaves no `checkpoint-N` a resume
could pick; a resume takes the latest complete checkpoint and names a damaged file with its checkpoint."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO
from helpers.training import FAST

pytest.importorskip("trl")

from patentlmm import training  # noqa: E402
from patentlmm.training.checkpoints import last_complete_checkpoint  # noqa: E402

# A training run with one fault at step $FAULT_STEP: `sigterm` (sent to itself between the two micro-batches of the
# step), `sigkill` or `sigterm_in_save` (after the model is saved into the checkpoint, before the optimizer) or
# `fsize` (RLIMIT_FSIZE of 1 KiB from the end of that step on: every larger file write fails, as on a full disk).
FAULTY_RUN = """
import os, resource, signal, sys
from transformers import TrainerCallback
from patentlmm import training

FAULT, STEP = os.environ["FAULT"], int(os.environ["FAULT_STEP"])

class Fault(TrainerCallback):
    def on_substep_end(self, args, state, control, **kwargs):
        if FAULT == "sigterm" and state.global_step == STEP - 1:
            os.kill(os.getpid(), signal.SIGTERM)

    def on_step_end(self, args, state, control, **kwargs):
        if FAULT == "fsize" and state.global_step == STEP:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))

init, save = training.PatentLMMSFTTrainer.__init__, training.PatentLMMSFTTrainer._save_optimizer_and_scheduler
def patched_init(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self.add_callback(Fault())
def patched_save(self, output_dir):
    if FAULT in ("sigkill", "sigterm_in_save") and self.state.global_step == STEP:
        os.kill(os.getpid(), signal.SIGKILL if FAULT == "sigkill" else signal.SIGTERM)
    save(self, output_dir)
training.PatentLMMSFTTrainer.__init__ = patched_init
training.PatentLMMSFTTrainer._save_optimizer_and_scheduler = patched_save
training.main(sys.argv[1:])
"""


def _command(data: Path, model: Path, output: Path, *extra: str) -> list[str]:
    return ["--config", str(REPO / "recipes" / "stage2_brief.yaml"), "--model_name_or_path", str(model),
            "--dataset_name", str(data), "--output_dir", str(output), "--lora_r", "4", "--lora_alpha", "8",
            "--merge_lora", "false", "--gradient_checkpointing", "false", *FAST, "--per_device_train_batch_size", "1",
            "--max_steps", "3", *extra]  # fmt: skip


def _faulty(fault: str, step: int, arguments: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "FAULT": fault, "FAULT_STEP": str(step), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", FAULTY_RUN, *arguments], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def _entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if "checkpoint" in path.name)


def _step(checkpoint: Path) -> int:
    return json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]


def test_sigterm_finishes_the_step_saves_and_exits_0_saying_how_to_resume(tmp_path, patentdesc_dir, small):
    output = tmp_path / "run"
    arguments = _command(patentdesc_dir, small[0], output, "--gradient_accumulation_steps", "2")  # save_strategy no
    stopped = _faulty("sigterm", 2, arguments)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert (
        f"Stopped by SIGTERM after step 2, saved in {output / 'checkpoint-2'}: resume with the same command and "
        "--resume_from_checkpoint true." in stopped.stderr
    )
    assert "Saved to" not in stopped.stderr and not (output / "adapter_model.safetensors").exists()
    assert _entries(output) == ["checkpoint-2"] and _step(output / "checkpoint-2") == 2

    training.main([*arguments, "--resume_from_checkpoint", "true"])
    assert json.loads((output / "trainer_state.json").read_text())["global_step"] == 3
    assert (output / "adapter_model.safetensors").is_file()


def test_sigterm_during_a_save_completes_it_and_stops_after_the_next_step(tmp_path, patentdesc_dir, small):
    output = tmp_path / "run"
    arguments = _command(patentdesc_dir, small[0], output, "--save_strategy", "steps", "--save_steps", "1",
                         "--max_steps", "5", "--save_total_limit", "5")  # fmt: skip
    stopped = _faulty("sigterm_in_save", 2, arguments)
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    assert f"Stopped by SIGTERM after step 3, saved in {output / 'checkpoint-3'}" in stopped.stderr
    assert _entries(output) == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    assert all((output / name / "optimizer.pt").is_file() for name in _entries(output))  # each one complete
    assert [_step(output / name) for name in _entries(output)] == [1, 2, 3]


def test_sigkill_during_a_save_leaves_no_checkpoint_a_resume_picks(tmp_path, patentdesc_dir, small):
    output = tmp_path / "run"
    arguments = _command(patentdesc_dir, small[0], output, "--save_strategy", "steps", "--save_steps", "1")
    killed = _faulty("sigkill", 2, arguments)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert _entries(output) == [".checkpoint-2.tmp-saving", "checkpoint-1"]  # the half-written one is staged
    assert (output / ".checkpoint-2.tmp-saving" / "checkpoint-2" / "adapter_model.safetensors").is_file()

    training.main([*arguments, "--resume_from_checkpoint", "true"])  # from checkpoint-1
    assert _entries(output) == ["checkpoint-2", "checkpoint-3"]  # save_total_limit 2: the staging folder is gone
    assert [_step(output / name) for name in _entries(output)] == [2, 3]


def test_a_full_disk_during_a_save_is_one_line_and_a_resume_completes(tmp_path, patentdesc_dir, small):
    output = tmp_path / "run"
    arguments = _command(patentdesc_dir, small[0], output, "--save_strategy", "steps", "--save_steps", "1")
    full = _faulty("fsize", 2, arguments)
    assert full.returncode == 1, full.stderr[-3000:]
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith(f"train: Saving checkpoint-2 in {output} failed (") and "Traceback" not in full.stderr
    assert last.endswith(
        "nothing of it was kept. Make room, then resume from the checkpoint before it with the same command and "
        "--resume_from_checkpoint true."
    )
    assert _entries(output) == ["checkpoint-1"] and _step(output / "checkpoint-1") == 1

    training.main([*arguments, "--resume_from_checkpoint", "true"])
    assert _entries(output) == ["checkpoint-2", "checkpoint-3"] and _step(output / "checkpoint-3") == 3


def test_a_damaged_file_is_named_with_its_checkpoint(tmp_path, patentdesc_dir, small):
    output = tmp_path / "run"
    arguments = _command(patentdesc_dir, small[0], output, "--save_strategy", "steps", "--save_steps", "1",
                         "--max_steps", "2")  # fmt: skip
    training.main(arguments)
    pristine = tmp_path / "pristine"
    shutil.copytree(output / "checkpoint-2", pristine)
    for name, damage in (("adapter_model.safetensors", "truncate"), ("optimizer.pt", "flip")):
        path = output / "checkpoint-2" / name
        data = bytearray(path.read_bytes())
        if damage == "truncate":
            data = data[: len(data) // 2]
        else:
            data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(SystemExit) as stopped:
            training.main([*arguments, "--max_steps", "3", "--resume_from_checkpoint", "true"])
        message = str(stopped.value.code)
        assert message.startswith(f"train: checkpoint-2: {name} is damaged ("), message
        assert message.endswith(
            f"Delete {output / 'checkpoint-2'} to resume from the checkpoint before it, or resume from another with "
            "--resume_from_checkpoint PATH."
        )
        shutil.copy(pristine / name, path)
    assert _entries(output) == ["checkpoint-1", "checkpoint-2"]  # nothing trained or written meanwhile


def test_resume_takes_the_latest_complete_checkpoint(tmp_path, caplog):
    for step, complete in ((1, True), (2, True), (3, False), (10, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / ".checkpoint-11.tmp-saving").mkdir()
    with caplog.at_level("WARNING", logger="patentlmm.training"):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert f"Skipped {tmp_path / 'checkpoint-10'}: an incomplete checkpoint (it has no trainer_state.json)." in (
        caplog.messages
    )
    assert last_complete_checkpoint(tmp_path / "none") is None
