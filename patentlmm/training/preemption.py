"""Cluster preemption: on SIGTERM the running step finishes, a checkpoint is saved and training stops."""

from __future__ import annotations

import signal
import threading

import torch
from transformers import TrainerCallback

__all__ = ["StopOnSigterm"]


class StopOnSigterm(TrainerCallback):
    """While training, SIGTERM only sets `received` (a second SIGTERM acts as it did before); at the end of the step
    in flight the Trainer saves a checkpoint and stops. In a distributed run the flag is shared at every step's end,
    so a SIGTERM to any process stops all of them after the same step."""

    def __init__(self):
        self.received = False
        self._previous = None

    def _handle(self, signum, frame) -> None:
        self.received = True
        signal.signal(signal.SIGTERM, self._previous)  # a second SIGTERM is not held back

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is threading.main_thread():  # Python handles signals in the main thread only
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def on_step_end(self, args, state, control, **kwargs):
        received = self.received
        if args.world_size > 1 and torch.distributed.is_initialized():
            flag = torch.tensor([float(received)], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            received = self.received = bool(flag.item())
        if received:
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        if self._previous is not None and signal.getsignal(signal.SIGTERM) == self._handle:
            signal.signal(signal.SIGTERM, self._previous)
