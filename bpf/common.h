/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Helpers shared by retina's BPF programs: bounded header parsing
 * (Ethernet, VLAN, IPv4 with options, IPv6 with extension headers, TCP, UDP,
 * ICMP, ICMPv6) over direct packet access, the per-CPU "retina_stats"
 * array, and address helpers for the IPv4-mapped layout of the ABI.
 *
 * The parsers take a cursor (data, data_end, offset) instead of a context,
 * so tc (data at the Ethernet header), cgroup_skb and socket-level programs
 * (data at the network header) share them.
 */
#ifndef RETINA_BPF_COMMON_H
#define RETINA_BPF_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "retina/abi/events.h"

/* uapi #defines that vmlinux.h does not carry. */
#ifndef TC_ACT_UNSPEC
#define TC_ACT_UNSPEC (-1)
#endif
#ifndef ETH_P_IP
#define ETH_P_IP 0x0800
#endif
#ifndef ETH_P_IPV6
#define ETH_P_IPV6 0x86DD
#endif
#ifndef ETH_P_8021Q
#define ETH_P_8021Q 0x8100
#endif
#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif
#ifndef ETH_HLEN
#define ETH_HLEN 14
#endif
#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif
#ifndef EEXIST
#define EEXIST 17
#endif
#ifndef EBUSY
#define EBUSY 16
#endif

#define RETINA_IP_MF 0x2000
#define RETINA_IP_OFFSET 0x1fff

/* IPv6 extension headers (nexthdr values). */
#define RETINA_NEXTHDR_HOP 0
#define RETINA_NEXTHDR_ROUTING 43
#define RETINA_NEXTHDR_FRAGMENT 44
#define RETINA_NEXTHDR_AUTH 51
#define RETINA_NEXTHDR_DEST 60
#define RETINA_IPV6_MAX_EXT_HDRS 8

/* Headers never start further than this into a packet; keeps every
 * variable offset bounded for the verifier. */
#define RETINA_MAX_HDR_OFF 1024

/* ---------------------------------------------------------------- stats */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RETINA_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} retina_stats SEC(".maps");

/* Adds n to entry idx of a per-CPU __u64 array: retina_stats or a
 * plugin's own statistics. Atomic even on one CPU: a program run through
 * BPF_PROG_TEST_RUN is preemptible and a softirq program may interleave
 * with it. */
static __always_inline void retina_percpu_add(void *map, __u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(map, &idx);
	if (v)
		__sync_fetch_and_add(v, n);
}

static __always_inline void retina_stat_add(__u32 idx, __u64 n)
{
	retina_percpu_add(&retina_stats, idx, n);
}

static __always_inline void retina_stat_inc(__u32 idx)
{
	retina_stat_add(idx, 1);
}

/* Reserves a ring-buffer record; a failure is counted as a lost event. */
static __always_inline void *retina_ringbuf_reserve(void *ringbuf, __u64 size)
{
	void *rec = bpf_ringbuf_reserve(ringbuf, size, 0);
	if (!rec)
		retina_stat_inc(RETINA_STAT_RINGBUF_FULL);
	return rec;
}

/* Fills a record's common header (padding zeroed; ring memory holds older
 * records), stamped with CLOCK_BOOTTIME now. */
static __always_inline void retina_hdr_fill(struct retina_event_hdr *h, __u16 type, __u8 version, __u16 len)
{
	h->type = type;
	h->version = version;
	h->_pad0 = 0;
	h->len = len;
	h->_pad1 = 0;
	h->ts_ns = bpf_ktime_get_boot_ns();
}

static __always_inline void retina_ringbuf_submit(void *rec)
{
	bpf_ringbuf_submit(rec, 0);
	retina_stat_inc(RETINA_STAT_REPORTS);
}

/* ------------------------------------------------------------ addresses */

/* ::ffff:a.b.c.d from a network-order IPv4 address. */
static __always_inline void retina_addr_from_v4(__u8 dst[16], __be32 addr)
{
	__u32 *d = (__u32 *)dst;
	d[0] = 0;
	d[1] = 0;
	d[2] = bpf_htonl(0x0000ffff);
	d[3] = addr;
}

