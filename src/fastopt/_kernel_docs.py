"""The docstrings of ``fastopt.kernels`` and ``fastopt.reference``: one text per function for a kernel
and its NumPy twin, since they share signature, math and checks.

Each docstring is assembled from the function's own signature and three tables: a summary and the math
per rule, one description per argument (``ARGS``; a group function's list ``exp_avgs`` takes the
description of ``exp_avg``), and an example per function that runs against either module
(``{module}`` in its import line). ``document`` binds them; tests/test_docstrings.py runs the examples
on both modules and checks that every argument has its entry.
"""
import functools
import inspect
import textwrap

WIDTH = 100

INPUT_RULES = """\
Every array is checked before anything is written: float32, float64, bfloat16 (ml_dtypes) or float16,
C-contiguous, the param's dtype and size (the 1-element counters ``step``, ``mu_product``, ``eta`` and
``mu`` are float32 or float64, updated in their own; state may be float32 for a 16-bit param and bfloat16 for a float32
one), written arrays writeable and sharing no memory with any other array of the call. 16-bit arrays are
computed in float32 and stored rounded to nearest even (``run``'s ``rounding_seed``: stochastically). A rejected
call raises ValueError or TypeError naming the argument and changes nothing. Hyperparameters are used
as given (the optimizer classes check their ranges). The kernels release the GIL for calls of 4096
elements or more."""

# -- what each rule computes ---------------------------------------------------------------------------
SUMMARY = {
    "sgd": "One SGD step in place, as torch.optim.SGD: momentum, dampening, Nesterov and L2 weight decay.",
    "momentum": "One step of the texts' momentum in place: an exponential moving average of the gradients.",
    "adam": "One Adam step in place, as torch.optim.Adam: AMSGrad when ``max_exp_avg_sq`` is given, "
            "AdamW with ``decoupled_weight_decay``.",
    "adamax": "One Adamax step in place, as torch.optim.Adamax (Adam with the infinity norm).",
    "nadam": "One NAdam step in place, as torch.optim.NAdam (Nesterov momentum with the mu schedule).",
    "adagrad": "One Adagrad step in place, as torch.optim.Adagrad.",
    "rmsprop": "One RMSprop step in place, as torch.optim.RMSprop: centered when ``grad_avg`` is given, "
               "with momentum when ``momentum_buffer`` is.",
    "adadelta": "One Adadelta step in place, as torch.optim.Adadelta.",
    "radam": "One RAdam step in place, as torch.optim.RAdam (Adam rectified once the variance is "
             "tractable, plain bias-corrected momentum before).",
    "asgd": "One ASGD step in place, as torch.optim.ASGD (averaged SGD: ``ax`` averages the iterates).",
    "rprop": "One Rprop step in place, as torch.optim.Rprop (a step size per element, grown or shrunk by "
             "the gradient's sign).",
    "lion": "One Lion step in place, as google/automl's lion_pytorch (Chen et al., 2023: the sign of an "
            "interpolated momentum).",
    "lamb": "One LAMB step in place, as timm's Lamb (You et al., 2020: Adam's direction plus decoupled "
            "decay, scaled per tensor by the trust ratio ``||p|| / ||u||``).",
    "sfadamw": "One schedule-free AdamW step in place, as facebookresearch/schedule_free's AdamWScheduleFree "
               "(``param`` holds y, the point the gradient is taken at; ``z`` the base sequence).",
    "floor": "The memory-floor kernel: a step's memory traffic with no math (not an optimizer).",
}

