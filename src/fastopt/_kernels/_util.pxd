# Helpers shared by the kernel modules; cimported, so they inline into each loop and each ISA variant.
#
# Execution model (fastopt/_kernels/_runtime.pxd): a kernel's ``*_batch`` function checks its arrays and
# turns each tensor into one work item (a struct starting with a ``WorkHead``: the item's chunk function
# and prologue, then pointers and the step's scalars, computed once in double by the prologue); the
# runtime's ``run`` executes the items of one or more batches on the thread pool. Every element is
# computed by the same code whichever thread runs it, so results are bit-identical for any thread count.
cimport numpy as cnp
from libc.math cimport fabs, fabsf, sqrt, sqrtf
from libc.stdint cimport uint16_t
from libc.string cimport memcpy, memset

from cython cimport floating

from fastopt._kernels._runtime cimport Batch, chunk_fn, ItemHead, prologue_fn, Quantized, SLOTS, Span, WORK_WORDS, WorkHead

cdef extern from "_formats.h":
    enum:
        FO_F32, FO_F64, FO_BF16, FO_F16, FO_SPLIT, FO_MASTER, FO_Q8, FO_Q4
    ctypedef struct fo_qtable:
        pass
    void fo_dequantize(const fo_qtable* t, const unsigned char* codes, const float* absmax, float* dst,
                       Py_ssize_t first, Py_ssize_t n) noexcept nogil
    void fo_quantize(const fo_qtable* t, const float* src, unsigned char* codes, float* absmax,
                     Py_ssize_t first, Py_ssize_t n) noexcept nogil
    void fo_widen(int format, const void* src, float* dst, Py_ssize_t n) noexcept nogil
    void fo_narrow(int format, const float* src, void* dst, Py_ssize_t n) noexcept nogil
    void fo_store16(int format, const float* src, void* dst, Py_ssize_t n, int stochastic, unsigned int key,
                    Py_ssize_t first) noexcept nogil
    void fo_join(const uint16_t* hi, const uint16_t* lo, float* dst, Py_ssize_t n) noexcept nogil
    void fo_split(const float* src, uint16_t* hi, uint16_t* lo, Py_ssize_t n) noexcept nogil
    unsigned int fo_hash(unsigned int key, unsigned int i) noexcept nogil
    Py_ssize_t fo_itemsize(int format) noexcept nogil
    double fo_round_scalar(double x, int format) noexcept nogil
    ctypedef struct fo_bf16:
        uint16_t bits
    ctypedef struct fo_f16:
        uint16_t bits
    ctypedef struct fo_bf16sr:
        uint16_t bits
    uint16_t fo_f32_to_bf16_sr(float f, unsigned int key, unsigned int i) noexcept nogil
    float fo_bf16_to_f32(uint16_t h) noexcept nogil
    uint16_t fo_f32_to_bf16(float f) noexcept nogil
    float fo_f16_to_f32(uint16_t h) noexcept nogil
    uint16_t fo_f32_to_f16(float f) noexcept nogil

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
    /* a / s, correctly rounded, for a divisor s fixed over a loop and y = RN(1/s): with FMA, Markstein's
       quotient q = RN(a*y) corrected once by its exact remainder, RN(q + RN(a - q*s)*y) = RN(a/s) (given
       y = RN(1/s), for a quotient that is neither subnormal nor overflowing; checked on 2.5e10 float32
       pairs); zeros, infinities and NaN are q itself. Without FMA, the division. */
    #if defined(__FMA__)
    static inline float fo_div_fixed_f(float a, float s, float y) {
        float q = a * y, c = __builtin_fmaf(__builtin_fmaf(-q, s, a), y, q);
        return ((q == 0.0f) | (q - q != 0.0f)) ? q : c;
    }
    static inline double fo_div_fixed_d(double a, double s, double y) {
        double q = a * y, c = __builtin_fma(__builtin_fma(-q, s, a), y, q);
        return ((q == 0.0) | (q - q != 0.0)) ? q : c;
    }
    #else
    static inline float fo_div_fixed_f(float a, float s, float y) { (void)y; return a / s; }
    static inline double fo_div_fixed_d(double a, double s, double y) { (void)y; return a / s; }
    #endif
    """
    const char* FASTOPT_ISA
    const char* FASTOPT_CFLAGS
    const char* FASTOPT_COMPILER
    float _maxnan_f "FASTOPT_MAXNAN"(float a, float b) noexcept nogil
    double _maxnan_d "FASTOPT_MAXNAN"(double a, double b) noexcept nogil
    float fo_div_fixed_f(float a, float s, float y) noexcept nogil
    double fo_div_fixed_d(double a, double s, double y) noexcept nogil


cdef inline dict build_info():
    """What this compiled module is: exported by every kernel module as ``BUILD``."""
    return {"isa": FASTOPT_ISA.decode(), "cflags": FASTOPT_CFLAGS.decode(),
            "compiler": FASTOPT_COMPILER.decode()}


cdef inline WorkHead work_head(chunk_fn chunk, prologue_fn prologue) noexcept:
    cdef WorkHead h
    memset(&h, 0, sizeof(WorkHead))
    h.chunk, h.prologue = chunk, prologue
    return h


# -- formats: a rule's loop generated per storage format ---------------------------------------------
#
# A rule writes its per-element math once, in a ``span`` fused over ``store`` (its arrays' format) and
# ``floating`` (its math's: double for float64 arrays, float for the rest), reading each element into a
# local with ``load`` and writing it back with ``save`` (given the array's ``stream``: stochastic
# rounding's key); its chunk calls the span for the item's ``loop_format``. A 16-bit array is widened in
# the register where it is read and rounded where it is written (to nearest even, or stochastically:
# ``fo_bf16sr``), inside the one loop. Whatever else (split or float32 masters, quantized state, state
# in another format than the param's) goes through ``staged_chunk``, which runs the same chunk on
# float32 copies.

ctypedef fused store:
    float
    double
    fo_bf16
    fo_f16
    fo_bf16sr

cdef enum:
    FO_BF16_SR = 100  # ``loop_format``: bfloat16 stored stochastically
    FO_STAGED = 101   # ``loop_format``: the chunk runs through ``staged_chunk``


cdef inline void load(floating* x, const store* a, Py_ssize_t i) noexcept nogil:
    """``x = a[i]`` in the math's type: 16-bit formats widen exactly."""
    if store is fo_bf16 or store is fo_bf16sr:
        x[0] = fo_bf16_to_f32(a[i].bits)
    elif store is fo_f16:
        x[0] = fo_f16_to_f32(a[i].bits)
    else:
        x[0] = a[i]


