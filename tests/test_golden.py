"""Golden values: the first two steps of every optimizer, derived by hand in closed form.

An oracle independent of both the compiled kernels and the NumPy reference: each expected value is
written below as plain Python-float math, element by element, from the update rule (torch.optim's
semantics, /work/shared/spec/torch-optim.md section 2). Both backends must reproduce it to 1e-12.

Also: NaN/inf in a gradient stays in its own elements (every registry row and config, both backends).
"""
import math

import numpy as np
import pytest

import fastopt
from _helpers import CONFIGS

try:
    import torch
except ImportError:  # pragma: no cover - the NaN masks are then checked without torch
    torch = None

BACKENDS = ["cython", "numpy"]

# small float64 arrays; element 3 has a zero first gradient, element 2 a tiny second one (so AMSGrad's
# and Adamax's max take both branches across the elements)
P0 = [0.5, -1.5, 2.0, 0.75, 0.0, 1.25]
G1 = [0.3, -0.7, 1.5, 0.0, -2.0, 0.05]
G2 = [-0.4, -0.2, 0.01, 0.3, 1.0, 0.06]

TOL = dict(rtol=1e-12, atol=1e-15)


# -- the hand derivations: f(p0, g1, g2) -> {"p1": .., "p2": .., state key: value after step 2} ----

def sgd_plain(p0, g1, g2, lr=0.1):
    p1 = p0 - lr * g1
    return {"p1": p1, "p2": p1 - lr * g2}


def sgd_momentum(p0, g1, g2, lr=0.1, mu=0.9):
    p1 = p0 - lr * g1                      # the buffer starts at g1 itself
    b2 = mu * g1 + g2
    return {"p1": p1, "p2": p1 - lr * b2, "momentum_buffer": b2}


def sgd_dampening(p0, g1, g2, lr=0.1, mu=0.9, tau=0.3):
    p1 = p0 - lr * g1                      # no dampening on the first step
    b2 = mu * g1 + (1 - tau) * g2
    return {"p1": p1, "p2": p1 - lr * b2, "momentum_buffer": b2}


def sgd_nesterov(p0, g1, g2, lr=0.1, mu=0.9):
    p1 = p0 - lr * (g1 + mu * g1)
    b2 = mu * g1 + g2
    return {"p1": p1, "p2": p1 - lr * (g2 + mu * b2), "momentum_buffer": b2}


def sgd_wd_maximize(p0, g1, g2, lr=0.1, mu=0.5, wd=0.1):
    d1 = -g1 + wd * p0
    p1 = p0 - lr * d1
    d2 = -g2 + wd * p1
    b2 = mu * d1 + d2
    return {"p1": p1, "p2": p1 - lr * b2, "momentum_buffer": b2}


def momentum_ema(p0, g1, g2, lr=0.1, beta=0.9):
    v1 = (1 - beta) * g1                   # the buffer starts at zero
    p1 = p0 - lr * v1
    v2 = beta * (1 - beta) * g1 + (1 - beta) * g2
    return {"p1": p1, "p2": p1 - lr * v2, "momentum_buffer": v2}


def adam(p0, g1, g2, lr=0.01, b1=0.9, b2=0.999, eps=1e-8, amsgrad=False, wd=0.0, decoupled=False):
    if decoupled:
        p0 = p0 * (1 - lr * wd)
    elif wd:
        g1 = g1 + wd * p0
    p1 = p0 - lr * g1 / (abs(g1) + eps)    # m1/bc1 = g1 and sqrt(v1/bc2) = |g1|
    if decoupled:
        p1d = p1 * (1 - lr * wd)
    else:
        p1d = p1
        if wd:
            g2 = g2 + wd * p1
    v1 = (1 - b2) * g1 * g1
    m2 = b1 * (1 - b1) * g1 + (1 - b1) * g2
    v2 = b2 * (1 - b2) * g1 * g1 + (1 - b2) * g2 * g2
    vhat = max(v1, v2) if amsgrad else v2
    p2 = p1d - lr / (1 - b1 ** 2) * m2 / (math.sqrt(vhat / (1 - b2 ** 2)) + eps)
    out = {"p1": p1, "p2": p2, "step": 2.0, "exp_avg": m2, "exp_avg_sq": v2}
    if amsgrad:
        out["max_exp_avg_sq"] = vhat
    return out