# per element; g is the gradient after run's gradient scale, maximize's sign and L2 weight decay
MATH = {
    "sgd": """\
g = g + weight_decay*p
b = g                                   (first_step)
b = momentum*b + (1 - dampening)*g      (otherwise; no b when momentum == 0)
g = g + momentum*b  (nesterov)   or   g = b
p = p - lr*g""",
    "momentum": """\
v = beta*v + (1 - beta)*g
p = p - lr*v""",
    "adam": """\
t = step + 1;  bc1 = 1 - beta1**t;  bc2 = 1 - beta2**t
g = g + weight_decay*p   or, decoupled_weight_decay:  p = p*(1 - lr*weight_decay)
m = m + (1 - beta1)*(g - m);  v = beta2*v + ((1 - beta2)*g)*g
vmax = max(vmax, v), used for v below   (AMSGrad)
p = p + (-lr/bc1 * m) / (sqrt(v)/sqrt(bc2) + eps)""",
    "adamax": """\
t = step + 1;  bc1 = 1 - beta1**t;  g = g + weight_decay*p
m = m + (1 - beta1)*(g - m);  u = max(beta2*u, |g| + eps)
p = p + (-lr/bc1 * m) / u""",
    "nadam": """\
t = step + 1;  bc2 = 1 - beta2**t
mu_t = beta1*(1 - 0.5*0.96**(t*momentum_decay));  mu_next: the same at t + 1
mu_product = mu_product*mu_t
g = g + weight_decay*p   or, decoupled_weight_decay:  p = p*(1 - lr*weight_decay)
m = m + (1 - beta1)*(g - m);  v = beta2*v + ((1 - beta2)*g)*g;  d = sqrt(v/bc2) + eps
p = p + (-lr*(1 - mu_t)/(1 - mu_product) * g)/d + (-lr*mu_next/(1 - mu_product*mu_next) * m)/d""",
    "adagrad": """\
t = step + 1;  clr = lr / (1 + (t - 1)*lr_decay);  g = g + weight_decay*p
s = s + g*g
p = p + (-clr*g) / (sqrt(s) + eps)""",
    "rmsprop": """\
g = g + weight_decay*p;  v = alpha*v + ((1 - alpha)*g)*g
centered:  ga = ga + (1 - alpha)*(g - ga);  v~ = v - ga*ga   (else v~ = v)
d = sqrt(v~) + eps
momentum > 0:  b = momentum*b + g/d;  p = p - lr*b      else:  p = p + (-lr*g)/d""",
    "adadelta": """\
g = g + weight_decay*p;  v = rho*v + ((1 - rho)*g)*g
dx = sqrt(u + eps)/sqrt(v + eps) * g;  u = rho*u + ((1 - rho)*dx)*dx
p = p - lr*dx""",
    "radam": """\
t = step + 1;  bc1 = 1 - beta1**t;  bc2 = 1 - beta2**t
rho_inf = 2/(1 - beta2) - 1;  rho_t = rho_inf - 2*t*beta2**t/bc2
g = g + weight_decay*p   or, decoupled_weight_decay:  p = p*(1 - lr*weight_decay)
m = m + (1 - beta1)*(g - m);  v = beta2*v + ((1 - beta2)*g)*g
u = (m/bc1)*lr
rho_t > 5:  rect = sqrt((rho_t-4)(rho_t-2)rho_inf / ((rho_inf-4)(rho_inf-2)rho_t))
            u = (u * (1/(sqrt(v) + eps))*sqrt(bc2)) * rect
p = p - u""",
    "asgd": """\
t = step + 1;  g = g + weight_decay*p
p = p*(1 - lambd*eta);  p = p - eta*g          (eta, mu: the values stored by the last step)
ax = p  (mu == 1)   or   ax = ax + (p - ax)*mu
eta = lr / (1 + lambd*lr*t)**alpha;  mu = 1 / max(1, t - t0)   (stored, rounded to their dtypes)""",
    "rprop": """\
t = step + 1 (counted only);  s = g*prev
f = etaplus (s > 0), etaminus (s < 0), 1 (otherwise, NaN included)
step_size = min(max(step_size*f, step_size_min), step_size_max)
g = 0 where f == etaminus;  prev = g
p = p - sign(g)*step_size        (sign: torch's, 0 for zeros and NaN)""",
    "lion": """\
p = p*(1 - lr*weight_decay)
c = m*beta1 + g*(1 - beta1)
p = p - sign(c)*lr               (sign: torch's, 0 for zeros and NaN)
m = m*beta2 + g*(1 - beta2)""",
    "lamb": """\
m = m*beta1 + beta3*g;  v = v*beta2 + ((1 - beta2)*g)*g     (beta3 = 1 - beta1, or 1 without averaging)
u = (m*(1/bc1)) / (sqrt(v)/sqrt(bc2) + eps) + weight_decay*p    (bc = 1 without bias correction)
r = ||p|| / ||u||  (both > 0; 1 otherwise; at most 1 with trust_clip)   when weight_decay != 0 or
    always_adapt, r = 1 otherwise; the norms of the whole tensor, in double, before the update
p = p - (lr*r)*u""",
    "sfadamw": """\
v = beta2*v + ((1 - beta2)*g)*g;  gn = g / (sqrt(v/bc2) + eps) + weight_decay*y
y = lerp(y, z, ckp1)        (torch's lerp: y + ckp1*(z - y), or z + (ckp1 - 1)*(z - y) when ckp1 >= 0.5)
y = y + lr*(beta1*(1 - ckp1) - 1)*gn;  z = z - lr*gn""",
    "floor": """\
p = p + g;  s = s + g   for each state buffer given""",
}

