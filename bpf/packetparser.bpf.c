// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * packetparser: observes every IPv4/IPv6 packet at the TC hooks of pod
 * veths and node interfaces, never changing a packet.
 *
 * Aggregation "low" sends one record per (sampled) packet, in per-CPU
 * batches of up to RETINA_BATCH_MAX records (see "batches"). Aggregation
 * "high" keeps an in-kernel conntrack table and sends a record only when a
 * connection starts, shows new TCP flags, closes, or its report interval
 * passes; each record carries the packets, bytes and flags seen since the
 * previous one, so user space counts every packet exactly once:
 *   packets += prev_packets + (NO_PACKET ? 0 : 1), bytes += bytes + prev_bytes.
 *
 * A sweeper program (run from user space with BPF_PROG_TEST_RUN) flushes
 * idle connections, deletes expired ones and sums the conntrack gauges.
 */
#include "common.h"
#include "ringbuf_batched.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The same layout as user space sees (see the C++ static_asserts). */
_Static_assert(sizeof(struct retina_packet_event) == 128, "retina_packet_event layout");
_Static_assert(sizeof(struct retina_ct_key) == 44, "retina_ct_key layout");
_Static_assert(sizeof(struct retina_ct_side) == 72, "retina_ct_side layout");
_Static_assert(sizeof(struct retina_ct_entry) == 192, "retina_ct_entry layout");
_Static_assert(sizeof(struct retina_ct_gauges) == 48, "retina_ct_gauges layout");
_Static_assert(sizeof(struct retina_lpm_key) == 20, "retina_lpm_key layout");
_Static_assert(sizeof(struct retina_batch_hdr) == 24, "retina_batch_hdr layout");

/* Set by user space between open and load. */
const volatile __u8 cfg_aggregation_high = 0;
const volatile __u8 cfg_bypass_filter = 1;
const volatile __u32 cfg_sampling_rate = 1;
const volatile __u64 cfg_report_interval_ns = 30000000000ULL;
const volatile __u64 cfg_wakeup_bytes = 8704; /* wake the reader once this much is waiting */
const volatile __u64 cfg_batch_ns = 0; /* aggregation low: a batch waits at most this long; 0: no batches */

/* Conntrack's clock. jiffies cost a memory load where the boot clock reads
 * the clocksource; timeouts and report intervals are whole seconds, so a
 * tick's resolution is plenty. Without CONFIG_HZ (no kernel config to read)
 * the boot clock is used. */
extern unsigned int CONFIG_HZ __kconfig __weak;

static __always_inline __u64 pp_ct_now(void)
{
	/* CONFIG_HZ sits in a frozen map: the verifier keeps one branch, and
	 * the usual values multiply by a constant instead of dividing. */
	unsigned int hz = CONFIG_HZ;
	if (hz == 250)
		return bpf_jiffies64() * 4000000ULL;
	if (hz == 1000)
		return bpf_jiffies64() * 1000000ULL;
	if (hz == 100)
		return bpf_jiffies64() * 10000000ULL;
	if (hz)
		return bpf_jiffies64() * (1000000000ULL / hz);
	return bpf_ktime_get_boot_ns();
}

#define NS_PER_SEC 1000000000ULL
/* Conntrack timeouts (Retina's). */
#define CT_TCP_LIFETIME_NS (360 * NS_PER_SEC)
#define CT_TIME_WAIT_NS (30 * NS_PER_SEC)
#define CT_NON_TCP_NS (60 * NS_PER_SEC)
#define CT_SYN_ONLY_NS (60 * NS_PER_SEC)
/* The sweeper deletes an entry only this long after it expired. A packet
 * that found the entry alive finished with it long before, so no CPU is
 * still adding to an element that the map may hand out again. */
#define CT_DELETE_GRACE_NS (1 * NS_PER_SEC)

/* Flags that are reported every time they appear. */
#define CT_ALWAYS_REPORT_FLAGS                                                                   \
	(RETINA_TCP_FIN | RETINA_TCP_RST | RETINA_TCP_SYN | RETINA_TCP_URG | RETINA_TCP_ECE |     \
	 RETINA_TCP_CWR)

/* Header bytes made linear when the first parse runs past the linear area. */
#define PP_PULL_LEN 256

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* packetParserRingBufferSize, set before load */
} retina_pp_evts SEC(".maps");

/* ifindex -> enum retina_if_role, filled by user space before attaching. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u32);
} retina_pp_ifs SEC(".maps");

/* IPs of interest; used unless cfg_bypass_filter. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 255); /* filterMapMaxEntries, set before load */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct retina_lpm_key);
	__type(value, __u8);
} retina_pp_filt SEC(".maps");

/* Conntrack. A plain hash, not LRU: an LRU map evicts entries silently,
 * which would lose their pending counts; a full map is instead visible
 * (RETINA_STAT_CT_FULL) and the packet is reported on its own. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144); /* conntrack size, set before load */
	__type(key, struct retina_ct_key);
	__type(value, struct retina_ct_entry);
} retina_pp_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct retina_ct_gauges);
} retina_pp_ctg SEC(".maps");

