"""The worker's place among its peers when `accelerate launch` started several ranks (see playground.train.launch).

Rank and world size come from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK), so they are known
before any process group exists; in a single process every helper here is a no-op. The rules:

* only rank 0 writes events.jsonl (one loss row per step) and saves the adapter; a crash on any rank is
  reported once (the first failure explains the run: a peer's "connection closed" afterwards does not);
* every decision that changes what the ranks do next is taken together: the STOP file and "the app is gone"
  are all-reduced at each step end (`agree`), the final evaluation is rank 0's decision broadcast
  (`main_decides`), so all ranks stop at the same step and no rank waits in a collective the others skipped;
* FSDP / ZeRO-3 shard the weights: every rank takes part in gathering them before rank 0 saves.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from playground.train.events import LOG_FILE, EventLog, read_events
from playground.train.launch import APP_PID_ENV, SHARDED


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def sharded(strategy: str) -> bool:
    """Launched by accelerate (torchrun sets LOCAL_RANK) with FSDP / ZeRO-3: no rank holds the whole model."""
    return strategy in SHARDED and "LOCAL_RANK" in os.environ


# What a collective reports when a peer rank died (gloo / NCCL transport errors).
PEER_LOST = ("gloo", "nccl", "connection closed", "connection reset", "broken pipe", "read error", "distbackend")


class RankEventLog(EventLog):
    """events.jsonl as seen from one of several ranks: rank 0 writes everything; the others write only a crash
    (an "end" event with its traceback), tagged with their rank. A crash report is dropped when an "end"
    event was already written in this attempt: the first failure is the one that explains the run."""

    def __init__(self, path: Path, rank_: int, world: int):
        super().__init__(path)
        self.rank, self.world = rank_, world
        self.opened_at = path.stat().st_size if path.is_file() else 0

    def _ended(self) -> bool:
        return any(e.get("type") == "end" for e in read_events(self.path, self.opened_at)[0])

    def emit(self, type_: str, **fields: Any) -> dict[str, Any]:
        crash = type_ == "end" and "detail" in fields
        if crash and self._ended():
            return {"type": type_, **fields}
        if crash and any(k in str(fields.get("message", "")).lower() for k in PEER_LOST):
            fields["message"] = (f"Process {self.rank + 1} of {self.world} lost contact with another training "
                                 "process, which crashed or was killed (often: out of memory); the run stopped. "
                                 f"That process's error is in {LOG_FILE}.")
            return super().emit(type_, rank=self.rank, **fields)
        if self.rank == 0:
            return super().emit(type_, **fields)
        if crash:
            message = f"Process {self.rank + 1} of {self.world}: {fields.pop('message', '')}"
            return super().emit(type_, rank=self.rank, message=message, **fields)
        return {"type": type_, **fields}


def event_log(path: Path) -> EventLog:
    """The worker's event log: the plain one in a single process, a RankEventLog among several."""
    return EventLog(path) if world_size() == 1 else RankEventLog(path, rank(), world_size())


def _flags(values: list[bool]) -> Any:
    """The flags as a float tensor on this rank's collective device (its GPU under NCCL, else the CPU), or None
    in a single process. accelerate's PartialState is the process group the Trainer's Accelerator set up."""
    if world_size() == 1:
        return None
    import torch
    from accelerate import PartialState

    return torch.tensor([float(bool(v)) for v in values], dtype=torch.float32, device=PartialState().device)


def agree(*flags: bool) -> tuple[bool, ...]:
    """Each flag as true on every rank when it is true on any rank (accelerate's all-reduce with "max")."""
    t = _flags(list(flags))
    if t is None:
        return tuple(bool(f) for f in flags)
    from accelerate.utils import reduce

    return tuple(bool(v) for v in reduce(t, reduction="max").tolist())


def main_decides(flag: bool) -> bool:
    """Rank 0's flag on every rank (accelerate's broadcast): for a choice that reads rank 0's files."""
    t = _flags([flag])
    if t is None:
        return bool(flag)
    from accelerate.utils import broadcast

    return bool(broadcast(t, from_process=0).item())