# -- one description per argument (a group's list ``xs`` takes the entry of ``x``) --------------------
ARGS = {
    "param": ("ndarray", "The parameter, updated in place: float32, float64, bfloat16 or float16, "
                         "C-contiguous, writeable, any shape (read as its flat buffer)."),
    "grad": ("ndarray", "Its gradient: the param's dtype and size, C-contiguous; only read."),
    "step": ("ndarray", "The step counter: 1 element, float32 or float64, 0 before the first step; "
                        "incremented in place before it is used."),
    "mu_product": ("ndarray", "The product of the mu schedule: 1 element, float32 or float64, 1 before the "
                              "first step; updated in place."),
    "exp_avg": ("ndarray", "The first moment ``m`` (0 at the start), updated in place."),
    "exp_avg_sq": ("ndarray", "The second moment ``v`` (0 at the start), updated in place."),
    "max_exp_avg_sq": ("ndarray or None", "AMSGrad's running maximum ``vmax`` of ``v`` (0 at the start), "
                                          "updated in place; None: plain Adam."),
    "exp_inf": ("ndarray", "The exponentially weighted infinity norm ``u`` (0 at the start), updated in "
                           "place."),
    "state_sum": ("ndarray", "The sum of squared gradients ``s`` (torch starts it at "
                             "``initial_accumulator_value``), updated in place."),
    "square_avg": ("ndarray", "The running average of squared gradients ``v`` (0 at the start), updated in "
                              "place."),
    "acc_delta": ("ndarray", "The running average of squared updates ``u`` (0 at the start), updated in "
                             "place."),
    "grad_avg": ("ndarray or None", "The running average of gradients ``ga`` (0 at the start), updated in "
                                    "place; given: centered RMSprop, None: not centered."),
    "eta": ("ndarray", "ASGD's step size: 1 element, float32 or float64, ``lr`` before the first step "
                       "(torch: rounded to its default dtype); the step uses it and stores the next one."),
    "mu": ("ndarray", "ASGD's averaging weight: 1 element, float32 or float64, 1 before the first step; the "
                      "step uses it and stores the next one."),
    "ax": ("ndarray", "The average of the iterates (0 at the start), updated in place."),
    "prev": ("ndarray", "The last step's gradient, 0 where it flipped sign (0 at the start), updated in "
                        "place."),
    "step_size": ("ndarray", "The step size per element (``lr`` at the start), updated in place."),
    "lambd": ("float", "The decay term: ``p`` shrinks by ``1 - lambd*eta`` every step."),
    "t0": ("float", "The step after which averaging starts."),
    "etaminus": ("float", "The factor that shrinks a step size whose gradient flipped sign (torch's "
                          "``etas[0]``)."),
    "etaplus": ("float", "The factor that grows a step size whose gradient kept its sign (torch's "
                         "``etas[1]``)."),
    "step_size_min": ("float", "The smallest step size (torch's ``step_sizes[0]``)."),
    "step_size_max": ("float", "The largest step size (torch's ``step_sizes[1]``)."),
    "bias_correction": ("bool", "Divide the moments by their bias corrections ``1 - beta**t``."),
    "grad_averaging": ("bool", "The gradient enters ``m`` with weight ``1 - beta1`` (else 1)."),
    "always_adapt": ("bool", "Apply the trust ratio without weight decay too (timm's ``always_adapt``, "
                             "apex's ``use_nvlamb``); False: without weight decay the step is Adam's."),
    "trust_clip": ("bool", "Cap the trust ratio at 1 (timm's ``trust_clip``)."),
    "z": ("ndarray", "Schedule-free's base sequence z (the param at the start), updated in place."),
    "bc2": ("float", "This step's bias correction of the second moment, ``1 - beta2**t``."),
    "ckp1": ("float", "This step's averaging weight c: the weight of z in the new y's interpolation "
                      "(schedule-free's ``weight / weight_sum``)."),
    "s1": ("ndarray or None", "A state buffer, read and written; fill ``s1``, ``s2``, ``s3`` in order "
                              "(Adam's traffic: two)."),
    "s2": ("ndarray or None", "A second state buffer, as ``s1``."),
    "s3": ("ndarray or None", "A third state buffer, as ``s1``."),
    "lr": ("float", "The learning rate."),
    "beta1": ("float", "The first moment's decay rate (torch's ``betas[0]``)."),
    "beta2": ("float", "The second moment's (Adamax: the infinity norm's) decay rate (torch's ``betas[1]``)."),
    "eps": ("float", "The term added for numerical stability, where Notes shows it."),
    "weight_decay": ("float", "The L2 penalty added to the gradient; 0: none."),
    "maximize": ("bool", "Ascend: the gradient's sign is flipped before anything else."),
    "decoupled_weight_decay": ("bool", "AdamW's decay: ``p *= 1 - lr*weight_decay`` instead of the L2 "
                                       "penalty."),
    "momentum_decay": ("float", "The mu schedule's decay (torch's ``momentum_decay``, psi)."),
    "lr_decay": ("float", "The learning rate's decay over steps."),
    "alpha": ("float", "The squared gradients' smoothing constant."),
    "rho": ("float", "The running averages' decay rate."),
    "dampening": ("float", "The gradient's damping in the momentum buffer."),
    "nesterov": ("bool", "Nesterov momentum."),
    "first_step": ("bool", "torch's first step: the momentum buffer takes the gradient instead of being "
                           "decayed."),
    "beta": ("float", "The velocity's decay rate."),
    "n_threads": ("int", "The most threads of fastopt's pool to use (the caller is one of them); the "
                         "result is the same for any count (``fastopt.reference``: checked, then ignored)."),
    "check_overlap": ("bool", "Check that no written array shares memory with another; the optimizers check "
                              "once for all the batches of a step instead."),
    "indexed": ("bool", "Name the arrays in messages as a group call does (``params[2]``), or as a "
                        "single-tensor call (``param``)."),
    "batches": ("Batch or sequence of Batch", "Work items built by the ``*_batch`` functions (of the same "
                                              "module), all checked before this call."),
    "grad_scale": ("float", "Multiplies every gradient as it is read, rounded to its dtype (``g * c`` as "
                            "torch's ``g.mul_(c)``): a clip coefficient; gradients are never written."),
    "rounding_seed": ("int or None", "None: 16-bit stores round to nearest even. An int: bfloat16 stores "
                                     "round stochastically, with random bits hashed from (the seed, the "
                                     "item's position in the job, the array, the element): the same for "
                                     "any thread count and in ``fastopt.reference``."),
    "grads": ("list of ndarray or None", "The gradients: float32, float64, bfloat16 or float16 (dtypes may "
                                         "differ), any shapes, C-contiguous; None entries are skipped."),
    "norm_type": ("float", "p of the p-norm: 2, 1, ``inf`` (the largest absolute value) or any other "
                           "p > 0."),
    "shadows": ("list of ndarray", "The averages, updated in place: float32 or float64, C-contiguous, "
                                   "writeable."),
    "weight": ("float", "The interpolation weight: ``shadow + weight*(param - shadow)``."),
}
# the same name, another meaning
RULE_ARGS = {
    "sgd": {"momentum_buffer": ("ndarray or None", "The momentum buffer ``b``, updated in place; needed "
                                                   "when ``momentum`` != 0, unused when it is 0."),
            "momentum": ("float", "The momentum factor; 0: plain SGD.")},
    "momentum": {"momentum_buffer": ("ndarray", "The velocity ``v`` (0 at the start), updated in place.")},
    "rmsprop": {"momentum_buffer": ("ndarray or None", "The momentum buffer ``b`` (0 at the start), "
                                                       "updated in place; needed when ``momentum`` > 0, "
                                                       "None otherwise."),
                "momentum": ("float", "The momentum factor; 0: none.")},
    "asgd": {"alpha": ("float", "The power of ``eta``'s decay.")},
    "lion": {"beta1": ("float", "The interpolation weight of the update's direction (``betas[0]``)."),
             "beta2": ("float", "The momentum's decay rate (``betas[1]``)."),
             "weight_decay": ("float", "The decoupled decay: ``p *= 1 - lr*weight_decay``; 0: none.")},
    "lamb": {"weight_decay": ("float", "Decoupled weight decay, added to the update: ``u + weight_decay*p`` "
                                       "(inside the trust ratio); 0: none, and no trust ratio unless "
                                       "``always_adapt``.")},
    "sfadamw": {"lr": ("float", "This step's learning rate (the group's lr times the warmup schedule)."),
                "weight_decay": ("float", "Decoupled weight decay, taken at y: ``gn + weight_decay*y``; 0: "
                                          "none.")},
    "ema_update": {"params": ("list of ndarray", "The values averaged, one per shadow: its dtype and size, "
                                                 "C-contiguous; only read.")},
}
# a group call's lists where the entry is not "one per param, each as <single>"
GROUP_ARGS = {
    "params": ("list of ndarray", "The parameters, each as ``param`` (dtypes may differ between tensors)."),
    "grads": ("list of ndarray or None", "One per param, each as ``grad``; None skips its tensor (param "
                                         "and state are left as they are)."),
    "first_steps": ("list of bool or None", "One per param: its ``first_step``; None: False for all."),
    "s1": ("list of ndarray or None", "One per param, each a state buffer read and written; fill ``s1``, "
                                      "``s2``, ``s3`` in order (Adam's traffic: two)."),
    "s2": ("list of ndarray or None", "A second list of state buffers, as ``s1``."),
    "s3": ("list of ndarray or None", "A third list of state buffers, as ``s1``."),
}

