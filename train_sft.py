"""Train PatentLMM (arXiv 2501.15074), one stage per run, with TRL's SFTTrainer: the launcher of `patentlmm.training`.

Stage 1 builds PatentLMM from a base LLM and a PatentMME encoder and trains only the projector ("plain" format);
stage 2 starts from the stage-1 folder and trains LoRA on the decoder + the projector (Vicuna-v1 format), then
writes the merged release. The recipe is the first argument or `--config RECIPE.yaml`; every option of TRL's
`ScriptArguments`, `SFTConfig`, `ModelConfig` and of `PatentLMMArguments` can be given in it or on the command line
(the command line wins). docs/training.md is the manual: inputs, outputs, effective batch per GPU count.

    # one GPU: stage 1, then stage 2
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml train_sft.py \
        --config recipes/stage1_brief.yaml --model_name_or_path lmsys/vicuna-7b-v1.5 \
        --vision_tower ./patentmme-hf --dataset_name ./patentdesc-355k --output_dir runs/stage1-brief
    accelerate launch --config_file recipes/accelerate/single_gpu.yaml train_sft.py \
        --config recipes/stage2_brief.yaml --model_name_or_path runs/stage1-brief \
        --dataset_name ./patentdesc-355k --output_dir runs/patentlmm-brief

    # one node, 8 GPUs, DeepSpeed ZeRO-2 (the original's setup); add --resume_from_checkpoint true after a stop
    accelerate launch --config_file recipes/accelerate/deepspeed_zero2.yaml train_sft.py recipes/stage2_brief.yaml \
        --model_name_or_path runs/stage1-brief --dataset_name ./patentdesc-355k --output_dir runs/patentlmm-brief

    # two CPU processes (DDP over gloo; without a GPU the run switches to float32 on the CPU by itself)
    torchrun --standalone --nproc_per_node 2 train_sft.py recipes/stage2_brief.yaml --ddp_backend gloo \
        --model_name_or_path runs/stage1-brief --dataset_name ./patentdesc-355k --output_dir runs/ddp

    # a laptop smoke run on a tiny random model
    patentlmm init-tiny tiny && python train_sft.py --config recipes/stage1_brief.yaml --model_name_or_path tiny \
        --dataset_name ./patentdesc-355k --output_dir runs/smoke --max_steps 2 --per_device_train_batch_size 1 \
        --gradient_accumulation_steps 1 --report_to none

`patentlmm train RECIPE.yaml [options]` runs the same code; from Python, `patentlmm.training.train(...)` takes the
four argument objects.
"""

from patentlmm.training import main

if __name__ == "__main__":
    main()
