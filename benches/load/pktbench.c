// benches/load/pktbench.c: the reference programs of benches/load/small-packets (built by it with cc).
//
//   pktbench send IFACE DSTMAC SRCIP DSTIP DPORT SECS FLOWS [SINK]
//       60-byte Ethernet/IPv4/UDP frames through an AF_PACKET socket on IFACE (qdisc bypassed,
//       sendmmsg batches of 64) for SECS seconds, source ports 40000..40000+FLOWS-1 in turn. With
//       SINK, binds a UDP socket on SRCIP to each source port first and never reads it, so echoed
//       answers die quietly in a full receive buffer instead of drawing port-unreachables.
//   pktbench tap NAME QUEUES SECS read|echo
//       the bare loop on a tap: attach QUEUES queues of the existing multi_queue tap NAME (run it in
//       the tap's namespace), one thread each, and read() frames, or read() and write() each back
//       with Ethernet and IP addresses and UDP ports swapped, for SECS seconds.
//   pktbench udp PORT SECS
//       the kernel's own UDP receive: recv() datagrams on 0.0.0.0:PORT for SECS seconds.
//
// Each prints one line: "frames N" (sent, read, echoed or received).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME 60
#define BATCH 64

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

static uint16_t csum(const uint8_t *p, size_t n) {
  uint32_t s = 0;
  for (size_t i = 0; i + 1 < n; i += 2) s += (uint32_t)p[i] << 8 | p[i + 1];
  if (n & 1) s += (uint32_t)p[n - 1] << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)~s;
}

// One frame: Ethernet, IPv4 (20), UDP (8), 18 bytes of payload.
static void build(uint8_t *f, const uint8_t dmac[6], const uint8_t smac[6], uint32_t sip, uint32_t dip,
                  uint16_t sport, uint16_t dport) {
  memset(f, 0, FRAME);
  memcpy(f, dmac, 6);
  memcpy(f + 6, smac, 6);
  f[12] = 0x08;
  uint8_t *ip = f + 14;
  ip[0] = 0x45;
  uint16_t tot = FRAME - 14;
  ip[2] = tot >> 8, ip[3] = tot & 0xff;
  ip[8] = 64;
  ip[9] = 17;
  memcpy(ip + 12, &sip, 4);
  memcpy(ip + 16, &dip, 4);
  uint16_t c = csum(ip, 20);
  ip[10] = c >> 8, ip[11] = c & 0xff;
  uint8_t *udp = ip + 20;
  udp[0] = sport >> 8, udp[1] = sport & 0xff;
  udp[2] = dport >> 8, udp[3] = dport & 0xff;
  uint16_t ulen = tot - 20;
  udp[4] = ulen >> 8, udp[5] = ulen & 0xff;
  memcpy(udp + 8, "tapir small packet", 18);
  // UDP checksum 0: none (RFC 768), valid for IPv4.
}

static int parse_mac(const char *s, uint8_t m[6]) {
  return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6;
}

static int cmd_send(int argc, char **argv) {
  if (argc < 9) return 2;
  const char *ifname = argv[2];
  uint8_t dmac[6], smac[6] = {0};
  if (!parse_mac(argv[3], dmac)) return 2;
  struct in_addr sip, dip;
  if (!inet_aton(argv[4], &sip) || !inet_aton(argv[5], &dip)) return 2;
  int dport = atoi(argv[6]);
  double secs = atof(argv[7]);
  int flows = atoi(argv[8]);
  int sink = argc > 9 && strcmp(argv[9], "SINK") == 0;
  if (flows < 1 || flows > 1024) return 2;
  if (sink) {
    for (int i = 0; i < flows; i++) {
      int u = socket(AF_INET, SOCK_DGRAM, 0);
      struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(40000 + i), .sin_addr = sip};
      int small = 4096;
      setsockopt(u, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
      if (bind(u, (struct sockaddr *)&a, sizeof a) < 0) die("bind sink");
    }
  }
  int s = socket(AF_PACKET, SOCK_RAW, 0);
  if (s < 0) die("AF_PACKET socket");
  int one = 1;
  setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
  struct ifreq ifr = {0};
  strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
  if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) die("SIOCGIFINDEX");
  int ifindex = ifr.ifr_ifindex;
  if (ioctl(s, SIOCGIFHWADDR, &ifr) == 0) memcpy(smac, ifr.ifr_hwaddr.sa_data, 6);
  struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6};
  memcpy(ll.sll_addr, dmac, 6);
  static uint8_t frames[BATCH][FRAME];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = frames[i];
    iov[i].iov_len = FRAME;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &ll;
    msgs[i].msg_hdr.msg_namelen = sizeof ll;
  }
  unsigned long long sent = 0;
  int next = 0;
  double end = now() + secs;
  while (now() < end) {
    for (int i = 0; i < BATCH; i++) {
      build(frames[i], dmac, smac, sip.s_addr, dip.s_addr, 40000 + next, dport);
      next = (next + 1) % flows;
    }
    int n = sendmmsg(s, msgs, BATCH, 0);
    if (n > 0) sent += n;
    else if (n < 0 && errno != ENOBUFS && errno != EAGAIN) die("sendmmsg");
  }
  printf("frames %llu\n", sent);
  return 0;
}

