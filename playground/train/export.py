"""Export a run's settings as a standalone, readable training script (transformers + peft + trl + datasets),
plus the `accelerate launch` command that runs it on several GPUs. The script does not import playground."""

from __future__ import annotations

import datetime as dt
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playground.data.loading import resolve_format, wraps_in_chat
from playground.data.recipes import get_recipe
from playground.model.quant import quant_kwargs
from playground.train.bnb_cpu import PACKING_SWITCH
from playground.train.config import TrainJobConfig
from playground.train.hf_args import SFT_COMMENTS, lora_kwargs, sft_kwargs
from playground.train.launch import accelerate_yaml, device_type_of


@dataclass
class ExportedScript:
    filename: str
    code: str
    command: str  # multi-GPU launch
    config_filename: str = ""  # the accelerate config to save next to the script (a run of several processes)
    accelerate_config: str = ""  # its text: the same file the app launched the run with



def _main_head(out: str, max_steps: int, config: TrainJobConfig) -> str:
    """The start of every exported script's main(): its two flags, the precision, the tokenizer."""
    if config.full_precision:
        why = ("the run's Precision setting" if config.train.precision == "fp32" else
               "Precision auto for GRPO, which learnt less in bf16")
        dtypes = (f"    # Full precision ({why}): fp32 on a GPU too.\n"
                  "    use_bf16 = use_fp16 = False\n")
    else:
        dtypes = ("    # Mixed precision from the hardware: bf16 where the GPU supports it, fp16 on older GPUs, "
                  "fp32 on CPU.\n"
                  "    use_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()\n"
                  "    use_fp16 = torch.cuda.is_available() and not use_bf16\n")
    return f'''def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--output-dir", default={out!r})
    parser.add_argument("--max-steps", type=int, default={max_steps}, help="{SFT_COMMENTS["max_steps"]}")
    cli = parser.parse_args()

{dtypes}    dtype = torch.bfloat16 if use_bf16 else torch.float16 if use_fp16 else torch.float32
    if torch.cuda.is_available():
        # cuDNN attention's backward can return NaN in bf16/fp16 (pytorch/pytorch#196678): flash and
        # memory-efficient attention compute the same thing.
        torch.backends.cuda.enable_cudnn_sdp(False)

    tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
'''

def _row_function(config: TrainJobConfig, columns: dict[str, str], fmt: str) -> str:
    """The body of `to_training_row(row, chat)` for this data format (same mapping as
    playground.data.loading.to_training_row; `chat` is decided by wraps_in_chat, see CHAT_MAP)."""
    d = config.data
    if fmt == "messages":
        col = columns["messages"]
        if d.completion_only_loss:
            return (f"    messages = row[{col!r}]\n"
                    "    # prompt = every turn but the last; completion = the final assistant answer.\n"
                    "    # TRL then computes the loss on the completion tokens only.\n"
                    '    return {"prompt": messages[:-1], "completion": messages[-1:]}\n')
        return f'    return {{"messages": row[{col!r}]}}\n'
    if fmt == "text":
        return f'    return {{"text": row[{columns["text"]!r}]}}\n'
    return (_prompt_code(columns, fmt) + '    if chat:\n'
            '        return {"prompt": [{"role": "user", "content": prompt}],\n'
            '                "completion": [{"role": "assistant", "content": completion}]}\n'
            '    return {"prompt": prompt, "completion": completion}\n')


def _prompt_code(columns: dict[str, str], fmt: str, answer: bool = True) -> str:
    """Lines setting `prompt` (and with `answer`, `completion`) from an instruction or prompt/completion row."""
    if fmt == "instruction":
        body = f"    prompt = row[{columns['instruction']!r}]\n"
        if "input" in columns:
            body += (f"    if row.get({columns['input']!r}):\n"
                     f"        prompt += \"\\n\\n\" + row[{columns['input']!r}]\n")
        return body + (f"    completion = row[{columns['output']!r}]\n" if answer else "")
    if answer:
        return f"    prompt, completion = row[{columns['prompt']!r}], row[{columns['completion']!r}]\n"
    return f"    prompt = row[{columns['prompt']!r}]\n"


# The script decides the chat wrapping as the worker does: the run's setting, if the model has a chat template.
CHAT_MAP = """\
    chat = wraps_in_chat(USE_CHAT_TEMPLATE, bool(tokenizer.chat_template))  # as the app decided it
    dataset = dataset.map(to_training_row, fn_kwargs={"chat": chat}, remove_columns=dataset.column_names)
"""


