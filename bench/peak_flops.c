// Measures the machine's fp32 FMA peak: each thread runs 12 independent chains of 16-lane AVX-512 FMAs
// (enough to cover FMA latency on two ports). Prints GFLOP/s for 1 and N threads.
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERS 200000000L / 16

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *run(void *out) {
  __m512 a[12];
  __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
  for (long it = 0; it < ITERS; it++) {
    for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
  }
  float s = 0;
  for (int i = 0; i < 12; i++) s += _mm512_reduce_add_ps(a[i]);
  *(float *)out = s;
  return NULL;
}

int main(int argc, char **argv) {
  int maxThreads = argc > 1 ? atoi(argv[1]) : 2;
  for (int n = 1; n <= maxThreads; n *= 2) {
    pthread_t th[64];
    float sink[64];
    double t0 = now();
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, run, &sink[i]);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    double dt = now() - t0;
    double flops = (double)ITERS * 12 * 16 * 2 * n;
    printf("{\"threads\": %d, \"gflops\": %.1f, \"sink\": %g}\n", n, flops / dt / 1e9, (double)sink[0]);
  }
  return 0;
}