struct tapq {
  int fd;
  int echo;
  unsigned long long frames;
};

static void swap(uint8_t *a, uint8_t *b, size_t n) {
  uint8_t t[6];
  memcpy(t, a, n);
  memcpy(a, b, n);
  memcpy(b, t, n);
}

static void *tap_loop(void *arg) {
  struct tapq *q = arg;
  uint8_t buf[2048];
  unsigned long long n = 0;
  // Blocking reads, as simple as a reader gets; the main thread ends the process at the end.
  while (1) {
    ssize_t r = read(q->fd, buf, sizeof buf);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      break;
    }
    if (q->echo && r >= 14 + 20 + 8 && buf[12] == 0x08 && buf[13] == 0x00 && buf[23] == 17) {
      swap(buf, buf + 6, 6);
      swap(buf + 26, buf + 30, 4);
      swap(buf + 34, buf + 36, 2);
      if (write(q->fd, buf, r) == r) n++;
    } else if (!q->echo) {
      n++;
    }
    atomic_store_explicit((_Atomic unsigned long long *)&q->frames, n, memory_order_relaxed);
  }
  return NULL;
}

static int cmd_tap(int argc, char **argv) {
  if (argc < 6) return 2;
  const char *name = argv[2];
  int queues = atoi(argv[3]);
  double secs = atof(argv[4]);
  int echo = strcmp(argv[5], "echo") == 0;
  if (queues < 1 || queues > 64) return 2;
  struct tapq qs[64];
  pthread_t th[64];
  for (int i = 0; i < queues; i++) {
    int fd = open("/dev/net/tun", O_RDWR);
    if (fd < 0) die("/dev/net/tun");
    struct ifreq ifr = {0};
    strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");
    qs[i] = (struct tapq){.fd = fd, .echo = echo, .frames = 0};
  }
  for (int i = 0; i < queues; i++) {
    pthread_create(&th[i], NULL, tap_loop, &qs[i]);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(i % sysconf(_SC_NPROCESSORS_ONLN), &set);
    pthread_setaffinity_np(th[i], sizeof set, &set);
  }
  // Ready: the caller starts the sender when it sees this line.
  printf("ready\n");
  fflush(stdout);
  struct timespec d = {.tv_sec = (time_t)secs, .tv_nsec = (long)((secs - (time_t)secs) * 1e9)};
  nanosleep(&d, NULL);
  unsigned long long total = 0;
  for (int i = 0; i < queues; i++)
    total += atomic_load_explicit((_Atomic unsigned long long *)&qs[i].frames, memory_order_relaxed);
  printf("frames %llu\n", total);
  fflush(stdout);
  _exit(0);
}

static int cmd_udp(int argc, char **argv) {
  if (argc < 4) return 2;
  int port = atoi(argv[2]);
  double secs = atof(argv[3]);
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY};
  if (bind(u, (struct sockaddr *)&a, sizeof a) < 0) die("bind");
  struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
  setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  printf("ready\n");
  fflush(stdout);
  static uint8_t bufs[BATCH][2048];
  struct iovec iov[BATCH];
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    iov[i].iov_base = bufs[i];
    iov[i].iov_len = sizeof bufs[i];
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  unsigned long long n = 0;
  double end = now() + secs;
  while (now() < end) {
    int r = recvmmsg(u, msgs, BATCH, 0, NULL);
    if (r > 0) n += r;
  }
  printf("frames %llu\n", n);
  return 0;
}

int main(int argc, char **argv) {
  int r = 2;
  if (argc > 1 && strcmp(argv[1], "send") == 0) r = cmd_send(argc, argv);
  else if (argc > 1 && strcmp(argv[1], "tap") == 0) r = cmd_tap(argc, argv);
  else if (argc > 1 && strcmp(argv[1], "udp") == 0) r = cmd_udp(argc, argv);
  if (r == 2)
    fprintf(stderr,
            "usage: pktbench send IFACE DSTMAC SRCIP DSTIP DPORT SECS FLOWS [SINK]\n"
            "       pktbench tap NAME QUEUES SECS read|echo\n"
            "       pktbench udp PORT SECS\n");
  return r;
}