def adamax(p0, g1, g2, lr=0.02, b1=0.9, b2=0.999, eps=1e-8):
    u1 = abs(g1) + eps
    p1 = p0 - lr * g1 / u1                 # (lr/(1-b1)) * (1-b1) g1 / u1
    m2 = b1 * (1 - b1) * g1 + (1 - b1) * g2
    u2 = max(b2 * u1, abs(g2) + eps)       # eps inside the max
    p2 = p1 - lr / (1 - b1 ** 2) * m2 / u2
    return {"p1": p1, "p2": p2, "step": 2.0, "exp_avg": m2, "exp_inf": u2}


def nadam(p0, g1, g2, lr=0.01, b1=0.9, b2=0.999, eps=1e-8, psi=4e-3, wd=0.0, decoupled=False):
    def mu(t):
        return b1 * (1 - 0.5 * 0.96 ** (t * psi))

    if decoupled:
        p0 = p0 * (1 - lr * wd)
    m1 = (1 - b1) * g1
    d1 = abs(g1) + eps                     # sqrt(v1 / (1 - b2)) + eps
    prod1 = mu(1)
    p1 = (p0 - lr * (1 - mu(1)) / (1 - prod1) * g1 / d1
          - lr * mu(2) / (1 - prod1 * mu(2)) * m1 / d1)
    p1d = p1 * (1 - lr * wd) if decoupled else p1
    m2 = b1 * m1 + (1 - b1) * g2
    v2 = b2 * (1 - b2) * g1 * g1 + (1 - b2) * g2 * g2
    d2 = math.sqrt(v2 / (1 - b2 ** 2)) + eps
    prod2 = mu(1) * mu(2)
    p2 = (p1d - lr * (1 - mu(2)) / (1 - prod2) * g2 / d2
          - lr * mu(3) / (1 - prod2 * mu(3)) * m2 / d2)
    return {"p1": p1, "p2": p2, "step": 2.0, "mu_product": prod2, "exp_avg": m2, "exp_avg_sq": v2}


def adagrad(p0, g1, g2, lr=0.05, lr_decay=0.0, init=0.0, eps=1e-10):
    s1 = init + g1 * g1
    p1 = p0 - lr * g1 / (math.sqrt(s1) + eps)
    s2 = s1 + g2 * g2
    p2 = p1 - lr / (1 + lr_decay) * g2 / (math.sqrt(s2) + eps)
    return {"p1": p1, "p2": p2, "step": 2.0, "sum": s2}


def adadelta(p0, g1, g2, lr=1.0, rho=0.9, eps=1e-6):
    v1 = (1 - rho) * g1 * g1
    dx1 = math.sqrt(0 + eps) / math.sqrt(v1 + eps) * g1
    u1 = (1 - rho) * dx1 * dx1
    p1 = p0 - lr * dx1
    v2 = rho * v1 + (1 - rho) * g2 * g2
    dx2 = math.sqrt(u1 + eps) / math.sqrt(v2 + eps) * g2
    u2 = rho * u1 + (1 - rho) * dx2 * dx2
    return {"p1": p1, "p2": p1 - lr * dx2, "step": 2.0, "square_avg": v2, "acc_delta": u2}