# -- examples: ``{module}`` is fastopt.kernels or fastopt.reference; the output is the same bits -------
EXAMPLES = {
    "sgd": """\
>>> import numpy as np
>>> from {module} import sgd
>>> p = np.array([1.0, -2.0, 3.0], np.float32)
>>> g = np.array([0.5, 0.5, -1.0], np.float32)
>>> buf = np.zeros(3, np.float32)
>>> for first in (True, False):
...     sgd(p, g, buf, lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False,
...         maximize=False, first_step=first)
>>> p, buf
(array([ 0.855, -2.145,  3.29 ], dtype=float32), array([ 0.95,  0.95, -1.9 ], dtype=float32))""",
    "sgd_group": """\
>>> import numpy as np
>>> from {module} import sgd_group
>>> params = [np.ones(3, np.float32), np.ones(2)]
>>> grads = [np.full(3, 0.5, np.float32), None]
>>> sgd_group(params, grads, lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
...           maximize=False)
>>> params
[array([0.95, 0.95, 0.95], dtype=float32), array([1., 1.])]""",
    "momentum": """\
>>> import numpy as np
>>> from {module} import momentum
>>> p = np.array([1.0, -2.0], np.float32)
>>> v = np.zeros(2, np.float32)
>>> momentum(p, np.array([0.5, -1.0], np.float32), v, lr=0.1, beta=0.9)
>>> p, v
(array([ 0.995, -1.99 ], dtype=float32), array([ 0.05, -0.1 ], dtype=float32))""",
    "momentum_group": """\
>>> import numpy as np
>>> from {module} import momentum_group
>>> params = [np.ones(2), np.ones(3, np.float32)]
>>> velocities = [np.zeros(2), np.zeros(3, np.float32)]
>>> for _ in range(2):
...     momentum_group(params, [np.full(2, 1.0), np.full(3, -1.0, np.float32)], velocities, lr=0.5,
...                    beta=0.5)
>>> velocities
[array([0.75, 0.75]), array([-0.75, -0.75, -0.75], dtype=float32)]""",
    "adam": """\
>>> import numpy as np
>>> from {module} import adam
>>> p = np.array([1.0, -2.0, 3.0], np.float32)
>>> g = np.array([0.5, 0.5, -1.0], np.float32)
>>> step, m, v = np.zeros(1, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32)
>>> adam(p, g, step, m, v, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
...      maximize=False, decoupled_weight_decay=False)
>>> p, step, m
(array([ 0.90000004, -2.1       ,  3.1       ], dtype=float32), array([1.], dtype=float32), array([ 0.05,  0.05, -0.1 ], dtype=float32))""",
    "adam_group": """\
>>> import numpy as np
>>> from {module} import adam_group
>>> params = [np.ones(3, np.float32), np.ones(2)]
>>> grads = [np.full(3, 0.5, np.float32), np.full(2, -0.5)]
>>> steps = [np.zeros(1, p.dtype) for p in params]
>>> exp_avgs = [np.zeros_like(p) for p in params]
>>> exp_avg_sqs = [np.zeros_like(p) for p in params]
>>> adam_group(params, grads, steps, exp_avgs, exp_avg_sqs, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
...            weight_decay=0.01, maximize=False, decoupled_weight_decay=True)
>>> params
[array([0.89900005, 0.89900005, 0.89900005], dtype=float32), array([1.099, 1.099])]""",
    "adamax": """\
>>> import numpy as np
>>> from {module} import adamax
>>> p = np.array([1.0, -2.0], np.float32)
>>> step, m, u = np.zeros(1, np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32)
>>> adamax(p, np.array([0.5, -4.0], np.float32), step, m, u, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
...        weight_decay=0.0, maximize=False)
>>> p, u
(array([ 0.9, -1.9], dtype=float32), array([0.5, 4. ], dtype=float32))""",
    "adamax_group": """\
>>> import numpy as np
>>> from {module} import adamax_group
>>> params = [np.ones(2), np.ones(2)]
>>> steps, exp_avgs, exp_infs = [np.zeros(1), np.zeros(1)], [np.zeros(2), np.zeros(2)], [np.zeros(2), np.zeros(2)]
>>> adamax_group(params, [np.full(2, 2.0), None], steps, exp_avgs, exp_infs, lr=0.1, beta1=0.9,
...              beta2=0.999, eps=1e-8, weight_decay=0.0, maximize=False)
>>> params, steps
([array([0.9, 0.9]), array([1., 1.])], [array([1.]), array([0.])])""",
    "nadam": """\
>>> import numpy as np
>>> from {module} import nadam
>>> p = np.array([1.0, -2.0], np.float32)
>>> step, mu_product = np.zeros(1, np.float32), np.ones(1, np.float32)
>>> m, v = np.zeros(2, np.float32), np.zeros(2, np.float32)
>>> nadam(p, np.array([0.5, -1.0], np.float32), step, mu_product, m, v, lr=0.01, beta1=0.9, beta2=0.999,
...       eps=1e-8, weight_decay=0.0, momentum_decay=0.004, maximize=False, decoupled_weight_decay=False)
>>> p, mu_product
(array([ 0.9894355, -1.9894354], dtype=float32), array([0.45007348], dtype=float32))""",
    "nadam_group": """\
>>> import numpy as np
>>> from {module} import nadam_group
>>> params = [np.ones(2, np.float32), np.ones(3)]
>>> steps = [np.zeros(1, p.dtype) for p in params]
>>> mu_products = [np.ones(1, p.dtype) for p in params]
>>> exp_avgs, exp_avg_sqs = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
>>> nadam_group(params, [np.ones(2, np.float32), -np.ones(3)], steps, mu_products, exp_avgs, exp_avg_sqs,
...             lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, momentum_decay=0.004,
...             maximize=False, decoupled_weight_decay=False)
>>> params
[array([0.9894355, 0.9894355], dtype=float32), array([1.01056452, 1.01056452, 1.01056452])]""",
    "adagrad": """\
>>> import numpy as np
>>> from {module} import adagrad
>>> p = np.array([1.0, -2.0], np.float32)
>>> step, state_sum = np.zeros(1, np.float32), np.zeros(2, np.float32)
>>> for _ in range(2):
...     adagrad(p, np.array([3.0, -4.0], np.float32), step, state_sum, lr=0.1, lr_decay=0.0, eps=1e-10,
...             weight_decay=0.0, maximize=False)
>>> p, state_sum
(array([ 0.8292893, -1.8292893], dtype=float32), array([18., 32.], dtype=float32))""",
    "adagrad_group": """\
>>> import numpy as np
>>> from {module} import adagrad_group
>>> params = [np.ones(2), np.ones(1, np.float32)]
>>> steps = [np.zeros(1), np.zeros(1, np.float32)]
>>> state_sums = [np.zeros(2), np.zeros(1, np.float32)]
>>> adagrad_group(params, [np.full(2, 2.0), np.full(1, 5.0, np.float32)], steps, state_sums, lr=0.1,
...               lr_decay=0.0, eps=1e-10, weight_decay=0.0, maximize=False)
>>> params, state_sums
([array([0.9, 0.9]), array([0.9], dtype=float32)], [array([4., 4.]), array([25.], dtype=float32)])""",
    "rmsprop": """\
>>> import numpy as np
>>> from {module} import rmsprop
>>> p = np.array([1.0, -2.0], np.float32)
>>> step, square_avg, grad_avg = np.zeros(1, np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32)
>>> rmsprop(p, np.array([0.5, -1.0], np.float32), step, square_avg, None, grad_avg, lr=0.01, alpha=0.99,
...         eps=1e-8, weight_decay=0.0, momentum=0.0, maximize=False)
>>> p, square_avg, grad_avg
(array([ 0.89949626, -1.8994962 ], dtype=float32), array([0.0025, 0.01  ], dtype=float32), array([ 0.005, -0.01 ], dtype=float32))""",
    "rmsprop_group": """\
>>> import numpy as np
>>> from {module} import rmsprop_group
>>> params = [np.ones(2), np.ones(3)]
>>> steps, square_avgs = [np.zeros(1), np.zeros(1)], [np.zeros(2), np.zeros(3)]
>>> buffers = [np.zeros(2), np.zeros(3)]
>>> rmsprop_group(params, [np.full(2, 0.1), np.full(3, -0.1)], steps, square_avgs, buffers, lr=0.01,
...               alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.9, maximize=False)
>>> params
[array([0.9000001, 0.9000001]), array([1.0999999, 1.0999999, 1.0999999])]""",
    "adadelta": """\
>>> import numpy as np
>>> from {module} import adadelta
>>> p = np.array([1.0, -2.0], np.float32)
>>> step, square_avg, acc_delta = np.zeros(1, np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32)
>>> adadelta(p, np.array([0.5, -1.0], np.float32), step, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6,
...          weight_decay=0.0, maximize=False)
>>> p, acc_delta
(array([ 0.9968378, -1.9968377], dtype=float32), array([9.999602e-07, 9.999901e-07], dtype=float32))""",
    "adadelta_group": """\
>>> import numpy as np
>>> from {module} import adadelta_group
>>> params = [np.ones(2), np.ones(1)]
>>> steps, square_avgs, acc_deltas = [np.zeros(1), np.zeros(1)], [np.zeros(2), np.zeros(1)], [np.zeros(2), np.zeros(1)]
>>> adadelta_group(params, [np.full(2, 1.0), None], steps, square_avgs, acc_deltas, lr=1.0, rho=0.9,
...                eps=1e-6, weight_decay=0.0, maximize=False)
>>> params, steps
([array([0.99683774, 0.99683774]), array([1.])], [array([1.]), array([0.])])""",
    "radam": """\
>>> import numpy as np
>>> from {module} import radam
>>> p = np.array([1.0, -2.0, 3.0], np.float32)
>>> g = np.array([0.5, 0.5, -1.0], np.float32)
>>> step, m, v = np.zeros(1, np.float32), np.zeros(3, np.float32), np.zeros(3, np.float32)
>>> for _ in range(6):    # steps 1-5 are momentum SGD; step 6 is the first rectified one
...     radam(p, g, step, m, v, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
...           maximize=False, decoupled_weight_decay=False)
>>> p, step
(array([ 0.7474178, -2.2525818,  3.5025816], dtype=float32), array([6.], dtype=float32))""",
    "radam_group": """\
>>> import numpy as np
>>> from {module} import radam_group
>>> params = [np.ones(2, np.float32), np.ones(3)]
>>> steps = [np.zeros(1, p.dtype) for p in params]
>>> exp_avgs, exp_avg_sqs = [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params]
>>> radam_group(params, [np.ones(2, np.float32), None], steps, exp_avgs, exp_avg_sqs, lr=0.1, beta1=0.9,
...             beta2=0.999, eps=1e-8, weight_decay=0.0, maximize=False, decoupled_weight_decay=False)
>>> params, steps
([array([0.9, 0.9], dtype=float32), array([1., 1., 1.])], [array([1.], dtype=float32), array([0.])])""",
    "asgd": """\
>>> import numpy as np
>>> from {module} import asgd
>>> p = np.array([1.0, -2.0], np.float32)
>>> step, eta, mu = np.zeros(1, np.float32), np.full(1, 0.1, np.float32), np.ones(1, np.float32)
>>> ax = np.zeros(2, np.float32)
>>> for _ in range(3):
...     asgd(p, np.array([0.5, -1.0], np.float32), step, eta, mu, ax, lr=0.1, lambd=1e-4, alpha=0.75,
...          t0=1.0, weight_decay=0.0, maximize=False)
>>> p, ax, mu
(array([ 0.84997255, -1.6999451 ], dtype=float32), array([ 0.84997255, -1.6999451 ], dtype=float32), array([0.5], dtype=float32))""",
    "asgd_group": """\
>>> import numpy as np
>>> from {module} import asgd_group
>>> params, steps = [np.ones(2), np.ones(1)], [np.zeros(1), np.zeros(1)]
>>> etas, mus, axs = [np.full(1, 0.5), np.full(1, 0.5)], [np.ones(1), np.ones(1)], [np.zeros(2), np.zeros(1)]
>>> asgd_group(params, [np.full(2, 1.0), None], steps, etas, mus, axs, lr=0.5, lambd=0.0, alpha=0.75,
...            t0=1e6, weight_decay=0.0, maximize=False)
>>> params, axs
([array([0.5, 0.5]), array([1.])], [array([0.5, 0.5]), array([0.])])""",
    "rprop": """\
>>> import numpy as np
>>> from {module} import rprop
>>> p = np.array([1.0, -2.0], np.float32)
>>> step, prev, step_size = np.zeros(1, np.float32), np.zeros(2, np.float32), np.full(2, 0.1, np.float32)
>>> for g in ([0.5, -1.0], [0.5, 1.0]):    # the second gradient flips sign in element 1
...     rprop(p, np.array(g, np.float32), step, prev, step_size, etaminus=0.5, etaplus=1.2,
...           step_size_min=1e-6, step_size_max=50.0, maximize=False)
>>> p, step_size, prev
(array([ 0.78, -1.9 ], dtype=float32), array([0.12, 0.05], dtype=float32), array([0.5, 0. ], dtype=float32))""",
    "rprop_group": """\
>>> import numpy as np
>>> from {module} import rprop_group
>>> params, steps = [np.ones(2), np.ones(1, np.float32)], [np.zeros(1), np.zeros(1, np.float32)]
>>> prevs, step_sizes = [np.zeros(2), np.zeros(1, np.float32)], [np.full(2, 0.1), np.full(1, 0.1, np.float32)]
>>> for _ in range(2):
...     rprop_group(params, [np.full(2, 1.0), np.full(1, -1.0, np.float32)], steps, prevs, step_sizes,
...                 etaminus=0.5, etaplus=1.2, step_size_min=1e-6, step_size_max=50.0, maximize=False)
>>> params, step_sizes
([array([0.78, 0.78]), array([1.22], dtype=float32)], [array([0.12, 0.12]), array([0.12], dtype=float32)])""",
    "lion": """\
>>> import numpy as np
>>> from {module} import lion
>>> p = np.array([1.0, -2.0, 3.0], np.float32)
>>> m = np.zeros(3, np.float32)
>>> lion(p, np.array([0.5, 0.0, -1.0], np.float32), m, lr=0.1, beta1=0.9, beta2=0.99, weight_decay=0.0,
...      maximize=False)
>>> p, m
(array([ 0.9, -2. ,  3.1], dtype=float32), array([ 0.005,  0.   , -0.01 ], dtype=float32))""",
    "lion_group": """\
>>> import numpy as np
>>> from {module} import lion_group
>>> params, exp_avgs = [np.ones(2), np.ones(3, np.float32)], [np.zeros(2), np.zeros(3, np.float32)]
>>> lion_group(params, [np.full(2, 1.0), np.full(3, -1.0, np.float32)], exp_avgs, lr=0.1, beta1=0.9,
...            beta2=0.99, weight_decay=0.5, maximize=False)
>>> params
[array([0.85, 0.85]), array([1.05, 1.05, 1.05], dtype=float32)]""",
    "lamb": """\
>>> import numpy as np
>>> from {module} import lamb
>>> p, g = np.array([3.0, 4.0], np.float32), np.array([1.0, -1.0], np.float32)
>>> step, m, v = np.zeros(1, np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32)
>>> lamb(p, g, step, m, v, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.01,
...      bias_correction=True, grad_averaging=True, always_adapt=False, trust_clip=False, maximize=False)
>>> p.round(4), m               # ||p|| = 5, ||u|| = 1.408: the step is 3.55 times lr
(array([2.6342, 4.3409], dtype=float32), array([ 0.1, -0.1], dtype=float32))""",
    "lamb_group": """\
>>> import numpy as np
>>> from {module} import lamb_group
>>> params, grads = [np.ones(2), np.full(3, 2.0, np.float32)], [np.ones(2), np.ones(3, np.float32)]
>>> steps = [np.zeros(1), np.zeros(1, np.float32)]
>>> exp_avgs, exp_avg_sqs = [np.zeros(2), np.zeros(3, np.float32)], [np.zeros(2), np.zeros(3, np.float32)]
>>> lamb_group(params, grads, steps, exp_avgs, exp_avg_sqs, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-6,
...            weight_decay=0.0, bias_correction=True, grad_averaging=True, always_adapt=True,
...            trust_clip=False, maximize=False)
>>> params                       # each tensor moves by lr times its own norm
[array([0.9, 0.9]), array([1.8, 1.8, 1.8], dtype=float32)]""",
    "sfadamw": """\
>>> import numpy as np
>>> from {module} import sfadamw
>>> p = np.array([1.0, -2.0], np.float32)
>>> z, v = p.copy(), np.zeros(2, np.float32)
>>> for t in (1, 2):    # the optimizer's per-step scalars: bias correction, averaging weight 1/t
...     sfadamw(p, np.array([0.5, -1.0], np.float32), z, v, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
...             weight_decay=0.0, bc2=1 - 0.999 ** t, ckp1=1.0 / t, maximize=False)
>>> p, z
(array([ 0.84499997, -1.845     ], dtype=float32), array([ 0.79999995, -1.8       ], dtype=float32))""",
    "sfadamw_group": """\
>>> import numpy as np
>>> from {module} import sfadamw_group
>>> params, zs = [np.ones(2), np.ones(1, np.float32)], [np.ones(2), np.ones(1, np.float32)]
>>> exp_avg_sqs = [np.zeros(2), np.zeros(1, np.float32)]
>>> sfadamw_group(params, [np.full(2, 1.0), None], zs, exp_avg_sqs, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
...               weight_decay=0.0, bc2=0.001, ckp1=1.0, maximize=False)
>>> params, zs
([array([0.9, 0.9]), array([1.], dtype=float32)], [array([0.9, 0.9]), array([1.], dtype=float32)])""",
    "floor": """\
>>> import numpy as np
>>> from {module} import floor
>>> p, m, v = np.zeros(3, np.float32), np.zeros(3, np.float32), np.ones(3, np.float32)
>>> floor(p, np.full(3, 0.5, np.float32), m, v)
>>> p, m, v
(array([0.5, 0.5, 0.5], dtype=float32), array([0.5, 0.5, 0.5], dtype=float32), array([1.5, 1.5, 1.5], dtype=float32))""",
    "floor_group": """\
>>> import numpy as np
>>> from {module} import floor_group
>>> params, grads = [np.zeros(2), np.zeros(3)], [np.ones(2), np.full(3, 2.0)]
>>> floor_group(params, grads)
>>> params
[array([1., 1.]), array([2., 2., 2.])]""",
    "grad_norm": """\
>>> import numpy as np
>>> from {module} import grad_norm
>>> grads = [np.array([3.0, 0.0], np.float32), None, np.array([[4.0]])]
>>> grad_norm(grads)
(5.0, True)
>>> grad_norm(grads, norm_type=1.0), grad_norm(grads, norm_type=float("inf"))
((7.0, True), (4.0, True))
>>> grad_norm([np.array([1.0, np.nan])])
(nan, False)""",
    "ema_update": """\
>>> import numpy as np
>>> from {module} import ema_update
>>> shadows = [np.zeros(2, np.float32), np.ones(1)]
>>> params = [np.full(2, 10.0, np.float32), np.full(1, 3.0)]
>>> ema_update(shadows, params, 0.1)
>>> shadows
[array([1., 1.], dtype=float32), array([1.2])]""",
    "run": """\
>>> import numpy as np
>>> from {module} import adam_batch, run, sgd_batch
>>> p1, g1, buf = np.ones(2), np.full(2, 4.0), np.zeros(2)
>>> p2, g2 = np.ones(2), np.full(2, 4.0)
>>> step, m, v = np.zeros(1), np.zeros(2), np.zeros(2)
>>> first = sgd_batch([p1], [g1], [buf], lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0,
...                   nesterov=False, maximize=False, first_steps=[True])
>>> second = adam_batch([p2], [g2], [step], [m], [v], None, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
...                     weight_decay=0.0, maximize=False, decoupled_weight_decay=False)
>>> run([first, second], grad_scale=0.25)  # both checked above; the gradients read as g * 0.25
>>> p1, buf, p2
(array([0.9, 0.9]), array([1., 1.]), array([0.9, 0.9]))
>>> g1
array([4., 4.])""",
}


