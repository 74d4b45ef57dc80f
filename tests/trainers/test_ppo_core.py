"""PPO's math against numbers worked out by hand (and KL estimators against the exact KL)."""

import math

import pytest
import torch

from aimed.trainers import ppo_core
from aimed.trainers.ppo_rollout import eos_mask, response_slice


def test_gae_by_hand():
    # gamma 1, lam 0.5; rewards [0, 0, 1], values [0.5, 0.2, 0.4]:
    # delta2 = 1 - 0.4 = 0.6            A2 = 0.6
    # delta1 = 0 + 0.4 - 0.2 = 0.2      A1 = 0.2 + 0.5 * 0.6 = 0.5
    # delta0 = 0 + 0.2 - 0.5 = -0.3     A0 = -0.3 + 0.5 * 0.5 = -0.05
    # Row 2 ends after two tokens: its padding (reward 9, value 7) must not leak in:
    # delta1 = 1 + 0 - 0.2 = 0.8 (V after the end is 0), A0 = -0.3 + 0.5 * 0.8 = 0.1
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 9.0]])
    values = torch.tensor([[0.5, 0.2, 0.4], [0.5, 0.2, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = ppo_core.gae(rewards, values, mask, gamma=1.0, lam=0.5)
    assert torch.allclose(adv, torch.tensor([[-0.05, 0.5, 0.6], [0.1, 0.8, 0.0]]), atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[0.45, 0.7, 1.0], [0.6, 1.0, 0.0]]), atol=1e-6)


def test_gae_discount():
    # gamma 0.9, lam 1: A_t = sum_k 0.9^k r_{t+k} - V_t (Monte-Carlo return minus the value)
    rewards = torch.tensor([[1.0, 0.0, 2.0]])
    values = torch.tensor([[0.3, 0.1, 0.2]])
    adv, ret = ppo_core.gae(rewards, values, torch.ones(1, 3), gamma=0.9, lam=1.0)
    expected_returns = torch.tensor([[1 + 0.81 * 2, 0.9 * 2, 2.0]])
    assert torch.allclose(ret, expected_returns, atol=1e-6)
    assert torch.allclose(adv, expected_returns - values, atol=1e-6)


def test_per_token_rewards():
    scores = torch.tensor([1.0, 2.0])
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.1, 0.1, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    r = ppo_core.per_token_rewards(scores, kl, mask, kl_coef=0.5)
    # -0.5 * kl everywhere real, the score on the last real token, nothing on padding
    assert torch.allclose(r, torch.tensor([[-0.05, -0.1, 0.85], [-0.05, 1.95, 0.0]]), atol=1e-6)


def test_clipped_policy_loss_at_known_ratios():
    old = torch.log(torch.tensor([[0.5, 0.5, 0.5, 0.5]]))
    new = torch.log(torch.tensor([[0.8, 0.8, 0.25, 0.25]]))  # ratios 1.6, 1.6, 0.5, 0.5
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    mask = torch.ones(1, 4)
    loss, clip_frac, _ = ppo_core.policy_loss(new, old, adv, mask, clip_range=0.2)
    # per token max(-A r, -A clip(r, 0.8, 1.2)):
    #   A=+1, r=1.6: max(-1.6, -1.2) = -1.2 (clipped)   A=-1, r=1.6: max(1.6, 1.2) = 1.6
    #   A=+1, r=0.5: max(-0.5, -0.8) = -0.5             A=-1, r=0.5: max(0.5, 0.8) = 0.8 (clipped)
    assert loss.item() == pytest.approx((-1.2 + 1.6 - 0.5 + 0.8) / 4, abs=1e-6)
    assert clip_frac == pytest.approx(0.5)
    # masked: only the first two tokens count
    loss2, _, _ = ppo_core.policy_loss(new, old, adv, torch.tensor([[1.0, 1.0, 0.0, 0.0]]), 0.2)
    assert loss2.item() == pytest.approx((-1.2 + 1.6) / 2, abs=1e-6)


def test_clipped_policy_gradient_stops_outside_the_clip():
    old = torch.log(torch.tensor([[0.5]]))
    new = torch.log(torch.tensor([[0.8]])).requires_grad_()
    loss, _, _ = ppo_core.policy_loss(new, old, torch.tensor([[1.0]]), torch.ones(1, 1), 0.2)
    loss.backward()
    assert new.grad.item() == 0.0  # ratio 1.6 > 1.2 with A > 0: no push further


def test_value_loss_by_hand():
    old, new, ret = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.5, 0.1]]), torch.tensor([[1.0, 1.0]])
    loss, frac = ppo_core.value_loss(new, old, ret, torch.ones(1, 2), clip_range=0.2)
    # token 1: V 0.5 -> clipped 0.2: max(0.25, 0.64) = 0.64; token 2: V 0.1 within the clip: 0.81
    assert loss.item() == pytest.approx(0.5 * (0.64 + 0.81) / 2, abs=1e-6)
    assert frac == pytest.approx(0.5)