def rmsprop(p0, g1, g2, lr=0.01, alpha=0.99, eps=1e-8, centered=False, mu=0.0):
    v1 = (1 - alpha) * g1 * g1
    v2 = alpha * v1 + (1 - alpha) * g2 * g2
    a1 = (1 - alpha) * g1
    a2 = alpha * a1 + (1 - alpha) * g2
    den1 = math.sqrt(v1 - a1 * a1 if centered else v1) + eps
    den2 = math.sqrt(v2 - a2 * a2 if centered else v2) + eps
    out = {"step": 2.0, "square_avg": v2}
    if centered:
        out["grad_avg"] = a2
    if mu:
        buf1 = g1 / den1                   # the buffer starts at zero
        buf2 = mu * buf1 + g2 / den2
        out.update(p1=p0 - lr * buf1, p2=p0 - lr * buf1 - lr * buf2, momentum_buffer=buf2)
    else:
        p1 = p0 - lr * g1 / den1
        out.update(p1=p1, p2=p1 - lr * g2 / den2)
    return out


def radam(p0, g1, g2, lr=0.01, b1=0.9, b2=0.999, wd=0.0, decoupled=False):
    # rho_1 = 1 and rho_2 < 2.1 for any beta2: the first two steps are never rectified, p -= lr * m / bc1
    g1w = g1 if decoupled else g1 + wd * p0
    p0d = p0 * (1 - lr * wd) if decoupled else p0
    m1, v1 = (1 - b1) * g1w, (1 - b2) * g1w * g1w
    p1 = p0d - lr * m1 / (1 - b1)
    g2w = g2 if decoupled else g2 + wd * p1
    p1d = p1 * (1 - lr * wd) if decoupled else p1
    m2, v2 = b1 * m1 + (1 - b1) * g2w, b2 * v1 + (1 - b2) * g2w * g2w
    return {"p1": p1, "p2": p1d - lr * m2 / (1 - b1 ** 2), "step": 2.0, "exp_avg": m2, "exp_avg_sq": v2}


def _sign(x):
    return (x > 0) - (x < 0)


def rprop(p0, g1, g2, lr=0.01, etas=(0.5, 1.2), sizes=(1e-6, 50.0)):
    p1 = p0 - _sign(g1) * lr               # prev = 0: the factor is 1, the step size stays lr
    if g1 * g2 > 0:
        h2, prev2 = min(lr * etas[1], sizes[1]), g2
    elif g1 * g2 < 0:                      # the sign flipped: the step shrinks, the element stays
        h2, prev2 = max(lr * etas[0], sizes[0]), 0.0
    else:
        h2, prev2 = lr, g2
    return {"p1": p1, "p2": p1 - _sign(prev2) * h2, "step": 2.0, "prev": prev2, "step_size": h2}


def asgd(p0, g1, g2, lr=0.01, lambd=1e-4, alpha=0.75, t0=1e6):
    p1 = p0 * (1 - lambd * lr) - lr * g1   # eta = lr, mu = 1 at the first step: ax copies p
    eta2, mu2 = lr / (1 + lambd * lr * 1) ** alpha, 1 / max(1, 1 - t0)
    p2 = p1 * (1 - lambd * eta2) - eta2 * g2
    ax2 = p2 if mu2 == 1 else p1 + (p2 - p1) * mu2
    return {"p1": p1, "p2": p2, "step": 2.0, "eta": lr / (1 + lambd * lr * 2) ** alpha,
            "mu": 1 / max(1, 2 - t0), "ax": ax2}


def lion(p0, g1, g2, lr=0.01, b1=0.9, b2=0.99, wd=0.0):
    p1 = p0 * (1 - lr * wd) - _sign((1 - b1) * g1) * lr
    m1 = (1 - b2) * g1
    p2 = p1 * (1 - lr * wd) - _sign(b1 * m1 + (1 - b1) * g2) * lr
    return {"p1": p1, "p2": p2, "exp_avg": b2 * m1 + (1 - b2) * g2}


def lamb_no_decay(p0, g1, g2, lr=0.01, b1=0.9, b2=0.999, eps=1e-6):
    # no weight decay, no always_adapt: no trust ratio, Adam's direction in timm's form
    m1, v1 = (1 - b1) * g1, (1 - b2) * g1 * g1
    p1 = p0 - lr * (m1 / (1 - b1)) / (math.sqrt(v1) / math.sqrt(1 - b2) + eps)
    m2, v2 = b1 * m1 + (1 - b1) * g2, b2 * v1 + (1 - b2) * g2 * g2
    p2 = p1 - lr * (m2 / (1 - b1 ** 2)) / (math.sqrt(v2) / math.sqrt(1 - b2 ** 2) + eps)
    return {"p1": p1, "p2": p2, "step": 2.0, "exp_avg": m2, "exp_avg_sq": v2}