def app_pid() -> int:
    """The process whose end stops the run: the app (passed by the manager), else the direct parent."""
    return int(os.environ.get(APP_PID_ENV) or os.getppid())


def parent_gone(pid: int) -> bool:
    """`pid` is no longer this process's parent or (under the launcher) grandparent: the app or the launcher
    between them has ended."""
    if os.getppid() == pid:
        return False
    import psutil

    try:
        return pid not in {p.pid for p in psutil.Process().parents()}
    except psutil.Error:
        return True


def load_device(requested: str | None, strategy: str) -> str | None:
    """Where this rank loads the base model: its own GPU (DDP), the CPU when FSDP / ZeRO-3 will shard it onto
    the GPUs (a whole copy per GPU is what they avoid), or as asked in a single process."""
    import torch

    if sharded(strategy):
        return "cpu"
    if world_size() == 1:
        return requested
    if (requested or "cuda").startswith("cuda") and torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        return f"cuda:{local_rank()}"
    return requested


def for_training(loaded: Any, strategy: str) -> Any:
    """A model loaded on the CPU for FSDP / ZeRO-3 still trains on this rank's GPU (precision, device checks)."""
    if not sharded(strategy):
        return loaded
    import torch

    torch.cuda.set_device(local_rank())
    return dataclasses.replace(loaded, device=torch.device("cuda", local_rank()))


def probe_every(every: int | None, strategy: str) -> int | None:
    """The live probe runs on rank 0 only; with sharded weights it is off (generating would need every rank)."""
    return 0 if not is_main() or sharded(strategy) else every


def device_label(device_type: str) -> str:
    """The status line's device: `cuda`, or `cuda ×4` for four ranks."""
    return device_type if world_size() == 1 else f"{device_type} ×{world_size()}"


FSDP_WRAPPER = "_fsdp_wrapped_module"


class _CleanNames:
    """A PEFT model seen without FSDP1's in-place wrappers in its module names: PEFT finds the adapter's entries
    of a state dict by the module names, and strips only a leading `_fsdp_wrapped_module.`, while auto-wrapping
    nests one per decoder layer (peft 0.21 then saves an empty adapter)."""

    def __init__(self, model: Any):
        self._model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def named_modules(self, *args: Any, **kwargs: Any) -> Any:
        for name, module in self._model.named_modules(*args, **kwargs):
            yield ".".join(p for p in name.split(".") if p != FSDP_WRAPPER), module


@dataclasses.dataclass
class _Gathered:
    """A PEFT model plus its gathered full state dict: `save_pretrained` writes the adapter (weights + config)
    from that dict, like PeftModel.save_pretrained, and refuses to write an adapter without weights."""

    model: Any
    state_dict: dict[str, Any]

    def save_pretrained(self, path: str, selected_adapters: list[str] | None = None, **_: Any) -> None:
        import copy

        from peft.utils import get_peft_model_state_dict
        from safetensors.torch import save_file

        for name in selected_adapters or list(self.model.peft_config):
            weights = get_peft_model_state_dict(_CleanNames(self.model), state_dict=self.state_dict,
                                                adapter_name=name)
            if not weights:
                raise RuntimeError(f"No weights of adapter {name!r} in the gathered state dict.")
            folder = Path(path) if name == "default" else Path(path) / name
            folder.mkdir(parents=True, exist_ok=True)
            save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()},
                      str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
            config = copy.copy(self.model.peft_config[name])
            config.inference_mode = True
            config.save_pretrained(str(folder))


def savable(trainer: Any) -> Any:
    """What to save the adapter from. Sharded (FSDP / ZeRO-3): all ranks gather the full weights (a collective;
    call it on every rank), and rank 0 saves from them. Otherwise the trained PEFT model itself."""
    if not (trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled):
        return trainer.model
    acc = trainer.accelerator
    if trainer.is_fsdp_enabled:
        acc.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    state = acc.get_state_dict(trainer.model_wrapped)
    return _Gathered(acc.unwrap_model(trainer.model_wrapped), state)
