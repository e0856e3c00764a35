// The least a user space can do with Retina's own packetparser program:
// load it, attach it where Retina attaches it, and drain its perf buffer,
// counting records and lost records. bench/e2e/run.py runs this for its
// retina-* cases, so the kernel side of Retina can be measured beside the
// whole retina agent on the same traffic.
//
//   perf_reader OBJECT STATS_FILE ENDPOINT_IFS [HOST_IF]
//
// ENDPOINT_IFS is a comma list of pod veths (host side); HOST_IF, if given,
// gets the host programs (Retina attaches there at aggregation low). Every
// 200 ms, and once more on SIGTERM/SIGINT after a last drain, STATS_FILE is
// replaced with "samples N\nlost N\nbytes N\n" (bytes: the packet sizes
// the records carry). The clsact qdiscs it made
// are removed on exit.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// Retina's perCPUBuffer: 32 pages a CPU.
#define PAGES_PER_CPU 32
#define MAX_IFS 16

struct counts {
  uint64_t samples;
  uint64_t lost;
  uint64_t bytes;  // sum of the packets' sizes the records carry
};

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

// Retina's struct packet starts with a __u64 timestamp and a __u32 size.
#define PACKET_BYTES_OFFSET 8

static void on_sample(void* ctx, int cpu, void* data, __u32 size) {
  (void)cpu;
  struct counts* c = ctx;
  c->samples++;
  if (size >= PACKET_BYTES_OFFSET + sizeof(uint32_t)) {
    uint32_t bytes;
    memcpy(&bytes, (const unsigned char*)data + PACKET_BYTES_OFFSET, sizeof(bytes));
    c->bytes += bytes;
  }
}

static void on_lost(void* ctx, int cpu, __u64 n) {
  (void)cpu;
  ((struct counts*)ctx)->lost += n;
}

static int write_stats(const char* path, const struct counts* c) {
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE* f = fopen(tmp, "w");
  if (!f) return -errno;
  fprintf(f, "samples %llu\nlost %llu\nbytes %llu\n", (unsigned long long)c->samples,
          (unsigned long long)c->lost, (unsigned long long)c->bytes);
  if (fclose(f) != 0) return -errno;
  return rename(tmp, path) == 0 ? 0 : -errno;
}

struct hook {
  struct bpf_tc_hook tc;
  int made;
};

static int attach(struct hook* h, const char* ifname, int ing_fd, int egr_fd) {
  int ifindex = (int)if_nametoindex(ifname);
  if (ifindex == 0) {
    fprintf(stderr, "perf_reader: no interface %s\n", ifname);
    return -ENODEV;
  }
  memset(&h->tc, 0, sizeof(h->tc));
  h->tc.sz = sizeof(h->tc);
  h->tc.ifindex = ifindex;
  h->tc.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
  int err = bpf_tc_hook_create(&h->tc);
  if (err && err != -EEXIST) {
    fprintf(stderr, "perf_reader: clsact on %s: %s\n", ifname, strerror(-err));
    return err;
  }
  h->made = 1;
  const int fds[2] = {ing_fd, egr_fd};
  const enum bpf_tc_attach_point points[2] = {BPF_TC_INGRESS, BPF_TC_EGRESS};
  for (int i = 0; i < 2; i++) {
    h->tc.attach_point = points[i];
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = fds[i], .priority = 1, .handle = 1);
    err = bpf_tc_attach(&h->tc, &opts);
    if (err) {
      fprintf(stderr, "perf_reader: attach on %s: %s\n", ifname, strerror(-err));
      return err;
    }
  }
  h->tc.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
  return 0;
}

