// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * dropreason: every packet the kernel drops, from the kfree_skb tracepoint
 * and its enum skb_drop_reason. One tracepoint hit is one drop.
 *
 * Counts: packets and bytes per (reason, direction) in a per-CPU hash,
 * always, so the totals are exact whatever happens to events.
 *
 * Events: one RETINA_EV_DROP record per drop, within a per-CPU token
 * bucket. A drop over the budget is counted in RETINA_STAT_RATE_LIMITED
 * and in its flow's suppression counter, which the flow's next event
 * carries in `suppressed`.
 *
 * Two entry points share one body: tp_btf/kfree_skb where the kernel has
 * BTF-enabled tracepoints, raw_tp/kfree_skb otherwise. User space loads
 * exactly one of them.
 */
#include "common.h"
#include "ringbuf_batched.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

_Static_assert(sizeof(struct retina_drop_event) == 88, "retina_drop_event layout");
_Static_assert(sizeof(struct retina_drop_key) == 8, "retina_drop_key layout");
_Static_assert(sizeof(struct retina_pkt_counts) == 16, "retina_pkt_counts layout");

/* Set by user space between open and load. */
const volatile __u64 cfg_skip_mask = 0;       /* bit n: core reason n is an expected free, not counted */
const volatile __u8 cfg_events = 1;           /* per-flow events on */
const volatile __u64 cfg_event_cost_ns = 0;   /* token bucket: budget per event (0: no limit) */
const volatile __u64 cfg_bucket_ns = 1000000000ULL; /* token bucket capacity */
const volatile __u32 cfg_netns = 0;           /* only drops in this network namespace (inode; 0: all) */
const volatile __u64 cfg_wakeup_bytes = 6144; /* wake the reader once this much is waiting */

#define SKB_NO_HEADER 0xffff /* skb->network_header before it is set */
#define DR_IPV6_EXT_HDRS 4

/* Core reasons (below RETINA_DROP_REASON_SLOTS) count in an array, whose
 * lookups the verifier inlines: index reason * 2 + direction - 1. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RETINA_DROP_REASON_SLOTS * 2);
	__type(key, __u32);
	__type(value, struct retina_pkt_counts);
} retina_dr_core SEC(".maps");

/* Every other reason (subsystems) by key. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct retina_drop_key);
	__type(value, struct retina_pkt_counts);
} retina_dr_cnt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* sized by user space before load */
} retina_dr_evts SEC(".maps");

struct dr_bucket {
	__u64 tokens; /* nanoseconds of budget */
	__u64 last_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dr_bucket);
} retina_dr_tb SEC(".maps");

struct dr_flow_key {
	struct retina_tuple tuple;
	__u32 reason;
};

/* Drops of a flow not sent since its last event. LRU: an evicted flow
 * loses only its per-flow tally; RETINA_STAT_RATE_LIMITED has them all. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct dr_flow_key);
	__type(value, __u32);
} retina_dr_flows SEC(".maps");

/* What the program needs of an skb, read once. */
struct dr_skb {
	__u32 len;
	__u32 ifindex;
	__u32 netns;
	__u8 direction;
};

/* Reads skb fields directly where the program has BTF pointers (tp_btf;
 * a bad pointer reads as 0) and through bpf_probe_read_kernel otherwise
 * (raw_tp). `btf` is a constant at every call, so the other branch is
 * compiled out and the verifier never sees it. */
#define DR_READ(btf, ptr, field) ((btf) ? (ptr)->field : BPF_CORE_READ(ptr, field))