/* Builds new entries off the 512-byte stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct retina_ct_entry);
} retina_pp_scr SEC(".maps");

/* One packet on its way through the program. */
struct pp_ctx {
	struct retina_pkt pkt;
	__u64 now; /* pp_ct_now() at aggregation high */
	__u32 ifindex;
	__u32 bytes;
	__u8 obs;  /* PP_OBS_UNKNOWN until needed */
	__u8 side; /* 0 tc ingress, 1 tc egress */
};

#define PP_OBS_UNKNOWN 0xff

static __always_inline void pp_submit(void *ev)
{
	retina_ringbuf_submit_batched(&retina_pp_evts, ev, cfg_wakeup_bytes);
}

/* ------------------------------------------------------------- records */

static __always_inline bool pp_is_host_if(__u32 ifindex)
{
	__u32 *role = bpf_map_lookup_elem(&retina_pp_ifs, &ifindex);
	return role && *role == RETINA_IF_ROLE_HOST;
}

static __always_inline __u8 pp_obs_of(bool host_if, __u32 egress)
{
	if (host_if)
		return egress ? RETINA_OBS_TO_NETWORK : RETINA_OBS_FROM_NETWORK;
	return egress ? RETINA_OBS_TO_ENDPOINT : RETINA_OBS_FROM_ENDPOINT;
}

/* The packet's observation point, looked up once and only when a record
 * needs it. */
static __always_inline __u8 pp_obs(struct pp_ctx *c)
{
	if (c->obs == PP_OBS_UNKNOWN)
		c->obs = pp_obs_of(pp_is_host_if(c->ifindex), c->side);
	return c->obs;
}

/* Fills every byte of a record: ring memory holds older records. */
static __always_inline void pp_fill(struct retina_packet_event *ev, const struct retina_tuple *t,
				    __u32 ifindex, __u32 bytes, __u8 obs, __u8 flags,
				    __u16 tcp_flags, __u8 reason, __u32 tcp_id)
{
	__builtin_memset(ev, 0, sizeof(*ev));
	retina_hdr_fill(&ev->hdr, RETINA_EV_PACKET, RETINA_PACKET_EVENT_VERSION, sizeof(*ev));
	__builtin_memcpy(&ev->tuple, t, sizeof(*t));
	ev->ifindex = ifindex;
	ev->bytes = bytes;
	ev->obs_point = obs;
	ev->flags = flags;
	ev->tcp_flags = tcp_flags;
	ev->report_reason = reason;
	ev->tcp_id = tcp_id;
}

/* The packet on its own, without touching conntrack. */
static __always_inline void pp_emit_packet(struct pp_ctx *c, __u8 flags, __u8 reason)
{
	struct retina_packet_event *ev = retina_ringbuf_reserve(&retina_pp_evts, sizeof(*ev));
	if (!ev)
		return;
	pp_fill(ev, &c->pkt.tuple, c->ifindex, c->bytes, pp_obs(c), flags, c->pkt.tcp_flags, reason,
		c->pkt.tcp_tsval);
	pp_submit(ev);
}

/* ------------------------------------------------------------- batches */

/* At aggregation low each CPU stages its packets' records in a batch and
 * sends RETINA_BATCH_MAX of them with one ring-buffer copy, or fewer when
 * the batch's timer fires cfg_batch_ns after the batch's first packet. A
 * reservation per packet takes the ring's lock and puts a record on a cold
 * cache line; a batch lives on this CPU's warm lines.
 *
 * Element `cpu` of an array (not a per-CPU array: only arrays and hashes
 * hold timers). The timer is pinned to that CPU, so its callback never
 * runs while the CPU's program fills the batch: TC programs run with
 * softirqs off and the callback is a softirq. A test run
 * (BPF_PROG_TEST_RUN) leaves softirqs on; `busy` makes the callback wait
 * for it. Where the timer cannot start (no BPF_F_TIMER_CPU_PIN before
 * 6.7), every batch is sent at once: nothing ever waits unseen. */
#define PP_CLOCK_MONOTONIC 1
#define PP_TIMER_NONE 2 /* timer_state: the timer cannot start here */

struct pp_batch {
	struct bpf_timer timer;      /*  0 */
	__u32 busy;                  /* 16 the program is changing the batch */
	__u8 armed;                  /* 20 the timer will fire */
	__u8 timer_state;            /* 21 0 not set up, 1 ready, PP_TIMER_NONE */
	__u16 _pad0;                 /* 22 */
	__u64 _pad1;                 /* 24 */
	struct retina_batch_hdr bh;  /* 32 what is sent: bh and ev[0..bh.count) */
	struct retina_packet_event ev[RETINA_BATCH_MAX]; /* 56 */
};
/* User space reads bh.count at this offset to see that batches are empty. */
_Static_assert(__builtin_offsetof(struct pp_batch, bh) == 32, "pp_batch layout");
_Static_assert((RETINA_BATCH_MAX & (RETINA_BATCH_MAX - 1)) == 0, "RETINA_BATCH_MAX is a power of two");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* possible CPUs at aggregation low, set before load */
	__type(key, __u32);
	__type(value, struct pp_batch);
} retina_pp_batch SEC(".maps");

