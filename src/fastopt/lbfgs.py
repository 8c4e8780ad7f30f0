"""L-BFGS with torch.optim.LBFGS's algorithm, state and closure protocol, on NumPy arrays (BLAS dot products
on one flat view of the gradients)."""
import copy
import numbers

import numpy as np

from . import _validation as check


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimum of the cubic through (x1, f1, g1) and (x2, f2, g2) within ``bounds`` (torch's)."""
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = np.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """torch's strong-Wolfe line search (a port of minFunc's): (f, g, t, evaluations)."""
    d_norm = np.abs(d).max()
    g = g.copy()
    f_new, g_new = obj_func(x, t, d)
    ls_func_evals = 1
    gtd_new = g_new.dot(d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:  # bracket an interval holding a point that satisfies the conditions
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.copy()], [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new.copy(), gtd_new
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    insuf_progress = False  # zoom: shrink the bracket to a point that satisfies the conditions
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:  # close to an end of the bracket
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(x, t, d)
        ls_func_evals += 1
        gtd_new = g_new.dot(d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new.copy(), gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new.copy(), gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


class LBFGS:
    r"""L-BFGS (Liu and Nocedal, 1989) as torch.optim.LBFGS: its algorithm line for line (a history of
    curvature pairs, the two-loop recursion, torch's first step length and its strong-Wolfe line search),
    its defaults, state keys and stopping rules, on NumPy arrays.

    Each ``step(closure)`` runs up to ``max_iter`` iterations, calling ``closure`` for the loss and the
    gradients (up to ``max_eval`` times); the curvature history persists across steps, as torch's.
    The gradients are gathered into one flat array (a float32 or float64 vector of all the parameters,
    in order) and the directions, dot products and updates are NumPy's (BLAS) on it; the parameters are
    updated in place, view by view.

    .. math::

        d_k &= -H_k g_k \quad \text{(two-loop recursion over the last } m \text{ pairs }
               s_i = t_i d_i,\; y_i = g_{i+1} - g_i,\; H_0 = \tfrac{y^\top s}{y^\top y} I) \\
        x_{k+1} &= x_k + t_k d_k, \quad t_k = \text{lr} \text{ (first iteration: }
                   \min(1, 1/\lVert g \rVert_1)\,\text{lr), or the line search's}

    Parameters
    ----------
    params : iterable of numpy.ndarray
        The arrays to update in place: float32 or float64 (one dtype), C-contiguous, writeable. One
        group only (torch's LBFGS takes no per-parameter options).
    lr : float, default 1
        The step length (torch's int default 1).
    max_iter : int, default 20
        Iterations per ``step``.
    max_eval : int or None, default None
        Closure evaluations per ``step``; None: ``max_iter * 5 // 4``.
    tolerance_grad : float, default 1e-7
        Stop when the largest absolute gradient element is at most this.
    tolerance_change : float, default 1e-9
        Stop when the step or the loss changes by less than this.
    history_size : int, default 100
        Curvature pairs kept.
    line_search_fn : {None, "strong_wolfe"}, default None
        None: a fixed step of ``lr``; ``"strong_wolfe"``: torch's line search (c1 = 1e-4, c2 = 0.9; any
        other value raises RuntimeError at the first line search, as torch).

    Notes
    -----
    The closure protocol: NumPy has no autograd, so where torch's closure calls ``backward()`` and
    returns the loss, this one returns ``(loss, grads)``: the loss (a number) and the gradients, one
    array (or None: zeros) per parameter, at the parameters' current values. ``step`` returns the first
    call's loss.

    State (torch's keys, in ``state[0]``): ``func_evals`` and ``n_iter`` (ints, counted over all
    steps), ``d``, ``t``, ``old_dirs`` (the y vectors), ``old_stps`` (the s vectors), ``ro``,
    ``H_diag``, ``prev_flat_grad``, ``prev_loss`` and ``al``. Scalars are NumPy scalars of the
    parameters' dtype where torch's are 0-dim tensors of it.

    Against torch: the same iterations and evaluation counts; the numbers differ by rounding (NumPy's
    BLAS dot products and ``x + t*d`` without torch's fused multiply-add): 1e-15 in float64 on torch's
    configurations over a few dozen iterations, more where the iterations amplify rounding (3.5e-10
    after 60 fixed steps of 1 on Rosenbrock's function).

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> x = np.array([-1.5, 2.0])
    >>> def rosenbrock():
    ...     a, b = x
    ...     loss = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    ...     return loss, [np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])]
    >>> opt = fastopt.LBFGS([x], line_search_fn="strong_wolfe", max_iter=100)
    >>> loss = opt.step(rosenbrock)
    >>> print(x.round(4), opt.state[0]["n_iter"] < 100)
    [1. 1.] True
    """

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        if isinstance(params, np.ndarray):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got numpy.ndarray")
        params = list(params)
        if params and all(isinstance(p, dict) for p in params):
            if len(params) != 1:
                raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
            group = dict(params[0])
            params = list(group.pop("params"))
            options = {**dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                              tolerance_change=tolerance_change, history_size=history_size,
                              line_search_fn=line_search_fn), **group}
        else:
            options = dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                           tolerance_change=tolerance_change, history_size=history_size, line_search_fn=line_search_fn)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        check.learning_rate(options["lr"])
        if options["max_eval"] is None:
            options["max_eval"] = options["max_iter"] * 5 // 4
        for key in ("max_iter", "max_eval", "history_size"):
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        for key in ("tolerance_grad", "tolerance_change"):
            check.real(key, options[key])
        dtype = None
        for k, p in enumerate(params):
            check.param(p, k)
            if p.dtype not in (np.float32, np.float64):
                raise TypeError(f"params[{k}] has dtype {p.dtype}; LBFGS takes float32 or float64 arrays")
            if dtype is not None and p.dtype != dtype:
                raise TypeError(f"params[{k}] is {p.dtype} but params[0] is {dtype}: LBFGS keeps one flat "
                                "vector of all the parameters, of one dtype")
            dtype = p.dtype
        self.param_groups = [{"params": params, **options}]
        self.defaults = dict(options)
        self.state = {}
        self._numel = sum(p.size for p in params)

    # -- the flat view -----------------------------------------------------------------------------

    def _params(self):
        return self.param_groups[0]["params"]

    def _gather(self, grads):
        """The gradients returned by the closure as one flat array (None: zeros), checked."""
        params = self._params()
        if not isinstance(grads, (list, tuple)) or len(grads) != len(params):
            raise TypeError(f"the closure must return (loss, grads) with grads a list of {len(params)} arrays "
                            f"(one per param, or None), got {type(grads).__name__}")
        flat = np.empty(self._numel, params[0].dtype)
        offset = 0
        for k, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                flat[offset:offset + p.size] = 0
            else:
                g = np.asarray(g)
                if g.size != p.size:
                    raise ValueError(f"grads[{k}] has {g.size} elements, expected {p.size} (params[{k}]'s)")
                flat[offset:offset + p.size] = g.reshape(-1)
            offset += p.size
        return flat

    def _evaluate(self, closure):
        out = closure()
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError("the closure must return (loss, grads): NumPy has no autograd")
        return out[0], self._gather(out[1])

    def _add_grad(self, step_size, update):
        offset = 0
        for p in self._params():
            p += step_size * update[offset:offset + p.size].reshape(p.shape)
            offset += p.size

    def _clone_param(self):
        return [p.copy() for p in self._params()]

    def _set_param(self, values):
        for p, v in zip(self._params(), values):
            p[...] = v

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        loss, flat_grad = self._evaluate(closure)
        self._set_param(x)
        return float(loss), flat_grad

    # -- the step ----------------------------------------------------------------------------------

    def step(self, closure):
        """Run up to ``max_iter`` L-BFGS iterations (fewer when a stopping rule holds).

        Parameters
        ----------
        closure : callable
            ``closure()`` returns ``(loss, grads)`` at the parameters' current values: the loss and one
            gradient array (or None: zeros) per parameter.

        Returns
        -------
        The loss of the first evaluation, as the closure returned it.
        """
        if not callable(closure):
            raise TypeError(f"closure must be callable, returning (loss, grads); got {type(closure).__name__}")
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]
        state = self.state.setdefault(0, {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss, flat_grad = self._evaluate(closure)
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        if np.abs(flat_grad).max(initial=0) <= tolerance_grad:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        H_diag, prev_flat_grad, prev_loss = state.get("H_diag"), state.get("prev_flat_grad"), state.get("prev_loss")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = y.dot(s)
                if ys > 1e-10:  # update the memory
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)
                num_old = len(old_dirs)
                if "al" not in state:
                    state["al"] = [None] * history_size
                al = state["al"]
                q = -flat_grad  # the two-loop recursion
                for i in range(num_old - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q -= al[i] * old_dirs[i]
                d = r = q * H_diag
                for i in range(num_old):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r += (al[i] - be_i) * old_stps[i]
            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.copy()
            else:
                prev_flat_grad[...] = flat_grad
            prev_loss = loss
            if state["n_iter"] == 1:
                t = min(1.0, 1.0 / np.abs(flat_grad).sum()) * lr
            else:
                t = lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:  # not a descent direction
                break
            ls_func_evals = 0
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                x_init = self._clone_param()

                def obj_func(x, t, d):
                    return self._directional_evaluate(closure, x, t, d)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(obj_func, x_init, t, d, loss, flat_grad, gtd)
                self._add_grad(t, d)
                opt_cond = np.abs(flat_grad).max() <= tolerance_grad
            else:
                self._add_grad(t, d)
                if n_iter != max_iter:  # (the last iteration does not evaluate again, as torch's)
                    loss, flat_grad = self._evaluate(closure)
                    loss = float(loss)
                    opt_cond = np.abs(flat_grad).max() <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals
            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if np.abs(d * t).max() <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break
        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss

    # -- checkpoints -------------------------------------------------------------------------------

    def state_dict(self):
        """torch's structure: ``{"state": {0: {...}}, "param_groups": [{..., "params": [0, 1, ...]}]}``
        (the live state, as torch's: deepcopy it for a snapshot)."""
        group = {key: value for key, value in self.param_groups[0].items() if key != "params"}
        group["params"] = list(range(len(self._params())))
        return {"state": {k: dict(v) for k, v in self.state.items()}, "param_groups": [group]}

    def load_state_dict(self, state_dict):
        """Load a checkpoint (copied: later steps do not write into it).

        Parameters
        ----------
        state_dict : dict
            What ``state_dict()`` returned, for a group of as many parameters (of the same total size).
        """
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self._params()):
            raise ValueError("loaded state dict has a different number of parameters than the optimizer's group")
        state = copy.deepcopy(state_dict["state"])
        saved = state.get(0, {}).get("prev_flat_grad")
        if saved is not None and np.asarray(saved).size != self._numel:
            raise ValueError(f"loaded state has prev_flat_grad of {np.asarray(saved).size} elements, expected "
                             f"{self._numel} (the parameters' total)")
        options = {key: value for key, value in groups[0].items() if key != "params"}
        self.param_groups[0].update(options)
        self.state = {int(k): v for k, v in state.items()}

    def __repr__(self):
        group = self.param_groups[0]
        lines = [f"{type(self).__name__} ("] + [f"    {key}: {value}" for key, value in group.items()
                                                if key != "params"] + [")"]
        return "\n".join(lines)

