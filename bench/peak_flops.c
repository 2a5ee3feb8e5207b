// Measures the machine's fp32 FMA peak: each thread runs 12 independent accumulator chains of vector FMAs
// (AVX-512 when the compiler targets it, else AVX2), held in registers, enough to cover FMA latency on two
// pipes. Prints one JSON line per thread count (1, 2, 4, … up to argv[1]) with the GFLOP/s achieved.
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef __AVX512F__
typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
static float hsum(vec v) { return _mm512_reduce_add_ps(v); }
#else
typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
static float hsum(vec v) {
  float t[8];
  _mm256_storeu_ps(t, v);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}
#endif

#define ITERS 20000000L

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *run(void *out) {
  vec b = SET1(0.999999f), c = SET1(1e-7f);
  vec a0 = SET1(0), a1 = SET1(1), a2 = SET1(2), a3 = SET1(3), a4 = SET1(4), a5 = SET1(5);
  vec a6 = SET1(6), a7 = SET1(7), a8 = SET1(8), a9 = SET1(9), a10 = SET1(10), a11 = SET1(11);
  for (long it = 0; it < ITERS; it++) {
    a0 = FMA(a0, b, c); a1 = FMA(a1, b, c); a2 = FMA(a2, b, c); a3 = FMA(a3, b, c);
    a4 = FMA(a4, b, c); a5 = FMA(a5, b, c); a6 = FMA(a6, b, c); a7 = FMA(a7, b, c);
    a8 = FMA(a8, b, c); a9 = FMA(a9, b, c); a10 = FMA(a10, b, c); a11 = FMA(a11, b, c);
  }
  vec s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));
  s = ADD(s, ADD(ADD(a8, a9), ADD(a10, a11)));
  *(float *)out = hsum(s);
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
    double flops = (double)ITERS * 12 * LANES * 2 * n;
    printf("{\"threads\": %d, \"lanes\": %d, \"gflops\": %.1f, \"sink\": %g}\n", n, LANES, flops / dt / 1e9, (double)sink[0]);
  }
  return 0;
}
