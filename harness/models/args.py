"""What names a model: the flags of the original AiMed tools, in one dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional


@dataclass
class ModelArgs:
    model: str  # checkpoint folder or hub id (the original tools' --base_model)
    lora_model: list[str] = field(default_factory=list)  # PEFT adapter folders or hub ids
    tokenizer_path: Optional[str] = None
    template_name: str = "raw"
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    only_cpu: bool = False
    gpus: Optional[str] = None  # "0,1": sets CUDA_VISIBLE_DEVICES before torch sees a GPU
    resize_emb: bool = False  # resize the embeddings to the tokenizer's vocabulary
    model_type: str = "auto"  # recorded; Auto* classes pick the architecture from config.json
    trust_remote_code: bool = False
    allow_pickle: bool = False  # load *.bin / *.pt weights (pickle can run code when unpickled)
    revision: Optional[str] = None

    def to_dict(self) -> dict:
        return asdict(self)
