/*
 * delayline.c - fixed one-way delay for scripts/netem.sh (Veil issue 18).
 *
 * What it owns: the propagation delay of the emulated network.  netem.sh
 * runs one instance inside the "veil-switch" namespace; an iptables rule
 * there (FORWARD -j NFQUEUE) hands every packet that crosses the switch to
 * nfnetlink_queue.  The kernel keeps the packet (skb) queued; this program
 * only receives its metadata (copy mode META, GSO packets unsplit) and
 * gives the verdict ACCEPT once the packet has been in the queue for DELAY.
 * Every packet crosses the switch exactly once, so each direction of every
 * role pair gets DELAY and the round trip gets 2 * DELAY (plus the host's
 * own path time, which netem.sh calibrates away).  Rate limiting is not
 * done here; netem.sh uses tbf on the links for that.
 *
 * Why userspace at all: the kernel this project runs on has no sch_netem,
 * and no qdisc that honours earliest-departure timestamps (sch_fq, sch_etf,
 * BPF qdiscs are not built in, and it has no loadable modules), so a tc/BPF
 * program that sets skb->tstamp has no effect.  nfnetlink_queue is the
 * kernel mechanism left that can hold packets for a chosen time.  The
 * program copies no payload: per packet it costs one small netlink message
 * in and a share of one batched verdict out.
 *
 * Release order: the delay is constant, so packets leave in id order, and a
 * single NFQNL_MSG_VERDICT_BATCH accepts every queued id up to the newest
 * due one (it also accepts any packet whose message was lost to a full
 * socket buffer, so nothing can be stranded).  Arrival time is the
 * kernel's timestamp of the packet (NFQA_TIMESTAMP) when present, so time
 * the packet waited for this program to wake up counts toward its delay.
 * Timer wake-ups come late by tens of microseconds in a VM; a running mean
 * of that lateness is used as a lead, so packets leave on time on average.
 * The kernel's work after an ACCEPT (bridge, tbf, veth, the receiving
 * namespace's stack) runs in this process's context, so under bulk traffic
 * it shows up as this process's system time.
 *
 * Usage: delayline [-q QUEUE] [-d DELAY_US] [-m MAXLEN] [-p PIDFILE] [-R]
 *   -d  one-way delay in microseconds (fractional allowed; default 0)
 *   -p  write the pid here once the queue is bound (readiness signal)
 *   -R  run with SCHED_FIFO priority so compiler jobs on the host do not
 *       delay wake-ups (best effort)
 * SIGUSR1 prints counters to stderr; SIGTERM/SIGINT release everything
 * still queued and exit.
 *
 * Built by netem.sh at `up` time with the host C compiler; no libraries.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#define RING (1u << 20)          /* queued packets we can track */
#define VLEN 64                  /* messages per recvmmsg */
#define MSGBUF 2048
#define SPIN_NS 30000            /* spin this long before a due packet ... */
#define SPIN_MAX_QUEUED 2        /* ... when at most this many are queued */

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() do { } while (0)
#endif

struct ent { uint32_t id; int64_t due; };
static struct ent *ring;
static uint32_t head, tail;      /* head: oldest; tail: next free */

static int fd;
static uint16_t qnum;
static volatile sig_atomic_t stop, dump;
static uint64_t n_pkts, n_batches, n_kts;
static int64_t late_sum_ns, late_max_ns, lead_ns;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void die(const char *what) { perror(what); exit(1); }

static void put_attr(char *buf, size_t *len, uint16_t type, const void *data, uint16_t dlen) {
    struct nlattr *a = (struct nlattr *)(buf + *len);
    a->nla_type = type;
    a->nla_len = NLA_HDRLEN + dlen;
    memcpy((char *)a + NLA_HDRLEN, data, dlen);
    *len += NLA_ALIGN(a->nla_len);
}

static size_t start_msg(char *buf, uint16_t type, uint16_t flags) {
    struct nlmsghdr *h = (struct nlmsghdr *)buf;
    memset(buf, 0, NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg)));
    h->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | type;
    h->nlmsg_flags = NLM_F_REQUEST | flags;
    struct nfgenmsg *g = NLMSG_DATA(h);
    g->nfgen_family = AF_UNSPEC;
    g->version = NFNETLINK_V0;
    g->res_id = htons(qnum);
    return NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
}

/* Send a config message and wait for its ack. */
static void config(const char *what, char *buf, size_t len) {
    ((struct nlmsghdr *)buf)->nlmsg_len = len;
    if (send(fd, buf, len, 0) < 0) die(what);
    char rb[4096];
    for (;;) {
        ssize_t n = recv(fd, rb, sizeof rb, 0);
        if (n < 0) die(what);
        for (struct nlmsghdr *h = (struct nlmsghdr *)rb; NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_type == NLMSG_ERROR) {
                int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
                if (err) { errno = -err; die(what); }
                return;
            }
        }
    }
}

