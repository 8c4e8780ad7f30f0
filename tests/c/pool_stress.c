/* Stress test of fastopt's thread pool (fastopt/_kernels/_pool.h) on its own, built by
 * tests/test_runtime.py::test_pool_under_thread_sanitizer with -fsanitize=thread: several threads submit
 * jobs at once (a busy pool runs a second submitter's job on that submitter), with thread counts that
 * change from job to job and items of uneven sizes; every element must be updated exactly once per job.
 * Every other job runs on a stand-in OpenMP runtime (fo_use_omp: GOMP_parallel's contract, a team of
 * fresh pthreads per call) instead of the pool's helpers, as fastopt.torch's steps run on torch's team.
 * Then a team whose members start late: the caller waited for them in FO_OMP_LATE_OF_8 calls,
 * so the next FO_OMP_PAUSE calls run on the pool (omp_fallbacks), and the one after on the team again.
 * Prints the pool's counters; exits 1 on a wrong element or a wrong fallback. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
typedef ptrdiff_t Py_ssize_t;
#include "_pool.h"

typedef struct { fo_head head; float* p; } Work;

static void add_one(void* work, Py_ssize_t lo, Py_ssize_t hi) {
    float* p = ((Work*)work)->p;
    for (Py_ssize_t i = lo; i < hi; i++) p[i] += 1.0f;
}

/* the stand-in runtime: fn(data) on num_threads threads, the caller being thread 0 */
static __thread int team_thread_num;
static int member_delay_us;  /* how late the team's members start (0: at once) */

typedef struct { void (*fn)(void*); void* data; int id; } Member;

static void* member_main(void* arg) {
    Member* m = (Member*)arg;
    team_thread_num = m->id;
    if (member_delay_us) usleep(member_delay_us);
    m->fn(m->data);
    return NULL;
}

static void team_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags) {
    pthread_t threads[4];
    Member members[4];
    unsigned i, n = num_threads > 4 ? 4 : num_threads;
    (void)flags;
    for (i = 1; i < n; i++) {
        members[i].fn = fn, members[i].data = data, members[i].id = (int)i;
        pthread_create(&threads[i], NULL, member_main, &members[i]);
    }
    fn(data);
    for (i = 1; i < n; i++) pthread_join(threads[i], NULL);
}

static int team_thread(void) { return team_thread_num; }

#define N 200003
#define ROUNDS 200
#define SUBMITTERS 3

static void* submitter(void* arg) {
    float* data = calloc(N, sizeof(float));
    Py_ssize_t cut = 70001 + 16 * (Py_ssize_t)(intptr_t)arg;
    Work a = {{add_one, NULL}, data}, b = {{add_one, NULL}, data + cut};
    void* items[2] = {&a, &b};
    Py_ssize_t offsets[3] = {0, cut, N};
    for (int r = 0; r < ROUNDS; r++) fo_run(items, offsets, 2, 2 + r % 3, 32768, r % 2);
    for (Py_ssize_t i = 0; i < N; i++) {
        if (data[i] != (float)ROUNDS) {
            printf("element %zd: %f, expected %d\n", (size_t)i, data[i], ROUNDS);
            return (void*)1;
        }
    }
    free(data);
    return NULL;
}

int main(void) {
    pthread_t threads[SUBMITTERS];
    void* result;
    int bad = 0;
    fo_init();
    fo_use_omp(team_parallel, team_thread);
    for (int i = 0; i < SUBMITTERS; i++) pthread_create(&threads[i], NULL, submitter, (void*)(intptr_t)i);
    for (int i = 0; i < SUBMITTERS; i++) {
        pthread_join(threads[i], &result);
        bad |= result != NULL;
    }
    if (!bad) {  /* the late team, on one submitter */
        float* data = calloc(N, sizeof(float));
        Work a = {{add_one, NULL}, data};
        void* items[1] = {&a};
        memset(data, 0, N * sizeof(float));  /* its pages, now: a first touch would slow the caller's chunks */
        Py_ssize_t offsets[2] = {0, N};
        long long jobs, omp_jobs = fo_P.omp_jobs, fallbacks = fo_P.omp_fallbacks;
        fo_P.omp_pause = fo_P.omp_late = 0;  /* whatever the stress left */
        member_delay_us = 20000;
        for (int r = 0; r < FO_OMP_LATE_OF_8; r++) {  /* the caller waits ~20 ms for the member each time */
            bad |= fo_P.omp_fallbacks != fallbacks;  /* no fallback before the last of the late calls */
            fo_run(items, offsets, 1, 2, 32768, 1);
        }
        member_delay_us = 0;
        bad |= fo_P.omp_fallbacks != fallbacks + 1 || fo_P.omp_jobs != omp_jobs + FO_OMP_LATE_OF_8;
        omp_jobs = fo_P.omp_jobs;
        jobs = fo_P.jobs;
        for (int r = 0; r < FO_OMP_PAUSE; r++) fo_run(items, offsets, 1, 2, 32768, 1);  /* on the pool */
        bad |= fo_P.jobs != jobs + FO_OMP_PAUSE || fo_P.omp_jobs != omp_jobs;
        fo_run(items, offsets, 1, 2, 32768, 1);  /* on the team again */
        bad |= fo_P.omp_jobs != omp_jobs + 1;
        if (bad) printf("late team: fallbacks +%lld, omp_jobs %lld, jobs +%lld; expected +1, +%d\n",
                        (long long)(fo_P.omp_fallbacks - fallbacks), (long long)fo_P.omp_jobs, (long long)(fo_P.jobs - jobs), FO_OMP_PAUSE);
        for (Py_ssize_t i = 0; i < N; i++) bad |= data[i] != (float)(FO_OMP_LATE_OF_8 + FO_OMP_PAUSE + 1);
        free(data);
    }
    printf("jobs %lld omp_jobs %lld omp_fallbacks %lld serial %lld helper_chunks %lld helpers %d\n",
           (long long)fo_P.jobs, (long long)fo_P.omp_jobs, (long long)fo_P.omp_fallbacks, (long long)fo_P.serial,
           (long long)fo_P.helper_chunks, fo_P.helpers);
    return bad;
}
