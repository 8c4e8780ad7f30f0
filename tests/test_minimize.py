"""``fastopt.minimize``: the texts' loop (SPEC.md sections 3-4) on problems with known answers.

The parabola of the texts, Newton's method on quadratics (one step to the minimum) and on negative
curvature (|H| never climbs), the linear regression of section 4 (least-squares fit), every registry
optimizer, a learning-rate scheduler, and the loop's stopping rules and argument checks.
"""
import math

import numpy as np
import pytest

import fastopt
from fastopt._registry import CASES
from fastopt.lr_scheduler import ExponentialDecayLR


def parabola(t):
    return (t - 2.5) ** 2 - 1


def d_parabola(t):
    return 2 * (t - 2.5)


# -- the parabola (SPEC 4.2) -------------------------------------------------------------------------------

def test_parabola_converges_like_the_texts_loop():
    res = fastopt.minimize(parabola, 0.0, d_parabola, method="sgd", lr=0.1, tol=1e-8)
    assert res.success is True
    assert "converged" in res.message
    assert abs(res.x - 2.5) < 1e-3 and np.ndim(res.x) == 0
    assert res.fun == parabola(res.x)
    xs, fs = res.history["x"], res.history["fun"]
    assert xs[0] == 0.0 and xs[-1] == res.x
    assert len(fs) == len(xs) == res.nit + 1
    assert abs(fs[-1] - fs[-2]) < 1e-8 and abs(fs[-2] - fs[-3]) >= 1e-8  # stopped at the first chance
    np.testing.assert_array_equal(fs, [parabola(x) for x in xs])
    assert res.jac == pytest.approx(d_parabola(xs[-2]))  # the last gradient computed

    # the texts' loop, written out: theta -= eta * dJ(theta) until |J - J_prev| < epsilon
    theta, path = 0.0, [0.0]
    while True:
        prev = theta
        theta = theta - 0.1 * d_parabola(theta)
        path.append(theta)
        if abs(parabola(theta) - parabola(prev)) < 1e-8:
            break
    assert res.nit == len(path) - 1
    np.testing.assert_allclose(xs, path, rtol=1e-14, atol=1e-15)


def test_parabola_max_iter_reached_is_not_success():
    res = fastopt.minimize(parabola, 0.0, d_parabola, method="sgd", lr=0.1, tol=1e-8, max_iter=5)
    assert res.success is False and res.nit == 5 and "max_iter" in res.message
    assert len(res.history["fun"]) == 6


# -- Newton ----------------------------------------------------------------------------------------------

A = np.array([[100.0, 3.0], [3.0, 1.0]])  # eigenvalues ~100 and ~0.9: one steep axis, one shallow
B = np.array([1.0, -2.0])
X_STAR = np.linalg.solve(A, B)


def quad(x):
    return 0.5 * x @ A @ x - B @ x


def d_quad(x):
    return A @ x - B


def test_newton_solves_quadratic_in_one_step():
    x0 = np.array([5.0, 5.0])
    res = fastopt.minimize(quad, x0, d_quad, method="newton", hess=lambda x: A)
    np.testing.assert_allclose(res.history["x"][1], X_STAR, rtol=0, atol=1e-12)
    assert res.success is True and res.nit == 2  # one step to the minimum, one to see f stop changing
    np.testing.assert_allclose(res.x, X_STAR, rtol=0, atol=1e-12)
    # plain gradient descent needs many steps on the same problem (the Newton test would pass for no
    # reason if the problem were trivial)
    gd = fastopt.minimize(quad, x0, d_quad, method="sgd", lr=0.01, tol=1e-8)
    assert gd.nit > 20


