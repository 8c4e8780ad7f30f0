"""One contiguous buffer for a whole model's parameters, and one for its gradients."""
import math

import numpy as np

from . import _validation as check


class FlatParams:
    """A model's parameters as views into one contiguous buffer (``data``) and their gradients as views
    into another (``grad``), so an optimizer over ``[flat.data]`` steps the whole model in one kernel
    call and keeps its state in one buffer per state key.

    Example::

        flat = fastopt.FlatParams([W0, b0])        # copies the arrays in (or: shapes and a dtype)
        W, b = flat.params                          # views into flat.data: train these
        gW, gb = flat.grads                         # views into flat.grad: write gradients here
        opt = fastopt.Adam([flat.data], lr=1e-3)
        ...
        gW[...] = x.T @ delta; gb[...] = delta.sum(0)
        opt.step([flat.grad])                       # every parameter, one call

    All parameters share one dtype and one set of hyperparameters (use one FlatParams per parameter
    group for per-group settings, e.g. no weight decay on biases).

    Pickling and ``copy.deepcopy`` keep the structure: the copy's ``params`` and ``grads`` are views
    into the copy's ``data`` and ``grad`` (and an optimizer pickled together with it still steps the
    copy's ``data``).
    """

    def __init__(self, arrays_or_shapes, dtype=None):
        items = list(arrays_or_shapes)
        if not items:
            raise ValueError("FlatParams needs at least one array or shape")
        arrays = [item for item in items if isinstance(item, np.ndarray)]
        if arrays and len(arrays) != len(items):
            raise TypeError("give FlatParams either arrays (to copy in) or shapes, not both")
        if arrays:
            dtype = np.dtype(dtype or arrays[0].dtype)
            shapes = [a.shape for a in arrays]
        else:
            dtype = np.dtype(dtype or np.float32)
            shapes = [tuple(int(n) for n in (s if isinstance(s, (tuple, list)) else (s,))) for s in items]
            if any(n < 0 for shape in shapes for n in shape):
                raise ValueError(f"FlatParams shapes must not have negative sizes, got {shapes}")
        if dtype not in check.FLOAT_DTYPES:
            raise TypeError(f"FlatParams dtype must be float32 or float64, got {dtype}")
        try:
            size = sum(math.prod(s) for s in shapes)
            data, grad = np.zeros(size, dtype), np.zeros(size, dtype)
        except (OverflowError, MemoryError, ValueError) as exc:
            raise ValueError(f"FlatParams cannot allocate {len(shapes)} arrays of shapes {shapes}: {exc}") from None
        self._views(data, grad, shapes)
        for view, array in zip(self.params, arrays):
            view[...] = array

    def _views(self, data, grad, shapes):
        """Set ``data`` and ``grad`` and cut them into ``params`` and ``grads`` of ``shapes``."""
        sizes = [math.prod(s) for s in shapes]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.data, self.grad = data, grad
        self.params = [data[a:b].reshape(s) for a, b, s in zip(offsets, offsets[1:], shapes)]
        self.grads = [grad[a:b].reshape(s) for a, b, s in zip(offsets, offsets[1:], shapes)]

    def __getstate__(self):
        # the buffers and the shapes: views would be pickled as copies of their own
        return {"data": self.data, "grad": self.grad, "shapes": [p.shape for p in self.params]}

    def __setstate__(self, state):
        self._views(state["data"], state["grad"], state["shapes"])

    def __len__(self):
        return len(self.params)

    def __repr__(self):
        return f"FlatParams({len(self)} arrays, {self.data.size} elements, {self.data.dtype})"
