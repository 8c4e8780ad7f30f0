"""The worked problems of SPEC.md section 4: every optimizer must actually minimise them (an oracle that
parity with the reference cannot provide)."""
import numpy as np
import pytest
from _helpers import CASES

import fastopt

# least-squares fits given in SPEC.md for the texts' data (np.random.seed(seed))
LEAST_SQUARES = {0: [4.222, 2.968], 42: [4.215, 2.770]}

# full-batch runs on the linear regression: every registry row has one (a new optimizer needs a row)
REGRESSION = {
    "SGD": (dict(lr=0.1, momentum=0.9, nesterov=True), 300, 1e-4),
    "Momentum": (dict(lr=0.1, beta=0.9), 300, 1e-4),
    "Adam": (dict(lr=0.1), 1000, 1e-6),
    "AdamW": (dict(lr=0.1, weight_decay=0.0, amsgrad=True), 1000, 1e-3),
    "Adamax": (dict(lr=0.1), 1000, 0.03),
    "NAdam": (dict(lr=0.1), 1000, 1e-5),
    "Adagrad": (dict(lr=0.5), 3000, 1e-4),
    "Adadelta": (dict(lr=1.0), 5000, 0.05),
    "RMSprop": (dict(lr=0.01, centered=True, momentum=0.5), 2000, 3e-4),
    "RAdam": (dict(lr=0.1), 1000, 1e-6),
    "Rprop": (dict(), 300, 1e-5),
    "ASGD": (dict(lr=0.1, t0=500), 2000, 1e-3),  # lambd's shrinking leaves a bias of 4e-4
    "Lion": (dict(lr=0.01), 1000, 0.03),
    "LAMB": (dict(lr=0.1, weight_decay=0.0), 1000, 1e-6),  # the trust ratio keeps steps ~lr*||p||: no decay here
    "ScheduleFreeAdamW": (dict(lr=0.5), 1000, 1e-3),  # the parameters hold y; x, the average, is eval()'s  # every step moves by lr: it ends oscillating within ~lr
}


def regression_data(seed):
    np.random.seed(seed)
    X = 2 * np.random.rand(100, 1)
    y = 4 + 3 * X + np.random.randn(100, 1)
    return np.c_[np.ones((100, 1)), X], y


def mse_gradient(Xb, y, theta):
    return (2 / len(Xb) * Xb.T @ (Xb @ theta.reshape(-1, 1) - y)).ravel()


@pytest.mark.parametrize("seed", [0, 42])
def test_the_data_has_the_texts_least_squares_fit(seed):
    Xb, y = regression_data(seed)
    fit = np.linalg.lstsq(Xb, y, rcond=None)[0].ravel()
    np.testing.assert_allclose(fit, LEAST_SQUARES[seed], atol=5e-4)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("seed", [0, 42])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_full_batch_linear_regression_reaches_least_squares(case, seed, backend):
    kwargs, iterations, tolerance = REGRESSION[case.name]
    Xb, y = regression_data(seed)
    fit = np.linalg.lstsq(Xb, y, rcond=None)[0].ravel()
    theta = np.zeros(2)
    opt = case.cls([theta], backend=backend, **kwargs)
    losses = []
    for _ in range(iterations):
        losses.append(float(np.mean((Xb @ theta - y.ravel()) ** 2)))
        opt.step([mse_gradient(Xb, y, theta)])
    np.testing.assert_allclose(theta, fit, atol=tolerance)
    assert losses[-1] < 0.1 * losses[0]


def test_single_sample_sgd_gets_near_the_fit():
    """SPEC: single-sample SGD, lr 0.1, 1000 iterations: near the fit (constant lr keeps it noisy)."""
    Xb, y = regression_data(42)
    rng = np.random.default_rng(42)
    theta = np.zeros(2)
    opt = fastopt.SGD([theta], lr=0.1)
    for _ in range(1000):
        i = rng.integers(len(Xb))
        opt.step([mse_gradient(Xb[i:i + 1], y[i:i + 1], theta)])
    np.testing.assert_allclose(theta, LEAST_SQUARES[42], atol=0.5)


def test_mini_batches_average_to_full_batch():
    """Mini-batch SGD with the loss summed over the batch and divided by its size is full-batch SGD when
    the batch is the whole data set (the batch mean is the caller's choice)."""
    Xb, y = regression_data(0)
    theta_batches, theta_full = np.zeros(2), np.zeros(2)
    opt_batches, opt_full = fastopt.SGD([theta_batches], lr=0.1), fastopt.SGD([theta_full], lr=0.1)
    for _ in range(50):
        opt_full.step([mse_gradient(Xb, y, theta_full)])
        grad_sum = sum(mse_gradient(Xb[i:i + 20], y[i:i + 20], theta_batches) * 20 for i in range(0, 100, 20))
        opt_batches.step([grad_sum / 100])
    np.testing.assert_allclose(theta_batches, theta_full, rtol=1e-12)


def test_parabola_converges_to_2_5():
    """J = (theta - 2.5)^2 - 1, eta 0.1, stop when |J - J_prev| < 1e-8, from 0: reaches 2.5."""
    theta = np.zeros(())
    opt = fastopt.SGD([theta], lr=0.1)
    history, previous = [float(theta)], None
    while True:
        cost = (float(theta) - 2.5) ** 2 - 1
        if previous is not None and abs(cost - previous) < 1e-8:
            break
        previous = cost
        opt.step([2 * (theta - 2.5)])
        history.append(float(theta))
        assert len(history) < 1000
    assert abs(float(theta) - 2.5) < 1e-3
    assert all(a < b for a, b in zip(history, history[1:]))  # gradient descent on a parabola: monotone
    # the closed form of this iteration: theta_k = 2.5 * (1 - 0.8^k)
    np.testing.assert_allclose(history, 2.5 * (1 - 0.8 ** np.arange(len(history))), rtol=1e-12)


def test_momentum_goes_straighter_than_gradient_descent_on_an_ill_conditioned_quadratic():
    """SPEC 4.3: on f = (x^2 + 50 y^2)/2, plain GD near its largest stable lr (2/50) zig-zags along y
    and crawls along x; momentum reaches the minimum far sooner."""
    curvature = np.array([1.0, 50.0])

    def run(opt_cls, **kwargs):
        xy = np.array([-10.0, 1.0])
        opt = opt_cls([xy], **kwargs)
        for k in range(200):
            opt.step([curvature * xy])
            if np.linalg.norm(xy) < 1e-3:
                return k + 1
        return 200

    assert run(fastopt.Momentum, lr=0.1, beta=0.8) < run(fastopt.SGD, lr=0.035) / 2