def _entry(name, rule, group):
    """(type, description) of argument ``name`` of a function of ``rule`` (group: a list argument)."""
    own = RULE_ARGS.get(rule, {})
    if name in own:
        return own[name]
    if group and name in GROUP_ARGS:
        return GROUP_ARGS[name]
    if group and name.endswith("s") and (name[:-1] in ARGS or name[:-1] in own):
        kind, text = own.get(name[:-1]) or ARGS[name[:-1]]
        kind = "list of " + kind.replace(" or None", "") + (" or None" if "None" in kind else "")
        return kind, f"One per param, each as ``{name[:-1]}``. {text}"
    if name in ARGS:
        return ARGS[name]
    raise KeyError(f"no description of argument {name!r} of {rule}")


def _parameters(function, rule, group):
    lines = []
    for name, arg in inspect.signature(function).parameters.items():
        kind, text = _entry(name, rule, group)
        default = "" if arg.default is inspect.Parameter.empty else f", default {arg.default!r}"
        lines.append(f"{name} : {kind}{default}")
        lines.append(_fill(text, "    "))
    return "\n".join(lines)


@functools.cache
def _fill(text, indent=""):
    """``text`` wrapped to WIDTH columns. Cached: the same descriptions recur in most of the 60 docstrings
    built at import (kernels and twins), and wrapping is most of their cost."""
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent)