def chat_rule(config: TrainJobConfig) -> str:
    """The script's chat-wrapping rule: the run's setting and the app's own wraps_in_chat (copied)."""
    return (f"USE_CHAT_TEMPLATE = {config.data.use_chat_template!r}  # wrap plain prompt/answer rows in chat "
            "messages\n\n\n" + inspect.getsource(wraps_in_chat))


def _data_loading(config: TrainJobConfig) -> tuple[str, list[str]]:
    """(code that sets `dataset`, its column names) for the run's data source."""
    from playground.data.loading import load_raw

    d = config.data
    columns = list(load_raw(d).dataset.column_names)
    if d.kind == "hub":
        code = f"    dataset = load_dataset({d.hub_id!r}, split={d.hub_split!r})\n"
    else:
        path = get_recipe(d.recipe).train if d.kind == "recipe" else Path(d.path)
        loader = "csv" if path.suffix.lower() == ".csv" else "json"
        code = f"    dataset = load_dataset({loader!r}, data_files={str(path)!r}, split=\"train\")\n"
    if d.max_rows:
        code += f"    dataset = dataset.select(range(min({d.max_rows}, len(dataset))))\n"
    return code, columns


def base_model_code(quantization: str, gradient_checkpointing: bool) -> str:
    """The script's loading of the base model as the worker loads it: in `dtype`, 4-/8-bit through
    bitsandbytes when the run was QLoRA (one copy per process), then prepared for k-bit training. Shared by
    the SFT and the DPO/GRPO scripts; the script imports BitsAndBytesConfig, PartialState and
    prepare_model_for_kbit_training when `quantization` is not "none"."""
    quant = ""
    if quantization in ("4bit", "8bit"):  # the app's own arguments (model.quant.quant_kwargs)
        compute = "            bnb_4bit_compute_dtype=dtype,\n" if quantization == "4bit" else ""
        quant = ("        quantization_config=BitsAndBytesConfig(\n" + _keywords(quant_kwargs(quantization), " " * 12)
                 + compute + "        ),\n")
        quant += "        device_map={\"\": PartialState().device},  # one copy per process (its GPU, or the CPU)\n"
    return (f"    model = AutoModelForCausalLM.from_pretrained(\n        BASE_MODEL,\n        dtype=dtype,\n{quant}    )\n"
            + _kbit_setup(quantization, gradient_checkpointing))


def _kbit_setup(quantization: str, gradient_checkpointing: bool) -> str:
    """The worker's preparation of a quantized base (prepare_model_for_kbit_training; for 4-bit, bnb_cpu)."""
    if quantization == "none":
        return ""
    code = ("    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing="
            f"{gradient_checkpointing!r})\n")
    if quantization == "4bit":
        code += ("    # On CPUs with AVX512-BF16, bitsandbytes repacks 4-bit weights for inference at the first\n"
                 "    # evaluation; packed layers pass no gradient and only fit some shapes. Keep them trainable.\n"
                 "    for module in model.modules():\n"
                 f"        if getattr(module, {PACKING_SWITCH!r}, False):\n"
                 f"            module.{PACKING_SWITCH} = False\n")
    return code


def _keywords(kwargs: dict[str, Any], indent: str = "        ") -> str:
    """`name=value,` lines of a call, values as Python literals (repr), with the known comments."""
    lines = []
    for name, value in kwargs.items():
        comment = f"  # {SFT_COMMENTS[name]}" if name in SFT_COMMENTS else ""
        lines.append(f"{indent}{name}={value!r},{comment}\n")
    return "".join(lines)


