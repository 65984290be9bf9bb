"""How a run is launched: one plain worker process, or N ranks through `accelerate launch` (data-parallel DDP,
or FSDP / DeepSpeed ZeRO-3 sharding), with the accelerate config written into the run folder.

1 process keeps the plain `python -m playground.train.worker <run_dir>`: no launcher process in between, no
process group, nothing new to go wrong on the default path. N processes run

    python -m accelerate.commands.launch --config_file <run_dir>/accelerate.yaml -m playground.train.worker <run_dir>

and the exported script is launched with the same file (`accelerate launch --config_file accelerate_<name>.yaml
train_<name>.py`). On a machine without a GPU, 2 processes train over gloo (to see and test how it works).

Several machines (the exported script; the app itself trains on one machine). Write one config per machine,
identical but for `machine_rank`, and run `accelerate launch --config_file <that file> train_<name>.py` on each
(the script, the data path and the model must be reachable on both; rank 0 on machine 0 saves the adapter):

    compute_environment: LOCAL_MACHINE
    distributed_type: MULTI_GPU      # or FSDP, with the fsdp_config block of the exported file
    num_machines: 2
    num_processes: 16                # all GPUs of both machines (8 + 8)
    machine_rank: 0                  # 1 on the second machine
    main_process_ip: 10.0.0.1        # machine 0's address, reachable from machine 1
    main_process_port: 29500         # a fixed free port (0 = pick one works on a single machine only)
    rdzv_backend: static
    same_network: true
    gpu_ids: all
    mixed_precision: 'no'            # the script sets bf16 / fp16 (from the GPU, or off in full precision)
    use_cpu: false
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

ACCELERATE_CONFIG = "accelerate.yaml"  # in the run folder
APP_PID_ENV = "PLAYGROUND_APP_PID"  # the app that started the run: every rank stops when it goes away
PROCESSES_LABEL, STRATEGY_LABEL = "Processes", "Parallelism"  # the settings' labels (playground.train.config)
CPU_PROCESSES = 2  # on a machine without a GPU: enough to show (and test) data-parallel training over gloo
STRATEGIES = [("Data parallel (DDP): a full copy per process", "ddp"),
              ("FSDP: shard the frozen weights across the GPUs", "fsdp"),
              ("DeepSpeed ZeRO-3: shard the weights across the GPUs", "zero3")]
SHARDED = ("fsdp", "zero3")  # the model is split across the ranks: no rank holds it whole
_NAMES = {"ddp": "Data parallel (DDP)", "fsdp": "FSDP", "zero3": "DeepSpeed ZeRO-3"}


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def deepspeed_available() -> bool:
    return importlib.util.find_spec("deepspeed") is not None


def _kind(device_type: str | None) -> str:
    return (device_type or "cpu").split(":")[0]


def process_choices(device_type: str | None, gpus: int | None = None) -> list[int]:
    """What the Processes box offers on this machine: 1 … the GPU count; 1 or 2 on a CPU; 1 elsewhere (MPS)."""
    kind = _kind(device_type)
    if kind == "cuda":
        return list(range(1, max(1, gpu_count() if gpus is None else gpus) + 1))
    return list(range(1, CPU_PROCESSES + 1)) if kind == "cpu" else [1]


def strategy_choices(device_type: str | None) -> list[tuple[str, str]]:
    """Only what can run here: DDP everywhere, FSDP on CUDA, ZeRO-3 on CUDA when deepspeed is importable."""
    cuda = _kind(device_type) == "cuda"
    return [c for c in STRATEGIES if c[1] == "ddp" or (cuda and (c[1] == "fsdp" or deepspeed_available()))]


def check_launch(processes: int, strategy: str, device_type: str | None, quantization: str = "none",
                 gpus: int | None = None) -> None:
    """Raise ValueError with a sentence naming the setting when this machine cannot run `processes` ranks with
    `strategy` (the strategy only matters for more than one process)."""
    if processes <= 1:
        return
    kind = _kind(device_type)
    if kind == "cpu" and processes > CPU_PROCESSES:
        raise ValueError(f"{PROCESSES_LABEL} must be 1 or {CPU_PROCESSES} on a machine without a GPU (got "
                         f"{processes}): {CPU_PROCESSES} CPU processes over gloo show how data-parallel training "
                         "works.")
    if kind == "cuda":
        gpus = gpu_count() if gpus is None else gpus
        if processes > gpus:
            raise ValueError(f"{PROCESSES_LABEL} must be at most {gpus}, the number of GPUs on this machine "
                             f"(got {processes}).")
    elif kind != "cpu":
        raise ValueError(f"{PROCESSES_LABEL} must be 1 on {kind} (got {processes}): several processes need CUDA "
                         "GPUs, or the CPU.")
    if strategy == "ddp":
        return
    name = _NAMES.get(strategy, strategy)
    if kind != "cuda":
        raise ValueError(f"{STRATEGY_LABEL} {name} shards the model across CUDA GPUs and does not run on a CPU: "
                         "choose data parallel (DDP).")
    if strategy == "zero3" and not deepspeed_available():
        raise ValueError(f"{STRATEGY_LABEL} {name} needs the deepspeed package, which is not installed: choose "
                         "FSDP or DDP.")
    if quantization != "none":
        raise ValueError(f"{STRATEGY_LABEL} {name} with 8-bit / 4-bit quantization is not supported here: choose "
                         "DDP (one quantized copy per GPU) or quantization none.")


def accelerate_config(processes: int, strategy: str, device_type: str | None) -> dict[str, Any]:
    """The accelerate config (what `accelerate launch --config_file` reads) for one machine.

    On a CPU it is MULTI_GPU + use_cpu: that launcher (torchrun) is the one that starts N local processes
    (MULTI_CPU needs mpirun); the ranks then see no GPU and join over gloo. Mixed precision stays 'no' here:
    the trainer's bf16 / fp16 flags (from the hardware, or off in full precision) decide it."""
    cfg: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE", "debug": False,
        "distributed_type": {"fsdp": "FSDP", "zero3": "DEEPSPEED"}.get(strategy, "MULTI_GPU"),
        "downcast_bf16": "no", "gpu_ids": "all", "machine_rank": 0, "main_training_function": "main",
        "mixed_precision": "no", "num_machines": 1, "num_processes": processes,
        "main_process_port": 0,  # 0 = a free port (two runs on one machine do not collide)
        "rdzv_backend": "static", "same_network": True, "use_cpu": _kind(device_type) == "cpu",
    }
    if strategy == "fsdp":  # PEFT's documented FSDP + LoRA set-up (docs/source/accelerate/fsdp.md)
        cfg["fsdp_config"] = {
            "fsdp_version": 1, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_backward_prefetch": "BACKWARD_PRE", "fsdp_cpu_ram_efficient_loading": False,
            "fsdp_forward_prefetch": False, "fsdp_offload_params": False, "fsdp_sharding_strategy": "FULL_SHARD",
            "fsdp_state_dict_type": "SHARDED_STATE_DICT", "fsdp_sync_module_states": True,
            "fsdp_use_orig_params": False,  # LoRA: trainable and frozen weights in separate FSDP units
        }
    elif strategy == "zero3":
        cfg["deepspeed_config"] = {"zero_stage": 3, "offload_optimizer_device": "none",
                                   "offload_param_device": "none", "zero3_init_flag": False,
                                   "zero3_save_16bit_model": True}
    return cfg


