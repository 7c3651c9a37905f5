"""Domain specialists: LoRA fine-tunes of a dense base model on real domain data, merged into plain
Hugging Face checkpoints with a model card (``coe finetune``, ``make experts``)."""
