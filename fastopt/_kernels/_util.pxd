# Helpers shared by the kernel modules; cimported, so they inline into each loop.
from libc.math cimport fabs, fabsf, sqrt, sqrtf

from cython cimport floating


cdef inline Py_ssize_t check_size(Py_ssize_t n, Py_ssize_t got, str name) except -1:
    """Every buffer of one update has the parameter's length (bounds checks are off in the loops)."""
    if got != n:
        raise ValueError(f"{name} has {got} elements, expected {n} (the size of param)")
    return n


cdef inline int check_counter(Py_ssize_t got, str name) except -1:
    """Scalar state (step, mu_product) is passed as a 1-element buffer so the kernel can update it."""
    if got != 1:
        raise ValueError(f"{name} must hold exactly 1 element (a 0-d counter), got {got}")
    return 0


cdef extern from *:
    """
    /* NaN-propagating maximum, as torch.maximum and np.maximum. Written with a bitwise | so the
       compiler sees one select, not branches, and vectorizes the loop around it. */
    #define FASTOPT_MAXNAN(a, b) ((((a) >= (b)) | ((a) != (a))) ? (a) : (b))
    """
    float _maxnan_f "FASTOPT_MAXNAN"(float a, float b) noexcept nogil
    double _maxnan_d "FASTOPT_MAXNAN"(double a, double b) noexcept nogil


cdef inline floating maxnan(floating a, floating b) noexcept nogil:
    """NaN-propagating maximum, as torch.maximum and np.maximum (libm fmax drops NaN)."""
    if floating is float:
        return _maxnan_f(a, b)
    else:
        return _maxnan_d(a, b)


cdef inline floating fsqrt(floating x) noexcept nogil:
    """sqrt in the buffer's own precision (libm's sqrt would round float32 math through double)."""
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating fabs_(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating effective_grad(floating g, floating p, floating sign, floating wd,
                                    bint decay) noexcept nogil:
    """The gradient every rule starts from: ``maximize``'s sign, then L2 weight decay ``g + wd*p``
    (torch's order). The one place a gradient scale or clip coefficient will fold into every kernel."""
    g = sign * g                                        # g_t
    if decay:
        g = g + wd * p                                  # g_t
    return g
