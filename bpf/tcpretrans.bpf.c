// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * tcpretrans: one record per TCP retransmission, from the
 * tcp_retransmit_skb tracepoint, in every network namespace.
 *
 * The tracepoint passes the socket and the retransmitted skb; since Linux
 * 6.13 also the result (err), and it then fires for failed attempts too,
 * which are counted (RETINA_RT_STAT_FAILED) but not reported. The skb sits
 * in the retransmit queue and carries no TCP header yet (tcp_transmit_skb
 * builds one on a clone), so its flags and segment count come from its
 * control block (struct tcp_skb_cb), the values the header and RetransSegs
 * are made from.
 *
 * Four programs, of which user space loads one: BTF-typed (tp_btf) when
 * the kernel supports it, a raw tracepoint otherwise, each with or without
 * the err argument as the kernel's tracepoint has it.
 */
#include "common.h"
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

_Static_assert(sizeof(struct retina_tcpretrans_event) == 72, "retina_tcpretrans_event layout");

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* set before load */
} retina_rt_evts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RETINA_RT_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} retina_rt_stats SEC(".maps");

static __always_inline void rt_stat_inc(__u32 idx)
{
	retina_percpu_add(&retina_rt_stats, idx, 1);
}

static __always_inline void rt_report(const struct sock *sk, const struct sk_buff *skb)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	/* The IPv6 fields are absent from kernels built without IPv6. */
	bool v6 = family == AF_INET6 && bpf_core_field_exists(sk->__sk_common.skc_v6_daddr);
	if (family != AF_INET && !v6) {
		rt_stat_inc(RETINA_RT_STAT_OTHER_FAMILY);
		return;
	}
	struct retina_tcpretrans_event *ev = retina_ringbuf_reserve(&retina_rt_evts, sizeof(*ev));
	if (!ev)
		return;
	__builtin_memset(ev, 0, sizeof(*ev));
	retina_hdr_fill(&ev->hdr, RETINA_EV_TCPRETRANS, RETINA_TCPRETRANS_EVENT_VERSION, sizeof(*ev));

	if (family == AF_INET) {
		retina_addr_from_v4(ev->tuple.saddr, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		retina_addr_from_v4(ev->tuple.daddr, BPF_CORE_READ(sk, __sk_common.skc_daddr));
		ev->tuple.family = 4;
	} else {
		BPF_CORE_READ_INTO(&ev->tuple.saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&ev->tuple.daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		/* A dual-stack socket talking IPv4 keeps IPv4-mapped addresses:
		 * the segments on the wire are IPv4. */
		ev->tuple.family =
			retina_addr_is_v4(ev->tuple.saddr) && retina_addr_is_v4(ev->tuple.daddr) ? 4 : 6;
	}
	ev->tuple.sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev->tuple.dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	ev->tuple.proto = IPPROTO_TCP;
	ev->state = BPF_CORE_READ(sk, __sk_common.skc_state);
	if (bpf_core_field_exists(sk->__sk_common.skc_net.net)) /* absent without CONFIG_NET_NS */
		ev->netns_ino = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);

	/* tcp_flags grew from 8 to 16 bits (AccECN's AE flag): read it with
	 * its size in the running kernel. */
	const struct tcp_skb_cb *cb = (const void *)&skb->cb[0];
	ev->tcp_flags = (__u16)BPF_CORE_READ_BITFIELD_PROBED(cb, tcp_flags) & 0x1ff;
	ev->segs = (__u16)BPF_CORE_READ_BITFIELD_PROBED(cb, tcp_gso_segs);
	retina_ringbuf_submit(ev);
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(retina_rt_btf, const struct sock *sk, const struct sk_buff *skb)
{
	rt_report(sk, skb);
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(retina_rt_btf_e, const struct sock *sk, const struct sk_buff *skb, int err)
{
	if (err) {
		rt_stat_inc(RETINA_RT_STAT_FAILED);
		return 0;
	}
	rt_report(sk, skb);
	return 0;
}

SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(retina_rt_raw, const struct sock *sk, const struct sk_buff *skb)
{
	rt_report(sk, skb);
	return 0;
}

SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(retina_rt_raw_e, const struct sock *sk, const struct sk_buff *skb, int err)
{
	if (err) {
		rt_stat_inc(RETINA_RT_STAT_FAILED);
		return 0;
	}
	rt_report(sk, skb);
	return 0;
}