cdef inline void save(store* a, Py_ssize_t i, floating x, unsigned int key) noexcept nogil:
    """``a[i] = x``, rounded into a 16-bit format: to nearest even, or (``fo_bf16sr``) stochastically
    from the random bits of element i of the stream ``key`` (as ``staged_chunk`` does)."""
    if store is fo_bf16:
        a[i].bits = fo_f32_to_bf16(x)
    elif store is fo_bf16sr:
        a[i].bits = fo_f32_to_bf16_sr(x, key, <unsigned int>i)
    elif store is fo_f16:
        a[i].bits = fo_f32_to_f16(x)
    else:
        a[i] = x


cdef inline unsigned int stream(const WorkHead* h, const void* field) noexcept nogil:
    """The stochastic-rounding key of the array whose pointer is the work struct's ``field`` (0 when the
    item rounds to nearest): the item's key mixed with the array's salt, as ``staged_chunk`` makes it."""
    cdef int s, offset = <int>(<const char*>field - <const char*>h)
    if h.stochastic:
        for s in range(h.nslots):
            if h.slot_offset[s] == offset:
                return fo_hash(h.key, h.slot_salt[s])
    return 0


cdef inline int loop_format(const WorkHead* h, Py_ssize_t hi) noexcept nogil:
    """Which of its loops a rule's chunk runs: the item's format (``WorkHead.format``: float32 when
    ``staged_chunk`` calls it on scratch), FO_BF16_SR for a bfloat16 item rounded stochastically, or
    FO_STAGED for one whose elements reach 2^32 (the random bits' element counter is 32-bit there;
    ``staged_chunk``'s blocks handle it)."""
    if h.format == FO_BF16 and h.stochastic:
        return FO_STAGED if <unsigned long long>hi > 4294967296ULL else FO_BF16_SR
    return h.format


cdef extern from *:
    """
    #define FO_PREFETCH_R(p) __builtin_prefetch((p), 0)
    #define FO_PREFETCH_W(p) __builtin_prefetch((p), 1)
    """
    void FO_PREFETCH_R(const void* p) noexcept nogil
    void FO_PREFETCH_W(const void* p) noexcept nogil

cdef enum:
    # ``prefetched_chunk``: elements per block, and how far ahead (in elements) each array is prefetched
    PREFETCH_BLOCK = 256
    PREFETCH_AHEAD = 2048