def lamb_tensor(p0, g1, g2, lr=0.01, b1=0.9, b2=0.999, eps=1e-6, wd=0.01):
    """LAMB with its trust ratio: per tensor (lists of floats), not per element."""
    def step(p, m, v, g, t):
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        u = [(mi / (1 - b1 ** t)) / (math.sqrt(vi) / math.sqrt(1 - b2 ** t) + eps) + wd * pi
             for mi, vi, pi in zip(m, v, p)]
        ratio = math.sqrt(sum(x * x for x in p)) / math.sqrt(sum(x * x for x in u))
        return [pi - lr * ratio * ui for pi, ui in zip(p, u)], m, v
    zeros = [0.0] * len(p0)
    p1, m, v = step(p0, zeros, zeros, g1, 1)
    p2, m, v = step(p1, m, v, g2, 2)
    return {"p1": p1, "p2": p2, "exp_avg": m, "exp_avg_sq": v}


def schedule_free(p0, g1, g2, lr=0.01, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
    # step 1: weight lr^2, c = 1, so y = z before the update and p1 = z1; step 2: equal weights, c = 1/2
    v1 = (1 - b2) * g1 * g1
    u1 = g1 / (math.sqrt(v1 / (1 - b2)) + eps) + wd * p0
    p1 = z1 = p0 - lr * u1
    v2 = b2 * v1 + (1 - b2) * g2 * g2
    u2 = g2 / (math.sqrt(v2 / (1 - b2 ** 2)) + eps) + wd * p1
    return {"p1": p1, "p2": p1 + lr * (b1 * 0.5 - 1) * u2, "z": z1 - lr * u2, "exp_avg_sq": v2}


def _golden(name, cls, kwargs, fn, **fn_kwargs):
    return pytest.param(cls, kwargs, fn, fn_kwargs, id=name)


GOLDEN = [
    _golden("SGD-plain", "SGD", dict(lr=0.1), sgd_plain),
    _golden("SGD-momentum", "SGD", dict(lr=0.1, momentum=0.9), sgd_momentum),
    _golden("SGD-dampening", "SGD", dict(lr=0.1, momentum=0.9, dampening=0.3), sgd_dampening),
    _golden("SGD-nesterov", "SGD", dict(lr=0.1, momentum=0.9, nesterov=True), sgd_nesterov),
    _golden("SGD-wd-maximize", "SGD", dict(lr=0.1, momentum=0.5, weight_decay=0.1, maximize=True),
            sgd_wd_maximize),
    _golden("Momentum", "Momentum", dict(lr=0.1), momentum_ema),
    _golden("Momentum-beta", "Momentum", dict(lr=0.2, beta=0.5), momentum_ema, lr=0.2, beta=0.5),
    _golden("Adam", "Adam", dict(lr=0.01), adam),
    _golden("Adam-betas-eps", "Adam", dict(lr=0.01, betas=(0.3, 0.9), eps=1e-3), adam,
            b1=0.3, b2=0.9, eps=1e-3),
    _golden("Adam-weight_decay", "Adam", dict(lr=0.01, weight_decay=0.1), adam, wd=0.1),
    _golden("Adam-decoupled", "Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
            adam, wd=0.1, decoupled=True),
    _golden("AMSGrad", "Adam", dict(lr=0.01, amsgrad=True), adam, amsgrad=True),
    _golden("AdamW", "AdamW", dict(lr=0.01, weight_decay=0.1), adam, wd=0.1, decoupled=True),
    _golden("AdamW-amsgrad", "AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True), adam,
            wd=0.1, decoupled=True, amsgrad=True),
    _golden("Adamax", "Adamax", dict(lr=0.02), adamax),
    _golden("Adamax-eps", "Adamax", dict(lr=0.02, betas=(0.5, 0.9), eps=1e-2), adamax,
            b1=0.5, b2=0.9, eps=1e-2),
    _golden("NAdam", "NAdam", dict(lr=0.01), nadam),
    _golden("NAdam-momentum_decay-decoupled", "NAdam",
            dict(lr=0.01, betas=(0.8, 0.99), momentum_decay=0.05, weight_decay=0.1,
                 decoupled_weight_decay=True),
            nadam, b1=0.8, b2=0.99, psi=0.05, wd=0.1, decoupled=True),
    _golden("Adagrad", "Adagrad", dict(lr=0.05), adagrad),
    _golden("Adagrad-lr_decay", "Adagrad", dict(lr=0.05, lr_decay=0.1), adagrad, lr_decay=0.1),
    _golden("Adagrad-initial_accumulator", "Adagrad",
            dict(lr=0.05, initial_accumulator_value=0.1, eps=1e-6), adagrad, init=0.1, eps=1e-6),
    _golden("Adadelta", "Adadelta", dict(), adadelta),
    _golden("Adadelta-rho", "Adadelta", dict(lr=0.5, rho=0.5, eps=1e-4), adadelta,
            lr=0.5, rho=0.5, eps=1e-4),
    _golden("RMSprop", "RMSprop", dict(lr=0.01), rmsprop),
    _golden("RMSprop-centered", "RMSprop", dict(lr=0.01, centered=True), rmsprop, centered=True),
    _golden("RMSprop-momentum", "RMSprop", dict(lr=0.01, momentum=0.9), rmsprop, mu=0.9),
    _golden("RMSprop-centered-momentum", "RMSprop", dict(lr=0.01, centered=True, momentum=0.5, alpha=0.9),
            rmsprop, centered=True, mu=0.5, alpha=0.9),
    _golden("RAdam", "RAdam", dict(lr=0.01), radam),
    _golden("RAdam-weight_decay", "RAdam", dict(lr=0.01, weight_decay=0.1, betas=(0.5, 0.9)), radam,
            wd=0.1, b1=0.5, b2=0.9),
    _golden("RAdam-decoupled", "RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True), radam,
            wd=0.1, decoupled=True),
    _golden("Rprop", "Rprop", dict(), rprop),
    _golden("Rprop-etas-sizes", "Rprop", dict(lr=0.1, etas=(0.3, 1.5), step_sizes=(0.04, 0.12)), rprop,
            lr=0.1, etas=(0.3, 1.5), sizes=(0.04, 0.12)),
    _golden("ASGD", "ASGD", dict(), asgd),
    _golden("ASGD-averaged", "ASGD", dict(lr=0.1, lambd=0.5, alpha=0.5, t0=-1), asgd,
            lr=0.1, lambd=0.5, alpha=0.5, t0=-1),
    _golden("Lion", "Lion", dict(lr=0.01), lion),
    _golden("LAMB-no_decay", "LAMB", dict(lr=0.01, weight_decay=0.0), lamb_no_decay),
    _golden("ScheduleFreeAdamW", "ScheduleFreeAdamW", dict(lr=0.01), schedule_free),
    _golden("ScheduleFreeAdamW-wd-betas", "ScheduleFreeAdamW", dict(lr=0.05, weight_decay=0.1, betas=(0.5, 0.9)),
            schedule_free, lr=0.05, wd=0.1, b1=0.5, b2=0.9),
    _golden("Lion-weight_decay", "Lion", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.5), lion,
            b1=0.5, b2=0.9, wd=0.5),
]


