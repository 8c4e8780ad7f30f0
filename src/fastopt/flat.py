"""One contiguous buffer for a whole model's parameters, and one for its gradients."""
import math

import numpy as np

from . import _validation as check


class FlatParams:
    """A model's parameters as views into one contiguous buffer (``data``) and their gradients as views
    into another (``grad``), so an optimizer over ``[flat.data]`` steps the whole model in one kernel
    call and keeps its state in one buffer per state key (see Examples: train the views in ``params``,
    write the gradients into the views in ``grads``, e.g. ``gW[...] = x.T @ delta``, and step
    ``[flat.data]`` with ``[flat.grad]``).

    All parameters share one dtype and one set of hyperparameters (use one FlatParams per parameter
    group for per-group settings, e.g. no weight decay on biases). A rule with per-tensor norms (LAMB's
    trust ratio) sees the flat buffer as one tensor: its ratio is then the whole model's, not each
    layer's, so give such a rule the views in ``params`` instead.

    Pickling and ``copy.deepcopy`` keep the structure: the copy's ``params`` and ``grads`` are views
    into the copy's ``data`` and ``grad`` (and an optimizer pickled together with it still steps the
    copy's ``data``).

    Parameters
    ----------
    arrays_or_shapes : list of numpy.ndarray, or list of shapes
        At least one. Arrays (any shape) are copied in; shapes (tuples of non-negative ints, or ints)
        give zero-filled parameters. Not a mix of the two (TypeError).
    dtype : {numpy.float32, numpy.float64} or None, default None
        The buffers' dtype: by default the first array's, or float32 for shapes. Arrays of another
        dtype are cast as they are copied in; any other dtype raises TypeError.

    Attributes
    ----------
    data, grad : numpy.ndarray
        The two 1-D buffers, C-contiguous, of ``dtype``; ``grad`` starts at zeros.
    params, grads : list of numpy.ndarray
        Views of the parameters' shapes into ``data`` and ``grad``, in the given order.

    Notes
    -----
    ``data`` is what the optimizer steps (``[flat.data]``, with ``step([flat.grad])``); its state has
    ``data``'s size. Writing a parameter or a gradient means writing into its view (``W[...] = ...``):
    assigning a new array to the name breaks the link. A ValueError is raised for negative sizes or a
    size that cannot be allocated.

    Examples
    --------
    >>> import numpy as np
    >>> import fastopt
    >>> flat = fastopt.FlatParams([np.ones((2, 3)), np.zeros(3)])   # copies the arrays in
    >>> W, b = flat.params        # views into flat.data: train these
    >>> gW, gb = flat.grads       # views into flat.grad: write gradients here
    >>> opt = fastopt.SGD([flat.data], lr=0.1)
    >>> gW[...] = 1.0
    >>> gb[...] = 2.0
    >>> opt.step([flat.grad])     # every parameter, one call
    >>> print(W[0], b)
    [0.9 0.9 0.9] [-0.2 -0.2 -0.2]
    >>> flat
    FlatParams(2 arrays, 9 elements, float64)
    >>> fastopt.FlatParams([(2, 3), 3]).data.dtype   # from shapes: zeros, float32 by default
    dtype('float32')
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
