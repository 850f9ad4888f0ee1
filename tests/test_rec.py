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


def test_shortlist_ranks_candidates_by_importance_weight_in_chunks_too(monkeypatch):
    """The shortlist is the m candidates of largest log q/p, best first; its first row is the noiseless
    choice; scoring in chunks gives the same list; each item's list does not depend on its batch."""
    from engine import rng

    torch.manual_seed(1)
    d, kappa, b, m = 5, 10, 4, 6
    mu_p, ls_p = torch.randn(d) * 0.1, torch.randn(d) * 0.1 - 1.0
    mu_q, ls_q = mu_p + torch.randn(b, d) * 0.3, ls_p - 1.0 + torch.randn(b, d) * 0.1
    z = rng.candidates(3, 7, torch.arange(1 << kappa), d)
    a, c = rec.log_ratio_coeffs(mu_q, ls_q, mu_p, ls_p)
    score = (z * z) @ a.T + z @ c.T                                             # (K, B)
    top = rec.shortlist(3, 7, kappa, mu_q, ls_q, mu_p, ls_p, m)
    assert top.shape == (m, b)
    assert torch.equal(top, torch.argsort(score, dim=0, descending=True)[:m])
    assert torch.equal(top[0], rec.select(3, 7, kappa, mu_q, ls_q, mu_p, ls_p, None))
    assert torch.equal(rec.shortlist(3, 7, kappa, mu_q[2:3], ls_q[2:3], mu_p, ls_p, m), top[:, 2:3])
    monkeypatch.setattr(rec, "SCORE_BUDGET", 37 * d)                            # chunks of 37 candidates
    assert torch.equal(rec.shortlist(3, 7, kappa, mu_q, ls_q, mu_p, ls_p, m), top)
    assert torch.equal(rec.select(3, 7, kappa, mu_q, ls_q, mu_p, ls_p, None), top[0])


def test_the_shortlist_keeps_each_units_candidate_of_least_distortion():
    """codec._least_distortion: of each unit's shortlist it keeps the candidate whose weights, with the
    uncoded weights at their means and the coded ones at their values, give the least squared error."""
    from engine.codec import _least_distortion
    from engine.fitting import Objective, new_state

    torch.manual_seed(2)
    bsz, p, n = 5, 12, 40
    mix = torch.randn(p, n)
    field = lambda w: (w @ mix)[:, :, None]                                     # noqa: E731  (B, N, 1)
    target = torch.randn(bsz, n, 1)
    mu_p, ls_p = torch.zeros(p), torch.full((p,), -1.0)
    obj = Objective(field, target, mu_p, ls_p)
    st = new_state(torch.randn(bsz, p) * 0.3, torch.full((bsz, p), -2.0), torch.ones(bsz, 1), 1e-3)
    st.frozen = torch.zeros(bsz, p, dtype=torch.bool)
    st.frozen[:, :2], st.fixed[:, :2] = True, 0.7                               # two weights already coded
    classes = [(torch.tensor([0, 3]), torch.tensor([2, 5, 6])), (torch.tensor([1, 2, 4]), torch.tensor([3, 4]))]
    picks = [(u, jt, rec.shortlist(9, 4, 8, st.mu[u][:, jt].detach(), st.logstd[u][:, jt].detach(),
                                   mu_p[jt], ls_p[jt], 6)) for u, jt in classes]
    kept = _least_distortion(obj, st, 9, 4, picks, mu_p, ls_p)
    base = torch.where(st.frozen, st.fixed, st.mu).detach()
    for (u, jt, cand), (_, _, best) in zip(picks, kept):
        for i, unit in enumerate(u.tolist()):
            errs = []
            for c in cand[:, i]:
                w = base[unit].clone()
                w[jt] = rec.sample_of(9, 4, c[None], mu_p[jt], ls_p[jt])[0]
                errs.append(float(((field(w[None]) - target[unit]) ** 2).mean()))
            assert int(best[0, i]) == int(cand[int(torch.tensor(errs).argmin()), i])


def test_an_items_scores_and_choice_do_not_depend_on_its_batch():
    """The candidate scores of an item are bit-equal alone, in a batch of 17 and of 40 (a plain matrix product
    rounds a column by the number of columns), they are the quadratic form's values, and the chosen and
    shortlisted candidates follow."""
    g = torch.Generator().manual_seed(3)
    d, kappa = 24, 14
    mu_p, ls_p = torch.randn(d, generator=g) * 0.1, torch.randn(d, generator=g) * 0.2 - 1.0
    mu_q = mu_p + torch.randn(40, d, generator=g) * 0.3
    ls_q = ls_p - 0.5 + torch.randn(40, d, generator=g) * 0.1
    a, b = rec.log_ratio_coeffs(mu_q, ls_q, mu_p, ls_p)
    z = rec.candidate_table(7, 3, kappa, d, "cpu")
    full = rec._scores(z, a, b)                                                  # (K, 40)
    assert torch.allclose(full, (z * z) @ a.T + z @ b.T, rtol=1e-5, atol=1e-3)
    for lo, hi in [(5, 6), (0, 17), (20, 40)]:
        assert torch.equal(rec._scores(z, a[lo:hi], b[lo:hi]), full[:, lo:hi])
    pick = rec.select(7, 3, kappa, mu_q, ls_q, mu_p, ls_p, None)
    short = rec.shortlist(7, 3, kappa, mu_q, ls_q, mu_p, ls_p, 4)
    assert torch.equal(pick, full.argmax(0)) and torch.equal(short[0], pick)
    for i in (0, 13, 39):
        assert rec.select(7, 3, kappa, mu_q[i:i + 1], ls_q[i:i + 1], mu_p, ls_p, None)[0] == pick[i]
        assert torch.equal(rec.shortlist(7, 3, kappa, mu_q[i:i + 1], ls_q[i:i + 1], mu_p, ls_p, 4)[:, 0], short[:, i])