cdef inline void prefetched_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """The chunk of a 16-bit item whose arrays are all in the param's format: the rule's own chunk
    (``inner``) on blocks of PREFETCH_BLOCK elements, prefetching each array PREFETCH_AHEAD elements
    ahead first, a few cache lines at a time. Seven 16-bit streams at unrelated offsets in their pages
    (a param, a grad and the state of a NumPy heap) defeat the hardware prefetcher: bfloat16 Adam at
    1e7 took 8.4 to 16 ms on one thread by the arrays' offsets, 7.3 to 7.9 ms prefetched. Float32 and
    float64 items run their chunk directly: the same prefetching made float32 Adam 1.2x slower."""
    cdef WorkHead* h = <WorkHead*>work
    cdef Py_ssize_t a = lo, b, size, first, last
    cdef char* base
    cdef int s
    while a < hi:
        b = a + PREFETCH_BLOCK if hi - a > PREFETCH_BLOCK else hi
        for s in range(h.nslots):  # (prefetching past an array's end is harmless: no fault)
            base = (<char**>(<char*>work + h.slot_offset[s]))[0]
            if base == NULL:
                continue
            size = fo_itemsize(h.slot_format[s])
            first = (a + PREFETCH_AHEAD) * size
            last = (b + PREFETCH_AHEAD) * size
            while first < last:
                if h.slot_write[s]:
                    FO_PREFETCH_W(base + first)
                else:
                    FO_PREFETCH_R(base + first)
                first += 64
        h.inner(work, a, b)
        a = b


# -- formats: staging through float32 (_formats.h) ----------------------------------------------------

cdef enum:
    STAGE = 512  # elements per staged block: SLOTS float32 blocks of it stay in L1


