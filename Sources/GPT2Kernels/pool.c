// The CPU engine's fork-join pool (Sources/GPT2/Backend/Parallel.swift drives it).
// Why not GCD's concurrentPerform: dispatch_apply queues one helper block per worker and the
// caller waits until every helper has *run*, even one that arrives after all iterations are done.
// A training step has ~400 such joins; on a shared machine each late wake-up costs up to a
// scheduler slice, which is what made step times swing. Here iterations are claimed from one
// atomic counter tagged with the job's generation, so a worker that wakes late finds nothing to
// do and is not waited for: the caller waits only for iterations that were actually started.
// Workers spin briefly between jobs (back-to-back kernels pay no wake-up), then sleep.
#include "GPT2Kernels.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define MAX_WORKERS 255
#define SPIN_NS 50000   // how long a worker (or the waiting caller) spins before sleeping

static pthread_mutex_t pool_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;    // workers: a new job
static pthread_cond_t pool_done = PTHREAD_COND_INITIALIZER;    // caller: the job is complete
static int pool_workers;                                        // started workers
static atomic_int pool_busy;                                    // a job is being run (one at a time)
static atomic_uint pool_generation;                             // bumped per job
static _Atomic uint64_t pool_claim;                             // generation << 32 | next iteration
static atomic_long pool_finished;                               // iterations finished in this job
static atomic_int pool_sleepers;                                // workers blocked on pool_wake
static atomic_int pool_caller_sleeping;
static gpt2k_pool_fn job_fn;                                    // valid while the generation matches
static void *job_ctx;
static long job_n;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

/// Claims and runs iterations of job `gen` until none is left (or a newer job replaced it).
static void run_iterations(unsigned gen) {
    for (;;) {
        uint64_t c = atomic_load_explicit(&pool_claim, memory_order_acquire);
        if ((unsigned)(c >> 32) != gen) return;
        long i = (long)(c & 0xFFFFFFFFu);
        gpt2k_pool_fn fn = job_fn;   // read before the claim: unchanged while iteration i is unclaimed
        void *ctx = job_ctx;
        long n = job_n;
        if (i >= n) return;
        if (!atomic_compare_exchange_weak_explicit(&pool_claim, &c, c + 1, memory_order_acq_rel, memory_order_relaxed)) continue;
        fn(ctx, i);
        // seq_cst pairs with the caller's flag store and re-check (no lost wake-up)
        if (atomic_fetch_add(&pool_finished, 1) + 1 == n && atomic_load(&pool_caller_sleeping)) {
            pthread_mutex_lock(&pool_mutex);
            pthread_cond_signal(&pool_done);
            pthread_mutex_unlock(&pool_mutex);
        }
    }
}

static void *worker_main(void *arg) {
    (void)arg;
    unsigned seen = atomic_load_explicit(&pool_generation, memory_order_acquire);
    for (;;) {
        unsigned g = atomic_load_explicit(&pool_generation, memory_order_acquire);
        if (g == seen) {
            uint64_t until = now_ns() + SPIN_NS;
            while ((g = atomic_load_explicit(&pool_generation, memory_order_acquire)) == seen && now_ns() < until)
                for (int k = 0; k < 32; k++) cpu_relax();
            if (g == seen) {
                pthread_mutex_lock(&pool_mutex);
                atomic_fetch_add(&pool_sleepers, 1);   // seq_cst: pairs with the caller's generation store
                while ((g = atomic_load(&pool_generation)) == seen)
                    pthread_cond_wait(&pool_wake, &pool_mutex);
                atomic_fetch_sub(&pool_sleepers, 1);
                pthread_mutex_unlock(&pool_mutex);
            }
        }
        seen = g;
        run_iterations(g);
    }
    return NULL;
}

int gpt2k_pool_run(int threads, long n, gpt2k_pool_fn fn, void *ctx) {
    if (n <= 0) return 0;
    if (n > 0xFFFFFFFFL || threads < 2) return -1;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&pool_busy, &expected, 1)) return -1;   // nested or concurrent: caller falls back
    int want = threads - 1 > MAX_WORKERS ? MAX_WORKERS : threads - 1;
    if (pool_workers < want) {
        pthread_mutex_lock(&pool_mutex);
        while (pool_workers < want) {
            pthread_t t;
            pthread_attr_t attr;
            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            int rc = pthread_create(&t, &attr, worker_main, NULL);
            pthread_attr_destroy(&attr);
            if (rc != 0) break;
            pool_workers++;
        }
        pthread_mutex_unlock(&pool_mutex);
        if (pool_workers == 0) { atomic_store(&pool_busy, 0); return -1; }
    }
    // Publish the job: fields first, then the claim word and generation (release).
    unsigned gen = atomic_load_explicit(&pool_generation, memory_order_relaxed) + 1;
    job_fn = fn;
    job_ctx = ctx;
    job_n = n;
    atomic_store_explicit(&pool_finished, 0, memory_order_relaxed);
    atomic_store_explicit(&pool_claim, (uint64_t)gen << 32, memory_order_release);
    atomic_store(&pool_generation, gen);   // seq_cst, then read sleepers: a sleeping worker is woken
    if (atomic_load(&pool_sleepers) > 0) {
        pthread_mutex_lock(&pool_mutex);
        pthread_cond_broadcast(&pool_wake);
        pthread_mutex_unlock(&pool_mutex);
    }
    run_iterations(gen);
    // Wait only for iterations other threads started: spin a little, then sleep.
    uint64_t until = now_ns() + SPIN_NS;
    while (atomic_load_explicit(&pool_finished, memory_order_acquire) < n && now_ns() < until)
        for (int k = 0; k < 32; k++) cpu_relax();
    if (atomic_load_explicit(&pool_finished, memory_order_acquire) < n) {
        pthread_mutex_lock(&pool_mutex);
        atomic_store(&pool_caller_sleeping, 1);   // seq_cst: pairs with the finisher's increment
        while (atomic_load(&pool_finished) < n) pthread_cond_wait(&pool_done, &pool_mutex);
        atomic_store_explicit(&pool_caller_sleeping, 0, memory_order_relaxed);
        pthread_mutex_unlock(&pool_mutex);
    }
    atomic_store_explicit(&pool_busy, 0, memory_order_release);
    return 0;
}