static __always_inline void pp_batch_send(struct pp_batch *b)
{
	__u32 n = b->bh.count;
	if (n == 0)
		return;
	if (n > RETINA_BATCH_MAX)
		n = RETINA_BATCH_MAX;
	__u32 len = sizeof(b->bh) + n * sizeof(b->ev[0]);
	retina_hdr_fill(&b->bh.hdr, RETINA_EV_BATCH, RETINA_BATCH_VERSION, len);
	b->bh.count = n;
	b->bh.stride = sizeof(b->ev[0]);
	b->bh._pad = 0;
	if (bpf_ringbuf_output(&retina_pp_evts, &b->bh, len,
			       retina_ringbuf_wake_flags(&retina_pp_evts, cfg_wakeup_bytes)))
		retina_stat_add(RETINA_STAT_RINGBUF_FULL, n);
	else
		retina_stat_add(RETINA_STAT_REPORTS, n);
	b->bh.count = 0;
}

static int pp_batch_timer(void *map, __u32 *key, struct pp_batch *b)
{
	if (b->busy) {
		bpf_timer_start(&b->timer, cfg_batch_ns, BPF_F_TIMER_CPU_PIN);
		return 0;
	}
	b->armed = 0;
	pp_batch_send(b);
	return 0;
}

/* Arms the batch's timer, or sends the batch now if there is none. */
static __always_inline void pp_batch_arm(struct pp_batch *b)
{
	if (b->timer_state == 0) {
		long err = bpf_timer_init(&b->timer, &retina_pp_batch, PP_CLOCK_MONOTONIC);
		if ((err && err != -EBUSY) || bpf_timer_set_callback(&b->timer, pp_batch_timer))
			b->timer_state = PP_TIMER_NONE;
		else
			b->timer_state = 1;
	}
	if (b->timer_state == 1) {
		if (bpf_timer_start(&b->timer, cfg_batch_ns, BPF_F_TIMER_CPU_PIN) == 0) {
			b->armed = 1;
			return;
		}
		b->timer_state = PP_TIMER_NONE;
	}
	pp_batch_send(b);
}

/* The packet on its own, in this CPU's batch. */
static __always_inline void pp_batch_packet(struct pp_ctx *c)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct pp_batch *b = bpf_map_lookup_elem(&retina_pp_batch, &cpu);
	if (!b) {
		pp_emit_packet(c, 0, RETINA_REPORT_PACKET);
		return;
	}
	b->busy = 1;
	barrier();
	__u32 n = b->bh.count; /* below RETINA_BATCH_MAX: a full batch is sent at once */
	pp_fill(&b->ev[n & (RETINA_BATCH_MAX - 1)], &c->pkt.tuple, c->ifindex, c->bytes, pp_obs(c), 0,
		c->pkt.tcp_flags, RETINA_REPORT_PACKET, c->pkt.tcp_tsval);
	b->bh.count = ++n;
	if (n >= RETINA_BATCH_MAX)
		pp_batch_send(b);
	else if (!b->armed)
		pp_batch_arm(b);
	barrier();
	b->busy = 0;
}

/* ----------------------------------------------------------- conntrack */

/* Side s of an entry: 0 tc ingress, 1 tc egress (apart in the entry; see
 * struct retina_ct_entry). */
static __always_inline struct retina_ct_side *ct_side(struct retina_ct_entry *e, __u32 s)
{
	return (s & 1) ? &e->side_egr : &e->side_ing;
}

/* A spill of the packed word starts once a field passes half its range:
 * every CPU that adds after that spills too, so neither field can wrap
 * before the spill took it (packets below 16 MiB go to the packed word). */
#define CT_PEND_MAX_PACKET (1U << 24)
#define CT_PEND_SPILL_BYTES (1ULL << (RETINA_CT_PEND_BYTES_BITS - 1))

static __always_inline void ct_add_flags(struct retina_ct_side *s, __u16 f)
{
#pragma unroll
	for (int i = 0; i < RETINA_FLAG_IDX_MAX; i++)
		if (f & (1 << i))
			__sync_fetch_and_add(&s->pending_flags[i], 1);
}

/* Moves the packed word into the wide counters; tcp: its packets carried
 * ACK. */
static __noinline void ct_spill(struct retina_ct_side *s, bool tcp)
{
	if (!s)
		return;
	__u64 v = __sync_lock_test_and_set(&s->pending, 0);
	__u32 packets = (__u32)(v >> RETINA_CT_PEND_BYTES_BITS);
	__sync_fetch_and_add(&s->pending_packets, packets);
	__sync_fetch_and_add(&s->pending_bytes, v & RETINA_CT_PEND_BYTES_MASK);
	if (tcp)
		__sync_fetch_and_add(&s->pending_flags[RETINA_FLAG_IDX_ACK], packets);
}

