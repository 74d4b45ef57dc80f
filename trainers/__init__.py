"""Training stages (PT / SFT / RM / PPO / DPO) on trl + peft; each emits scored checkpoints. Not built yet: see issue 4."""