static __always_inline void retina_addr_copy(__u8 dst[16], const __u8 src[16])
{
	__u32 *d = (__u32 *)dst;
	const __u32 *s = (const __u32 *)src;
	d[0] = s[0];
	d[1] = s[1];
	d[2] = s[2];
	d[3] = s[3];
}

static __always_inline bool retina_addr_is_v4(const __u8 a[16])
{
	const __u32 *w = (const __u32 *)a;
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
}

/* memcmp-style order of two 16-byte addresses: <0, 0, >0. */
static __always_inline int retina_addr_cmp(const __u8 a[16], const __u8 b[16])
{
	const __u32 *x = (const __u32 *)a;
	const __u32 *y = (const __u32 *)b;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 xa = bpf_ntohl(x[i]);
		__u32 yb = bpf_ntohl(y[i]);
		if (xa != yb)
			return xa < yb ? -1 : 1;
	}
	return 0;
}

/* -------------------------------------------------------------- parsing */

enum retina_parse_result {
	RETINA_PARSE_OK = 0,
	RETINA_PARSE_L4_TRUNCATED, /* addresses known, transport header cut short */
	RETINA_PARSE_TRUNCATED,    /* link or network header cut short: no tuple */
	RETINA_PARSE_NOT_IP,       /* neither IPv4 nor IPv6 */
};

/* A parsed packet; tuple follows the ABI conventions. */
struct retina_pkt {
	struct retina_tuple tuple;
	__u16 tcp_flags; /* RETINA_TCP_* */
	__u16 l4_off;      /* offset of the transport header from data */
	__u16 tcp_opt_off; /* TCP options still to search for the timestamp: */
	__u8 tcp_opt_len;  /* offset from data and length (0: nothing to do) */
	__u8 _pad[3];
	__u32 tcp_tsval;   /* set by the parser for the usual layout, else by */
	                   /* the caller with retina_tcp_tsval() */
};

struct retina_cursor {
	void *data;
	void *end;
	__u32 off;
};

struct retina_vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

struct retina_ipv6_opt_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

/* The TCP timestamp option value (kind 8, length 10) from the options at
 * [off, off + len) of the packet, 0 when absent or malformed. A global
 * function, so the verifier checks its loop once instead of once per
 * parsing path of every caller. */
__noinline int retina_tcp_tsval(struct __sk_buff *skb, __u32 off, __u32 len)
{
	__u8 opt[40];
	__builtin_memset(opt, 0, sizeof(opt));
	if (!skb || len == 0 || len > sizeof(opt))
		return 0;
	if (bpf_skb_load_bytes(skb, off, opt, len) < 0)
		return 0;
	/* No separate iteration counter: i grows every round, so the loop
	 * ends, and the verifier merges rounds that reach the same i. */
	__u32 i = 0;
#pragma clang loop unroll(disable)
	while (i < len && i <= 38) {
		__u8 kind = opt[i];
		if (kind == 0) /* end of options */
			return 0;
		if (kind == 1) { /* NOP */
			i++;
			continue;
		}
		__u8 olen = opt[i + 1];
		if (olen < 2)
			return 0;
		if (kind == 8 && olen == 10) {
			if (i + 10 > len || i > 30)
				return 0;
			__u32 v = ((__u32)opt[i + 2] << 24) | ((__u32)opt[i + 3] << 16) |
				  ((__u32)opt[i + 4] << 8) | (__u32)opt[i + 5];
			return (int)v;
		}
		i += olen;
	}
	return 0;
}

