# The runtime's C-level API for the kernel modules (cimported by each of them, in each ISA variant).
#
# A kernel call is two phases. ``*_batch`` checks every array of the call with the GIL held and records
# one work item per tensor in a ``Batch`` (which keeps a reference to every array it points into);
# ``run(batches, n_threads)`` then runs the items of one or more batches as one job on the thread pool.
# Nothing is written before every batch of a step has been built, so a rejected step changes nothing.

ctypedef void (*chunk_fn)(void* work, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil
ctypedef void (*prologue_fn)(void* work) noexcept nogil  # per item, before any chunk: step counters
# A rule with per-tensor reductions (LAMB's norms) runs in two passes: ``reduce`` set, the job's chunks run
# first with ``reading`` set (the rule reads and sums into per-block partials; nothing is stored), then
# each such item's ``reduce`` (after every chunk of the first pass, in item order: the norms and the
# ratio), then the chunks again with ``reading`` clear (the update).

cdef enum:
    # The most arrays of one work item that a staged chunk converts (_util.pxd's ``staged_chunk``), and
    # the largest work struct it copies, in 8-byte words.
    SLOTS = 8
    WORK_WORDS = 128

ctypedef struct WorkHead:
    # Every work struct starts with this (the pool reads it as its ``fo_head``).
    chunk_fn chunk
    prologue_fn prologue
    prologue_fn reduce          # a two-pass rule's step between its passes (NULL: one pass)
    bint reading                # the first of two passes: read and sum, store nothing
    Py_ssize_t origin           # where element 0 of the chunk's arrays is in the item (``staged_chunk``'s
                                # copies point at a block: a reduction's partials are by element index)
    # The formats (_formats.h) of the item's arrays: ``format`` is the param's. The rule's own chunk
    # (``inner``) runs on the arrays themselves (``direct_fn``: the chunk, or for a 16-bit item
    # _util.pxd's ``prefetched_chunk``, which prefetches each array ahead) or, for an item with arrays
    # in several formats, through ``staged_fn`` (``staged_chunk``: float32 copies of blocks); both are
    # the kernel module's own (its ISA variant). ``slot_offset``: where each array's pointer lies in the
    # work struct (``size`` bytes).
    chunk_fn inner
    chunk_fn direct_fn
    chunk_fn staged_fn
    Py_ssize_t size
    int format, nslots, staged
    # stochastic rounding of 16-bit stores (``run``): the item's hash key; each array's stream mixes in
    # its ``slot_salt`` (its argument's position in the kernel's names)
    bint stochastic
    unsigned int key
    int slot_offset[SLOTS]
    int slot_format[SLOTS]
    bint slot_write[SLOTS]
    int slot_salt[SLOTS]
    void* slot_aux[SLOTS]       # FO_SPLIT: the low halves; FO_MASTER: the 16-bit param; FO_Q8/Q4: absmax
    int slot_aux_format[SLOTS]  # FO_MASTER: the param's format
    const void* slot_table[SLOTS]  # FO_Q8/Q4: the map's fo_qtable
    bint align                  # quantized state: the item starts at a multiple of BLOCK in the job, so
                                # every chunk and staged block holds whole quantization blocks

cdef enum:
    # The job's elements (the items laid end to end) are cut into chunks of whole BLOCKs (_pool.h's
    # FO_BLOCK): a reduction may keep one partial per block piece, written by one thread.
    BLOCK = 4096

ctypedef struct ItemHead:
    # The start of every kernel's work struct: the header, the param's and the grad's data, and the
    # gradient scale that ``run`` sets for every item of a job (1, or a clip coefficient): the one place
    # an option that touches every rule enters the kernels (each folds it into the gradient's sign).
    WorkHead head
    void* p
    const void* g
    double grad_scale

ctypedef struct Span:
    # The bytes [lo, hi) of one array of a call, for the overlap check; named ``names[name][k]``
    # (or ``names[name]`` when k < 0).
    const char* lo
    const char* hi
    Py_ssize_t name
    Py_ssize_t k
    bint write

cdef class Batch:
    cdef char* works              # capacity work structs of ``size`` bytes
    cdef void** items             # the ones added, in order
    cdef Py_ssize_t* offsets      # element offsets of the items in the job (count + 1)
    cdef Span* spans
    cdef Py_ssize_t size, count, capacity, nspans, span_capacity
    cdef readonly tuple names     # the call's argument names, for messages: ("params", "grads", ...)
    cdef readonly tuple lists     # the per-tensor arguments as tuples: the references a run holds
    cdef bint indexed             # a group call (names[i][k]) or a single-tensor one (names[i] singular)
    cdef object held              # what ``attach`` added (kept alive with the batch)
    cdef int typenums[4]          # NumPy's type number of each format (_formats.h order; -1: unknown)
    cdef int format_of(self, object arr) noexcept
    cdef int _reject(self, object arr, int fmt, Py_ssize_t n, bint write, Py_ssize_t name,
                     Py_ssize_t k) except -1
    cdef int _reject_param(self, object param, Py_ssize_t k) except -1
    cpdef check_overlap(self)


cdef class Quantized:
    # Quantized state (state_dtype "q8"/"q4"): see _runtime.pyx.
    cdef readonly object codes, absmax, qmap, table
    cdef readonly Py_ssize_t size
    cdef readonly int bits, block_size
    cdef readonly bint is_signed
    cdef readonly tuple shape


cdef Batch new_batch(tuple names, tuple lists, Py_ssize_t required, Py_ssize_t size, bint indexed)
cpdef run(batches, n_threads=*, double grad_scale=*, rounding_seed=*)
cpdef run_openmp(batches, n_threads=*, double grad_scale=*, rounding_seed=*)