def export_script(config: TrainJobConfig, run_id: str = "", output_dir: str | None = None,
                  num_gpus: int = 2) -> ExportedScript:
    if config.tuning.method != "sft" or config.tuning.start_adapter.strip():  # DPO, GRPO, continuing an adapter
        from playground.train.export_methods import export_method_script

        return export_method_script(config, run_id, output_dir, num_gpus)
    t, lora, d = config.train, config.lora, config.data
    load_code, source_columns = _data_loading(config)
    fmt, columns = resolve_format(source_columns, d)
    filename = f"train_{config.adapter_name}.py"
    out = output_dir or f"./{config.adapter_name}"
    quant = t.quantization != "none"
    eval_split = d.eval_fraction > 0
    sft = sft_kwargs(config, fmt)
    max_steps = sft.pop("max_steps")  # a command-line option of the script, defaulting to the run's
    launched = multi_process_launch(config, filename)  # (command, config file name, its text) or None
    command = launched[0] if launched else f"accelerate launch --num_processes {num_gpus} {filename}"
    code = f'''#!/usr/bin/env python
"""LoRA fine-tune exported from LLM Playground{f" (run {run_id})" if run_id else ""}, {dt.date.today().isoformat()}.

One GPU or CPU:   python {filename}
Several GPUs:     {command}{f"  ({launched[1]} next to this script)" if launched else ""}
Two machines:     the same command on each, with num_machines / machine_rank / main_process_ip in the config
Needs: pip install torch transformers peft trl datasets accelerate{" bitsandbytes" if quant else ""}
"""

import argparse

import torch
from accelerate import PartialState
from datasets import load_dataset
from peft import LoraConfig{", prepare_model_for_kbit_training" if quant else ""}
{"from safetensors.torch import save_file" + chr(10) if _save_code(config) == FSDP_SAVE else ""}from transformers import AutoModelForCausalLM, AutoTokenizer{", BitsAndBytesConfig" if quant else ""}
from trl import SFTConfig, SFTTrainer

BASE_MODEL = {config.base.load_source!r}  # the app's base model: {config.base.name} ({config.base.source})
{chat_rule(config)}

def to_training_row(row, chat):
    """One source row -> one TRL row ({fmt.replace("_", "/")} format)."""
{_row_function(config, columns, fmt)}

{_main_head(out, max_steps, config)}{base_model_code(t.quantization, t.gradient_checkpointing)}
{load_code}{CHAT_MAP}{f"    split = dataset.train_test_split(test_size={d.eval_fraction!r}, seed={t.seed})" + chr(10) + '    train_data, eval_data = split["train"], split["test"]' if eval_split else "    train_data, eval_data = dataset, None"}

    peft_config = LoraConfig(
{_keywords(lora_kwargs(lora))}    )
    args = SFTConfig(
        output_dir=cli.output_dir + "/checkpoints",
        max_steps=cli.max_steps,
{_keywords(sft)}        use_cpu=not torch.cuda.is_available(),  # CPU processes (several: over gloo)
        bf16=use_bf16,  # set explicitly: TRL defaults to bf16=True, ~10x slower on a CPU
        fp16=use_fp16,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_data,
        eval_dataset=eval_data,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.train()
{_save_code(config)}

if __name__ == "__main__":
    main()
'''
    return ExportedScript(filename=filename, code=code, command=command,
                          config_filename=launched[1] if launched else "",
                          accelerate_config=launched[2] if launched else "")


FSDP_SAVE = """\
    if trainer.is_fsdp_enabled:  # FSDP: gather the sharded weights, then keep the adapter's entries
        from peft.utils import get_peft_model_state_dict

        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
        state = trainer.accelerator.get_state_dict(trainer.model_wrapped)  # every process takes part
        model = trainer.accelerator.unwrap_model(trainer.model_wrapped)
        # PEFT finds the adapter's entries by module name; FSDP nests "_fsdp_wrapped_module" in those names.
        model.named_modules = lambda *a, **k: (
            (n.replace("._fsdp_wrapped_module", "").replace("_fsdp_wrapped_module.", ""), m)
            for n, m in type(model).named_modules(model, *a, **k))
        weights = get_peft_model_state_dict(model, state_dict=state)
        if trainer.accelerator.is_main_process:
            assert weights, "no adapter weights gathered"
            model.peft_config["default"].inference_mode = True
            model.peft_config["default"].save_pretrained(cli.output_dir)
            save_file({k: v.contiguous() for k, v in weights.items()}, cli.output_dir + "/adapter_model.safetensors",
                      metadata={"format": "pt"})
    else:
        trainer.save_model(cli.output_dir)  # adapter_config.json + adapter_model.safetensors
"""


def _save_code(config: TrainJobConfig) -> str:
    """How the script saves the adapter: `trainer.save_model`, and for an FSDP run the gathered weights."""
    if config.train.processes > 1 and config.train.strategy == "fsdp":
        return FSDP_SAVE
    return "    trainer.save_model(cli.output_dir)  # adapter_config.json + adapter_model.safetensors\n"


def multi_process_launch(config: TrainJobConfig, filename: str) -> tuple[str, str, str] | None:
    """For a run of several processes: the launch command, the accelerate config's file name and its text (the
    file the app wrote into the run folder, playground.train.launch)."""
    t = config.train
    if t.processes <= 1:
        return None
    config_file = f"accelerate_{config.adapter_name}.yaml"
    text = accelerate_yaml(t.processes, t.strategy, device_type_of(config.base.device))
    return f"accelerate launch --config_file {config_file} {filename}", config_file, text