cdef inline void staged_chunk(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """The chunk of an item with arrays in other formats than its math's: block by block, widen its
    16-bit arrays (and join split masters) into float32 scratch, run the rule's own chunk (``inner``) on
    a copy of the work struct pointing at the scratch (and at the block of its float32 arrays), then
    store back what the rule writes: rounded to nearest or stochastically, split, or a float32 master
    rounded into its 16-bit param. Every element sees the rule's float32 math on its exact values,
    whatever the block or thread."""
    cdef WorkHead* h = <WorkHead*>work
    cdef double copy[WORK_WORDS]
    cdef float scratch[SLOTS * STAGE]
    cdef char* base[SLOTS]
    cdef char* aux
    cdef float* block
    cdef unsigned int key
    cdef Py_ssize_t a = lo, b, n
    cdef int s, fmt
    cdef int f32 = FO_F32
    memcpy(copy, work, h.size)
    memcpy(<char*>copy + (<char*>&h.format - <char*>h), &f32, sizeof(int))  # the rule's float32 loop
    for s in range(h.nslots):
        base[s] = (<char**>(<char*>work + h.slot_offset[s]))[0]
    while a < hi:
        b = a + STAGE if hi - a > STAGE else hi
        n = b - a
        for s in range(h.nslots):
            fmt = h.slot_format[s]
            block = scratch + s * STAGE
            if fmt == FO_BF16 or fmt == FO_F16:
                fo_widen(fmt, base[s] + a * 2, block, n)
            elif fmt == FO_SPLIT:
                fo_join(<const uint16_t*>(base[s] + a * 2), <const uint16_t*>(<char*>h.slot_aux[s] + a * 2), block, n)
            elif fmt == FO_Q8 or fmt == FO_Q4:  # (a: a multiple of the quantization block, see ``align``)
                fo_dequantize(<const fo_qtable*>h.slot_table[s], <const unsigned char*>base[s],
                              <const float*>h.slot_aux[s], block, a, n)
            else:  # float32, float64, a float32 master: the rule works on the array itself
                block = <float*>(base[s] + a * fo_itemsize(fmt))
            (<void**>(<char*>copy + h.slot_offset[s]))[0] = block
        (<WorkHead*>copy).origin = a
        h.inner(copy, 0, n)
        if h.reading:  # a two-pass rule's first pass stores nothing
            a = b
            continue
        for s in range(h.nslots):
            if not h.slot_write[s]:
                continue
            fmt = h.slot_format[s]
            key = fo_hash(h.key, h.slot_salt[s])
            if fmt == FO_BF16 or fmt == FO_F16:
                fo_store16(fmt, scratch + s * STAGE, base[s] + a * 2, n, h.stochastic, key, a)
            elif fmt == FO_SPLIT:
                fo_split(scratch + s * STAGE, <uint16_t*>(base[s] + a * 2), <uint16_t*>(<char*>h.slot_aux[s] + a * 2), n)
            elif fmt == FO_MASTER:
                aux = <char*>h.slot_aux[s] + a * 2
                fo_store16(h.slot_aux_format[s], <const float*>(base[s] + a * 4), aux, n, h.stochastic, key, a)
            elif fmt == FO_Q8 or fmt == FO_Q4:
                fo_quantize(<const fo_qtable*>h.slot_table[s], scratch + s * STAGE, <unsigned char*>base[s],
                            <float*>h.slot_aux[s], a, n)
        a = b


cdef inline int add_slot(void* item, void** field, int fmt, bint write, int salt) except -1:
    """Record one array of a work item (``salt``: its argument's position, which picks its stream of
    random bits); an array in another format than the param's, or quantized, makes the item staged."""
    cdef WorkHead* h = <WorkHead*>item
    if h.nslots == SLOTS:
        raise AssertionError("fastopt build error: more arrays in one work item than _runtime.pxd's SLOTS")
    h.slot_offset[h.nslots] = <int>(<char*>field - <char*>item)
    h.slot_format[h.nslots] = fmt
    h.slot_write[h.nslots] = write
    h.slot_salt[h.nslots] = salt
    h.nslots += 1
    if (fmt != h.format or fmt == FO_Q8 or fmt == FO_Q4) and not h.staged:
        h.staged, h.chunk = True, h.staged_fn
    return 0


# -- building a batch (inlined into each kernel's *_batch loop: a step checks every array) ------------

cdef inline void* batch_data(Batch b, object arr, int fmt, Py_ssize_t n, bint write, Py_ssize_t name,
                             Py_ssize_t k) except? NULL:
    """The data of tensor k's array ``b.names[name]`` after O(1) checks (an aligned, native-order,
    C-contiguous ndarray of format ``fmt`` (_formats.h) and size ``n``, writeable when the kernel writes
    it), recorded for the overlap check; ``Batch._reject`` raises what is wrong otherwise."""
    cdef cnp.ndarray a
    cdef void* ptr
    cdef Span* s
    if cnp.PyArray_Check(arr):
        a = <cnp.ndarray>arr
        if (cnp.PyArray_TYPE(a) == b.typenums[fmt] and cnp.PyArray_SIZE(a) == n
                and (cnp.PyArray_FLAGS(a) & (cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED))
                == (cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED)
                and cnp.PyArray_ISNOTSWAPPED(a) and (not write or cnp.PyArray_ISWRITEABLE(a))
                and b.nspans < b.span_capacity):
            ptr = cnp.PyArray_DATA(a)
            if n:
                s = &b.spans[b.nspans]
                s.lo, s.hi = <const char*>ptr, <const char*>ptr + n * fo_itemsize(fmt)
                s.name, s.k, s.write = name, k, write
                b.nspans += 1
            return ptr
    b._reject(arr, fmt, n, write, name, k if b.indexed else -1)
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
    return batch_data(b, arr, FO_F32 if single else FO_F64, 1, True, name, k)


cdef inline void* batch_add(Batch b, WorkHead head, object param, object grad, Py_ssize_t k, int* single,
                            Py_ssize_t* n) except NULL:
    """Append tensor k's work item after checking its param and grad (``batch_data``: the grad in the
    param's format); sets ``single`` (float32 math: a float32, bfloat16 or float16 param) and ``n`` (its
    size) for the rule's own arrays, which it adds with ``batch_state``. The struct is zeroed but for its
    ``ItemHead``. An item with arrays in several formats runs through ``staged_chunk``."""
    cdef int fmt = b.format_of(param)
    if fmt < 0 or b.count == b.capacity:
        b._reject_param(param, k)
    single[0] = fmt != FO_F64
    n[0] = cnp.PyArray_SIZE(<cnp.ndarray>param)
    cdef void* p = batch_data(b, param, fmt, n[0], True, 0, k)
    cdef const void* g = batch_data(b, grad, fmt, n[0], False, 1, k)
    cdef ItemHead* item = <ItemHead*>(b.works + b.count * b.size)
    memset(item, 0, b.size)
    item.head, item.p, item.g, item.grad_scale = head, p, g, 1.0
    if b.size > WORK_WORDS * 8:
        raise AssertionError("fastopt build error: a work struct larger than _runtime.pxd's WORK_WORDS")
    item.head.format, item.head.size = fmt, b.size
    item.head.inner, item.head.staged_fn = head.chunk, staged_chunk
    item.head.direct_fn = prefetched_chunk if fmt == FO_BF16 or fmt == FO_F16 else head.chunk
    item.head.chunk = item.head.direct_fn
    add_slot(item, &item.p, fmt, True, 0)
    add_slot(item, <void**>&item.g, fmt, False, 1)
    b.items[b.count] = item
    b.count += 1
    b.offsets[b.count] = b.offsets[b.count - 1] + n[0]
    return item


cdef inline int batch_state(Batch b, void** field, object arr, Py_ssize_t n, Py_ssize_t name,
                            Py_ssize_t k) except -1:
    """Check tensor k's state array ``b.names[name]`` (``batch_data``: written, of the param's size) and
    set the current item's ``field`` to its data. Its format is the param's, or (``state_dtype``)
    float32 for a 16-bit param, or bfloat16 for a float32 or float16 one."""
    cdef WorkHead* h = <WorkHead*>b.items[b.count - 1]
    if type(arr) is Quantized:
        return batch_quantized(b, h, field, <Quantized>arr, n, name, k)
    cdef int fmt = b.format_of(arr), param = h.format
    if not (fmt == FO_F32 and (param == FO_BF16 or param == FO_F16)
            or fmt == FO_BF16 and (param == FO_F32 or param == FO_F16)):
        fmt = param
    field[0] = batch_data(b, arr, fmt, n, True, name, k)
    return add_slot(h, field, fmt, True, <int>name)


cdef inline int record_span(Batch b, const void* ptr, Py_ssize_t nbytes, Py_ssize_t name, Py_ssize_t k) except -1:
    """Record bytes a call writes, for the overlap check."""
    cdef Span* s
    if nbytes:
        if b.nspans == b.span_capacity:
            raise AssertionError("fastopt build error: more arrays in one call than its batch's spans")
        s = &b.spans[b.nspans]
        s.lo, s.hi = <const char*>ptr, <const char*>ptr + nbytes
        s.name, s.k, s.write = name, k, True
        b.nspans += 1
    return 0


cdef inline int batch_quantized(Batch b, WorkHead* h, void** field, Quantized q, Py_ssize_t n, Py_ssize_t name,
                                Py_ssize_t k) except -1:
    """``batch_state`` for quantized state: its codes and absmax (checked when it was made) for a
    float32 or 16-bit param of its size; the item is aligned (``WorkHead.align``)."""
    if h.format == FO_F64 or q.size != n:
        what = b.names[name] if k < 0 or not b.indexed else f"{b.names[name]}[{k}]"
        raise ValueError(f"{what} is {q.format} state of {q.size} elements; expected the size of its param "
                         f"({n}), which must be float32, bfloat16 or float16")
    field[0] = cnp.PyArray_DATA(<cnp.ndarray>q.codes)  # (Quantized checked both arrays when it was made)
    record_span(b, field[0], cnp.PyArray_SIZE(<cnp.ndarray>q.codes), name, k)
    record_span(b, cnp.PyArray_DATA(<cnp.ndarray>q.absmax), 4 * cnp.PyArray_SIZE(<cnp.ndarray>q.absmax), name, k)
    add_slot(h, field, FO_Q8 if q.bits == 8 else FO_Q4, True, <int>name)
    h.slot_aux[h.nslots - 1] = cnp.PyArray_DATA(<cnp.ndarray>q.absmax)
    h.slot_table[h.nslots - 1] = cnp.PyArray_DATA(<cnp.ndarray>q.table)
    h.align = True
    return 0


# -- arrays -----------------------------------------------------------------------------------------

cdef inline double bump(void* counter, int single) noexcept nogil:
    """Increment a step counter in its own dtype (a float32 step freezes at 2^24, as torch's); returns
    the new value."""
    if single:
        (<float*>counter)[0] = (<float*>counter)[0] + 1
        return (<float*>counter)[0]
    (<double*>counter)[0] = (<double*>counter)[0] + 1
    return (<double*>counter)[0]


cdef inline double counter_get(void* counter, int single) noexcept nogil:
    """A 1-element scalar state entry (float32 if ``single``), widened to double."""
    return (<float*>counter)[0] if single else (<double*>counter)[0]


cdef inline void counter_set(void* counter, int single, double value) noexcept nogil:
    """Store ``value`` in a 1-element scalar state entry, rounded to float32 if ``single``."""
    if single:
        (<float*>counter)[0] = <float>value
    else:
        (<double*>counter)[0] = value


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


cdef inline floating div_fixed(floating a, floating s, floating inv_s) noexcept nogil:
    """``a / s``, bit for bit, for a divisor fixed over the loop (``inv_s``: ``<floating>1 / s``, in
    the math's precision) and a quotient that cannot be subnormal or overflow (the caller's to show):
    one division less per element where the CPU has FMA (_util.pxd's C block)."""
    if floating is float:
        return fo_div_fixed_f(a, s, inv_s)
    else:
        return fo_div_fixed_d(a, s, inv_s)


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