/* The per-packet path of an established connection: one atomic add (two
 * with PSH), never a record. */
static __always_inline void ct_add_pending(struct retina_ct_side *s, __u32 bytes, __u16 tcp_flags, bool tcp)
{
	if (bytes >= CT_PEND_MAX_PACKET || (tcp && !(tcp_flags & RETINA_TCP_ACK))) {
		__sync_fetch_and_add(&s->pending_packets, 1);
		__sync_fetch_and_add(&s->pending_bytes, bytes);
		ct_add_flags(s, tcp_flags);
		return;
	}
	__u64 old = __sync_fetch_and_add(&s->pending, RETINA_CT_PEND_ONE_PACKET | bytes);
	if (tcp_flags & ~RETINA_TCP_ACK)
		ct_add_flags(s, tcp_flags & ~RETINA_TCP_ACK);
	/* The packet count's top bit, or the byte count's. */
	if ((__s64)old < 0 || (old & RETINA_CT_PEND_BYTES_MASK) >= CT_PEND_SPILL_BYTES)
		ct_spill(s, tcp);
}

static __always_inline __u32 ct_take32(__u32 *v)
{
	return *v ? __sync_lock_test_and_set(v, 0) : 0;
}

/* Moves the pending counts into the record with atomic exchanges: a packet
 * another CPU adds concurrently lands either here or in the next report.
 * Returns the packets taken. */
static __always_inline __u32 ct_take_pending(struct retina_ct_side *s, struct retina_packet_event *ev, bool tcp)
{
	__u64 v = s->pending ? __sync_lock_test_and_set(&s->pending, 0) : 0;
	__u64 wide_bytes = s->pending_bytes ? __sync_lock_test_and_set(&s->pending_bytes, 0) : 0;
	__u32 packed = (__u32)(v >> RETINA_CT_PEND_BYTES_BITS);

	ev->prev_packets = packed + ct_take32(&s->pending_packets);
	ev->prev_bytes = (v & RETINA_CT_PEND_BYTES_MASK) + wide_bytes;
#pragma unroll
	for (int i = 0; i < RETINA_FLAG_IDX_MAX; i++)
		ev->prev_flag_counts[i] = ct_take32(&s->pending_flags[i]);
	if (tcp)
		ev->prev_flag_counts[RETINA_FLAG_IDX_ACK] += packed;
	return ev->prev_packets;
}

static __always_inline bool ct_has_pending(const struct retina_ct_side *s)
{
	return s->pending || s->pending_packets || s->pending_bytes;
}

/* Pending packets and bytes of a side, left in place (for the gauges). */
static __always_inline void ct_peek_pending(const struct retina_ct_side *s, __u64 *packets, __u64 *bytes)
{
	__u64 v = s->pending;
	*packets = (v >> RETINA_CT_PEND_BYTES_BITS) + s->pending_packets;
	*bytes = (v & RETINA_CT_PEND_BYTES_MASK) + s->pending_bytes;
}

/* Adds what a record reports to the entry's totals (the gauges). */
static __always_inline void ct_count_reported(struct retina_ct_entry *e, bool reply,
					      const struct retina_packet_event *ev, bool with_packet)
{
	__u32 d = reply ? 1 : 0;
	__sync_fetch_and_add(&e->packets[d], (__u64)ev->prev_packets + (with_packet ? 1 : 0));
	__sync_fetch_and_add(&e->bytes[d], ev->prev_bytes + (with_packet ? ev->bytes : 0));
}

/* Normalised key: lower address (then port) first. Returns whether the
 * packet's source is the "lo" end. */
static __always_inline bool ct_make_key(struct retina_ct_key *k, const struct pp_ctx *c)
{
	const struct retina_tuple *t = &c->pkt.tuple;
	bool icmp = t->proto == IPPROTO_ICMP || t->proto == IPPROTO_ICMPV6;
	__u16 sp = icmp ? 0 : t->sport;
	__u16 dp = icmp ? 0 : t->dport;
	int cmp = retina_addr_cmp(t->saddr, t->daddr);
	bool src_lo = cmp < 0 || (cmp == 0 && sp <= dp);

	__builtin_memset(k, 0, sizeof(*k));
	if (src_lo) {
		retina_addr_copy(k->addr_lo, t->saddr);
		retina_addr_copy(k->addr_hi, t->daddr);
		k->port_lo = sp;
		k->port_hi = dp;
	} else {
		retina_addr_copy(k->addr_lo, t->daddr);
		retina_addr_copy(k->addr_hi, t->saddr);
		k->port_lo = dp;
		k->port_hi = sp;
	}
	k->proto = t->proto;
	k->ifindex = c->ifindex;
	return src_lo;
}