def test_newton_lr_scales_the_step():
    x0 = np.array([5.0, 5.0])
    res = fastopt.minimize(quad, x0, d_quad, method="newton", hess=lambda x: A, lr=0.5, max_iter=3, tol=0)
    xs = res.history["x"]
    np.testing.assert_allclose(xs[1], x0 + 0.5 * (X_STAR - x0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(xs[2] - X_STAR, 0.25 * (x0 - X_STAR), rtol=0, atol=1e-12)
    np.testing.assert_allclose(xs[3] - X_STAR, 0.125 * (x0 - X_STAR), rtol=0, atol=1e-12)


def _bumpy(z):  # convex in x; cos(y) is concave near y = 0.5 and convex near its minimum at pi
    return (z[0] - 1) ** 2 + np.cos(z[1])


def _d_bumpy(z):
    return np.array([2 * (z[0] - 1), -np.sin(z[1])])


def _h_bumpy(z):
    return np.diag([2.0, -np.cos(z[1])])


def test_newton_abs_hessian_never_climbs():
    x0 = np.array([0.9, 0.5])
    # plain Newton (H^-1 g) from x0 goes uphill, toward the maximum of cos at 0
    plain = x0 - np.linalg.solve(_h_bumpy(x0), _d_bumpy(x0))
    assert _bumpy(plain) > _bumpy(x0)
    res = fastopt.minimize(_bumpy, x0, _d_bumpy, method="newton", hess=_h_bumpy)
    fs = res.history["fun"]
    assert res.success is True
    assert np.all(np.diff(fs)[:-1] < 0) and fs[-1] <= fs[-2]
    np.testing.assert_allclose(res.x, [1.0, np.pi], atol=1e-6)
    # the first step is exactly |H|^-1 g
    np.testing.assert_allclose(res.history["x"][1], [1.0, 0.5 + np.tan(0.5)], rtol=1e-14)


@pytest.mark.parametrize("case", ["quartic_at_0", "zero_matrix", "linear_zero_hessian"])
def test_newton_singular_hessian(case):
    if case == "quartic_at_0":
        fun, jac, hess, x0 = (lambda x: x ** 4), (lambda x: 4 * x ** 3), (lambda x: 12 * x ** 2), 0.0
    elif case == "zero_matrix":
        fun, jac, hess, x0 = (lambda x: 0.0), (lambda x: np.zeros(2)), (lambda x: np.zeros((2, 2))), [1.0, 2.0]
    else:
        fun, jac, hess, x0 = (lambda x: x.sum()), (lambda x: np.ones(2)), (lambda x: np.zeros((2, 2))), [1.0, 2.0]
    res = fastopt.minimize(fun, x0, jac, method="newton", hess=hess)
    assert res.success is False and "singular" in res.message
    assert res.nit == 0
    np.testing.assert_array_equal(res.x, x0)
    assert len(res.history["x"]) == 1


def test_newton_rank_deficient_hessian_is_singular():
    res = fastopt.minimize(quad, np.ones(2), d_quad, method="newton", hess=lambda x: np.array([[1.0, 1.0], [1.0, 1.0]]))
    assert res.success is False and "singular" in res.message


@pytest.mark.parametrize("shape", [(3, 3), (2, 3), (3,), (1,)])
def test_newton_wrong_hessian_shape(shape):
    x0 = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="hess"):
        fastopt.minimize(quad, x0, d_quad, method="newton", hess=lambda x: np.ones(shape))
    np.testing.assert_array_equal(x0, [1.0, 2.0])


def test_newton_needs_hess_and_takes_no_optimizer_options():
    with pytest.raises(TypeError):
        fastopt.minimize(quad, np.ones(2), d_quad, method="newton")
    with pytest.raises(TypeError):
        fastopt.minimize(quad, np.ones(2), d_quad, method="newton", hess=lambda x: A, momentum=0.9)
    with pytest.raises(TypeError):
        fastopt.minimize(quad, np.ones(2), d_quad, method="newton", hess=lambda x: A,
                         scheduler=lambda opt: ExponentialDecayLR(opt, 0.01))


# -- linear regression (SPEC 4.1) ---------------------------------------------------------------------------

def _regression():
    np.random.seed(0)
    X = 2 * np.random.rand(100, 1)
    y = 4 + 3 * X + np.random.randn(100, 1)
    Xb = np.c_[np.ones((100, 1)), X]

    def mse(theta):
        return float(np.mean((Xb @ theta.reshape(2, 1) - y) ** 2))

    def grad(theta):
        return (2 / 100 * Xb.T @ (Xb @ theta.reshape(2, 1) - y)).ravel()

    fit = np.linalg.lstsq(Xb, y, rcond=None)[0].ravel()
    return mse, grad, fit


@pytest.mark.parametrize("method, kwargs", [
    ("adam", {}), ("Adam", {}), ("momentum", dict(beta=0.9)), ("MOMENTUM", dict(beta=0.9)),
])
def test_linear_regression_reaches_least_squares_fit(method, kwargs):
    mse, grad, fit = _regression()
    np.testing.assert_allclose(fit, [4.222, 2.968], atol=1e-3)  # the texts' numbers for seed 0
    res = fastopt.minimize(mse, np.zeros(2), grad, method=method, lr=0.1, tol=0, max_iter=1000, **kwargs)
    assert res.nit == 1000 and res.success is False  # tol=0: runs every iteration
    np.testing.assert_allclose(res.x, fit, atol=1e-3)
    np.testing.assert_allclose(res.x, [4.222, 2.968], atol=2e-3)
    assert res.history["x"].shape == (1001, 2)


def test_method_names_case_insensitive_same_trajectory():
    mse, grad, _ = _regression()
    runs = [fastopt.minimize(mse, np.zeros(2), grad, method=m, lr=0.1, max_iter=50, tol=0)
            for m in ("nadam", "NAdam", "NADAM")]
    for r in runs[1:]:
        np.testing.assert_array_equal(r.history["x"], runs[0].history["x"])


# -- every registry optimizer -------------------------------------------------------------------------------

QA = np.array([[3.0, 1.0], [1.0, 2.0]])
QB = np.array([1.0, -1.0])
Q0 = np.array([2.0, -2.0])


def _q(x):
    return float(0.5 * x @ QA @ x - QB @ x)


def _dq(x):
    return QA @ x - QB


@pytest.mark.parametrize("case, label, kwargs", [
    pytest.param(case, label, kwargs, id=f"{case.name}-{label}")
    for case in CASES for label, kwargs in case.configs.items()])
def test_every_registry_optimizer_runs_through_minimize(case, label, kwargs):
    f_star = _q(np.linalg.solve(QA, QB))
    f0 = _q(Q0)
    res = fastopt.minimize(_q, Q0.copy(), _dq, method=case.name, max_iter=200, tol=0, **kwargs)
    assert res.nit == 200 and np.all(np.isfinite(res.history["fun"]))
    if kwargs.get("maximize"):  # the keywords reach the optimizer: maximize climbs
        assert res.fun > f0 + 1.0
    else:
        assert res.fun - f_star < 0.7 * (f0 - f_star)
        assert res.history["fun"][1] < f0  # the very first step already goes down


# -- scheduler ----------------------------------------------------------------------------------------------

def test_scheduler_decays_the_lr_used():
    seen, lrs = {}, []

    def make(opt):
        seen["opt"] = opt
        return ExponentialDecayLR(opt, 0.01)

    def callback(x, f):
        lrs.append(seen["opt"].param_groups[0]["lr"])

    def f(x):
        return float(np.sum((x - 3) ** 2))

    def g(x):
        return 2 * (x - 3)

    x0 = np.zeros(2)
    res = fastopt.minimize(f, x0, g, method="sgd", lr=0.01, tol=0, max_iter=50, scheduler=make, callback=callback)
    plain = fastopt.minimize(f, x0, g, method="sgd", lr=0.01, tol=0, max_iter=50)
    assert not np.allclose(res.history["x"][2:], plain.history["x"][2:], rtol=1e-6, atol=0)
    assert res.fun > plain.fun  # smaller steps: less progress
    # after step k the scheduler has stepped k times
    np.testing.assert_allclose(lrs, [0.01 * math.exp(-0.01 * k) for k in range(1, 51)], rtol=1e-12)
    # and step k really used lr0 * exp(-0.01 (k - 1)): read it off the trajectory
    xs = res.history["x"][:, 0]
    used = (xs[:-1] - xs[1:]) / g(xs[:-1])
    np.testing.assert_allclose(used, [0.01 * math.exp(-0.01 * k) for k in range(50)], rtol=1e-9)


# -- stopping rules and checks -------------------------------------------------------------------------------

def test_callback_true_stops():
    calls = []

    def callback(x, f):
        calls.append((float(x), f))
        return len(calls) == 3

    res = fastopt.minimize(parabola, 0.0, d_parabola, method="sgd", lr=0.1, callback=callback)
    assert res.success is False and "callback" in res.message
    assert res.nit == 3 and len(calls) == 3
    assert calls == [(float(x), f) for x, f in zip(res.history["x"][1:], res.history["fun"][1:])]


def test_callback_cannot_change_the_iterate():
    def callback(x, f):
        x[...] = 100.0

    res = fastopt.minimize(quad, np.zeros(2), d_quad, method="sgd", lr=0.01, max_iter=5, tol=0, callback=callback)
    assert np.all(np.abs(res.history["x"]) < 10)


def test_nan_objective_stops():
    def f(t):
        return parabola(t) if t < 1.0 else float("nan")

    res = fastopt.minimize(f, 0.0, d_parabola, method="sgd", lr=0.1)
    assert res.success is False and "not finite" in res.message
    assert res.nit == 3  # 0 -> 0.5 -> 0.9 -> 1.22
    assert np.isnan(res.history["fun"][-1]) and np.all(np.isfinite(res.history["fun"][:-1]))


def test_divergent_lr_stops():
    with np.errstate(over="ignore", invalid="ignore"):
        res = fastopt.minimize(parabola, 0.0, d_parabola, method="sgd", lr=10.0, max_iter=10000)
    assert res.success is False and "not finite" in res.message
    assert res.nit < 10000
    assert not np.isfinite(res.fun)


def test_non_finite_start():
    res = fastopt.minimize(lambda x: float("inf"), 0.0, d_parabola, method="sgd")
    assert res.success is False and "not finite" in res.message and res.nit == 0
    with pytest.raises(ValueError):
        fastopt.minimize(parabola, float("nan"), d_parabola)


@pytest.mark.parametrize("method", ["adam", "sgd", "newton"])
def test_x0_not_modified_and_float32_stays_float32(method):
    x0 = np.array([5.0, 5.0], dtype=np.float32)
    kwargs = dict(hess=lambda x: A) if method == "newton" else dict(lr=0.001)
    res = fastopt.minimize(quad, x0, d_quad, method=method, max_iter=20, tol=0, **kwargs)
    np.testing.assert_array_equal(x0, [5.0, 5.0])
    assert res.x is not x0 and not np.shares_memory(res.x, x0)
    assert res.x.dtype == np.float32 and res.history["x"].dtype == np.float32
    assert res.nit >= 2 and not np.array_equal(res.x, x0)
    x64 = np.array([5.0, 5.0])
    res64 = fastopt.minimize(quad, x64, d_quad, method=method, max_iter=20, tol=0, **kwargs)
    np.testing.assert_array_equal(x64, [5.0, 5.0])
    assert res64.x.dtype == np.float64
    np.testing.assert_allclose(res.x, res64.x, rtol=1e-3, atol=1e-3)


def test_integer_and_list_x0_become_float64():
    res = fastopt.minimize(quad, [1, 2], d_quad, method="sgd", lr=0.001, max_iter=3, tol=0)
    assert res.x.dtype == np.float64 and res.nit == 3


@pytest.mark.parametrize("kwargs, exc", [
    (dict(method="bfgs"), ValueError), (dict(method=""), ValueError), (dict(method=None), (TypeError, ValueError)),
    (dict(tol=-1.0), ValueError), (dict(tol=float("nan")), ValueError), (dict(tol="1e-8"), (TypeError, ValueError)),
    (dict(tol=True), (TypeError, ValueError)), (dict(lr=-0.1), ValueError),
    (dict(max_iter=-1), ValueError), (dict(max_iter=10.0), (TypeError, ValueError)),
    (dict(max_iter=True), (TypeError, ValueError)),
    (dict(fun=None), TypeError), (dict(jac="grad"), TypeError), (dict(jac=None), TypeError),
])
def test_bad_arguments(kwargs, exc):
    args = dict(fun=parabola, x0=np.array(0.0), jac=d_parabola)
    args.update(kwargs)
    x0 = args["x0"]
    with pytest.raises(exc):
        fastopt.minimize(args.pop("fun"), args.pop("x0"), args.pop("jac"), **args)
    assert x0 == 0.0


def test_unknown_optimizer_keyword_raises():
    with pytest.raises(TypeError):
        fastopt.minimize(parabola, 0.0, d_parabola, method="adam", not_an_option=1)


@pytest.mark.parametrize("bad", [np.ones(3), np.ones((2, 2)), np.ones(1)])
def test_jac_wrong_shape(bad):
    x0 = np.zeros(2)
    with pytest.raises(ValueError, match="jac"):
        fastopt.minimize(quad, x0, lambda x: bad, method="adam")
    np.testing.assert_array_equal(x0, 0.0)


def test_jac_same_size_other_shape_is_accepted():
    """A (2, 1) column gradient for a (2,) x (as the regression's) is reshaped, not rejected."""
    res = fastopt.minimize(quad, np.zeros(2), lambda x: d_quad(x).reshape(2, 1), method="sgd", lr=0.01,
                           max_iter=3, tol=0)
    ref = fastopt.minimize(quad, np.zeros(2), d_quad, method="sgd", lr=0.01, max_iter=3, tol=0)
    np.testing.assert_array_equal(res.history["x"], ref.history["x"])


def test_result_is_a_dict_with_attributes():
    res = fastopt.minimize(parabola, 0.0, d_parabola, method="sgd", lr=0.1)
    assert isinstance(res, dict) and res["x"] is res.x
    assert set(res) == {"x", "fun", "jac", "nit", "success", "message", "history"}
    with pytest.raises(AttributeError):
        res.nonexistent
    assert "success=True" in repr(res)


# -- closure optimizers: one L-BFGS iteration per step ---------------------------------------------

def _rosenbrock(x):
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def _rosenbrock_grad(x):
    return np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2), 200 * (x[1] - x[0] ** 2)])