static struct bpf_program* program(struct bpf_object* obj, const char* name) {
  struct bpf_program* p = bpf_object__find_program_by_name(obj, name);
  if (!p) fprintf(stderr, "perf_reader: the object has no program %s\n", name);
  return p;
}

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    fprintf(stderr, "usage: %s OBJECT STATS_FILE ENDPOINT_IFS [HOST_IF]\n", argv[0]);
    return 2;
  }
  const char* stats_path = argv[2];
  struct bpf_object* obj = bpf_object__open_file(argv[1], NULL);
  if (!obj) {
    fprintf(stderr, "perf_reader: open %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  // Retina pins its conntrack and filter maps; this run keeps them private.
  struct bpf_map* m;
  bpf_object__for_each_map(m, obj) bpf_map__set_pin_path(m, NULL);
  // Retina's section names ("classifier_endpoint_ingress", ...) are not
  // ones libbpf knows: say what the programs are.
  const char* names[4] = {"endpoint_ingress_filter", "endpoint_egress_filter", "host_ingress_filter",
                          "host_egress_filter"};
  struct bpf_program* progs[4];
  for (int i = 0; i < 4; i++) {
    progs[i] = program(obj, names[i]);
    if (!progs[i]) return 1;
    bpf_program__set_type(progs[i], BPF_PROG_TYPE_SCHED_CLS);
  }
  struct bpf_map* events = bpf_object__find_map_by_name(obj, "retina_packetparser_events");
  if (!events) {
    fprintf(stderr, "perf_reader: the object has no map retina_packetparser_events\n");
    return 1;
  }
  // The map is declared without key and value sizes and with 16384 slots;
  // Retina's loader (cilium/ebpf) fills in 4-byte keys and values and one
  // slot a possible CPU, so do the same.
  int ncpu = libbpf_num_possible_cpus();
  bpf_map__set_key_size(events, sizeof(__u32));
  bpf_map__set_value_size(events, sizeof(__u32));
  if (ncpu > 0 && bpf_map__max_entries(events) > (__u32)ncpu) bpf_map__set_max_entries(events, (__u32)ncpu);
  int err = bpf_object__load(obj);
  if (err) {
    fprintf(stderr, "perf_reader: load: %s\n", strerror(-err));
    return 1;
  }
  struct counts counts = {0};
  struct perf_buffer* pb = perf_buffer__new(bpf_map__fd(events), PAGES_PER_CPU, on_sample, on_lost, &counts, NULL);
  if (!pb) {
    fprintf(stderr, "perf_reader: perf buffer: %s\n", strerror(errno));
    return 1;
  }

  struct hook hooks[MAX_IFS];
  int nhooks = 0, rc = 0;
  char* ifs = strdup(argv[3]);
  for (char* save = NULL, *name = strtok_r(ifs, ",", &save); name && !rc; name = strtok_r(NULL, ",", &save)) {
    if (nhooks == MAX_IFS) {
      fprintf(stderr, "perf_reader: more than %d interfaces\n", MAX_IFS);
      rc = 1;
      break;
    }
    memset(&hooks[nhooks], 0, sizeof(hooks[nhooks]));
    err = attach(&hooks[nhooks], name, bpf_program__fd(progs[0]), bpf_program__fd(progs[1]));
    nhooks += hooks[nhooks].made;
    rc = err ? 1 : 0;
  }
  free(ifs);
  if (!rc && argc == 5) {
    memset(&hooks[nhooks], 0, sizeof(hooks[nhooks]));
    err = attach(&hooks[nhooks], argv[4], bpf_program__fd(progs[2]), bpf_program__fd(progs[3]));
    nhooks += hooks[nhooks].made;
    rc = err ? 1 : 0;
  }

  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  if (!rc) {
    fprintf(stderr, "perf_reader: attached to %d interface(s)\n", nhooks);
    struct timespec last = {0}, now;
    while (!stop) {
      err = perf_buffer__poll(pb, 100);
      if (err < 0 && err != -EINTR) {
        fprintf(stderr, "perf_reader: poll: %s\n", strerror(-err));
        rc = 1;
        break;
      }
      clock_gettime(CLOCK_MONOTONIC, &now);
      if ((now.tv_sec - last.tv_sec) * 1000000000L + (now.tv_nsec - last.tv_nsec) >= 200000000L) {
        write_stats(stats_path, &counts);
        last = now;
      }
    }
  }
  for (int i = 0; i < nhooks; i++) bpf_tc_hook_destroy(&hooks[i].tc);  // the qdisc and its filters
  while (perf_buffer__consume(pb) > 0) {
  }
  if (write_stats(stats_path, &counts) != 0) rc = 1;
  perf_buffer__free(pb);
  bpf_object__close(obj);
  return rc;
}