/* State bits this packet contributes. */
static __always_inline __u32 ct_packet_bits(__u8 proto, __u16 f, bool src_lo)
{
	if (proto != IPPROTO_TCP)
		return 0;
	__u32 bits = 0;
	if (f & RETINA_TCP_FIN)
		bits |= src_lo ? RETINA_CT_FIN_LO : RETINA_CT_FIN_HI;
	if (f & RETINA_TCP_RST)
		bits |= RETINA_CT_RST;
	if (f & RETINA_TCP_ACK)
		bits |= RETINA_CT_ACK_SEEN;
	return bits;
}

/* When the entry expires after a packet, given the state before it. A
 * closed connection is expired at once (now - 1: entries expire once now
 * passes expires_ns, and the conntrack clock may not move between two
 * packets). */
static __always_inline __u64 ct_expiry(__u8 proto, __u32 prev, __u32 state, __u16 f, __u64 now)
{
	const __u32 both_fin = RETINA_CT_FIN_LO | RETINA_CT_FIN_HI;
	if (proto != IPPROTO_TCP)
		return now + CT_NON_TCP_NS;
	if (state & RETINA_CT_RST)
		return now - 1;
	if ((state & both_fin) == both_fin) {
		/* The ACK of the second FIN closes the connection. */
		if ((prev & both_fin) == both_fin && (f & RETINA_TCP_ACK) &&
		    !(f & (RETINA_TCP_FIN | RETINA_TCP_SYN)))
			return now - 1;
		return now + CT_TIME_WAIT_NS;
	}
	if (!(state & RETINA_CT_ACK_SEEN))
		return now + CT_SYN_ONLY_NS;
	return now + CT_TCP_LIFETIME_NS;
}

/* Sets everything of a (new or reset) entry except its pending counts.
 * host_if: the interface's role, kept in the entry so packets of a known
 * connection never look it up. */
static __always_inline void ct_init_fields(struct retina_ct_entry *e, const struct pp_ctx *c, bool src_lo,
					   bool host_if)
{
	__u16 f = c->pkt.tcp_flags;
	bool tcp = c->pkt.tuple.proto == IPPROTO_TCP;
	bool init_lo = src_lo;
	__u32 state = host_if ? RETINA_CT_HOST_IF : 0;

	if (tcp && (f & (RETINA_TCP_SYN | RETINA_TCP_ACK)) == (RETINA_TCP_SYN | RETINA_TCP_ACK))
		init_lo = !src_lo; /* a SYN-ACK travels responder -> initiator */
	if (init_lo)
		state |= RETINA_CT_INIT_IS_LO;
	if (tcp && !(f & RETINA_TCP_SYN))
		state |= RETINA_CT_DIR_UNKNOWN;
	state |= ct_packet_bits(c->pkt.tuple.proto, f, src_lo);

	e->expires_ns = ct_expiry(c->pkt.tuple.proto, 0, state, f, c->now);
	e->state = state;
	e->packets[0] = 0;
	e->packets[1] = 0;
	e->bytes[0] = 0;
	e->bytes[1] = 0;
#pragma unroll
	for (int s = 0; s < 2; s++) {
		struct retina_ct_side *side = ct_side(e, s);
		side->last_report_ns = 0;
		side->flags_seen = 0;
		side->last_reply = 0;
	}
}

static __always_inline __u8 ct_report_flags(__u32 state, bool reply)
{
	__u8 fl = RETINA_PKT_F_CT_REPORT;
	if (reply)
		fl |= RETINA_PKT_F_REPLY;
	if (state & RETINA_CT_DIR_UNKNOWN)
		fl |= RETINA_PKT_F_DIR_UNKNOWN;
	return fl;
}

/* First packet of a (new or reset) connection: reported when sampled,
 * otherwise kept pending. */
static __always_inline void ct_first_packet(const struct pp_ctx *c, struct retina_ct_entry *e, bool src_lo)
{
	__u32 state = e->state;
	bool reply = src_lo != !!(state & RETINA_CT_INIT_IS_LO);
	struct retina_ct_side *side = ct_side(e, c->side);
	__u16 f = c->pkt.tcp_flags;
	bool tcp = c->pkt.tuple.proto == IPPROTO_TCP;

	side->last_reply = reply;
	side->last_report_ns = c->now;

	if (retina_sampled(cfg_sampling_rate)) {
		struct retina_packet_event *ev = retina_ringbuf_reserve(&retina_pp_evts, sizeof(*ev));
		if (ev) {
			pp_fill(ev, &c->pkt.tuple, c->ifindex, c->bytes,
				pp_obs_of(state & RETINA_CT_HOST_IF, c->side), ct_report_flags(state, reply), f,
				RETINA_REPORT_NEW, c->pkt.tcp_tsval);
			ct_take_pending(side, ev, tcp); /* counts a reset entry carried over */
			ct_count_reported(e, reply, ev, true);
			side->flags_seen = f;
			pp_submit(ev);
			return;
		}
	}
	ct_add_pending(side, c->bytes, f, tcp);
}

