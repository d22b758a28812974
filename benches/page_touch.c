/* The floor under a lazy randperm's time: writing N bytes of fresh anonymous memory once.
 *
 * mmap, optionally MADV_HUGEPAGE, then T threads each write their contiguous part in order (the
 * first touch of every page is by the thread that writes it, as in the lazy fill). Prints the
 * wall, user and kernel times and the /proc/vmstat counters that tell small-page faults,
 * huge-page faults and compaction apart. Run both ways alternately, a few seconds apart:
 *
 *     cc -O2 -pthread -o /tmp/page_touch benches/page_touch.c
 *     for i in 1 2 3; do for h in 0 1; do sleep 8; /tmp/page_touch 4e9 2 $h; done; done
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

static char *buf;
static size_t total;
static int threads;

static void *work(void *arg) {
  size_t t = (size_t)arg, part = total / threads / 4 * 4;
  size_t end = t + 1 == (size_t)threads ? total / 4 * 4 : (t + 1) * part;
  uint32_t *p = (uint32_t *)(buf + t * part), *e = (uint32_t *)(buf + end);
  uint32_t v = 0;
  for (; p < e; p++) *p = v++;
  return NULL;
}

static long vmstat(const char *key) {
  FILE *f = fopen("/proc/vmstat", "r");
  char k[128];
  long v, r = -1;
  if (!f) return -1;
  while (fscanf(f, "%127s %ld", k, &v) == 2)
    if (!strcmp(k, key)) { r = v; break; }
  fclose(f);
  return r;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double seconds(struct timeval a, struct timeval b) {
  return (b.tv_sec - a.tv_sec) + (b.tv_usec - a.tv_usec) * 1e-6;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s BYTES THREADS HUGE(0|1)\n", argv[0]);
    return 2;
  }
  total = (size_t)atof(argv[1]);
  threads = atoi(argv[2]);
  int huge = atoi(argv[3]);
  if (threads < 1 || threads > 64) return 2;
  const char *keys[] = {"pgfault", "thp_fault_alloc", "thp_fault_fallback", "compact_stall"};
  long before[4];
  for (int i = 0; i < 4; i++) before[i] = vmstat(keys[i]);
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  double t0 = now();
  buf = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (buf == MAP_FAILED) { perror("mmap"); return 1; }
  if (huge) madvise(buf, total, MADV_HUGEPAGE);
  pthread_t tid[64];
  for (long t = 0; t < threads; t++) pthread_create(&tid[t], NULL, work, (void *)t);
  for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
  double wall = now() - t0;
  getrusage(RUSAGE_SELF, &r1);
  printf("write %.2f GB fresh, %d threads, MADV_HUGEPAGE %d: wall %.2f s, user %.2f s, sys %.2f s",
         total / 1e9, threads, huge, wall, seconds(r0.ru_utime, r1.ru_utime),
         seconds(r0.ru_stime, r1.ru_stime));
  for (int i = 0; i < 4; i++) printf(", %s %+ld", keys[i], vmstat(keys[i]) - before[i]);
  printf("\n");
  munmap(buf, total);
  return 0;
}