static __always_inline void dr_read_skb(const bool btf, struct sk_buff *skb, struct dr_skb *s)
{
	struct net_device *dev = DR_READ(btf, skb, dev);
	int iif = DR_READ(btf, skb, skb_iif);
	int dev_ifindex = 0;

	s->len = DR_READ(btf, skb, len);
	/* skb->dev shares its storage with dev_scratch (UDP receive queues):
	 * a pointer that cannot be read, or reads as no interface, is no
	 * device. */
	if (dev) {
		if (btf)
			dev_ifindex = dev->ifindex;
		else if (bpf_core_read(&dev_ifindex, sizeof(dev_ifindex), &dev->ifindex) != 0)
			dev_ifindex = 0;
		if (dev_ifindex <= 0)
			dev = NULL;
	}

	/* Received by this namespace (skb_iif set) and not yet handed to
	 * another device: ingress. Locally generated (no skb_iif), or routed
	 * towards an output device: egress. */
	if (iif > 0 && (!dev || dev_ifindex == iif))
		s->direction = RETINA_DROP_DIR_INGRESS;
	else
		s->direction = RETINA_DROP_DIR_EGRESS;
	s->ifindex = dev ? (__u32)dev_ifindex : (__u32)(iif > 0 ? iif : 0);

	s->netns = 0;
	if (!cfg_netns)
		return;
	if (dev) {
		s->netns = btf ? dev->nd_net.net->ns.inum : BPF_CORE_READ(dev, nd_net.net, ns.inum);
	} else {
		struct sock *sk = DR_READ(btf, skb, sk);
		if (sk)
			s->netns = btf ? sk->__sk_common.skc_net.net->ns.inum
				       : BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	}
}

static __always_inline void dr_count(__u32 reason, __u8 direction, __u32 len)
{
	struct retina_pkt_counts *c;
	if (reason < RETINA_DROP_REASON_SLOTS) {
		__u32 idx = reason * 2 + direction - 1;
		c = bpf_map_lookup_elem(&retina_dr_core, &idx);
		if (c) {
			__sync_fetch_and_add(&c->packets, 1);
			__sync_fetch_and_add(&c->bytes, len);
		}
		return;
	}
	struct retina_drop_key k = {.reason = reason, .direction = direction};
	c = bpf_map_lookup_elem(&retina_dr_cnt, &k);
	if (!c) {
		struct retina_pkt_counts zero = {};
		/* Another CPU may insert the key first: EEXIST, then found. */
		bpf_map_update_elem(&retina_dr_cnt, &k, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&retina_dr_cnt, &k);
	}
	if (!c) {
		/* Map full: user space created the overflow keys at load. */
		k.reason = RETINA_DROP_REASON_OVERFLOW;
		c = bpf_map_lookup_elem(&retina_dr_cnt, &k);
		if (!c)
			return;
	}
	__sync_fetch_and_add(&c->packets, 1);
	__sync_fetch_and_add(&c->bytes, len);
}

/* Reads n bytes at offset off of the skb's linear data; 0 on success. */
static __always_inline int dr_load(unsigned char *head, __u32 tail, __u32 off, void *dst, __u32 n)
{
	if (off + n > tail)
		return -1;
	return bpf_probe_read_kernel(dst, n, head + off);
}

/* Ports (TCP, UDP) or type and code (ICMP, ICMPv6) from the first bytes
 * of the transport header. */
static __always_inline void dr_set_ports(struct retina_tuple *t, const __u8 *p)
{
	if (t->proto == IPPROTO_TCP || t->proto == IPPROTO_UDP) {
		t->sport = ((__u16)p[0] << 8) | p[1];
		t->dport = ((__u16)p[2] << 8) | p[3];
	} else {
		t->sport = p[0];
		t->dport = p[1];
	}
}

/* The packet's tuple from its network header; the tuple stays zero (and
 * a stat says why) when the skb carries none the ABI can express. The
 * usual headers (IPv4 without options, IPv6 without extension headers)
 * take one read. */