/* Transport header at c->off; proto from the network header. */
static __always_inline int retina_parse_l4(struct retina_cursor *c, __u8 proto, struct retina_pkt *p)
{
	__u32 off = c->off;
	if (off > RETINA_MAX_HDR_OFF)
		return RETINA_PARSE_L4_TRUNCATED;
	void *h = c->data + off;
	p->l4_off = off;

	switch (proto) {
	case IPPROTO_TCP: {
		__u8 *t = h;
		if ((void *)(t + 20) > c->end)
			return RETINA_PARSE_L4_TRUNCATED;
		__u16 sport, dport;
		__builtin_memcpy(&sport, t, 2);
		__builtin_memcpy(&dport, t + 2, 2);
		p->tuple.sport = bpf_ntohs(sport);
		p->tuple.dport = bpf_ntohs(dport);
		__u32 doff = (t[12] >> 4) * 4;
		p->tcp_flags = t[13] | ((__u16)(t[12] & 0x01) << 8);
		if (doff < 20)
			return RETINA_PARSE_L4_TRUNCATED;
		if (doff >= 32 && (void *)(t + 32) <= c->end && t[20] == 1 && t[21] == 1 &&
		    t[22] == 8 && t[23] == 10) {
			/* NOP, NOP, timestamps: how Linux starts every segment
			 * after the handshake. */
			__u32 v;
			__builtin_memcpy(&v, t + 24, 4);
			p->tcp_tsval = bpf_ntohl(v);
			return RETINA_PARSE_OK;
		}
		p->tcp_opt_off = off + 20;
		p->tcp_opt_len = doff - 20;
		return RETINA_PARSE_OK;
	}
	case IPPROTO_UDP: {
		__u8 *u = h;
		if ((void *)(u + 8) > c->end)
			return RETINA_PARSE_L4_TRUNCATED;
		__u16 sport, dport;
		__builtin_memcpy(&sport, u, 2);
		__builtin_memcpy(&dport, u + 2, 2);
		p->tuple.sport = bpf_ntohs(sport);
		p->tuple.dport = bpf_ntohs(dport);
		return RETINA_PARSE_OK;
	}
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6: {
		__u8 *i = h;
		if ((void *)(i + 4) > c->end)
			return RETINA_PARSE_L4_TRUNCATED;
		p->tuple.sport = i[0]; /* type */
		p->tuple.dport = i[1]; /* code */
		return RETINA_PARSE_OK;
	}
	default:
		return RETINA_PARSE_OK;
	}
}

static __always_inline int retina_parse_ipv4(struct retina_cursor *c, struct retina_pkt *p)
{
	__u32 off = c->off;
	if (off > RETINA_MAX_HDR_OFF)
		return RETINA_PARSE_TRUNCATED;
	__u8 *ip = c->data + off;
	if ((void *)(ip + 20) > c->end)
		return RETINA_PARSE_TRUNCATED;
	if ((ip[0] >> 4) != 4)
		return RETINA_PARSE_TRUNCATED;
	__u32 hl = (ip[0] & 0x0f) * 4;
	if (hl < 20)
		return RETINA_PARSE_TRUNCATED;
	if ((void *)(ip + hl) > c->end) /* options cut short */
		return RETINA_PARSE_TRUNCATED;

	__be32 saddr, daddr;
	__builtin_memcpy(&saddr, ip + 12, 4);
	__builtin_memcpy(&daddr, ip + 16, 4);
	retina_addr_from_v4(p->tuple.saddr, saddr);
	retina_addr_from_v4(p->tuple.daddr, daddr);
	p->tuple.proto = ip[9];
	p->tuple.family = 4;

	__u16 frag;
	__builtin_memcpy(&frag, ip + 6, 2);
	if (bpf_ntohs(frag) & RETINA_IP_OFFSET) /* non-first fragment: no transport header */
		return RETINA_PARSE_OK;
	c->off = off + hl;
	return retina_parse_l4(c, p->tuple.proto, p);
}