def test_golden_covers_every_optimizer():
    # the registry holds every public optimizer (tests/test_structure.py)
    assert {p.values[0] for p in GOLDEN} == {case.name for case in fastopt._registry.CASES}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("wd, b1", [(0.01, 0.9), (0.5, 0.6)])
def test_lamb_trust_ratio_matches_closed_form(backend, wd, b1):
    """LAMB's step is ``lr * ||p|| / ||u||`` along u: the norms of the whole tensor, before the update."""
    expected = lamb_tensor(P0, G1, G2, wd=wd, b1=b1)
    param = np.array(P0)
    opt = fastopt.LAMB([param], lr=0.01, weight_decay=wd, betas=(b1, 0.999), backend=backend)
    opt.step([np.array(G1)])
    np.testing.assert_allclose(param, expected["p1"], **TOL, err_msg="after step 1")
    opt.step([np.array(G2)])
    np.testing.assert_allclose(param, expected["p2"], **TOL, err_msg="after step 2")
    for key in ("exp_avg", "exp_avg_sq"):
        np.testing.assert_allclose(opt.state[0][key], expected[key], **TOL, err_msg=key)


def expected_arrays(fn, fn_kwargs):
    rows = [fn(p0, g1, g2, **fn_kwargs) for p0, g1, g2 in zip(P0, G1, G2)]
    return {key: np.array([row[key] for row in rows]) for key in rows[0]}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls, kwargs, fn, fn_kwargs", GOLDEN)
