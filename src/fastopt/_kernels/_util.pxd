# Helpers shared by the kernel modules; cimported, so they inline into each loop and each ISA variant.
#
# Execution model (fastopt/_kernels/_runtime.pxd): a kernel's ``*_batch`` function checks its arrays and
# turns each tensor into one work item (a struct starting with a ``WorkHead``: the item's chunk function
# and prologue, then pointers and the step's scalars, computed once in double by the prologue); the
# runtime's ``run`` executes the items of one or more batches on the thread pool. Every element is
# computed by the same code whichever thread runs it, so results are bit-identical for any thread count.
cimport numpy as cnp
from libc.math cimport fabs, fabsf, sqrt, sqrtf
from libc.string cimport memset

from cython cimport floating

from fastopt._kernels._runtime cimport Batch, chunk_fn, ItemHead, prologue_fn, Span, WorkHead

cdef extern from *:
    """
    #ifndef FASTOPT_ISA
    #define FASTOPT_ISA "unknown"
    #endif
    #ifndef FASTOPT_CFLAGS
    #define FASTOPT_CFLAGS ""
    #endif
    #if defined(__clang__)
    #define FASTOPT_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define FASTOPT_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
    #define FASTOPT_COMPILER "msvc"
    #else
    #define FASTOPT_COMPILER "unknown"
    #endif
    /* NaN-propagating maximum, as torch.maximum and np.maximum. Written with a bitwise | so the
       compiler sees one select, not branches, and vectorizes the loop around it. */
    #define FASTOPT_MAXNAN(a, b) ((((a) >= (b)) | ((a) != (a))) ? (a) : (b))
    """
    const char* FASTOPT_ISA
    const char* FASTOPT_CFLAGS
    const char* FASTOPT_COMPILER
    float _maxnan_f "FASTOPT_MAXNAN"(float a, float b) noexcept nogil
    double _maxnan_d "FASTOPT_MAXNAN"(double a, double b) noexcept nogil


cdef inline dict build_info():
    """What this compiled module is: exported by every kernel module as ``BUILD``."""
    return {"isa": FASTOPT_ISA.decode(), "cflags": FASTOPT_CFLAGS.decode(),
            "compiler": FASTOPT_COMPILER.decode()}


cdef inline WorkHead work_head(chunk_fn chunk, prologue_fn prologue) noexcept:
    cdef WorkHead h
    h.chunk, h.prologue = chunk, prologue
    return h


# -- building a batch (inlined into each kernel's *_batch loop: a step checks every array) ------------

cdef inline void* batch_data(Batch b, object arr, int single, Py_ssize_t n, bint write, Py_ssize_t name,
                             Py_ssize_t k) except? NULL:
    """The data of tensor k's array ``b.names[name]`` after O(1) checks (an aligned, native-order,
    C-contiguous ndarray of the parameter's dtype and size, writeable when the kernel writes it),
    recorded for the overlap check; ``Batch._reject`` raises what is wrong otherwise."""
    cdef cnp.ndarray a
    cdef void* ptr
    cdef Span* s
    if cnp.PyArray_Check(arr):
        a = <cnp.ndarray>arr
        if (cnp.PyArray_TYPE(a) == (cnp.NPY_FLOAT if single else cnp.NPY_DOUBLE) and cnp.PyArray_SIZE(a) == n
                and (cnp.PyArray_FLAGS(a) & (cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED))
                == (cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED)
                and cnp.PyArray_ISNOTSWAPPED(a) and (not write or cnp.PyArray_ISWRITEABLE(a))
                and b.nspans < b.span_capacity):
            ptr = cnp.PyArray_DATA(a)
            if n:
                s = &b.spans[b.nspans]
                s.lo, s.hi = <const char*>ptr, <const char*>ptr + n * (4 if single else 8)
                s.name, s.k, s.write = name, k, write
                b.nspans += 1
            return ptr
    b._reject(arr, single, n, write, name, k if b.indexed else -1)
    return NULL


cdef inline void* batch_counter(Batch b, object arr, int single, int* own, Py_ssize_t name,
                                Py_ssize_t k) except? NULL:
    """The data of tensor k's scalar state ``b.names[name]`` (a step count, NAdam's mu_product): a
    writeable 1-element float32 or float64 array, updated in its own dtype (``own``: float32?), which
    need not be the parameter's (``single``, named in the error otherwise). Checked as ``batch_data``."""
    cdef int typenum
    if cnp.PyArray_Check(arr):
        typenum = cnp.PyArray_TYPE(<cnp.ndarray>arr)
        if typenum == cnp.NPY_FLOAT or typenum == cnp.NPY_DOUBLE:
            single = typenum == cnp.NPY_FLOAT
    own[0] = single
    return batch_data(b, arr, single, 1, True, name, k)


cdef inline void* batch_add(Batch b, WorkHead head, object param, object grad, Py_ssize_t k, int* single,
                            Py_ssize_t* n) except NULL:
    """Append tensor k's work item after checking its param and grad (``batch_data``); sets ``single``
    (float32?) and ``n`` (its size) for the rule's own arrays. The struct is zeroed but for its
    ``ItemHead``."""
    cdef int typenum
    if not cnp.PyArray_Check(param) or b.count == b.capacity:
        b._reject_param(param, k)
    typenum = cnp.PyArray_TYPE(<cnp.ndarray>param)
    if typenum != cnp.NPY_FLOAT and typenum != cnp.NPY_DOUBLE:
        b._reject_param(param, k)
    single[0] = typenum == cnp.NPY_FLOAT
    n[0] = cnp.PyArray_SIZE(<cnp.ndarray>param)
    cdef void* p = batch_data(b, param, single[0], n[0], True, 0, k)
    cdef const void* g = batch_data(b, grad, single[0], n[0], False, 1, k)
    cdef ItemHead* item = <ItemHead*>(b.works + b.count * b.size)
    memset(item, 0, b.size)
    item.head, item.p, item.g, item.grad_scale = head, p, g, 1.0
    b.items[b.count] = item
    b.count += 1
    b.offsets[b.count] = b.offsets[b.count - 1] + n[0]
    return item


# -- arrays -----------------------------------------------------------------------------------------

cdef inline double bump(void* counter, int single) noexcept nogil:
    """Increment a step counter in its own dtype (a float32 step freezes at 2^24, as torch's); returns
    the new value."""
    if single:
        (<float*>counter)[0] = (<float*>counter)[0] + 1
        return (<float*>counter)[0]
    (<double*>counter)[0] = (<double*>counter)[0] + 1
    return (<double*>counter)[0]


# -- per-element helpers ------------------------------------------------------------------------------

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
