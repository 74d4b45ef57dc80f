"""The HF backend's fast paths: the output layer runs only where an answer needs it.

With a 150k vocabulary the output layer (hidden x vocab) costs as much as several
transformer layers at every position, so these paths run the decoder (the model
without its output layer) and apply the output layer to the hidden states of the few
positions that are scored:

* ``run_prompts``: a token prefix that every prompt of a batch shares (the task's
  instruction line) runs once; its keys and values are repeated for the rows.
* ``score_positions``: log-probabilities of target tokens at chosen positions. The
  log-softmax normaliser needs the whole vocabulary at each such position; the output
  layer is applied a slice of the vocabulary at a time with a running log-sum-exp, so
  at most ``logit_budget`` logits are alive at once, never the full vocabulary for every
  position of a batch.
* ``score_continuations`` (cloze): each item's prompt is run once, with a KV cache; the
  cache rows are repeated once per option and the options of a batch of items run as
  continuations of their prompt, in a few batched forwards of options of like length.
  The prompt's last hidden state scores every option's first token (one output-layer
  row shared by all the options).
* ``greedy_generate``: greedy decoding with a KV cache that drops a row as soon as it
  stops (end-of-text or a stop string): no work on finished sequences.

They compute the same numbers as the plain forward passes in ``hf.py`` (tests/harness/
test_fast_paths.py holds them to 1e-4 and to identical tokens); the backend falls back
to the plain paths for models where the decoder-then-head split would not hold.
"""

from __future__ import annotations

import copy
import os
from typing import Callable, Sequence

import torch

# Generation settings that change greedy logits; the fast loop applies none of them.
LOGIT_CHANGING = {"repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0),
                  "encoder_no_repeat_ngram_size": (None, 0), "bad_words_ids": (None,),
                  "suppress_tokens": (None,), "begin_suppress_tokens": (None,), "min_length": (None, 0),
                  "min_new_tokens": (None, 0), "forced_bos_token_id": (None,), "forced_eos_token_id": (None,),
                  "sequence_bias": (None,), "exponential_decay_length_penalty": (None,),
                  "renormalize_logits": (None, False)}


def model_parts(model):
    """(decoder, output layer) of a causal LM, through a PEFT wrapper if there is one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def parts_match(model, vocab_size: int, device: str) -> bool:
    """Does ``head(decoder(x))`` give the model's own logits? (False for models that scale,
    cap or bias their logits after the output layer: those take the plain paths.)"""
    try:
        decoder, head = model_parts(model)
        if decoder is None or head is None:
            return False
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, max(2, vocab_size), (2, 5), generator=g).to(device)
        want = model(input_ids=ids, use_cache=False).logits[:, -1].float()
        got = head(decoder(input_ids=ids, use_cache=False).last_hidden_state[:, -1]).float()
        return want.shape == got.shape and torch.allclose(want, got, atol=1e-4, rtol=1e-4)
    except Exception:  # any model this split does not fit takes the plain paths
        return False


def greedy_settings_plain(generation_config) -> bool:
    """True when the model's generation config leaves greedy argmax alone."""
    for name, defaults in LOGIT_CHANGING.items():
        value = getattr(generation_config, name, None)
        if value not in defaults:
            return False
    return True


