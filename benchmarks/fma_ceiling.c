/* This machine's float32 FMA ceiling: what its cores can do at most, with no memory traffic.

     gcc -O3 -march=native -pthread -o /tmp/fma_ceiling benchmarks/fma_ceiling.c && /tmp/fma_ceiling

   Each thread runs 12 independent chains of fused multiply-adds on 64-byte vectors
   (enough chains to cover the FMA latency), so the rate is the FMA units' throughput at
   the clock the cores run at. A convolution cannot execute FLOPs faster than this, so a
   conv rate above it means its FLOP count includes work that is not done (RESULTS.md:
   the taps over zero padding). Prints GFLOP/s (2 FLOPs per FMA) for 1..N threads.
*/
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef float vec __attribute__((vector_size(64)));  /* 16 floats */
enum { CHAINS = 12, LANES = 16 };
static const long ROUNDS = 100000000L;                /* FMAs per chain */
static volatile float sink;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *chains(void *unused) {
  (void)unused;
  vec acc[CHAINS], mul, add;
  for (int j = 0; j < LANES; j++) { mul[j] = 0.999999f; add[j] = 1e-7f; }
  for (int i = 0; i < CHAINS; i++)
    for (int j = 0; j < LANES; j++) acc[i][j] = 1.0f + i;
  for (long r = 0; r < ROUNDS; r++)
    for (int i = 0; i < CHAINS; i++) acc[i] = acc[i] * mul + add;
  float total = 0;
  for (int i = 0; i < CHAINS; i++)
    for (int j = 0; j < LANES; j++) total += acc[i][j];
  sink = total;
  return NULL;
}

int main(int argc, char **argv) {
  long cpus = argc > 1 ? atol(argv[1]) : sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1 || cpus > 256) {
    fprintf(stderr, "fma_ceiling: threads must be 1..256, got %s\n", argv[1]);
    return 2;
  }
  pthread_t threads[256];
  for (long n = 1; n <= cpus; n++) {
    double start = now();
    for (long t = 0; t < n; t++) pthread_create(&threads[t], NULL, chains, NULL);
    for (long t = 0; t < n; t++) pthread_join(threads[t], NULL);
    double seconds = now() - start;
    double flops = 2.0 * LANES * CHAINS * ROUNDS * n;
    printf("threads %ld: %.1f GFLOP/s (%.2f s)\n", n, flops / seconds / 1e9, seconds);
  }
  return 0;
}