def test_kl_estimators_by_hand_and_against_exact_kl():
    lp, ref = torch.log(torch.tensor([0.5])), torch.log(torch.tensor([0.25]))
    assert ppo_core.kl_estimate(lp, ref, "k1").item() == pytest.approx(math.log(2))
    assert ppo_core.kl_estimate(lp, ref, "k3").item() == pytest.approx(-0.5 + math.log(2))
    # Both are unbiased: their mean over samples of p is KL(p || q).
    p, q = torch.tensor([0.6, 0.3, 0.1]), torch.tensor([0.2, 0.5, 0.3])
    exact = (p * (p / q).log()).sum().item()
    x = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    for kind in ("k1", "k3"):
        est = ppo_core.kl_estimate(p.log()[x], q.log()[x], kind).mean().item()
        assert est == pytest.approx(exact, abs=0.01), kind
    assert (ppo_core.kl_estimate(p.log()[x], q.log()[x], "k3") >= 0).all()
    with pytest.raises(ValueError):
        ppo_core.kl_estimate(lp, ref, "k2")


def test_whiten_and_masked_stats():
    x, mask = torch.tensor([[1.0, 2.0, 3.0, 100.0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert ppo_core.masked_mean(x, mask).item() == pytest.approx(2.0)
    assert ppo_core.masked_var(x, mask).item() == pytest.approx(1.0)  # unbiased
    assert torch.allclose(ppo_core.masked_whiten(x, mask), torch.tensor([[-1.0, 0.0, 1.0, 0.0]]), atol=1e-4)


def test_token_logprobs_and_response_slice():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)  # [B, P + T, V] with P = 2, T = 3
    ids = torch.randint(0, 7, (2, 5))
    lp = ppo_core.token_logprobs(response_slice(logits, 2), ids[:, 2:])
    # position 1 predicts token 2, ..., position 3 predicts token 4
    expected = torch.log_softmax(logits[:, 1:4], -1).gather(-1, ids[:, 2:, None]).squeeze(-1)
    assert torch.allclose(lp, expected, atol=1e-5)
    hot = ppo_core.token_logprobs(response_slice(logits, 2), ids[:, 2:], temperature=2.0)
    assert torch.allclose(hot, torch.log_softmax(logits[:, 1:4] / 2, -1).gather(-1, ids[:, 2:, None]).squeeze(-1),
                          atol=1e-5)


def test_eos_mask():
    mask, ended = eos_mask(torch.tensor([[5, 2, 7, 2], [5, 5, 5, 5], [2, 0, 0, 0]]), [2])
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert ended.tolist() == [True, False, True]


def test_running_moments_match_the_whole():
    torch.manual_seed(0)
    chunks = [torch.randn(5) * 3 + 1, torch.randn(7) * 3 + 1, torch.randn(4) * 3 + 1]
    m = ppo_core.RunningMoments()
    for c in chunks:
        m.update(c)
    whole = torch.cat(chunks).double()
    assert m.mean == pytest.approx(whole.mean().item(), abs=1e-6)
    assert m.std == pytest.approx(whole.std(unbiased=False).item(), abs=1e-6)


def test_adaptive_kl_controller_by_hand():
    ctl = ppo_core.AdaptiveKLController(0.1, target=6.0, horizon=100)
    # KL 9 is 50% over target: the error is clipped to +0.2; 10 samples of 100 -> x(1 + 0.02)
    assert ctl.update(9.0, 10) == pytest.approx(0.102)
    # KL 5.4 is 10% under: x(1 - 0.1 * 10 / 100) = x0.99
    assert ctl.update(5.4, 10) == pytest.approx(0.102 * 0.99)