static void verdict_upto(uint32_t id) {
    char buf[64];
    size_t len = start_msg(buf, NFQNL_MSG_VERDICT_BATCH, 0);
    struct nfqnl_msg_verdict_hdr v = { htonl(NF_ACCEPT), htonl(id) };
    put_attr(buf, &len, NFQA_VERDICT_HDR, &v, sizeof v);
    ((struct nlmsghdr *)buf)->nlmsg_len = len;
    while (send(fd, buf, len, 0) < 0) {
        if (errno == EINTR) continue;
        if (errno == ENOBUFS || errno == EAGAIN) { sched_yield(); continue; }
        die("verdict");
    }
    n_batches++;
}

static void on_signal(int s) { if (s == SIGUSR1) dump = 1; else stop = 1; }

static void print_stats(void) {
    fprintf(stderr, "delayline: queue %u packets %llu batches %llu kernel-ts %llu "
            "late-mean %.1fus late-max %.1fus lead %.1fus queued %u\n", qnum,
            (unsigned long long)n_pkts, (unsigned long long)n_batches,
            (unsigned long long)n_kts,
            n_batches ? (double)late_sum_ns / 1e3 / n_batches : 0.0, late_max_ns / 1e3,
            lead_ns / 1e3, tail - head);
}

/* Parse one NFQNL_MSG_PACKET and queue it. */
static void on_packet(struct nlmsghdr *h, int64_t now, int64_t delay) {
    struct nlattr *a = (struct nlattr *)((char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct nfgenmsg)));
    int rem = h->nlmsg_len - NLMSG_HDRLEN - NLMSG_ALIGN(sizeof(struct nfgenmsg));
    uint32_t id = 0; int have_id = 0; int64_t arrival = now;
    while (rem >= NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= rem) {
        void *d = (char *)a + NLA_HDRLEN;
        switch (a->nla_type & NLA_TYPE_MASK) {
        case NFQA_PACKET_HDR: {
            struct nfqnl_msg_packet_hdr ph; memcpy(&ph, d, sizeof ph);
            id = ntohl(ph.packet_id); have_id = 1; break;
        }
        case NFQA_TIMESTAMP: {
            struct nfqnl_msg_packet_timestamp ts; memcpy(&ts, d, sizeof ts);
            int64_t k = (int64_t)be64toh(ts.sec) * 1000000000 + (int64_t)be64toh(ts.usec) * 1000;
            /* usec resolution; accept only plausible values (same clock). */
            if (k <= now && now - k < 100000000) { arrival = k; n_kts++; }
            break;
        }
        }
        rem -= NLA_ALIGN(a->nla_len);
        a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len));
    }
    if (!have_id) return;
    if (tail - head >= RING) {      /* tracking full: release the oldest now */
        verdict_upto(ring[(tail - 1) & (RING - 1)].id);
        head = tail;
    }
    ring[tail & (RING - 1)] = (struct ent){ id, arrival + delay };
    tail++;
    n_pkts++;
}