def test_first_two_steps_match_closed_form(cls, kwargs, fn, fn_kwargs, backend):
    expected = expected_arrays(fn, fn_kwargs)
    param = np.array(P0)
    opt = getattr(fastopt, cls)([param], backend=backend, **kwargs)
    opt.step([np.array(G1)])
    np.testing.assert_allclose(param, expected["p1"], **TOL, err_msg="after step 1")
    opt.step([np.array(G2)])
    np.testing.assert_allclose(param, expected["p2"], **TOL, err_msg="after step 2")
    state_keys = {k for k in expected if k not in ("p1", "p2")}
    if not state_keys:                     # SGD without momentum keeps no state at all, as torch
        assert 0 not in opt.state
        return
    state = opt.state[0]
    assert set(state) == state_keys
    for key in state_keys:
        assert state[key].dtype == np.float64, key
        if key in ("step", "mu_product", "eta", "mu"):  # per-parameter scalars: 0-d, the same in every row
            assert state[key].shape == ()
            np.testing.assert_allclose(float(state[key]), expected[key][0], **TOL, err_msg=key)
        else:
            np.testing.assert_allclose(state[key], expected[key], **TOL, err_msg=key)


def test_momentum_differs_from_sgd_dampening_on_the_first_step():
    """Momentum (EMA) starts its buffer at (1-beta)*g1; SGD(momentum=beta, dampening=beta) at g1."""
    beta, lr = 0.9, 0.1
    for backend in BACKENDS:
        p_ema, p_sgd = np.array(P0), np.array(P0)
        ema = fastopt.Momentum([p_ema], lr=lr, beta=beta, backend=backend)
        sgd = fastopt.SGD([p_sgd], lr=lr, momentum=beta, dampening=beta, backend=backend)
        ema.step([np.array(G1)])
        sgd.step([np.array(G1)])
        np.testing.assert_allclose(p_ema, [p - lr * (1 - beta) * g for p, g in zip(P0, G1)], **TOL)
        np.testing.assert_allclose(p_sgd, [p - lr * g for p, g in zip(P0, G1)], **TOL)
        moved = np.array(G1) != 0
        assert np.all(p_ema[moved] != p_sgd[moved])
        np.testing.assert_allclose(ema.state[0]["momentum_buffer"], [(1 - beta) * g for g in G1], **TOL)
        np.testing.assert_allclose(sgd.state[0]["momentum_buffer"], G1, **TOL)
        ema.step([np.array(G2)])
        sgd.step([np.array(G2)])
        # after two steps: beta*(1-beta)*g1 + (1-beta)*g2 versus beta*g1 + (1-beta)*g2
        np.testing.assert_allclose(ema.state[0]["momentum_buffer"],
                                   [beta * (1 - beta) * a + (1 - beta) * b for a, b in zip(G1, G2)], **TOL)
        np.testing.assert_allclose(sgd.state[0]["momentum_buffer"],
                                   [beta * a + (1 - beta) * b for a, b in zip(G1, G2)], **TOL)