def test_lbfgs_minimizes_rosenbrock_with_its_line_search():
    """method="lbfgs": each of minimize's iterations is one L-BFGS iteration (its history kept across
    them): with the strong-Wolfe search it reaches Rosenbrock's minimum in tens of iterations, where Adam
    takes thousands; every iterate is in the history."""
    res = fastopt.minimize(_rosenbrock, np.array([-1.2, 1.0]), _rosenbrock_grad, method="LBFGS",
                           line_search_fn="strong_wolfe", tol=1e-14)
    assert res.success and res.nit < 60
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-4)
    assert res.history["x"].shape == (res.nit + 1, 2)
    assert np.all(np.diff(res.history["fun"]) <= 1e-12)  # the line search never goes uphill
    adam = fastopt.minimize(_rosenbrock, np.array([-1.2, 1.0]), _rosenbrock_grad, method="adam", lr=0.01,
                            max_iter=5000)
    assert adam.nit > 20 * res.nit


def test_lbfgs_fixed_step_on_the_parabola():
    res = fastopt.minimize(lambda t: (t - 2.5) ** 2 - 1, 0.0, lambda t: 2 * (t - 2.5), method="lbfgs")
    assert res.success and res.nit <= 5 and float(res.x) == pytest.approx(2.5, abs=1e-8)
