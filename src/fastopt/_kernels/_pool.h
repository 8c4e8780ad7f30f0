/* fastopt's thread pool: the executor of every kernel call (included by _runtime.pyx only).
 *
 * A call is a list of work items; item k covers elements [offsets[k], offsets[k+1]) of the concatenation
 * of all items, and starts with an fo_head naming the function that updates a range of its elements.
 * Large calls are cut into fixed chunks of whole 4096-element blocks that threads claim one at a time:
 *
 *   - the calling thread works too: it publishes the job, wakes the helpers and claims chunks itself;
 *   - a helper that has not woken yet claims nothing, and the caller does not wait for it: it waits only
 *     for chunks that a helper has already claimed (and is running);
 *   - every element is computed by the same code whichever thread runs its chunk, so results are
 *     bit-identical for any thread count and any interleaving.
 *
 * Claims are one compare-and-swap on a 64-bit word, (generation << 32) | chunks left (handed out from the
 * last chunk down). A claim names its job's generation, so a helper that wakes late can never run a
 * chunk of the next job with the previous job's pointers: a successful claim also pins the job, which
 * cannot finish (and be replaced) before that chunk is counted done.
 *
 * fork: the pool's threads do not exist in a child. An atfork handler resets the pool in the child, which
 * starts new helpers on its first threaded call (GNU libgomp would hang there instead).
 *
 * A foreign OpenMP team (fo_use_omp: the runtime of the framework in the process, torch's for
 * fastopt.torch) can run a job instead of the helpers: its members claim the same chunks, so the bits are
 * the same. Right after the framework's own parallel work its threads are still spinning, on cores a
 * helper would have to share with them. But the caller waits for every member: for chunks a member the
 * OS stopped running holds, and at the team's end barrier for members that have not run yet (a busy
 * machine); when that kept the caller waiting, the next calls run on the helpers for a while.
 *
 * Waiting: helpers sleep on a condition variable between jobs (after a very short spin), so an idle
 * pool costs nothing and a helper woken on a busy machine is placed as a sleeper. The caller never
 * sleeps: once every chunk is claimed it spins for the few still running in helpers, yielding its CPU
 * after a while (a helper may be queued behind it on the same core). A sleeping caller would be woken on
 * a core that a busy process holds, and wait for that process's time slice: milliseconds.
 */
#ifndef FASTOPT_POOL_H
#define FASTOPT_POOL_H

#include <stdint.h>
#include <string.h>

#if defined(_WIN32)
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  include <windows.h>
#  include <process.h>
#else
#  include <pthread.h>
#  include <sched.h>
#  include <time.h>
#endif

typedef void (*fo_chunk_fn)(void* work, Py_ssize_t lo, Py_ssize_t hi);
/* A foreign OpenMP runtime's entry points (GNU libgomp's ABI, which LLVM's libomp and Intel's libiomp5
   also export): GOMP_parallel runs fn(data) on a team of num_threads threads, the caller being thread 0,
   and returns when every member has returned from fn. */
typedef void (*fo_omp_parallel_fn)(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);
typedef int (*fo_omp_thread_num_fn)(void);
typedef void (*fo_prologue_fn)(void* work);

/* Every work item starts with this header. */
typedef struct {
    fo_chunk_fn chunk;        /* updates elements [lo, hi) of this item */
    fo_prologue_fn prologue;  /* once per call, before any chunk (step counters, step scalars), or NULL */
} fo_head;

#define FO_BLOCK 4096             /* chunk boundaries: multiples of 4096 elements (64-byte aligned, and a
                                     reduction keeps per-block partials that one thread computes whole) */
#define FO_CHUNK_MIN 4096         /* elements */
#define FO_CHUNK_MAX 65536
#define FO_CHUNKS_PER_THREAD 16
#define FO_MAX_THREADS 256
#define FO_SPIN 2048              /* pause iterations (tens of us) a helper spins for the next job before
                                     sleeping: back-to-back steps find it awake; spinning much longer
                                     slowed the other thread on these VMs */
#define FO_WAIT_SPIN 4096         /* pause iterations the caller spins before it starts yielding */
#define FO_OMP_LATE_NS 200000     /* an OpenMP team whose members kept the caller waiting this long (plus
                                     two of its chunk times) once it had no chunk left to claim (members
                                     the OS was not running: a busy machine) ... */