/* A packet of a live connection. */
static __always_inline void ct_packet(struct pp_ctx *c, struct retina_ct_entry *e, bool src_lo)
{
	__u8 proto = c->pkt.tuple.proto;
	bool tcp = proto == IPPROTO_TCP;
	__u16 f = c->pkt.tcp_flags;
	__u32 bits = ct_packet_bits(proto, f, src_lo);
	__u32 prev = e->state;
	if (bits & ~prev) /* an atomic only when the state changes */
		prev = __sync_fetch_and_or(&e->state, bits);
	__u32 state = prev | bits;
	bool reply = src_lo != !!(state & RETINA_CT_INIT_IS_LO);
	struct retina_ct_side *side = ct_side(e, c->side);
	__u8 reason;

	/* Stored only when it moves (once a tick): CPUs sharing a connection
	 * do not pull the line from each other for every packet. */
	__u64 exp = ct_expiry(proto, prev, state, f, c->now);
	if (e->expires_ns != exp)
		e->expires_ns = exp;
	if (side->last_reply != reply)
		side->last_reply = reply;

	if ((f & ~side->flags_seen) || (f & CT_ALWAYS_REPORT_FLAGS))
		reason = RETINA_REPORT_FLAGS;
	else if (c->now >= side->last_report_ns + cfg_report_interval_ns)
		reason = RETINA_REPORT_INTERVAL;
	else {
		ct_add_pending(side, c->bytes, f, tcp);
		return;
	}

	struct retina_packet_event *ev = retina_ringbuf_reserve(&retina_pp_evts, sizeof(*ev));
	if (!ev) {
		/* Nothing lost: the packet waits for the next report. */
		ct_add_pending(side, c->bytes, f, tcp);
		return;
	}
	pp_fill(ev, &c->pkt.tuple, c->ifindex, c->bytes, pp_obs_of(state & RETINA_CT_HOST_IF, c->side),
		ct_report_flags(state, reply), f, reason, c->pkt.tcp_tsval);
	ct_take_pending(side, ev, tcp);
	ct_count_reported(e, reply, ev, true);
	side->last_report_ns = c->now;
	side->flags_seen |= f;
	pp_submit(ev);
}

/* A record carrying only the pending counts of one side; the tuple comes
 * from the key, oriented the way that side's packets last travelled. */
static __always_inline void ct_fill_flush(struct retina_packet_event *ev, const struct retina_ct_key *k,
					  struct retina_ct_entry *e, __u32 s, __u8 reason, __u64 now)
{
	struct retina_ct_side *side = ct_side(e, s);
	__u32 state = e->state;
	bool reply = side->last_reply;
	bool src_lo = !!(state & RETINA_CT_INIT_IS_LO) != reply;
	struct retina_tuple t;

	__builtin_memset(&t, 0, sizeof(t));
	if (src_lo) {
		retina_addr_copy(t.saddr, k->addr_lo);
		retina_addr_copy(t.daddr, k->addr_hi);
		t.sport = k->port_lo;
		t.dport = k->port_hi;
	} else {
		retina_addr_copy(t.saddr, k->addr_hi);
		retina_addr_copy(t.daddr, k->addr_lo);
		t.sport = k->port_hi;
		t.dport = k->port_lo;
	}
	t.proto = k->proto;
	t.family = retina_addr_is_v4(k->addr_lo) ? 4 : 6;

	pp_fill(ev, &t, k->ifindex, 0, pp_obs_of(state & RETINA_CT_HOST_IF, s & 1),
		ct_report_flags(state, reply) | RETINA_PKT_F_NO_PACKET, 0, reason, 0);
	ct_take_pending(side, ev, k->proto == IPPROTO_TCP);
	ct_count_reported(e, reply, ev, false);
	side->last_report_ns = now;
}

/* Flushes both sides of an expired entry; a side whose record cannot be
 * reserved keeps its counts, which the reset entry carries over. */
static __always_inline void ct_flush_expired(const struct retina_ct_key *k, struct retina_ct_entry *e, __u64 now)
{
#pragma unroll
	for (__u32 s = 0; s < 2; s++) {
		if (!ct_has_pending(ct_side(e, s)))
			continue;
		struct retina_packet_event *ev = retina_ringbuf_reserve(&retina_pp_evts, sizeof(*ev));
		if (!ev)
			continue;
		ct_fill_flush(ev, k, e, s, RETINA_REPORT_TIMEOUT, now);
		pp_submit(ev);
	}
}

/* Global (not static) so the verifier checks it once, on its own, rather
 * than once for every parsing path that leads to it. */