static __always_inline void dr_parse(const bool btf, struct sk_buff *skb, struct retina_tuple *t)
{
	unsigned char *head = DR_READ(btf, skb, head);
	__u32 nh = DR_READ(btf, skb, network_header);
	__u32 tail = DR_READ(btf, skb, tail);
	__be16 proto = DR_READ(btf, skb, protocol);

	if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6)) {
		retina_stat_inc(RETINA_STAT_NOT_IP);
		return;
	}
	if (!head || nh == SKB_NO_HEADER || nh >= tail) {
		retina_stat_inc(RETINA_STAT_TRUNCATED);
		return;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		__u8 ip[24]; /* header without options and the first 4 transport bytes */
		__builtin_memset(ip, 0, sizeof(ip));
		__u32 got = tail - nh >= sizeof(ip) ? sizeof(ip) : 20;
		if (dr_load(head, tail, nh, ip, got) || (ip[0] >> 4) != 4 || (ip[0] & 0x0f) < 5) {
			retina_stat_inc(RETINA_STAT_TRUNCATED);
			return;
		}
		__be32 saddr, daddr;
		__builtin_memcpy(&saddr, ip + 12, 4);
		__builtin_memcpy(&daddr, ip + 16, 4);
		retina_addr_from_v4(t->saddr, saddr);
		retina_addr_from_v4(t->daddr, daddr);
		t->family = 4;
		t->proto = ip[9];
		__u16 frag = ((__u16)ip[6] << 8) | ip[7];
		__u32 hl = (ip[0] & 0x0f) * 4;
		if (retina_proto_reported(t->proto) && !(frag & RETINA_IP_OFFSET)) {
			if (hl == 20 && got == sizeof(ip)) {
				dr_set_ports(t, ip + 20);
			} else {
				__u8 p[4];
				if (!dr_load(head, tail, nh + hl, p, sizeof(p)))
					dr_set_ports(t, p);
			}
		}
	} else {
		__u8 ip6[44]; /* fixed header and the first 4 bytes after it */
		__builtin_memset(ip6, 0, sizeof(ip6));
		__u32 got = tail - nh >= sizeof(ip6) ? sizeof(ip6) : 40;
		if (dr_load(head, tail, nh, ip6, got) || (ip6[0] >> 4) != 6) {
			retina_stat_inc(RETINA_STAT_TRUNCATED);
			return;
		}
		__builtin_memcpy(t->saddr, ip6 + 8, 16);
		__builtin_memcpy(t->daddr, ip6 + 24, 16);
		t->family = 6;
		__u8 next = ip6[6];
		__u32 off = nh + 40;
		bool first_fragment = true;
		bool direct = true; /* transport header right after the fixed one */
#pragma unroll
		for (int i = 0; i < DR_IPV6_EXT_HDRS; i++) {
			if (next != RETINA_NEXTHDR_HOP && next != RETINA_NEXTHDR_ROUTING &&
			    next != RETINA_NEXTHDR_DEST && next != RETINA_NEXTHDR_FRAGMENT &&
			    next != RETINA_NEXTHDR_AUTH)
				break;
			direct = false;
			__u8 eh[4];
			if (dr_load(head, tail, off, eh, sizeof(eh))) {
				next = 255; /* unknown: no transport header */
				break;
			}
			if (next == RETINA_NEXTHDR_FRAGMENT) {
				if (((((__u16)eh[2] << 8) | eh[3]) & 0xfff8) != 0)
					first_fragment = false;
				off += 8;
			} else if (next == RETINA_NEXTHDR_AUTH) {
				off += ((__u32)eh[1] + 2) * 4;
			} else {
				off += ((__u32)eh[1] + 1) * 8;
			}
			next = eh[0];
		}
		t->proto = next;
		if (retina_proto_reported(next) && first_fragment) {
			if (direct && got == sizeof(ip6)) {
				dr_set_ports(t, ip6 + 40);
			} else {
				__u8 p[4];
				if (!dr_load(head, tail, off, p, sizeof(p)))
					dr_set_ports(t, p);
			}
		}
	}

	if (!retina_proto_reported(t->proto)) {
		/* The ABI carries TCP, UDP, ICMP and ICMPv6 tuples only. */
		retina_stat_inc(RETINA_STAT_OTHER_PROTO);
		__builtin_memset(t, 0, sizeof(*t));
	}
}