#define FO_OMP_LATE_OF_8 3        /* ... in this many of its last 8 calls (measured, Adam float32 1e6 on
                                     2 cores: 3% of the calls were late with light other work, one process
                                     busy 30% of a core; 22-51% with one CPU-bound process per core) ... */
#define FO_OMP_PAUSE 16           /* ... is not used for this many calls (fastopt's pool runs them) */

/* -- atomics ----------------------------------------------------------------------------------------- */
#if defined(_MSC_VER) && !defined(__clang__)
typedef volatile LONG64 fo_atomic;
static __forceinline int64_t fo_load(fo_atomic* p) { return InterlockedCompareExchange64(p, 0, 0); }
static __forceinline void fo_store(fo_atomic* p, int64_t v) { InterlockedExchange64(p, v); }
static __forceinline int fo_cas(fo_atomic* p, int64_t expected, int64_t desired) {
    return InterlockedCompareExchange64(p, desired, expected) == expected;
}
static __forceinline int64_t fo_add(fo_atomic* p, int64_t v) { return InterlockedExchangeAdd64(p, v); }
#  define fo_pause() YieldProcessor()
#else
typedef int64_t fo_atomic;
static inline int64_t fo_load(fo_atomic* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void fo_store(fo_atomic* p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline int fo_cas(fo_atomic* p, int64_t expected, int64_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
static inline int64_t fo_add(fo_atomic* p, int64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_ACQ_REL); }
#  if defined(__x86_64__) || defined(__i386__)
#    define fo_pause() __builtin_ia32_pause()
#  elif defined(__aarch64__) || defined(__arm__)
#    define fo_pause() __asm__ __volatile__("yield")
#  else
#    define fo_pause() ((void)0)
#  endif
#endif

/* -- mutex, condition variable, thread ----------------------------------------------------------------- */
#if defined(_WIN32)
typedef SRWLOCK fo_mutex;
typedef CONDITION_VARIABLE fo_cond;
static void fo_mutex_init(fo_mutex* m) { InitializeSRWLock(m); }
static void fo_lock(fo_mutex* m) { AcquireSRWLockExclusive(m); }
static void fo_unlock(fo_mutex* m) { ReleaseSRWLockExclusive(m); }
static void fo_cond_init(fo_cond* c) { InitializeConditionVariable(c); }
static void fo_wait(fo_cond* c, fo_mutex* m) { SleepConditionVariableSRW(c, m, INFINITE, 0); }
static void fo_signal_all(fo_cond* c) { WakeAllConditionVariable(c); }
static void fo_yield(void) { SwitchToThread(); }
#else
typedef pthread_mutex_t fo_mutex;
typedef pthread_cond_t fo_cond;
static void fo_mutex_init(fo_mutex* m) { pthread_mutex_init(m, NULL); }
static void fo_lock(fo_mutex* m) { pthread_mutex_lock(m); }
static void fo_unlock(fo_mutex* m) { pthread_mutex_unlock(m); }
static void fo_cond_init(fo_cond* c) { pthread_cond_init(c, NULL); }
static void fo_wait(fo_cond* c, fo_mutex* m) { pthread_cond_wait(c, m); }
static void fo_signal_all(fo_cond* c) { pthread_cond_broadcast(c); }
static void fo_yield(void) { sched_yield(); }
#endif

/* -- the pool ------------------------------------------------------------------------------------------- */
typedef struct {
    /* The job: written by the submitter before it publishes `claim`; read by a helper only after a
       successful claim (which pins the job until that chunk is counted in `done`). */
    void** items;
    const Py_ssize_t* offsets;
    Py_ssize_t count, total, chunk, nchunks;
    fo_atomic claim;          /* (generation << 32) | chunks not yet handed out */
    fo_atomic done;           /* chunks finished in this job */
    fo_atomic want;           /* helpers asked to work (n_threads - 1): helper i works if i < want */
    fo_atomic busy;           /* 1 while a submitter owns the pool; a second submitter runs serially */
    /* under `lock` */
    fo_mutex lock;
    fo_cond wake;             /* helpers sleep here between jobs */
    uint32_t generation;
    int helpers;              /* threads started */
    int sleepers;
    /* statistics (fastopt._kernels._runtime.pool_stats) */
    fo_atomic jobs;           /* calls run on more than one thread */
    fo_atomic serial;         /* calls that asked for threads but ran on the caller (pool busy) */
    fo_atomic helper_chunks;  /* chunks run by helpers */
    fo_atomic omp_jobs;       /* calls run on the foreign OpenMP team */
    fo_atomic omp_fallbacks;  /* times a team kept the caller waiting (FO_OMP_LATE_NS) in
                                 FO_OMP_LATE_OF_8 of its last 8 calls: the next FO_OMP_PAUSE calls that
                                 asked for it ran on fastopt's pool */
    int omp_pause;            /* calls left to run on fastopt's pool (under `busy`) */
    unsigned omp_late;        /* the team's last 8 calls, a bit each, 1 if late (under `busy`) */
    fo_atomic omp_lates;      /* team calls that kept the caller waiting (FO_OMP_LATE_NS) */
    /* the OpenMP runtime of the framework in the process (fo_use_omp), or NULL; never inherited by a
       forked child (fo_reset), where that runtime's threads are gone */
    fo_omp_parallel_fn omp_parallel;
    fo_omp_thread_num_fn omp_thread_num;
} fo_pool;

static fo_pool fo_P;

static void fo_reset(void) {
    /* A new process image (first use, or the child of a fork: the parent's helpers are gone and the
       lock may have been held by one of them). */
    memset(&fo_P, 0, sizeof(fo_P));
    fo_mutex_init(&fo_P.lock);
    fo_cond_init(&fo_P.wake);
}

/* Run elements [lo, hi) of the concatenation of `count` items. */
static void fo_run_range(void** items, const Py_ssize_t* offsets, Py_ssize_t count, Py_ssize_t lo,
                         Py_ssize_t hi) {
    Py_ssize_t left = 0, right = count, mid, k, a, b;
    while (left < right) {  /* the first item that ends after lo */
        mid = left + (right - left) / 2;
        if (offsets[mid + 1] <= lo) left = mid + 1; else right = mid;
    }
    for (k = left; k < count && offsets[k] < hi; k++) {
        a = (lo > offsets[k] ? lo : offsets[k]) - offsets[k];
        b = (hi < offsets[k + 1] ? hi : offsets[k + 1]) - offsets[k];
        if (b > a) ((fo_head*)items[k])->chunk(items[k], a, b);
    }
}

static int64_t fo_now_ns(void);

/* Claim and run chunks of job `generation` until none are left. `fastest`, if not NULL: the shortest
   time this thread took for one of its chunks (left as it is if it ran none). */
static void fo_work(uint32_t generation, int helper, int64_t* fastest) {
    int64_t start = fastest ? fo_now_ns() : 0, end;
    for (;;) {
        int64_t c = fo_load(&fo_P.claim);
        if ((uint32_t)((uint64_t)c >> 32) != generation || (c & 0xffffffff) == 0) return;
        if (!fo_cas(&fo_P.claim, c, c - 1)) continue;
        /* chunk (left - 1) is ours, and the job stays put until we count it done */
        Py_ssize_t index = fo_P.nchunks - (Py_ssize_t)(c & 0xffffffff);  /* in order */
        Py_ssize_t lo = index * fo_P.chunk, hi = lo + fo_P.chunk;
        if (hi > fo_P.total) hi = fo_P.total;
        fo_run_range(fo_P.items, fo_P.offsets, fo_P.count, lo, hi);
        if (fastest) {
            end = fo_now_ns();
            if (end - start < *fastest) *fastest = end - start;
            start = end;
        }
        if (helper) fo_add(&fo_P.helper_chunks, 1);
        fo_add(&fo_P.done, 1);  /* after this the job may be gone: touch nothing of it */
    }
}

static void fo_helper_loop(int id) {
    uint32_t seen;
    int i;
    fo_lock(&fo_P.lock);
    seen = fo_P.generation - 1;  /* the job this helper was started for, if it is still open */
    for (;;) {
        while (fo_P.generation == seen) {
            fo_P.sleepers++;
            fo_wait(&fo_P.wake, &fo_P.lock);
            fo_P.sleepers--;
        }
        seen = fo_P.generation;
        fo_unlock(&fo_P.lock);
        for (;;) {
            if (id < fo_load(&fo_P.want)) fo_work(seen, 1, NULL);
            /* a short spin: back-to-back calls (one per parameter group, or a tight training loop) find
               the helper awake */
            for (i = 0; i < FO_SPIN; i++) {
                if ((uint32_t)((uint64_t)fo_load(&fo_P.claim) >> 32) != seen) break;
                fo_pause();
            }
            if (i == FO_SPIN) break;
            seen = (uint32_t)((uint64_t)fo_load(&fo_P.claim) >> 32);
        }
        fo_lock(&fo_P.lock);  /* a job published since `seen` is taken at the top of the loop */
    }
}

#if defined(_WIN32)
static unsigned __stdcall fo_helper_main(void* arg) { fo_helper_loop((int)(intptr_t)arg); return 0; }
static int fo_start_thread(int id) {
    uintptr_t h = _beginthreadex(NULL, 0, fo_helper_main, (void*)(intptr_t)id, 0, NULL);
    if (h == 0) return 0;
    CloseHandle((HANDLE)h);
    return 1;
}
#else
static void* fo_helper_main(void* arg) { fo_helper_loop((int)(intptr_t)arg); return NULL; }
static int fo_start_thread(int id) {
    pthread_t thread;
    pthread_attr_t attr;
    int ok;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    ok = pthread_create(&thread, &attr, fo_helper_main, (void*)(intptr_t)id) == 0;
    pthread_attr_destroy(&attr);
    return ok;
}
static void fo_atfork_child(void) { fo_reset(); }
#endif

static int fo_initialized = 0;

static void fo_init(void) {
    if (fo_initialized) return;
    fo_initialized = 1;
    fo_reset();
#if !defined(_WIN32)
    pthread_atfork(NULL, NULL, fo_atfork_child);
#endif
}

/* Start helpers until there are `wanted` (or thread creation fails); returns how many there are. */
static int fo_ensure_helpers(int wanted) {
    fo_lock(&fo_P.lock);
    while (fo_P.helpers < wanted && fo_start_thread(fo_P.helpers)) fo_P.helpers++;
    wanted = fo_P.helpers < wanted ? fo_P.helpers : wanted;
    fo_unlock(&fo_P.lock);
    return wanted;
}

static int64_t fo_now_ns(void) {
#if defined(_WIN32)
    LARGE_INTEGER t, f;
    QueryPerformanceCounter(&t);
    QueryPerformanceFrequency(&f);
    return (int64_t)((double)t.QuadPart * 1e9 / (double)f.QuadPart);
#else
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
#endif
}

typedef struct {
    uint32_t generation;
    int64_t begun;   /* when the caller (the team's thread 0) entered the body */
    int64_t idle;    /* when the caller had no chunk left to claim */
    int64_t chunk;   /* the caller's fastest chunk (its slower ones may include time the OS took it off) */
} fo_omp_job;

/* The body a foreign OpenMP team runs: every member claims chunks of the job until none are left. The
   caller notes when it began, when it ran out of chunks to claim and its fastest chunk: fo_run compares
   them with how long the team kept it before (a team starts when its members from the last call are
   back: GNU libgomp's dock) and after (chunks still running in members, members that had not run). */
static void fo_omp_body(void* data) {
    fo_omp_job* job = (fo_omp_job*)data;
    if (fo_P.omp_thread_num() != 0) {
        fo_work(job->generation, 1, NULL);
        return;
    }
    job->begun = fo_now_ns();
    job->chunk = INT64_MAX;
    fo_work(job->generation, 0, &job->chunk);
    job->idle = fo_now_ns();
    if (job->chunk == INT64_MAX) job->chunk = 0;
}

/* Use the OpenMP runtime whose entry points these are for calls that ask for it (fo_run's `omp`), from
   the next call on (no pause); NULLs stop using it. Waits for a running call to end. */
static void fo_use_omp(fo_omp_parallel_fn parallel, fo_omp_thread_num_fn thread_num) {
    while (!fo_cas(&fo_P.busy, 0, 1)) fo_yield();
    fo_P.omp_parallel = parallel && thread_num ? parallel : NULL;
    fo_P.omp_thread_num = parallel && thread_num ? thread_num : NULL;
    fo_P.omp_pause = fo_P.omp_late = 0;
    fo_store(&fo_P.busy, 0);
}

/* Run every element of `count` items with up to n_threads threads (the caller included). `parallel_min`:
   elements below which a call stays on the caller, and the least each thread is given. `omp`: run on the
   OpenMP team of fo_use_omp, if one is set (the threads a framework keeps hot between its own parallel
   regions), instead of fastopt's helpers. */
static void fo_run(void** items, const Py_ssize_t* offsets, Py_ssize_t count, int n_threads,
                   Py_ssize_t parallel_min, int omp) {
    Py_ssize_t total = offsets[count], chunk, nchunks;
    int helpers = n_threads - 1, spin;
    uint32_t generation;
    fo_omp_parallel_fn omp_parallel = NULL;
    if (total < parallel_min) helpers = 0;
    else if (helpers > total / (parallel_min / 2) - 1) helpers = (int)(total / (parallel_min / 2) - 1);
    if (helpers > FO_MAX_THREADS - 1) helpers = FO_MAX_THREADS - 1;
    if (helpers < 1) {
        fo_run_range(items, offsets, count, 0, total);
        return;
    }
    if (!fo_cas(&fo_P.busy, 0, 1)) {  /* another thread is using the pool: no waiting for it */
        fo_add(&fo_P.serial, 1);
        fo_run_range(items, offsets, count, 0, total);
        return;
    }
    if (omp && fo_P.omp_parallel) {
        if (fo_P.omp_pause > 0) fo_P.omp_pause--;  /* the team kept a recent call waiting */
        else omp_parallel = fo_P.omp_parallel;
    }
    if (omp_parallel == NULL) helpers = fo_ensure_helpers(helpers);
    if (helpers < 1) {
        fo_store(&fo_P.busy, 0);
        fo_run_range(items, offsets, count, 0, total);
        return;
    }
    chunk = total / ((Py_ssize_t)(helpers + 1) * FO_CHUNKS_PER_THREAD);
    if (chunk < FO_CHUNK_MIN) chunk = FO_CHUNK_MIN;
    if (chunk > FO_CHUNK_MAX) chunk = FO_CHUNK_MAX;
    if (chunk < total / 0x7fffffff + 1) chunk = total / 0x7fffffff + 1;  /* the count fits in 32 bits */
    chunk = (chunk + FO_BLOCK - 1) / FO_BLOCK * FO_BLOCK;
    nchunks = (total + chunk - 1) / chunk;

    fo_P.items = items;
    fo_P.offsets = offsets;
    fo_P.count = count;
    fo_P.total = total;
    fo_P.chunk = chunk;
    fo_P.nchunks = nchunks;
    fo_store(&fo_P.done, 0);
    fo_store(&fo_P.want, omp_parallel ? 0 : helpers);  /* fastopt's helpers sit out an OpenMP job */
    fo_add(omp_parallel ? &fo_P.omp_jobs : &fo_P.jobs, 1);
    fo_lock(&fo_P.lock);
    generation = ++fo_P.generation;
    fo_store(&fo_P.claim, (int64_t)(((uint64_t)generation << 32) | (uint64_t)nchunks));
    if (fo_P.sleepers && !omp_parallel) fo_signal_all(&fo_P.wake);
    fo_unlock(&fo_P.lock);

    if (omp_parallel) {
        /* the team's members claim chunks as the helpers do; the call returns when all have returned,
           also those that had not run before the last chunk was done: if they kept the caller waiting in
           several recent calls, use fastopt's pool (whose caller never waits for a helper that has not
           started) for a while */
        fo_omp_job job;
        int64_t enter = fo_now_ns();
        job.generation = generation;
        job.begun = job.idle = job.chunk = 0;
        omp_parallel(fo_omp_body, &job, (unsigned)(helpers + 1), 0);
        /* a member finishing a chunk it claimed costs the caller up to a chunk's time; more means
           members the OS was not running */
        int late = (job.begun - enter) + (fo_now_ns() - job.idle) > FO_OMP_LATE_NS + 2 * job.chunk, count = 0;
        unsigned bits;
        fo_P.omp_late = ((fo_P.omp_late << 1) | (unsigned)late) & 0xffu;
        for (bits = fo_P.omp_late; bits; bits &= bits - 1) count++;
        if (late) fo_add(&fo_P.omp_lates, 1);
        if (late && count >= FO_OMP_LATE_OF_8) {  /* the history stays: one more late call pauses again */
            fo_P.omp_pause = FO_OMP_PAUSE;
            fo_add(&fo_P.omp_fallbacks, 1);
        }
    } else {
        fo_work(generation, 0, NULL);  /* the caller works too */
    }

    /* every chunk is claimed: wait only for those still running in a helper */
    for (spin = 0; fo_load(&fo_P.done) != nchunks; spin++) {
        if (spin < FO_WAIT_SPIN) fo_pause(); else fo_yield();
    }
    fo_store(&fo_P.busy, 0);
}

#endif /* FASTOPT_POOL_H */