def left_pad(rows: Sequence[list[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, attention mask, position ids), every row's last token in the last column."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def run_prompts(decoder, rows: Sequence[list[int]], pad: int, device, min_shared: int = 8):
    """Run left-padded prompts; (final hidden states [B, W, H], cache, attention mask, lengths).

    A token prefix that every row shares (a task's instruction, say) runs once and its keys
    and values are repeated for every row, so each row computes only what is its own."""
    shared = min(len(os.path.commonprefix(list(rows))), min(len(r) for r in rows) - 1)
    if len(rows) < 2 or shared < min_shared:
        ids, mask, positions = left_pad(rows, pad, device)
        out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        return out.last_hidden_state, out.cache, mask, mask.sum(-1)
    cache = decoder(input_ids=torch.tensor([rows[0][:shared]], device=device), use_cache=True).cache
    cache.batch_repeat_interleave(len(rows))
    ids, own, positions = left_pad([r[shared:] for r in rows], pad, device)
    mask = torch.cat([own.new_ones((len(rows), shared)), own], dim=1)  # padding sits between, masked
    out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions + shared, cache=cache,
                  use_cache=True)
    return out.last_hidden_state, out.cache, mask, shared + own.sum(-1)


VOCAB_CHUNK = 4096  # output-layer rows a CPU matmul takes at once: faster than the whole vocabulary


def score_positions(head, hidden: torch.Tensor, pos: torch.Tensor, tok: torch.Tensor,
                    logit_budget: int, vocab_chunk: int = VOCAB_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """log p(tok[q] | position pos[q]) and whether tok[q] is that position's argmax.

    hidden: [P, H] final hidden states; pos, tok: [Q]. At most ``logit_budget`` logits
    exist at a time. A plain linear output layer is applied ``vocab_chunk`` of its rows at
    a time with a running log-sum-exp and argmax (on one CPU thread, [110, 512] x [512,
    4096] slices ran at 95 GFLOP/s where the whole [512, 151936] ran at 70); any other
    output layer is called on whole rows, one slice of the full vocabulary."""
    n = hidden.shape[0]
    lse = torch.empty(n, dtype=torch.float32, device=hidden.device)
    best = torch.empty(n, dtype=torch.long, device=hidden.device)
    picked = torch.empty(pos.shape[0], dtype=torch.float32, device=hidden.device)
    block = max(1, logit_budget // _slice_width(head, hidden, vocab_chunk))
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        h, rows = hidden[r0:r1], (pos >= r0) & (pos < r1)
        run_max = torch.full((r1 - r0,), float("-inf"), device=hidden.device)
        run_sum = torch.zeros(r1 - r0, device=hidden.device)
        run_arg = torch.zeros(r1 - r0, dtype=torch.long, device=hidden.device)
        for c0, c1, logits in _vocab_slices(head, h, vocab_chunk):  # logits: [m, c1 - c0]
            top, arg = logits.max(-1)
            run_arg = torch.where(top > run_max, arg + c0, run_arg)  # strict: the first maximum wins
            new_max = torch.maximum(run_max, top)
            run_sum = run_sum * torch.exp(run_max - new_max) + torch.exp(logits - new_max[:, None]).sum(-1)
            run_max = new_max
            here = rows & (tok >= c0) & (tok < c1)
            if here.any():
                picked[here] = logits[pos[here] - r0, tok[here] - c0]
            del logits
        lse[r0:r1], best[r0:r1] = run_max + torch.log(run_sum), run_arg
    return picked - lse[pos], best[pos] == tok


def _sliceable(head) -> bool:
    """A plain Linear output layer, not a quantised or wrapped one: its rows can be sliced."""
    return type(head) is torch.nn.Linear


def _slice_width(head, hidden: torch.Tensor, vocab_chunk: int) -> int:
    """Logits a position gets in one slice: ``vocab_chunk``, or the whole vocabulary."""
    if _sliceable(head):
        return min(vocab_chunk, head.weight.shape[0])
    if getattr(head, "out_features", None):
        return int(head.out_features)
    weight = getattr(head, "weight", None)
    return int(weight.shape[0]) if isinstance(weight, torch.Tensor) else int(head(hidden[:1]).shape[-1])


def _vocab_slices(head, hidden: torch.Tensor, vocab_chunk: int):
    """(first token, end, fp32 logits [n, end - first]) for each slice of the vocabulary."""
    if not _sliceable(head):
        logits = head(hidden).float()
        yield 0, logits.shape[-1], logits
        return
    vocab = head.weight.shape[0]
    for c0 in range(0, vocab, vocab_chunk):
        c1 = min(vocab, c0 + vocab_chunk)
        bias = None if head.bias is None else head.bias[c0:c1]
        yield c0, c1, torch.nn.functional.linear(hidden, head.weight[c0:c1], bias).float()


def next_token_scores(decoder, head, rows: Sequence[list[int]], conts: Sequence[Sequence[int]], pad: int,
                      device, logit_budget: int, vocab_chunk: int = VOCAB_CHUNK) -> list[list[tuple[float, int, bool]]]:
    """Score one-token continuations conts[i] after rows[i]: one position a row."""
    hidden = run_prompts(decoder, rows, pad, device)[0][:, -1]  # [B, H]
    pos = torch.tensor([b for b, c in enumerate(conts) for _ in c], dtype=torch.long, device=device)
    tok = torch.tensor([t for c in conts for t in c], dtype=torch.long, device=device)
    logp, greedy = score_positions(head, hidden, pos, tok, logit_budget, vocab_chunk)
    logp, greedy = logp.tolist(), greedy.tolist()
    out, q = [], 0
    for c in conts:
        out.append([(logp[q + j], 1, bool(greedy[q + j])) for j in range(len(c))])
        q += len(c)
    return out


def score_continuations(decoder, head, items: Sequence[tuple[list[int], list[list[int]]]], pad: int,
                        device, logit_budget: int, vocab_chunk: int = VOCAB_CHUNK
                        ) -> list[list[tuple[float, int, bool]]]:
    """Score every continuation of every item after the item's shared context.

    items: (context ids, [continuation ids, ...]). One forward over the contexts (KV
    cached), then the continuations as continuations of their context's cache rows."""
    hidden, cache, mask, lengths = run_prompts(decoder, [ctx for ctx, _ in items], pad, device)
    h_last = hidden[:, -1]  # [B, H]: predicts every option's first token
    runs = [(b, o, cont) for b, (_, conts) in enumerate(items) for o, cont in enumerate(conts)]
    longer = [(b, cont) for b, _, cont in runs if len(cont) > 1]
    pool = [h_last]
    if longer:
        pool.append(_run_options(decoder, cache, mask, lengths, longer, pad, device))
    del cache
    hidden = torch.cat(pool)
    # Options that begin with the same tokens share the positions after them (the same hidden
    # state): each such position gets one row of the output layer.
    pos, tok, seen = [], [], {}
    offset = len(items)
    for b, _, cont in runs:
        pos.append(b)
        tok.append(cont[0])
        for j in range(1, len(cont)):
            pos.append(seen.setdefault((b, tuple(cont[:j])), offset + j - 1))
            tok.append(cont[j])
        offset += len(cont) - 1
    used = sorted(set(pos))
    if len(used) < hidden.shape[0]:
        where = {p: i for i, p in enumerate(used)}
        hidden, pos = hidden[torch.tensor(used, device=device)], [where[p] for p in pos]
    logp, greedy = score_positions(head, hidden, torch.tensor(pos, device=device),
                                   torch.tensor(tok, device=device), logit_budget, vocab_chunk)
    logp, greedy = logp.tolist(), greedy.tolist()
    results: list[list[tuple[float, int, bool]]] = [[] for _ in items]
    q = 0
    for b, _, cont in runs:
        n = len(cont)
        results[b].append((float(sum(logp[q:q + n])), n, all(greedy[q:q + n])))
        q += n
    return results


def _run_options(decoder, cache, mask: torch.Tensor, lengths: torch.Tensor,
                 longer: Sequence[tuple[int, list[int]]], pad: int, device) -> torch.Tensor:
    """Final hidden states of each continuation's tokens but its last, row-major in the
    order of ``longer`` ((item, continuation ids) pairs): [sum(len - 1), H].

    Continuations run in groups of like length, each group on its items' cache rows (the
    cache is copied for every group but the last): a group closes when a continuation is
    at most half its width, so padding stays under half of a group's positions. (One batch
    padded to the longest option padded CMExam's options 3.5-fold.)"""
    sizes = [len(cont) - 1 for _, cont in longer]
    starts = [0]
    for n in sizes[:-1]:
        starts.append(starts[-1] + n)
    order = sorted(range(len(longer)), key=lambda r: -sizes[r])
    groups, first = [], 0
    for k in range(1, len(order) + 1):
        if k == len(order) or 2 * sizes[order[k]] <= sizes[order[first]]:
            groups.append(order[first:k])
            first = k
    out = None
    for g, members in enumerate(groups):
        width = sizes[members[0]]
        rows = torch.tensor([longer[r][0] for r in members], dtype=torch.long, device=device)
        rows_cache = cache if g == len(groups) - 1 else copy.deepcopy(cache)
        rows_cache.batch_select_indices(rows)  # [R, heads, T, d]: each row gets its prompt's keys and values
        ids = torch.full((len(members), width), pad, dtype=torch.long)
        own = torch.zeros((len(members), width), dtype=torch.long)
        for i, r in enumerate(members):  # right-padded: padding after the real tokens sees nothing real later
            ids[i, :sizes[r]] = torch.tensor(longer[r][1][:-1], dtype=torch.long)
            own[i, :sizes[r]] = 1
        ids, own = ids.to(device), own.to(device)
        positions = lengths[rows][:, None] + torch.arange(width, device=device)[None, :]
        hidden = decoder(input_ids=ids, attention_mask=torch.cat([mask[rows], own], dim=1),
                         position_ids=positions, cache=rows_cache, use_cache=True).last_hidden_state  # [R, W, H]
        del rows_cache
        if out is None:
            out = hidden.new_empty((sum(sizes), hidden.shape[-1]))
        dest = torch.cat([torch.arange(starts[r], starts[r] + sizes[r]) for r in members]).to(device)
        out[dest] = hidden[own.bool()]  # row-major within the group, as dest is
    return out


def greedy_tokens(head, hidden: torch.Tensor, vocab_chunk: int = VOCAB_CHUNK) -> torch.Tensor:
    """argmax of head(hidden) [A, H] -> [A], a vocabulary slice at a time (the first
    maximum wins, as torch.argmax's)."""
    best_val = torch.full((hidden.shape[0],), float("-inf"), device=hidden.device)
    best = torch.zeros(hidden.shape[0], dtype=torch.long, device=hidden.device)
    for c0, _, logits in _vocab_slices(head, hidden, vocab_chunk):
        top, arg = logits.max(-1)
        best = torch.where(top > best_val, arg + c0, best)
        best_val = torch.maximum(best_val, top)
    return best


def greedy_generate(decoder, head, rows: Sequence[list[int]], max_new: int, eos: set[int],
                    stopped: Callable[[list[int]], bool], pad: int, device,
                    vocab_chunk: int = VOCAB_CHUNK) -> list[list[int]]:
    """Greedy continuations of ``rows`` (token ids, the stopping token included).

    A row leaves the batch, and its cache rows are dropped, at end-of-text, when
    ``stopped(its tokens)`` says a stop string appeared, or at ``max_new`` tokens."""
    ids, mask, positions = left_pad(rows, pad, device)
    out = decoder(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
    cache, hidden = out.cache, out.last_hidden_state[:, -1]
    next_pos = mask.sum(-1)  # [A]: the position of the token to come
    active = list(range(len(rows)))  # the original row of each batch row
    generated: list[list[int]] = [[] for _ in rows]
    del out
    for step in range(max_new):
        tokens = greedy_tokens(head, hidden, vocab_chunk)  # [A]
        keep = []
        for a, (row, t) in enumerate(zip(active, tokens.tolist())):
            generated[row].append(t)
            if not (t in eos or step + 1 == max_new or stopped(generated[row])):
                keep.append(a)
        if not keep:
            break
        if len(keep) < len(active):
            sel = torch.tensor(keep, dtype=torch.long, device=device)
            cache.batch_select_indices(sel)
            mask, next_pos, tokens = mask[sel], next_pos[sel], tokens[sel]
            active = [active[a] for a in keep]
        mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
        out = decoder(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                      cache=cache, use_cache=True)
        hidden = out.last_hidden_state[:, -1]
        next_pos = next_pos + 1
        del out
    return generated
