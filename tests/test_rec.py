import math

import torch

from engine import rec


def test_selected_samples_follow_the_posterior():
    """A* / PFR selection with 2**12 candidates: chosen samples are (approximately) distributed as q."""
    torch.manual_seed(0)
    d, n = 3, 2000
    mu_p, ls_p = torch.zeros(d), torch.zeros(d)
    mu_q = torch.tensor([[0.8, -0.5, 0.2]])
    ls_q = torch.log(torch.tensor([[0.5, 0.7, 0.6]]))
    g = torch.Generator().manual_seed(1)
    picks = []
    for blk in range(n):  # each draw gets its own candidate set (block id), as in a real file
        idx = rec.select(5, blk, 10, mu_q, ls_q, mu_p, ls_p, g)
        picks.append(rec.sample_of(5, blk, idx, mu_p, ls_p))
    w = torch.cat(picks)
    assert torch.allclose(w.mean(0), mu_q[0], atol=0.06)
    assert torch.allclose(w.std(0), ls_q[0].exp(), atol=0.06)


def test_log_ratio_coefficients_match_densities():
    mu_q, ls_q = torch.tensor([[0.3, -0.2]]), torch.tensor([[-0.7, -1.1]])
    mu_p, ls_p = torch.tensor([0.1, 0.0]), torch.tensor([0.2, -0.3])
    a, b = rec.log_ratio_coeffs(mu_q, ls_q, mu_p, ls_p)
    z = torch.randn(10, 2)
    w = mu_p + ls_p.exp() * z

    def lp(x, m, ls):
        return (-0.5 * ((x - m) / ls.exp()) ** 2 - ls - 0.5 * math.log(2 * math.pi)).sum(-1)

    exact = lp(w, mu_q, ls_q) - lp(w, mu_p, ls_p)
    quad = (a * z * z + b * z).sum(-1)
    diff = exact - quad
    assert torch.allclose(diff, diff[0].expand_as(diff), atol=1e-4)  # equal up to a constant


def test_noiseless_choice_is_the_candidate_of_largest_importance_weight():
    """Without sender noise the chosen index is the argmax of log q/p over all 2**kappa candidates (checked
    against the densities themselves), the same for every item of a batch on its own, and it is at least
    as close to the posterior mean (in q's own metric) as A*'s sample on average."""
    from engine import rng

    torch.manual_seed(0)
    d, kappa, b = 6, 10, 3
    mu_p, ls_p = torch.randn(d) * 0.1, torch.randn(d) * 0.1 - 1.0
    mu_q, ls_q = mu_p + torch.randn(b, d) * 0.3, ls_p - 1.0 + torch.randn(b, d) * 0.1
    z = rng.candidates(4, 9, torch.arange(1 << kappa), d)
    w = mu_p + ls_p.exp() * z                                                  # (K, d)

    def lp(x, m, ls):
        return (-0.5 * ((x - m) / ls.exp()) ** 2 - ls).sum(-1)
    idx = rec.select(4, 9, kappa, mu_q, ls_q, mu_p, ls_p, None)
    for i in range(b):
        ratio = lp(w, mu_q[i], ls_q[i]) - lp(w, mu_p, ls_p)
        assert int(idx[i]) == int(torch.argmax(ratio))
        assert torch.equal(rec.select(4, 9, kappa, mu_q[i:i + 1], ls_q[i:i + 1], mu_p, ls_p, None), idx[i:i + 1])
    g = torch.Generator().manual_seed(2)
    near, sampled = [], []
    for blk in range(200):
        zz = rng.candidates(4, blk, torch.arange(1 << kappa), d)
        for pick, out in ((rec.select(4, blk, kappa, mu_q, ls_q, mu_p, ls_p, None), near),
                          (rec.select(4, blk, kappa, mu_q, ls_q, mu_p, ls_p, g), sampled)):
            x = mu_p + ls_p.exp() * zz[pick]                                   # (B, d)
            out.append((((x - mu_q) / ls_q.exp()) ** 2).sum(-1))
    assert torch.stack(near).mean() < torch.stack(sampled).mean()