def _indent(text):
    return "\n".join("    " + line if line else line for line in text.splitlines())


def docstring(name, function, module):
    """The numpydoc docstring of ``module``'s function ``name`` (``module``: where its example imports
    it from)."""
    rule, _, kind = name.partition("_")
    if name in ("grad_norm", "ema_update", "run"):
        rule, kind = name, ""
    parts = []
    if kind == "batch":
        parts.append(f"The checked work items of an ``{rule}_group`` call, for ``run``: every array is "
                     "checked as the group call checks it, nothing is run or written.")
        parts.append(f"Parameters\n----------\n{_parameters(function, rule, True)}")
        parts.append("Returns\n-------\nBatch\n    The work items; ``run`` executes one or more of them as one "
                     "job.")
        parts.append(f"See Also\n--------\nrun : Runs batches as one job (its example builds two).\n"
                     f"{rule}_group : Checks and runs one group in one call.")
        return "\n\n".join(parts)
    if rule == "grad_norm":
        parts.append("``(norm, finite)`` of all of ``grads`` together: the p-norm of their concatenation, as "
                     "``torch.nn.utils.get_total_norm``, accumulated in double in one read pass; ``finite``: "
                     "no element is NaN or infinite.")
        parts.append("The sum's order is fixed (32 lanes per block of 4096 elements, combined in a fixed "
                     "tree), so the result is the same bits for any thread count and in "
                     "``fastopt.reference``.")
    elif rule == "ema_update":
        parts.append("``shadow = lerp(shadow, param, weight)`` in place for every pair, as torch's "
                     "``lerp_``, in one job.")
        parts.append("Each pair is one dtype and size, C-contiguous; the shadows are writeable and share no "
                     "memory with anything else of the call. Everything is checked before anything is "
                     "written.")
    elif rule == "run":
        parts.append("Run the work items of ``batches`` as one job on up to ``n_threads`` threads: every "
                     "item's prologue (step counters), then every element.")
        parts.append("The batches were checked when they were built, so a step checks every group before "
                     "any is written. The kernels release the GIL for jobs of 4096 elements or more.")
    elif kind == "group":
        parts.append(f"``{rule}`` on every tensor of a group in one call (one job on the thread pool).")
        parts.append(INPUT_RULES.replace("\n", " ") + " A None gradient skips its tensor.")
    else:
        parts.append(SUMMARY[rule])
        parts.append(INPUT_RULES.replace("\n", " "))
    parts.append(f"Parameters\n----------\n{_parameters(function, rule, kind == 'group')}")
    if rule == "grad_norm":
        parts.append("Returns\n-------\nnorm : float\n    The norm (NaN or inf when an element is).\n"
                     "finite : bool\n    Whether every element is finite.")
    if rule in MATH:
        parts.append("Notes\n-----\nPer element, ``g`` the gradient (``run``'s scale and ``maximize``'s sign "
                     f"applied)::\n\n{_indent(MATH[rule])}")
    parts.append("Examples\n--------\n" + EXAMPLES[name].replace("{module}", module))
    # the prose paragraphs wrapped (sections, math and examples as written)
    return "\n\n".join(part if "\n" in part else _fill(part) for part in parts)


def document(namespace, module):
    """Set the docstring of every kernel function in ``namespace`` (a module's globals)."""
    for name, function in namespace.items():
        if name in EXAMPLES or name.endswith("_batch"):
            function.__doc__ = docstring(name, function, module)
