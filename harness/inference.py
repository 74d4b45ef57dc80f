"""Talk to a checkpoint from Python: the original AiMed tools' ``test.py``, in three lines.

    from aimed.harness.inference import ChatModel
    bot = ChatModel.load("path/to/base", lora_model="path/to/adapter", template_name="vicuna")
    print(bot.chat("什么是高血压？"))

The model is loaded by the same code as ``aimed-eval run`` (so the same flags, checks and
errors) and prompts are rendered by the same chat-template registry. ``stream_chat``
yields the reply piece by piece, for the terminal chat and the web demos.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any, Iterator, Optional

from .models.args import ModelArgs
from .templates import render_prompt, start_token_ids, template_stops

History = list[tuple[str, str]]


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 512
    temperature: float = 0.7  # 0 means greedy
    top_p: float = 0.9
    repetition_penalty: float = 1.0
    seed: Optional[int] = None

    def to_generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens,
                                  "repetition_penalty": self.repetition_penalty}
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(do_sample=False)
        return kwargs


class StopCutter:
    """Cuts a stream of text pieces at the first stop string, holding back a tail that
    could still grow into one (so ``USER:`` never flashes on screen before it is cut)."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops = tuple(s for s in stops if s)
        self.buffer = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.buffer += piece
        cut = min((k for s in self.stops if (k := self.buffer.find(s)) != -1), default=-1)
        if cut != -1:
            out, self.buffer, self.stopped = self.buffer[:cut], "", True
            return out
        hold = max((n for s in self.stops for n in range(len(s) - 1, 0, -1)
                    if self.buffer.endswith(s[:n])), default=0)
        out = self.buffer[:len(self.buffer) - hold]
        self.buffer = self.buffer[len(out):]
        return out

    def flush(self) -> str:
        out, self.buffer = ("" if self.stopped else self.buffer), ""
        return out


class ChatModel:
    """A loaded causal LM (optionally with a LoRA adapter) and a chat template."""

    def __init__(self, model, tokenizer, info: dict, template_name: str = "vicuna",
                 system: Optional[str] = None, generation: GenerationConfig = GenerationConfig()):
        self.model, self.tokenizer, self.info = model, tokenizer, info
        self.template_name = template_name
        self._start_ids: Optional[list[int]] = None  # templates.start_token_ids, on first use
        self.system = system
        self.generation = generation
        self._lock = threading.Lock()  # one generate at a time on one model

    @classmethod
    def load(cls, base_model: str, lora_model: Optional[str] = None, template_name: str = "vicuna",
             system: Optional[str] = None, generation: GenerationConfig = GenerationConfig(),
             **model_flags) -> "ChatModel":
        """``model_flags``: the other ``ModelArgs`` fields (tokenizer_path, dtype, device,
        only_cpu, gpus, resize_emb, model_type, trust_remote_code)."""
        args = ModelArgs(model=base_model, lora_model=[lora_model] if lora_model else [],
                         template_name=template_name, **model_flags)
        return cls.from_args(args, system=system, generation=generation)

    @classmethod
    def from_args(cls, args: ModelArgs, system: Optional[str] = None,
                  generation: GenerationConfig = GenerationConfig()) -> "ChatModel":
        from .models.loading import load_model

        model, tokenizer, info = load_model(args)
        return cls(model, tokenizer, info, args.template_name, system, generation)

    # ---- prompts ------------------------------------------------------------------
    def prompt(self, query: str, history: Optional[History] = None, system: Optional[str] = None) -> str:
        """``system`` replaces this model's system prompt for one call."""
        return render_prompt(self.template_name, query, self.tokenizer, history,
                             system=self.system if system is None else system)

    def encode_prompt(self, prompt: str) -> list[int]:
        """The prompt's token ids as the model's own chat code makes them: the template's
        start tokens (templates.start_token_ids), then the text without special tokens."""
        if self._start_ids is None:
            self._start_ids = start_token_ids(self.template_name, self.tokenizer)
        return self._start_ids + self.tokenizer.encode(prompt, add_special_tokens=False)

    @property
    def stops(self) -> tuple[str, ...]:
        return template_stops(self.template_name)

    # ---- generation ---------------------------------------------------------------
    def stream(self, prompt: str, stops: tuple[str, ...] = (), counter: Optional[list] = None,
               **overrides) -> Iterator[str]:
        """Yield the continuation of ``prompt`` as it is generated, cut at ``stops``.
        ``counter``: a list whose first element becomes the number of tokens the model
        generated (what a server reports as ``completion_tokens``: re-encoding the text would
        count other tokens)."""
        import torch

        config = replace(self.generation, **overrides)
        ids = torch.tensor([self.encode_prompt(prompt) or [self.tokenizer.eos_token_id]])
        budget = max(1, self.info.max_length - config.max_new_tokens)
        ids = ids[:, -budget:].to(self.info.device)
        streamer = _counting_streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = config.to_generate_kwargs()
        if stops:
            kwargs.update(stop_strings=list(stops), tokenizer=self.tokenizer)
        cutter = StopCutter(stops)
        errors: list[BaseException] = []

        def work():
            try:
                with self._lock, torch.no_grad():
                    if config.seed is not None:
                        torch.manual_seed(config.seed)
                    self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer,
                                        pad_token_id=self.tokenizer.pad_token_id, **kwargs)
            except BaseException as exc:  # surfaced in the caller's thread below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        for piece in streamer:
            if text := cutter.feed(piece):
                yield text
        thread.join()
        if counter is not None:
            counter[:] = [streamer.generated]
        if errors:
            raise errors[0]
        if text := cutter.flush():
            yield text

    def generate(self, prompt: str, stops: tuple[str, ...] = (), **overrides) -> str:
        return "".join(self.stream(prompt, stops, **overrides))

    def stream_chat(self, query: str, history: Optional[History] = None, **overrides) -> Iterator[str]:
        yield from self.stream(self.prompt(query, history), self.stops, **overrides)

    def chat(self, query: str, history: Optional[History] = None, **overrides) -> str:
        return "".join(self.stream_chat(query, history, **overrides)).strip()


def _counting_streamer(tokenizer, **kwargs):
    """transformers' ``TextIteratorStreamer`` that also counts the tokens generated (the
    prompt, which ``generate`` hands it first, is not counted)."""
    from transformers import TextIteratorStreamer

    class CountingStreamer(TextIteratorStreamer):
        generated = 0

        def put(self, value):
            if not (self.skip_prompt and self.next_tokens_are_prompt):
                self.generated += int(value.numel())
            super().put(value)

    return CountingStreamer(tokenizer, **kwargs)
