"""What `coe finetune` writes into a specialist's folder, named once for the writer and the server.

The folder is a plain merged HF checkpoint (what a swap pool or `coe upcycle` takes) and, in
`adapter/`, the same fine-tune as a PEFT LoRA adapter (what a base engine serves beside its other
adapters, with no swap). Kept free of imports so serving code can name it without loading torch.
"""

ADAPTER_FOLDER = "adapter"