__noinline int ct_process(struct pp_ctx *c)
{
	struct retina_ct_key key;
	if (!c)
		return 0;
	bool src_lo = ct_make_key(&key, c);
	struct retina_ct_entry *e = bpf_map_lookup_elem(&retina_pp_ct, &key);

	if (e) {
		__u64 exp = e->expires_ns;
		if (c->now <= exp) {
			ct_packet(c, e, src_lo);
			return 0;
		}
		if (exp == RETINA_CT_EXPIRES_DYING) {
			/* The sweeper is deleting it: report this packet alone. */
			pp_emit_packet(c, RETINA_PKT_F_CT_REPORT, RETINA_REPORT_TIMEOUT);
			return 0;
		}
		/* Expired: whoever swaps expires_ns first resets the entry. */
		if (__sync_val_compare_and_swap(&e->expires_ns, exp, c->now + CT_NON_TCP_NS) != exp) {
			if (e->expires_ns == RETINA_CT_EXPIRES_DYING)
				pp_emit_packet(c, RETINA_PKT_F_CT_REPORT, RETINA_REPORT_TIMEOUT);
			else
				ct_packet(c, e, src_lo);
			return 0;
		}
		ct_flush_expired(&key, e, c->now);
		ct_init_fields(e, c, src_lo, e->state & RETINA_CT_HOST_IF);
		ct_first_packet(c, e, src_lo);
		return 0;
	}

	__u32 zero = 0;
	struct retina_ct_entry *n = bpf_map_lookup_elem(&retina_pp_scr, &zero);
	if (!n)
		return 0;
	__builtin_memset(n, 0, sizeof(*n));
	ct_init_fields(n, c, src_lo, pp_is_host_if(c->ifindex));
	long err = bpf_map_update_elem(&retina_pp_ct, &key, n, BPF_NOEXIST);
	if (err && err != -EEXIST) {
		retina_stat_inc(RETINA_STAT_CT_FULL);
		pp_emit_packet(c, RETINA_PKT_F_CT_REPORT, RETINA_REPORT_MAP_FULL);
		return 0;
	}
	e = bpf_map_lookup_elem(&retina_pp_ct, &key);
	if (!e) {
		/* Deleted between insert and lookup: count the packet alone. */
		pp_emit_packet(c, RETINA_PKT_F_CT_REPORT, RETINA_REPORT_MAP_FULL);
		return 0;
	}
	if (err == 0)
		ct_first_packet(c, e, src_lo);
	else
		ct_packet(c, e, src_lo); /* another CPU created it first */
	return 0;
}

/* ------------------------------------------------------------- datapath */

/* Global for the same reason as ct_process. */
__noinline int pp_parse(struct __sk_buff *skb, struct retina_pkt *p)
{
	if (!skb || !p)
		return RETINA_PARSE_TRUNCATED;
	struct retina_cursor cur = {
		.data = (void *)(long)skb->data,
		.end = (void *)(long)skb->data_end,
		.off = 0,
	};
	__builtin_memset(p, 0, sizeof(*p));
	return retina_parse_eth(&cur, p);
}

static __always_inline bool pp_of_interest(const struct retina_pkt *p)
{
	struct retina_lpm_key k = {.prefixlen = 128};
	retina_addr_copy(k.addr, p->tuple.saddr);
	if (bpf_map_lookup_elem(&retina_pp_filt, &k))
		return true;
	retina_addr_copy(k.addr, p->tuple.daddr);
	return bpf_map_lookup_elem(&retina_pp_filt, &k) != NULL;
}

static __always_inline void pp_handle(struct __sk_buff *skb, __u32 egress)
{
	struct pp_ctx c;
	int r = pp_parse(skb, &c.pkt);

	if (r == RETINA_PARSE_TRUNCATED || r == RETINA_PARSE_L4_TRUNCATED) {
		/* Headers may sit beyond the linear area: make them linear (the
		 * bytes are unchanged) and parse again. */
		__u32 linear = skb->data_end - skb->data;
		if (skb->len > linear) {
			bpf_skb_pull_data(skb, skb->len < PP_PULL_LEN ? skb->len : PP_PULL_LEN);
			r = pp_parse(skb, &c.pkt);
		}
	}
	retina_count_parse_result(r);
	if (r == RETINA_PARSE_NOT_IP || r == RETINA_PARSE_TRUNCATED)
		return;
	if (!retina_proto_reported(c.pkt.tuple.proto)) {
		if (r == RETINA_PARSE_OK) /* a cut-short one is already counted */
			retina_stat_inc(RETINA_STAT_OTHER_PROTO);
		return;
	}
	if (!cfg_bypass_filter && !pp_of_interest(&c.pkt))
		return;
	if (c.pkt.tcp_opt_len)
		c.pkt.tcp_tsval = (__u32)retina_tcp_tsval(skb, c.pkt.tcp_opt_off, c.pkt.tcp_opt_len);

	c.ifindex = skb->ifindex;
	c.bytes = skb->len;
	c.side = egress ? 1 : 0;
	c.obs = PP_OBS_UNKNOWN;

	if (cfg_aggregation_high) {
		c.now = pp_ct_now();
		ct_process(&c);
		return;
	}
	c.now = 0;
	if (!retina_sampled(cfg_sampling_rate)) {
		retina_stat_inc(RETINA_STAT_SAMPLED_OUT);
		return;
	}
	if (cfg_batch_ns)
		pp_batch_packet(&c);
	else
		pp_emit_packet(&c, 0, RETINA_REPORT_PACKET);
}

