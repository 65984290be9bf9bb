"""The training worker: `python -m playground.train.worker <run_dir> [--resume]`.

It runs in its own process with its own copy of the base model, so the app keeps serving (and survives an
OOM or crash here). It reads `<run_dir>/config.json`, trains with TRL's SFTTrainer + a PEFT LoraConfig, and
reports only through `<run_dir>/events.jsonl`. Tests call `run_job` in-process on a tiny model.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playground.train import distributed
from playground.train.config import TrainJobConfig
from playground.train.events import CHECKPOINTS, CONFIG_FILE, EVENTS_FILE, STOP_FILE, EventLog, read_events
from playground.train.status import EventSummary


@dataclass
class JobResult:
    state: str  # completed | stopped | failed | interrupted
    adapter_dir: Path | None
    steps: int
    message: str = ""
    model: Any = field(default=None, repr=False)  # the trained PeftModel (in-process callers, tests)


# How an out-of-memory error reads (lower case): CUDA's, and PyTorch's CPU allocator's
# "[enforce fail at alloc_cpu.cpp:127] ... DefaultCPUAllocator: can't allocate memory" (a RuntimeError).
OOM_WORDS = ("out of memory", "can't allocate memory", "defaultcpuallocator")


def explain_error(err: BaseException) -> str:
    """A sentence the user can act on, for the errors training typically hits."""
    text = str(err)
    import torch

    if isinstance(err, (torch.OutOfMemoryError, MemoryError)) or any(w in text.lower() for w in OOM_WORDS):
        return ("Out of memory while training. Lower the batch size or the max sequence length, turn on "
                "gradient checkpointing, or use 4-bit quantization (QLoRA).")
    if isinstance(err, ValueError):
        return text
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"Training failed: {type(err).__name__}: {first}"


def nan_message(step: int, what: str, lr: float) -> str:
    return (f"The {what.replace('_', ' ')} became NaN/inf at step {step}, so training was stopped and no adapter "
            f"was saved. This usually means the learning rate ({lr:g}) is too high: start a new run with a lower "
            "one (e.g. 10x lower) or more warmup, or check the data for broken rows. Resuming would replay the "
            "same steps from a checkpoint that may already hold broken weights.")


def checkpoint_step(run_dir: Path) -> int | None:
    """The step of the run's last checkpoint folder (the one a resume continues from), read from the folder names
    only: the start event reports it before anything heavy is imported."""
    steps = [int(p.name.split("-")[-1]) for p in (run_dir / CHECKPOINTS).glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit()]
    return max(steps, default=None)


def _load_base(config: TrainJobConfig) -> Any:
    from playground.model.store import LoadSettings, load_model

    settings = LoadSettings(source=config.base.load_source, data_dir=Path(config.data_dir or "."),
                            device=distributed.load_device(config.base.device, config.train.strategy),
                            quantization=config.train.quantization,
                            dtype=config.load_dtype,
                            trust_remote_code=config.base.trust_remote_code)
    return distributed.for_training(load_model(settings), config.train.strategy)


def prepared_model(config: TrainJobConfig, loaded: Any) -> Any:
    """The loaded base made ready for training, for every method (method_run adds a starting adapter)."""
    from peft import prepare_model_for_kbit_training

    t, model = config.train, loaded.model
    if loaded.device.type == "cpu":
        from playground.train.trl_cpu import score_only_labelled_positions_on_cpu

        score_only_labelled_positions_on_cpu()  # skip LM-head work on prompt tokens (Pig Latin: 625 s -> 420 s)
    if t.quantization != "none":  # QLoRA recipe: fp32 norms/embeddings, input grads for checkpointing
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=t.gradient_checkpointing)
    if t.quantization == "4bit":  # evals and probes must not repack the weights for CPU inference
        from playground.train.bnb_cpu import keep_4bit_weights_unpacked

        keep_4bit_weights_unpacked(model)
    return model


def build_trainer(config: TrainJobConfig, loaded: Any, data: Any, run_dir: Path, callbacks: list) -> Any:
    """SFTConfig + LoraConfig + SFTTrainer for this job (kept separate so the bench can time the same setup)."""
    import torch
    from trl import SFTTrainer

    from playground.train.hf_args import lora_config, sft_config

    model, device = prepared_model(config, loaded), loaded.device.type
    args = sft_config(config, data.format, output_dir=str(run_dir / CHECKPOINTS), device_type=device,
                      bf16_supported=device == "cuda" and torch.cuda.is_bf16_supported())
    return SFTTrainer(model=model, args=args, train_dataset=data.train, eval_dataset=data.eval,
                      processing_class=loaded.tokenizer, peft_config=lora_config(config.lora), callbacks=callbacks)


def precision_name(args: Any) -> str:
    """What the trainer computes in: bf16 / fp16 mixed precision, or plain fp32."""
    return "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32"


def default_probe(config: TrainJobConfig, data: Any) -> str:
    from playground.data.loading import prompt_of
    from playground.data.recipes import get_recipe

    if config.train.probe_prompt.strip():
        return config.train.probe_prompt.strip()
    if config.data.kind == "recipe":
        probe = get_recipe(config.data.recipe).probe
        if probe:
            return probe
    return prompt_of((data.eval or data.train)[0])


def run_job(config: TrainJobConfig, run_dir: Path, resume: bool = False, parent_pid: int | None = None) -> JobResult:
    """Train one adapter; every step of the way is reported to `<run_dir>/events.jsonl`. Errors are reported
    (type "end", state "failed") and re-raised."""
    log = distributed.event_log(run_dir / EVENTS_FILE)  # several ranks: rank 0 reports, the others only a crash
    started = time.time()
    # A resume names its checkpoint at once, so the live view drops the later steps while the model loads.
    log.emit("start", pid=os.getpid(), resume=resume, **({"resume_step": checkpoint_step(run_dir)} if resume else {}))
    try:
        return _run(config, run_dir, log, resume, parent_pid, started)
    except BaseException as err:
        log.emit("end", state="failed", message=explain_error(err),
                 detail="".join(traceback.format_exception(err))[-3000:])
        raise


def _run(config: TrainJobConfig, run_dir: Path, log: EventLog, resume: bool, parent_pid: int | None,
         started: float) -> JobResult:
    from transformers.trainer_utils import get_last_checkpoint

    from playground.adapters.files import save_adapter_folder
    from playground.train.callbacks import EventLogCallback, NanGuardCallback, ProbeCallback, StopCallback
    from playground.train.cuda_attention import keep_attention_gradients_finite
    from playground.train.method_run import (build_method_trainer, method_callbacks, method_rewards, method_setup,
                                             prepare_method_data)

    log.emit("status", state="loading", message="Loading the model and the data…")
    loaded = _load_base(config)
    config.validate(loaded.device.type)
    keep_attention_gradients_finite(loaded.device.type)  # cuDNN attention's backward can return NaN on a GPU
    tok = loaded.tokenizer
    data = prepare_method_data(config, has_chat_template=bool(tok.chat_template))  # SFT rows, DPO pairs, GRPO prompts
    stop = StopCallback(run_dir / STOP_FILE, parent_pid)
    nan_guard = NanGuardCallback()
    probe_every = distributed.probe_every(config.train.probe_every, config.train.strategy)  # rank 0 probes
    probe = ProbeCallback(log, tok, default_probe(config, data), probe_every,
                          config.train.probe_max_new_tokens, config.data.use_chat_template)
    rewards = method_rewards(config)  # GRPO's reward rules (None for SFT / DPO)
    callbacks = [EventLogCallback(log, loaded.device.type), nan_guard, stop, probe,
                 *method_callbacks(config, log, rewards)]
    trainer = build_method_trainer(config, loaded, data, run_dir, callbacks, rewards)
    trainable, total = trainer.model.get_nb_trainable_parameters()
    log.emit("setup", train_rows=len(data.train), eval_rows=len(data.eval) if data.eval is not None else 0,
             trainable_params=trainable, total_params=total, probe_prompt=probe.prompt, format=data.format,
             device=distributed.device_label(loaded.device.type), precision=precision_name(trainer.args),
             dataset=data.summary())
    log.emit("method", **method_setup(config, rewards))  # SFT / DPO / GRPO, starting adapter, reference, rewards
    checkpoint = get_last_checkpoint(str(run_dir / CHECKPOINTS)) if resume and (run_dir / CHECKPOINTS).is_dir() \
        else None
    stopped = stop.requested()  # a collective with several ranks: asked once, in the same order on every rank
    if stopped and checkpoint:  # a resume stopped while loading: its checkpoint is intact, so it stays resumable
        message = (f"Stopped before training resumed; nothing was saved and {Path(checkpoint).name} is kept: "
                   "Resume continues from it.")
        at = checkpoint_step(run_dir) or 0
        log.emit("end", state="interrupted", message=message, step=at)
        return JobResult("interrupted", None, at, message)
    if stopped:
        log.emit("end", state="stopped", message="Stopped before training started; nothing to save.")
        return JobResult("stopped", None, 0, "Stopped before training started.")
    log.emit("status", state="training", message="Resuming from " + Path(checkpoint).name if checkpoint
             else "Training…")
    trainer.train(resume_from_checkpoint=checkpoint)
    step = trainer.state.global_step

    if nan_guard.tripped_at is not None:
        message = nan_message(nan_guard.tripped_at, nan_guard.what, config.train.learning_rate)
        log.emit("end", state="failed", message=message, step=step, resumable=False)  # a resume replays the NaN
        return JobResult("failed", None, step, message)
    if stop.reason == "parent":
        message = f"The app closed at step {step}; a checkpoint was saved: resume the run to continue."
        log.emit("end", state="interrupted", message=message, step=step)
        return JobResult("interrupted", None, step, message)
    state = "stopped" if stop.reason == "user" else "completed"
    if step == 0:
        log.emit("end", state=state, message="Stopped before the first step; nothing to save.", step=0)
        return JobResult(state, None, 0)

    log.emit("status", state="saving", message="Saving the adapter…")
    history = EventSummary()  # over all attempts of the run (a resumed run repeats some steps: last wins)
    history.add(read_events(run_dir / EVENTS_FILE)[0])
    losses, evals = history.loss_history(), history.eval_history()
    final_eval = None
    if data.eval is not None and state == "completed":
        # one last eval at the final weights (a collective: every rank follows rank 0's reading of the log)
        if distributed.main_decides(not evals or evals[-1]["step"] != step):
            final_eval = trainer.evaluate()["eval_loss"]
            log.emit("eval", step=step, eval_loss=final_eval)
            evals.append({"step": step, "eval_loss": final_eval})
        final_eval = evals[-1]["eval_loss"]
    meta = {"kind": "trained", "base_model": config.base.name, "base_source": config.base.source,
            "base_fingerprint": config.base.fingerprint, "dataset": data.summary(),
            "settings": config.flat_settings(), "loss_history": losses, "eval_history": evals,
            "final_train_loss": losses[-1]["loss"] if losses else None, "final_eval_loss": final_eval,
            "duration_s": round(time.time() - started, 1), "run_id": run_dir.name, "steps": step,
            "state": state, "probe_prompt": probe.prompt,
            "trained_in": precision_name(trainer.args)}  # what Precision (auto: per hardware and method) became
    adapters = Path(config.data_dir) / "adapters"
    model = distributed.savable(trainer)  # sharded weights: every rank helps gather them
    if not distributed.is_main():  # the adapter is saved once, by rank 0
        return JobResult(state, None, step)
    folder = save_adapter_folder(adapters, config.adapter_name, model, meta, overwrite=config.overwrite)
    if state == "completed":
        shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)  # only needed to resume an unfinished run
    log.emit("end", state=state, adapter=folder.name, adapter_dir=str(folder), step=step,
             final_train_loss=meta["final_train_loss"], final_eval_loss=final_eval, duration_s=meta["duration_s"],
             message=f"Saved adapter {folder.name} after {step} steps.")
    return JobResult(state, folder, step, model=trainer.model)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m playground.train.worker <run_dir> [--resume]", file=sys.stderr)
        return 2
    run_dir = Path(argv[0])
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    config = TrainJobConfig.from_dict(json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8")))
    try:
        result = run_job(config, run_dir, resume="--resume" in argv, parent_pid=distributed.app_pid())
    except BaseException:  # already reported to the event log
        traceback.print_exc()
        return 1
    print(f"worker finished: {result.state} after {result.steps} steps", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is on disk (the final event is fsynced, the adapter renamed into place). Skip the interpreter's
    # teardown of torch & co. (~2 s): the app treats the run as in progress until this process is gone.
    os._exit(code)
