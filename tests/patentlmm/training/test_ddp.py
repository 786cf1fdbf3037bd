"""Stage 2 on two CPU processes (torchrun, gloo): the ranks train on disjoint rows, the final folder is written once
and a run resumes from its checkpoint under DDP. FSDP2 does not run on the CPU through the Trainer: the last test
records why and that training refuses it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO, SCRIPTS

pytest.importorskip("trl")
from helpers.training import FAST  # noqa: E402

SCRIPT = SCRIPTS / "ddp_train.py"


def _torchrun(
    output: Path, logs: Path, dataset: Path, model: Path, *extra: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    logs.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(SCRIPT),
        "--config", str(REPO / "recipes" / "stage2_brief.yaml"), "--model_name_or_path", str(model),
        "--dataset_name", str(dataset), "--output_dir", str(output), "--lora_r", "4", "--lora_alpha", "8",
        *FAST, "--per_device_train_batch_size", "1", "--gradient_checkpointing", "false", "--ddp_backend", "gloo",
        "--train_sampling_strategy", "random", "--save_strategy", "steps", "--save_steps", "1", *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO), "BATCH_LOG_DIR": str(logs), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _batches(logs: Path, rank: int) -> list[list[str]]:
    return [json.loads(line) for line in (logs / f"rank{rank}.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_stage2_on_two_processes_with_gloo_saves_once_splits_the_rows_and_resumes(tmp_path, patentdesc_dir, small):
    output = tmp_path / "ddp"
    first = _torchrun(output, tmp_path / "logs-1", patentdesc_dir, small[0], "--max_steps", "2")
    assert first.returncode == 0, first.stderr[-4000:]
    log = first.stdout + first.stderr
    assert log.count("Saved to ") == 1, log[-3000:]  # rank 0 alone writes (and says it wrote) the final folder
    assert (output / "model.safetensors").is_file() and (output / "adapter" / "adapter_model.safetensors").is_file()
    # the first two batches of each rank trained (the dataloader collates one more ahead of use)
    rank0, rank1 = _batches(tmp_path / "logs-1", 0)[:2], _batches(tmp_path / "logs-1", 1)[:2]
    assert len(rank0) == len(rank1) == 2
    seen0, seen1 = {i for batch in rank0 for i in batch}, {i for batch in rank1 for i in batch}
    assert seen0 and seen1 and not seen0 & seen1, (rank0, rank1)  # the distributed sampler splits the rows
    state = json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2

    shutil.rmtree(output / "checkpoint-2")  # as if killed after step 1's checkpoint
    resumed = _torchrun(output, tmp_path / "logs-2", patentdesc_dir, small[0], "--max_steps", "2",
                        "--resume_from_checkpoint", "true")  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    again0, again1 = _batches(tmp_path / "logs-2", 0), _batches(tmp_path / "logs-2", 1)
    assert (again0[:1], again1[:1]) == (rank0[1:], rank1[1:])  # only step 2 ran, on the same rows as before
    state = json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and [e["step"] for e in state["log_history"] if "loss" in e] == [1, 2]
    assert json.loads((tmp_path / "logs-1" / "rank0-model.json").read_text()) == {"sharded": False, "world_size": 2}


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_both_after_the_same_step(tmp_path, patentdesc_dir, small):
    """A preemption notice that reaches rank 1 alone, as step 2 begins: the ranks agree at the step's end, both stop
    after step 2 (no rank waits forever in the next step's all-reduce), checkpoint-2 is saved, every process exits 0."""
    output = tmp_path / "ddp"
    stopped = _torchrun(output, tmp_path / "logs", patentdesc_dir, small[0], "--max_steps", "4", "--save_steps", "10",
                        env={"SIGTERM_AT": "1:2"})  # fmt: skip
    assert stopped.returncode == 0, stopped.stderr[-4000:]
    log = stopped.stdout + stopped.stderr
    assert log.count(f"Stopped by SIGTERM after step 2, saved in {output / 'checkpoint-2'}") == 1, log[-3000:]
    assert sorted(path.name for path in output.glob("*checkpoint*")) == ["checkpoint-2"]
    assert json.loads((output / "checkpoint-2" / "trainer_state.json").read_text())["global_step"] == 2
    assert len(_batches(tmp_path / "logs", 0)) == len(_batches(tmp_path / "logs", 1))
    assert not (output / "model.safetensors").exists()  # the final folder waits for the resumed run


def test_fsdp_on_the_cpu_is_refused_with_the_reason():
    """FSDP2 cannot run on this CPU through the Trainer (transformers 5.24, accelerate 1.15, torch 2.13), measured
    with `torchrun --nproc_per_node 2 tests/helpers/scripts/ddp_train.py ... --fsdp full_shard --fsdp_config
    '{"fsdp_version": 2}'`: with --use_cpu true the run finishes as plain DDP (distributed type MULTI_CPU,
    `is_fsdp_enabled` False, no DTensor parameter), with --use_cpu false it stops at "Using fsdp only works in
    distributed training.". So training refuses the combination instead of silently training without FSDP."""
    from patentlmm import training

    argv = ["--config", str(REPO / "recipes" / "stage2_brief.yaml"), "--model_name_or_path", "m", "--dataset_name",
            "d", "--output_dir", "o", "--use_cpu", "true", "--fsdp", "full_shard",
            "--fsdp_config", json.dumps({"fsdp_version": 2})]  # fmt: skip
    with pytest.raises(ValueError, match=r"--fsdp on the CPU \(--use_cpu true\) would be ignored"):
        training.parse_arguments(argv)
