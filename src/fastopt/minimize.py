"""``fastopt.minimize``: the texts' optimization loop around any fastopt optimizer, or Newton's method.

    res = fastopt.minimize(lambda t: (t - 2.5) ** 2 - 1, 0.0, lambda t: 2 * (t - 2.5), method="sgd", lr=0.1)
    res.x, res.fun, res.nit, res.success, res.message
    res.history["x"], res.history["fun"]      # every iterate and its loss, to plot the path

Each iteration computes the gradient, takes one step and evaluates the objective; the loop stops when
``|f(x_k) - f(x_{k-1})| < tol`` (success) or after ``max_iter`` steps. ``method="newton"`` steps
``x -= lr * H^-1 g`` with ``lr`` defaulting to 1, using ``|H|`` (the Hessian rebuilt from the absolute
values of its eigenvalues) so that it never climbs where the curvature is negative, as the texts advise.
"""
import numbers

import numpy as np

from ._registry import CASES, CLOSURE_CASES

__all__ = ["OptimizeResult", "minimize"]

_METHODS = {case.name.lower(): case.cls for case in CASES + CLOSURE_CASES}
_CLOSURE = {case.name.lower() for case in CLOSURE_CASES}  # step(closure): one of their iterations a step


class OptimizeResult(dict):
    """The outcome of :func:`minimize`, as ``scipy.optimize.OptimizeResult`` (a dict whose keys are also
    attributes): ``x`` (the last iterate), ``fun`` (f(x)), ``jac`` (the last gradient computed), ``nit``
    (steps taken), ``success``, ``message`` (why it stopped), ``history`` (``{"x": (nit + 1, *shape)
    array of the iterates from x0, "fun": their losses}``).

    Parameters
    ----------
    **fields
        The entries (any keywords; :func:`minimize` gives those below).

    Attributes
    ----------
    x : numpy.ndarray or numpy.float64 (or float32)
        The last iterate (0-d for a scalar ``x0``: a NumPy scalar).
    fun : float
        ``fun(x)``.
    jac : numpy.ndarray or None
        The last gradient computed (None if no step was taken).
    nit : int
        Steps taken.
    success : bool
        Whether ``|f(x_k) - f(x_{k-1})| < tol`` stopped the loop.
    message : str
        Why the loop stopped.
    history : dict
        ``"x"``: the iterates from ``x0``, shape ``(nit + 1, *x.shape)``; ``"fun"``: their losses.

    Examples
    --------
    >>> import fastopt
    >>> res = fastopt.OptimizeResult(x=1.0, fun=0.5, nit=3, success=True, message="done")
    >>> res.x, res["fun"], sorted(res)
    (1.0, 0.5, ['fun', 'message', 'nit', 'success', 'x'])
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self):
        keys = ("success", "message", "fun", "x", "nit")
        return "OptimizeResult(" + ", ".join(f"{k}={self[k]!r}" for k in keys if k in self) + ")"


def _value(fun, x, k):
    raw = fun(x.copy() if x.ndim else x[()])
    try:
        return float(np.asarray(raw, dtype=np.float64).item())
    except (TypeError, ValueError):
        raise TypeError(f"fun must return a real scalar; at iteration {k} it returned "
                        f"{type(raw).__name__} {np.shape(raw)}") from None


def _gradient(jac, x, k):
    g = np.asarray(jac(x.copy() if x.ndim else x[()]), dtype=x.dtype)
    if g.shape != x.shape:
        if g.size == x.size:
            g = g.reshape(x.shape)
        else:
            raise ValueError(f"jac must return an array of x's shape {x.shape}; at iteration {k} it returned "
                             f"shape {g.shape}")
    return np.array(g, order="C")  # (ascontiguousarray would make a 0-d gradient 1-d)


def _newton_step(hess, x, g, k):
    """H^-1 g with |H| (eigenvalues replaced by their absolute values); None if |H| is singular."""
    n = x.size
    h = np.asarray(hess(x.copy() if x.ndim else x[()]), dtype=np.float64)
    if h.size == n * n:
        h = h.reshape(n, n)
    if h.shape != (n, n):
        raise ValueError(f"hess must return an ({n}, {n}) matrix for x of shape {x.shape}; at iteration {k} "
                         f"it returned shape {h.shape}")
    if not np.all(np.isfinite(h)):
        raise ValueError(f"hess returned a non-finite matrix at iteration {k}")
    w, v = np.linalg.eigh((h + h.T) / 2)
    w = np.abs(w)
    if w.max(initial=0.0) == 0.0 or w.min() <= w.max() * n * np.finfo(np.float64).eps:
        return None
    return (v @ ((v.T @ g.reshape(-1).astype(np.float64)) / w)).reshape(x.shape)


def minimize(fun, x0, jac, method="adam", hess=None, lr=None, tol=1e-8, max_iter=1000, callback=None,
             scheduler=None, **optimizer_kwargs):
    """Minimize ``fun`` from ``x0`` with the gradient ``jac`` by the texts' loop.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> float``, the objective.
    x0 : float or array_like
        The start (float32 arrays stay float32; anything else becomes float64). Not modified.
    jac : callable
        ``jac(x) -> array`` of x's shape, the gradient.
    method : str, default "adam"
        A fastopt optimizer's name, case-insensitive (``"sgd"``, ``"momentum"``, ``"adam"``, ...,
        ``"lbfgs"``: one L-BFGS iteration per step, its line search included), or ``"newton"``.
    hess : callable, optional
        ``hess(x) -> (n, n) array``, the Hessian (required for ``"newton"``).
    lr : float, optional
        The learning rate (default: the optimizer's own; 1.0 for Newton).
    tol : float, default 1e-8
        Stop when ``|f(x_k) - f(x_{k-1})| < tol``.
    max_iter : int, default 1000
        The most steps taken.
    callback : callable, optional
        ``callback(x, f)`` after each step; returning True stops the loop (``success=False``).
    scheduler : callable, optional
        ``scheduler(optimizer)`` returning a learning-rate scheduler (``fastopt.lr_scheduler``), stepped
        after every iteration.
    **optimizer_kwargs
        Passed to the optimizer (``betas=...``, ``momentum=...``).

    Returns
    -------
    OptimizeResult
        ``x, fun, jac, nit, success, message, history``. A non-finite objective or a singular Hessian
        ends the loop with ``success=False`` and the reason in ``message``.

    Raises
    ------
    TypeError, ValueError
        For a bad argument (not callable, unknown ``method``, negative ``tol``, ``lr`` or
        ``max_iter``, non-finite ``x0``), or a ``fun``/``jac``/``hess`` returning the wrong shape; the
        optimizer's own errors for bad ``optimizer_kwargs``.

    Notes
    -----
    ``x`` is a float64 array (float32 if ``x0`` is one) stepped in place by the optimizer, which is
    built as ``Optimizer([x], **optimizer_kwargs)`` (with ``lr`` when given); ``fun``, ``jac`` and
    ``hess`` get copies (a scalar for a 0-d ``x0``).

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> res = fastopt.minimize(lambda t: (t - 2.5) ** 2 - 1, 0.0, lambda t: 2 * (t - 2.5),
    ...                        method="sgd", lr=0.1)
    >>> print(res.success, round(float(res.x), 3), round(res.fun, 3), res.nit)
    True 2.5 -1.0 45
    >>> res = fastopt.minimize(lambda x: x @ x, np.array([1.0, -2.0]), lambda x: 2 * x,
    ...                        method="newton", hess=lambda x: 2 * np.eye(2))
    >>> print(res.x, res.nit, res.history["x"].shape)
    [0. 0.] 2 (3, 2)
    """
    if not callable(fun) or not callable(jac):
        raise TypeError("fun and jac must be callables")
    if not isinstance(method, str) or (method.lower() != "newton" and method.lower() not in _METHODS):
        raise ValueError(f"method must be 'newton' or one of {sorted(case.name for case in CASES + CLOSURE_CASES)}, "
                         f"got {method!r}")
    newton = method.lower() == "newton"
    if newton and not callable(hess):
        raise TypeError("method='newton' needs hess, a callable returning the Hessian")
    for name, value in (("tol", tol), ("lr", lr)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0):
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 0:
        raise ValueError(f"max_iter must be a non-negative int, got {max_iter!r}")
    x = np.array(x0, dtype=np.float32 if getattr(x0, "dtype", None) == np.float32 else np.float64, copy=True)
    if not np.all(np.isfinite(x)):
        raise ValueError("x0 must be finite")
    opt = sched = None
    if not newton:
        kwargs = dict(optimizer_kwargs)
        if lr is not None:
            kwargs["lr"] = float(lr)
        if method.lower() in _CLOSURE:
            kwargs["max_iter"] = 1  # (minimize's loop counts the iterations)
        opt = _METHODS[method.lower()]([x], **kwargs)
        sched = scheduler(opt) if scheduler is not None else None
    elif optimizer_kwargs or scheduler is not None:
        raise TypeError("method='newton' takes no optimizer keywords or scheduler")
    step_size = 1.0 if lr is None else float(lr)

    f = _value(fun, x, 0)
    xs, fs = [x.copy()], [f]
    g = None
    success, message = False, f"max_iter ({max_iter}) reached before |f(x_k) - f(x_k-1)| < tol"
    nit = 0
    if not np.isfinite(f):
        message = "f(x0) is not finite"
        max_iter = 0
    for k in range(1, max_iter + 1):
        g = _gradient(jac, x, k)
        if method.lower() in _CLOSURE:  # (its first evaluation: this f and g; then its line search's)
            calls = []

            def closure(k=k, calls=calls):
                calls.append(1)
                return (f, [g]) if len(calls) == 1 else (_value(fun, x, k), [_gradient(jac, x, k)])

            opt.step(closure)
            if sched is not None:
                sched.step()
        elif newton:
            direction = _newton_step(hess, x, g, k)
            if direction is None:
                message = f"the Hessian is singular at iteration {k} (no Newton step)"
                break
            x -= (step_size * direction).astype(x.dtype)
        else:
            opt.step([g])
            if sched is not None:
                sched.step()
        nit = k
        f_prev, f = f, _value(fun, x, k)
        xs.append(x.copy())
        fs.append(f)
        if not np.isfinite(f):
            message = f"f(x) is not finite at iteration {k}"
            break
        if callback is not None and callback(x.copy() if x.ndim else x[()], f) is True:
            message = f"stopped by callback at iteration {k}"
            break
        if abs(f - f_prev) < tol:
            success, message = True, f"converged: |f(x_k) - f(x_k-1)| < tol ({tol}) at iteration {k}"
            break
    return OptimizeResult(x=x if x.ndim else x[()], fun=f, jac=g, nit=nit, success=success, message=message,
                          history={"x": np.array(xs), "fun": np.array(fs)})