int main(int argc, char **argv) {
    double delay_us = 0; uint32_t maxlen = 65536; int rt = 0, opt;
    const char *pidfile = NULL;
    while ((opt = getopt(argc, argv, "q:d:m:p:Rh")) != -1) {
        switch (opt) {
        case 'q': qnum = (uint16_t)atoi(optarg); break;
        case 'd': delay_us = atof(optarg); break;
        case 'm': maxlen = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'p': pidfile = optarg; break;
        case 'R': rt = 1; break;
        default:
            fprintf(stderr, "usage: %s [-q QUEUE] [-d DELAY_US] [-m MAXLEN] [-p PIDFILE] [-R]\n", argv[0]);
            return opt == 'h' ? 0 : 2;
        }
    }
    int64_t delay = (int64_t)(delay_us * 1000.0 + 0.5);
    if (delay < 0) delay = 0;

    ring = calloc(RING, sizeof *ring);
    if (!ring) die("calloc");
    prctl(PR_SET_TIMERSLACK, 1UL);           /* wake-ups to the ns, not 50 us */
    if (rt) {
        struct sched_param sp = { .sched_priority = 50 };
        if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0) perror("delayline: SCHED_FIFO (continuing)");
    }
    /* Make the kernel timestamp received packets (global static key). */
    int tsock = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
    if (tsock >= 0) setsockopt(tsock, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);

    fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
    if (fd < 0) die("socket(NETLINK_NETFILTER)");
    int rcv = 64 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
    struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");

    char buf[256]; size_t len;
    len = start_msg(buf, NFQNL_MSG_CONFIG, NLM_F_ACK);
    struct nfqnl_msg_config_cmd cmd = { .command = NFQNL_CFG_CMD_BIND, .pf = htons(AF_INET) };
    put_attr(buf, &len, NFQA_CFG_CMD, &cmd, sizeof cmd);
    config("bind queue (is another delayline running?)", buf, len);

    len = start_msg(buf, NFQNL_MSG_CONFIG, NLM_F_ACK);
    struct nfqnl_msg_config_params par = { .copy_range = htonl(0), .copy_mode = NFQNL_COPY_META };
    put_attr(buf, &len, NFQA_CFG_PARAMS, &par, sizeof par);
    uint32_t ml = htonl(maxlen);
    put_attr(buf, &len, NFQA_CFG_QUEUE_MAXLEN, &ml, sizeof ml);
    uint32_t fl = htonl(NFQA_CFG_F_GSO);
    put_attr(buf, &len, NFQA_CFG_FLAGS, &fl, sizeof fl);
    put_attr(buf, &len, NFQA_CFG_MASK, &fl, sizeof fl);
    config("configure queue", buf, len);

    struct sigaction act = { .sa_handler = on_signal };
    sigaction(SIGTERM, &act, NULL); sigaction(SIGINT, &act, NULL); sigaction(SIGUSR1, &act, NULL);
    signal(SIGPIPE, SIG_IGN);
    fprintf(stderr, "delayline: queue %u delay %.3f us maxlen %u\n", qnum, delay / 1e3, maxlen);
    if (pidfile) {                           /* write, then rename: atomic */
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", pidfile);
        FILE *f = fopen(tmp, "w");
        if (!f) die(tmp);
        fprintf(f, "%d\n", (int)getpid());
        if (fclose(f) != 0 || rename(tmp, pidfile) != 0) die(pidfile);
    }

    static char bufs[VLEN][MSGBUF];
    struct mmsghdr mm[VLEN]; struct iovec iov[VLEN];
    for (int i = 0; i < VLEN; i++) {
        iov[i] = (struct iovec){ bufs[i], MSGBUF };
        mm[i].msg_hdr = (struct msghdr){ .msg_iov = &iov[i], .msg_iovlen = 1 };
    }
    struct pollfd pfd = { .fd = fd, .events = POLLIN };

    /* Timer wake-ups come late (tens of us in a VM, more on a busy host).
     * lead_ns, a running mean of that lateness, makes the timer for the
     * oldest packet fire that much early, and the packet it was set for
     * leaves when it fires: on time on average.  Other packets never leave
     * before they are due.  With few packets queued (pings,
     * request/response traffic) the timer is set SPIN_NS earlier still
     * and the last stretch is spun, so such packets leave within about a
     * microsecond of their time; with many queued (bulk transfers) there is
     * no spinning. */
    int64_t wake_at = 0, armed_due = 0;
    int fired = 0;
    while (!stop) {
        if (dump) { dump = 0; print_stats(); }
        int64_t now = now_ns(), limit = now;
        if (head != tail) {
            int64_t due = ring[head & (RING - 1)].due;
            if (tail - head <= SPIN_MAX_QUEUED) {
                if (due > now && due - now <= SPIN_NS) {
                    while ((now = now_ns()) < due) cpu_relax();
                    limit = now;
                }
            } else if (fired && armed_due > limit) {
                limit = armed_due;
            }
            if (due <= limit) {
                uint32_t last = 0;
                int64_t late = now - due;
                while (head != tail && ring[head & (RING - 1)].due <= limit)
                    last = ring[head++ & (RING - 1)].id;
                verdict_upto(last);
                late_sum_ns += late;
                if (late > late_max_ns) late_max_ns = late;
            }
        }
        fired = 0;
        struct timespec to, *top = NULL;
        int aimed = 0;
        if (head != tail) {
            int spin = tail - head <= SPIN_MAX_QUEUED;
            armed_due = ring[head & (RING - 1)].due;
            wake_at = armed_due - lead_ns - (spin ? SPIN_NS : 0);
            int64_t wait = wake_at - now;
            aimed = wait > 0;
            /* Too close to aim: spin (few queued) or nap briefly, so the
             * packet leaves a little late rather than early. */
            if (!aimed) wait = spin ? 0 : 1000;
            to.tv_sec = wait / 1000000000; to.tv_nsec = wait % 1000000000;
            top = &to;
        }
        int pr = ppoll(&pfd, 1, top, NULL);
        if (pr < 0) { if (errno == EINTR) continue; die("ppoll"); }
        if (pr == 0 && aimed) {
            int64_t late = now_ns() - wake_at;
            if (late < 0) late = 0;
            if (late > 500000) late = 500000;      /* ignore stalls */
            lead_ns += (late - lead_ns) / 8;
            fired = 1;
        }
        if (pr == 0) continue;
        for (int rounds = 0; rounds < 16; rounds++) {   /* then check due packets again */
            int n = recvmmsg(fd, mm, VLEN, MSG_DONTWAIT, NULL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) break;
                if (errno == ENOBUFS) continue;
                die("recvmmsg");
            }
            int64_t t = now_ns();
            for (int i = 0; i < n; i++) {
                int rem = (int)mm[i].msg_len;
                for (struct nlmsghdr *h = (struct nlmsghdr *)bufs[i]; NLMSG_OK(h, rem); h = NLMSG_NEXT(h, rem)) {
                    if (h->nlmsg_type == ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET))
                        on_packet(h, t, delay);
                    else if (h->nlmsg_type == NLMSG_ERROR) {
                        int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
                        if (err && err != -ENOENT)
                            fprintf(stderr, "delayline: netlink error %s\n", strerror(-err));
                    }
                }
            }
            if (n < VLEN) break;
        }
    }
    if (head != tail) verdict_upto(ring[(tail - 1) & (RING - 1)].id);
    print_stats();
    return 0;
}