def accelerate_yaml(processes: int, strategy: str, device_type: str | None) -> str:
    import yaml

    head = (f"# accelerate config: {processes} processes on one machine ({_NAMES.get(strategy, strategy)}"
            f"{', CPU over gloo' if _kind(device_type) == 'cpu' else ''}).\n"
            "# Two machines: num_machines: 2, num_processes: all GPUs of both, machine_rank: 0 / 1,\n"
            "# main_process_ip: machine 0's address, main_process_port: a fixed free port.\n")
    return head + yaml.safe_dump(accelerate_config(processes, strategy, device_type), sort_keys=False)


def device_type_of(requested: str | None) -> str:
    """Where the worker will train: the base model's device, else what the worker would pick (cuda > mps > cpu)."""
    if requested:
        return _kind(requested)
    from playground.model.sources import pick_device  # lazy: torch is heavy, and a device asked for needs none

    return pick_device().type


def worker_command(python: str, run_dir: Path, resume: bool, processes: int, strategy: str,
                   device: str | None) -> list[str]:
    """The command that trains the run in `run_dir`; for several processes it first writes the accelerate
    config into the run folder (rewritten on resume, so an older folder gets a current file)."""
    worker = ["-m", "playground.train.worker", str(run_dir)] + (["--resume"] if resume else [])
    if processes <= 1:
        return [python, *worker]
    config_file = run_dir / ACCELERATE_CONFIG
    config_file.write_text(accelerate_yaml(processes, strategy, device_type_of(device)), encoding="utf-8")
    return [python, "-m", "accelerate.commands.launch", "--config_file", str(config_file), *worker]


def launcher_env(processes: int, device: str | None) -> dict[str, str]:
    """Environment for the launcher: the app's pid (ranks stop when it is gone) and, for CPU ranks, a share of
    the cores each (torchrun would give every process 1 thread)."""
    env = {APP_PID_ENV: str(os.getpid())}
    if processes > 1 and device_type_of(device) == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
    return env
