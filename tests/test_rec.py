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