SEC("tc")
int retina_pp_ing(struct __sk_buff *skb)
{
	pp_handle(skb, 0);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int retina_pp_egr(struct __sk_buff *skb)
{
	pp_handle(skb, 1);
	return TC_ACT_UNSPEC;
}

/* --------------------------------------------------------------- sweeper */

struct sweep_ctx {
	__u64 now;
	__u32 flush_all;
	__u32 _pad;
	struct retina_ct_gauges g;
};

static long sweep_one(struct bpf_map *map, struct retina_ct_key *key, struct retina_ct_entry *e,
		      struct sweep_ctx *sc)
{
	__u64 now = sc->now;
	__u64 exp = e->expires_ns;

	if (exp == RETINA_CT_EXPIRES_DYING)
		return 0;
	if (now > exp) {
		if (now <= exp + CT_DELETE_GRACE_NS) {
			/* Deleted by a later sweep; a final flush reports its
			 * counts now. */
			if (sc->flush_all) {
#pragma unroll
				for (__u32 s = 0; s < 2; s++) {
					if (!ct_has_pending(ct_side(e, s)))
						continue;
					struct retina_packet_event *ev =
						retina_ringbuf_reserve(&retina_pp_evts, sizeof(*ev));
					if (!ev)
						continue;
					ct_fill_flush(ev, key, e, s, RETINA_REPORT_TIMEOUT, now);
					pp_submit(ev);
				}
			}
			return 0;
		}
		/* Reserve first: if the ring is full the entry stays for the
		 * next sweep and nothing is lost. */
		struct retina_packet_event *ev0 = NULL, *ev1 = NULL;
		if (ct_has_pending(ct_side(e, 0))) {
			ev0 = retina_ringbuf_reserve(&retina_pp_evts, sizeof(*ev0));
			if (!ev0)
				return 0;
		}
		if (ct_has_pending(ct_side(e, 1))) {
			ev1 = retina_ringbuf_reserve(&retina_pp_evts, sizeof(*ev1));
			if (!ev1) {
				if (ev0)
					bpf_ringbuf_discard(ev0, 0);
				return 0;
			}
		}
		if (__sync_val_compare_and_swap(&e->expires_ns, exp, RETINA_CT_EXPIRES_DYING) != exp) {
			/* A packet revived it meanwhile. */
			if (ev0)
				bpf_ringbuf_discard(ev0, 0);
			if (ev1)
				bpf_ringbuf_discard(ev1, 0);
			return 0;
		}
		if (ev0) {
			ct_fill_flush(ev0, key, e, 0, RETINA_REPORT_TIMEOUT, now);
			pp_submit(ev0);
		}
		if (ev1) {
			ct_fill_flush(ev1, key, e, 1, RETINA_REPORT_TIMEOUT, now);
			pp_submit(ev1);
		}
		bpf_map_delete_elem(map, key);
		retina_stat_inc(RETINA_STAT_CT_EXPIRED);
		return 0;
	}

	sc->g.connections++;
	sc->g.packets_tx += e->packets[0];
	sc->g.packets_rx += e->packets[1];
	sc->g.bytes_tx += e->bytes[0];
	sc->g.bytes_rx += e->bytes[1];
#pragma unroll
	for (__u32 s = 0; s < 2; s++) {
		const struct retina_ct_side *side = ct_side(e, s);
		__u64 p, b;
		ct_peek_pending(side, &p, &b);
		if (side->last_reply) {
			sc->g.packets_rx += p;
			sc->g.bytes_rx += b;
		} else {
			sc->g.packets_tx += p;
			sc->g.bytes_tx += b;
		}
	}

#pragma unroll
	for (__u32 s = 0; s < 2; s++) {
		struct retina_ct_side *side = ct_side(e, s);
		if (!ct_has_pending(side))
			continue;
		if (!sc->flush_all && now < side->last_report_ns + cfg_report_interval_ns)
			continue;
		struct retina_packet_event *ev = retina_ringbuf_reserve(&retina_pp_evts, sizeof(*ev));
		if (!ev)
			continue;
		ct_fill_flush(ev, key, e, s, RETINA_REPORT_INTERVAL, now);
		pp_submit(ev);
	}
	return 0;
}

/* Run with BPF_PROG_TEST_RUN; never attached. skb->mark may ask for
 * RETINA_SWEEP_FLUSH_ALL. */
SEC("tc")
int retina_pp_sweep(struct __sk_buff *skb)
{
	struct sweep_ctx sc;
	__u32 zero = 0;

	__builtin_memset(&sc, 0, sizeof(sc));
	sc.now = pp_ct_now();
	sc.flush_all = skb->mark == RETINA_SWEEP_FLUSH_ALL;
	bpf_for_each_map_elem(&retina_pp_ct, sweep_one, &sc, 0);
	sc.g.sweep_ns = sc.now;
	struct retina_ct_gauges *g = bpf_map_lookup_elem(&retina_pp_ctg, &zero);
	if (g)
		__builtin_memcpy(g, &sc.g, sizeof(sc.g));
	return TC_ACT_UNSPEC;
}
