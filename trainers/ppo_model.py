"""The policy PPO trains, its value head, and the frozen reference it is kept close to.

The value head is one linear layer on the policy's last hidden state (a shared trunk, as
trl's former ``AutoModelForCausalLMWithValueHead``): no second network to hold, and the
value loss shapes the same features the policy uses. The reference policy is the parent
(SFT) model: with LoRA it is the same network with the adapter switched off, so no second
copy is loaded; with full fine-tuning it is a frozen copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import nn

VALUE_HEAD_FILE = "value_head.safetensors"


def position_ids_for(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, the same ones ``generate`` used: [B, L] -> [B, L]."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class PolicyWithValue(nn.Module):
    """``lm`` (a causal LM, or a peft model around one) plus a scalar value head."""

    def __init__(self, lm: nn.Module, ref_lm: Optional[nn.Module] = None):
        super().__init__()
        self.lm = lm
        hidden = lm.config.hidden_size
        # Small initial values so the first advantages come from the rewards, not noise.
        self.value_head = nn.Linear(hidden, 1)
        nn.init.normal_(self.value_head.weight, std=1.0 / (hidden ** 0.5) * 0.1)
        nn.init.zeros_(self.value_head.bias)
        self.ref_lm = ref_lm  # None: the reference is ``lm`` with its adapter disabled
        if ref_lm is not None:
            ref_lm.eval().requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.ref_lm is not None:  # the reference stays frozen, in eval mode
            self.ref_lm.eval()
        return self

    @property
    def uses_adapter(self) -> bool:
        return self.ref_lm is None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """input_ids, attention_mask: [B, L] -> (logits [B, L, V], values [B, L]); position
        i's logits predict token i+1 and its value is that of the state before it."""
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask,
                      position_ids=position_ids_for(attention_mask), output_hidden_states=True)
        hidden = out.hidden_states[-1].to(self.value_head.weight.dtype)  # [B, L, H]
        return out.logits, self.value_head(hidden).squeeze(-1)

    @torch.no_grad()
    def reference_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The frozen parent's logits [B, L, V] on the same sequences."""
        kwargs = dict(input_ids=input_ids, attention_mask=attention_mask,
                      position_ids=position_ids_for(attention_mask))
        if self.ref_lm is not None:
            return self.ref_lm(**kwargs).logits
        with self.lm.disable_adapter():
            return self.lm(**kwargs).logits

    def save(self, out_dir: Path, tokenizer) -> None:
        """The policy as its parent was (adapter or full weights) + tokenizer + value head."""
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        self.lm.save_pretrained(out_dir, safe_serialization=True)
        tokenizer.save_pretrained(out_dir)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()},
                  str(out_dir / VALUE_HEAD_FILE))
