import math

import torch

from engine.posterior import kl_gauss, prior_update


def test_kl_closed_form_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu_q, ls_q = torch.tensor([0.3, -1.0, 2.0]), torch.tensor([-1.0, 0.2, -0.5])
    mu_p, ls_p = torch.tensor([0.0, -0.5, 1.0]), torch.tensor([0.0, 0.5, -0.2])
    w = mu_q + ls_q.exp() * torch.randn(400_000, 3, generator=g, dtype=torch.float64)

    def logpdf(x, m, ls):
        return -0.5 * ((x - m) / ls.exp()) ** 2 - ls - 0.5 * math.log(2 * math.pi)

    mc = (logpdf(w, mu_q, ls_q) - logpdf(w, mu_p, ls_p)).mean(0)
    exact = kl_gauss(mu_q, ls_q, mu_p, ls_p)
    assert torch.allclose(exact.double(), mc, atol=0.01)
    assert (kl_gauss(mu_q, ls_q, mu_q, ls_q).abs() < 1e-6).all()


def test_prior_update_is_the_minimiser_of_average_kl():
    g = torch.Generator().manual_seed(1)
    mu_q = torch.randn(50, 4, generator=g) * 2 + 1
    ls_q = torch.randn(50, 4, generator=g) * 0.3 - 1
    mu_p, ls_p = prior_update(mu_q, ls_q)
    # formula
    assert torch.allclose(mu_p, mu_q.mean(0))
    assert torch.allclose(torch.exp(2 * ls_p), (torch.exp(2 * ls_q) + (mu_q - mu_p) ** 2).mean(0), rtol=1e-5)
    # stationary point of the mean KL, and better than perturbed priors
    m = mu_p.clone().requires_grad_(True)
    s = ls_p.clone().requires_grad_(True)
    kl_gauss(mu_q, ls_q, m, s).mean(0).sum().backward()
    assert m.grad.abs().max() < 1e-5 and s.grad.abs().max() < 1e-5
    base = kl_gauss(mu_q, ls_q, mu_p, ls_p).mean()
    for dm, ds in [(0.1, 0), (-0.1, 0), (0, 0.1), (0, -0.1)]:
        assert kl_gauss(mu_q, ls_q, mu_p + dm, ls_p + ds).mean() > base