/* One event's worth of budget from this CPU's bucket. Programs do not
 * nest on a CPU (the kernel skips a tracing program that would recurse),
 * so the bucket needs no atomics. */
static __always_inline bool dr_take_token(void)
{
	if (cfg_event_cost_ns == 0)
		return true;
	__u32 zero = 0;
	struct dr_bucket *b = bpf_map_lookup_elem(&retina_dr_tb, &zero);
	if (!b)
		return false;
	__u64 now = bpf_ktime_get_ns();
	__u64 tokens = cfg_bucket_ns;
	if (b->last_ns) {
		tokens = b->tokens + (now - b->last_ns);
		if (tokens > cfg_bucket_ns)
			tokens = cfg_bucket_ns;
	}
	b->last_ns = now;
	if (tokens < cfg_event_cost_ns) {
		b->tokens = tokens;
		return false;
	}
	b->tokens = tokens - cfg_event_cost_ns;
	return true;
}

static __always_inline int dr_handle(const bool btf, struct sk_buff *skb, void *location, __u32 reason)
{
	if (!skb)
		return 0;
	if (reason < 64 && (cfg_skip_mask & (1ULL << reason)))
		return 0;

	struct dr_skb s;
	dr_read_skb(btf, skb, &s);
	if (cfg_netns && s.netns != cfg_netns)
		return 0;

	dr_count(reason, s.direction, s.len);
	if (!cfg_events)
		return 0;

	struct dr_flow_key fk;
	__builtin_memset(&fk, 0, sizeof(fk));
	dr_parse(btf, skb, &fk.tuple);
	fk.reason = reason;

	if (!dr_take_token()) {
		__u32 *n = bpf_map_lookup_elem(&retina_dr_flows, &fk);
		if (n) {
			__sync_fetch_and_add(n, 1);
		} else {
			__u32 one = 1;
			if (bpf_map_update_elem(&retina_dr_flows, &fk, &one, BPF_NOEXIST) != 0) {
				n = bpf_map_lookup_elem(&retina_dr_flows, &fk);
				if (n)
					__sync_fetch_and_add(n, 1);
			}
		}
		retina_stat_inc(RETINA_STAT_RATE_LIMITED);
		return 0;
	}

	/* Reserve before taking the flow's tally: a full ring loses this
	 * event (counted), never the tally. */
	struct retina_drop_event *ev = retina_ringbuf_reserve(&retina_dr_evts, sizeof(*ev));
	if (!ev)
		return 0;
	__u32 suppressed = 0;
	__u32 *n = bpf_map_lookup_elem(&retina_dr_flows, &fk);
	if (n && *n)
		suppressed = __sync_lock_test_and_set(n, 0);

	__builtin_memset(ev, 0, sizeof(*ev));
	retina_hdr_fill(&ev->hdr, RETINA_EV_DROP, RETINA_DROP_EVENT_VERSION, sizeof(*ev));
	__builtin_memcpy(&ev->tuple, &fk.tuple, sizeof(fk.tuple));
	ev->ifindex = s.ifindex;
	ev->bytes = s.len;
	ev->reason = reason;
	ev->direction = s.direction;
	ev->suppressed = suppressed;
	ev->location = (__u64)location;
	retina_ringbuf_submit_batched(&retina_dr_evts, ev, cfg_wakeup_bytes);
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(retina_dr_btf, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return dr_handle(true, skb, location, (__u32)reason);
}

SEC("raw_tp/kfree_skb")
int retina_dr_raw(struct bpf_raw_tracepoint_args *ctx)
{
	return dr_handle(false, (struct sk_buff *)ctx->args[0], (void *)ctx->args[1], (__u32)ctx->args[2]);
}