# -- NaN and inf stay in their own elements ------------------------------------------------------------

BAD = {1: np.nan, 2: np.inf, 3: -np.inf}
SIGN_RULES = {"Rprop", "Lion"}
GOOD = [0, 4, 5]
NAN_STEPS = 3


def _nan_grads(dtype):
    rng = np.random.default_rng(7)
    clean = [rng.standard_normal(6).astype(dtype) for _ in range(NAN_STEPS)]
    dirty = [g.copy() for g in clean]
    for index, value in BAD.items():
        dirty[0][index] = value            # the bad values arrive on the first step only
    return clean, dirty


def _run(case, kwargs, backend, dtype, grads):
    param = np.random.default_rng(3).standard_normal(6).astype(dtype)
    opt = case.cls([param], backend=backend, **kwargs)
    with np.errstate(all="ignore"):        # the NumPy reference warns about inf - inf, inf / inf
        for g in grads:
            opt.step([g])
    return param, opt.state.get(0, {})


def _same_nonfinite_kind(actual, expected, what):
    for kind in (np.isnan, np.isposinf, np.isneginf, np.isfinite):
        np.testing.assert_array_equal(kind(actual), kind(expected), err_msg=f"{what}: {kind.__name__}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case, label, kwargs", CONFIGS)
def test_nan_and_inf_stay_in_their_elements(case, label, kwargs, backend, dtype):
    clean, dirty = _nan_grads(dtype)
    p_clean, s_clean = _run(case, kwargs, backend, dtype, clean)
    p_dirty, s_dirty = _run(case, kwargs, backend, dtype, dirty)
    bad = sorted(BAD)
    # the other elements: finite and exactly what they are without the bad entries (but under LAMB's
    # trust ratio, a norm of the whole tensor: a NaN norm makes the ratio 1, as timm's, and the other
    # elements take that step; tests/test_lamb.py checks it against timm's code)
    tensor_wide = case.name == "LAMB" and (kwargs.get("weight_decay", 0.01) != 0 or kwargs.get("always_adapt"))
    assert np.all(np.isfinite(p_dirty[GOOD]))
    if not tensor_wide:
        np.testing.assert_array_equal(p_dirty[GOOD], p_clean[GOOD])
    assert set(s_dirty) == set(s_clean)
    for key, value in s_dirty.items():
        if value.ndim == 0:                # step, mu_product: not touched by the gradient's values
            np.testing.assert_array_equal(value, s_clean[key])
        else:
            assert np.all(np.isfinite(value[GOOD])), key
            if not tensor_wide:
                np.testing.assert_array_equal(value[GOOD], s_clean[key][GOOD], err_msg=key)
    # the bad elements: non-finite, and the same kind of non-finite as torch; the sign rules move a
    # parameter by sign(.) * a step size (torch's sign of NaN is 0), so their params stay finite: Lion's
    # momentum keeps the bad values, Rprop's prev holds them for one step only (as torch's)
    if case.name in SIGN_RULES:
        assert np.all(np.isfinite(p_dirty))
        if case.name == "Lion":
            assert not np.any(np.isfinite(s_dirty["exp_avg"][bad]))
    else:
        assert not np.any(np.isfinite(p_dirty[bad]))
    if torch is None or case.torch is None:
        return
    tparam = torch.from_numpy(np.random.default_rng(3).standard_normal(6).astype(dtype)).requires_grad_(True)
    topt = getattr(torch.optim, case.torch)([tparam], **kwargs)
    for g in dirty:
        tparam.grad = torch.from_numpy(g.copy())
        topt.step()
    _same_nonfinite_kind(p_dirty, tparam.detach().numpy(), "param")
    tstate = topt.state[tparam]
    assert set(tstate) == set(s_dirty)
    for key, tvalue in tstate.items():
        _same_nonfinite_kind(s_dirty[key], tvalue.detach().numpy(), key)