static __always_inline int retina_parse_ipv6(struct retina_cursor *c, struct retina_pkt *p)
{
	__u32 off = c->off;
	if (off > RETINA_MAX_HDR_OFF)
		return RETINA_PARSE_TRUNCATED;
	__u8 *ip6 = c->data + off;
	if ((void *)(ip6 + 40) > c->end)
		return RETINA_PARSE_TRUNCATED;
	if ((ip6[0] >> 4) != 6)
		return RETINA_PARSE_TRUNCATED;
	__builtin_memcpy(p->tuple.saddr, ip6 + 8, 16);
	__builtin_memcpy(p->tuple.daddr, ip6 + 24, 16);
	p->tuple.family = 6;

	__u8 nexthdr = ip6[6];
	off += 40;
#pragma clang loop unroll(disable)
	for (int i = 0; i < RETINA_IPV6_MAX_EXT_HDRS; i++) {
		if (nexthdr != RETINA_NEXTHDR_HOP && nexthdr != RETINA_NEXTHDR_ROUTING &&
		    nexthdr != RETINA_NEXTHDR_DEST && nexthdr != RETINA_NEXTHDR_FRAGMENT &&
		    nexthdr != RETINA_NEXTHDR_AUTH)
			break;
		if (off > RETINA_MAX_HDR_OFF) {
			p->tuple.proto = nexthdr;
			return RETINA_PARSE_L4_TRUNCATED;
		}
		struct retina_ipv6_opt_hdr *eh = c->data + off;
		if ((void *)(eh + 1) > c->end) {
			p->tuple.proto = nexthdr;
			return RETINA_PARSE_L4_TRUNCATED;
		}
		__u8 cur = nexthdr;
		nexthdr = eh->nexthdr;
		if (cur == RETINA_NEXTHDR_FRAGMENT) {
			__u8 *fh = (__u8 *)eh;
			if ((void *)(fh + 8) > c->end) {
				p->tuple.proto = nexthdr;
				return RETINA_PARSE_L4_TRUNCATED;
			}
			__u16 fo;
			__builtin_memcpy(&fo, fh + 2, 2);
			off += 8;
			if (bpf_ntohs(fo) & 0xfff8) { /* non-first fragment */
				p->tuple.proto = nexthdr;
				return RETINA_PARSE_OK;
			}
		} else if (cur == RETINA_NEXTHDR_AUTH) {
			off += ((__u32)eh->hdrlen + 2) * 4;
		} else {
			off += ((__u32)eh->hdrlen + 1) * 8;
		}
	}
	p->tuple.proto = nexthdr;
	c->off = off;
	return retina_parse_l4(c, nexthdr, p);
}

/* Network header at c->off, EtherType (network order) from the link layer
 * or from skb->protocol. */
static __always_inline int retina_parse_l3(struct retina_cursor *c, __be16 eth_proto, struct retina_pkt *p)
{
	if (eth_proto == bpf_htons(ETH_P_IP))
		return retina_parse_ipv4(c, p);
	if (eth_proto == bpf_htons(ETH_P_IPV6))
		return retina_parse_ipv6(c, p);
	return RETINA_PARSE_NOT_IP;
}

/* Ethernet header (with up to two VLAN tags still in the packet) at c->off. */
static __always_inline int retina_parse_eth(struct retina_cursor *c, struct retina_pkt *p)
{
	__u8 *eth = c->data + c->off;
	if ((void *)(eth + ETH_HLEN) > c->end)
		return RETINA_PARSE_TRUNCATED;
	__be16 proto;
	__builtin_memcpy(&proto, eth + 12, 2);
	__u32 off = c->off + ETH_HLEN;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct retina_vlan_hdr *vh = c->data + off;
		if ((void *)(vh + 1) > c->end)
			return RETINA_PARSE_TRUNCATED;
		proto = vh->encap_proto;
		off += sizeof(*vh);
	}
	c->off = off;
	return retina_parse_l3(c, proto, p);
}

/* Counts a parse result that carries no usable tuple (or a cut-short
 * transport header) in retina_stats. */
static __always_inline void retina_count_parse_result(int r)
{
	if (r == RETINA_PARSE_NOT_IP)
		retina_stat_inc(RETINA_STAT_NOT_IP);
	else if (r == RETINA_PARSE_TRUNCATED || r == RETINA_PARSE_L4_TRUNCATED)
		retina_stat_inc(RETINA_STAT_TRUNCATED);
}

/* The transport protocols records carry (see struct retina_tuple). */
static __always_inline bool retina_proto_reported(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_ICMP ||
	       proto == IPPROTO_ICMPV6;
}

/* 1-in-rate sampling by a random draw; rate 0 or 1 keeps everything. */
static __always_inline bool retina_sampled(__u32 rate)
{
	if (rate <= 1)
		return true;
	return bpf_get_prandom_u32() % rate == 0;
}

#endif /* RETINA_BPF_COMMON_H */
