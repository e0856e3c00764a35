// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * dns: every DNS message (UDP or TCP, port 53, IPv4 or IPv6) that a socket
 * on this node sends or receives, reported once.
 *
 * Two cgroup_skb programs sit on a cgroup v2 directory (the root by
 * default), so they see the packets of every socket below it, in every
 * network namespace, at the socket: egress before the packet leaves the
 * sending socket's stack, ingress when it reaches the receiving socket.
 *
 * Counting rule: a message is reported where it first shows up, and every
 * later copy of it is a duplicate.
 *   - A message sent by a local socket is reported at that socket's egress.
 *     When it then reaches a local socket too (pod to pod, host to pod),
 *     that ingress copy is recognised and skipped.
 *   - A message that no local socket sent (an answer from an outside
 *     server, a query from an outside client) is reported at the ingress of
 *     the socket that receives it.
 * Copies are matched by (client address, client port, DNS id, QR, protocol)
 * and, for TCP, the stream sequence number of the message. The server's
 * address is left out on purpose: a query to a Service IP arrives at the
 * backend pod after DNAT, and its answer reaches the client after the
 * reverse translation, with the client side unchanged.
 *   - UDP: each egress adds one pending copy; an ingress consumes one
 *     pending copy if there is one (a duplicate) and is reported otherwise.
 *     A client that sends the same query twice is counted twice.
 *   - TCP: the first sighting of a (key, sequence) is reported and any
 *     later one, a retransmission or the receiving end, is a duplicate.
 *
 * The message bytes (at most RETINA_DNS_MAX_PAYLOAD) go to user space in a
 * RETINA_EV_DNS record; user space parses them. Over TCP each message has a
 * two-byte length prefix; up to DNS_TCP_MAX_MSGS messages that start in a
 * segment are reported. Each hook remembers per stream direction where the
 * next message starts, so a segment that continues a long message is
 * skipped; on a stream picked up in the middle, a framing check (length,
 * opcode, one question) finds the first message start.
 */
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

_Static_assert(sizeof(struct retina_dns_event) == 584, "retina_dns_event layout");

#define NS_PER_SEC 1000000000ULL

/* Set by user space between open and load. */
const volatile __u64 cfg_udp_pending_ns = 5 * NS_PER_SEC;  /* an unmatched UDP egress copy is forgotten after */
const volatile __u64 cfg_tcp_seen_ns = 120 * NS_PER_SEC;   /* a TCP message is remembered for */

#define DNS_PORT 53
#define DNS_HDR_LEN 12
#define DNS_TCP_MAX_MSGS 8

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* set before load */
} retina_dns_evts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RETINA_DNS_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} retina_dns_stats SEC(".maps");

/* One DNS message, as both ends see it. */
struct dns_key {
	__u8 client[16];
	__u32 seq;         /* TCP: sequence number of the length prefix; UDP: 0 */
	__u16 client_port;
	__u16 id;
	__u8 proto;
	__u8 qr;
	__u8 _pad[2];
};

struct dns_seen {
	__u64 ts;          /* last egress (UDP) or first sighting (TCP) */
	__u32 pending;     /* UDP: egress copies no local ingress has consumed yet */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* set before load */
	__type(key, struct dns_key);
	__type(value, struct dns_seen);
} retina_dns_seen SEC(".maps");

/* A message inside the packet being handled. */
struct dns_msg {
	struct retina_tuple tuple;
	__u32 off;      /* first byte of the DNS header, from the network header */
	__u32 avail;    /* bytes of the message in this packet */
	__u32 wire_len; /* the message's length */
	__u32 seq;
	__u32 egress;
};

static __always_inline void dns_stat_inc(__u32 idx)
{
	retina_percpu_add(&retina_dns_stats, idx, 1);
}

/* Whether this sighting is the one to report; records it either way. */
static __always_inline bool dns_first_sighting(const struct dns_key *k, bool tcp, bool egress)
{
	__u64 now = bpf_ktime_get_boot_ns();
	struct dns_seen *s = bpf_map_lookup_elem(&retina_dns_seen, k);

	if (tcp) {
		if (s) {
			__u64 ts = s->ts;
			if (now - ts <= cfg_tcp_seen_ns)
				return false;
			/* Forgotten long ago: the first to renew it reports. */
			return __sync_val_compare_and_swap(&s->ts, ts, now) == ts;
		}
		struct dns_seen n = {.ts = now};
		/* Another CPU inserting the same key first saw it first. */
		return bpf_map_update_elem(&retina_dns_seen, k, &n, BPF_NOEXIST) == 0;
	}

	if (egress) {
		if (!s) {
			struct dns_seen n = {.ts = now, .pending = 1};
			if (bpf_map_update_elem(&retina_dns_seen, k, &n, BPF_NOEXIST) == 0)
				return true;
			s = bpf_map_lookup_elem(&retina_dns_seen, k);
			if (!s)
				return true;
		}
		if (now - s->ts > cfg_udp_pending_ns)
			s->pending = 0; /* copies that never arrived locally */
		s->ts = now;
		__sync_fetch_and_add(&s->pending, 1);
		return true;
	}

	/* UDP ingress: a duplicate if a local egress copy is pending. */
	if (!s || now - s->ts > cfg_udp_pending_ns)
		return true;
#pragma unroll
	for (int i = 0; i < 8; i++) {
		__u32 p = s->pending;
		if (p == 0)
			return true;
		if (__sync_val_compare_and_swap(&s->pending, p, p - 1) == p)
			return false;
	}
	return true; /* never settled: report rather than risk hiding a message */
}

/* Reports one message unless it is a copy of one already reported. A
 * global function, so the verifier checks it once for all callers. */
__noinline int dns_report(struct __sk_buff *skb, const struct dns_msg *m)
{
	__u8 h[DNS_HDR_LEN];

	if (!skb || !m)
		return 0;
	if (bpf_skb_load_bytes(skb, m->off, h, sizeof(h)) < 0) {
		retina_stat_inc(RETINA_STAT_TRUNCATED);
		return 0;
	}
	__u8 qr = h[2] >> 7;
	bool tcp = m->tuple.proto == IPPROTO_TCP;

	struct dns_key k;
	__builtin_memset(&k, 0, sizeof(k));
	if (qr) { /* an answer goes to the client */
		retina_addr_copy(k.client, m->tuple.daddr);
		k.client_port = m->tuple.dport;
	} else {
		retina_addr_copy(k.client, m->tuple.saddr);
		k.client_port = m->tuple.sport;
	}
	k.seq = tcp ? m->seq : 0;
	k.id = ((__u16)h[0] << 8) | h[1];
	k.proto = m->tuple.proto;
	k.qr = qr;

	if (!dns_first_sighting(&k, tcp, m->egress)) {
		dns_stat_inc(RETINA_DNS_STAT_DUPLICATE);
		return 0;
	}

	struct retina_dns_event *ev = retina_ringbuf_reserve(&retina_dns_evts, sizeof(*ev));
	if (!ev)
		return 0;
	__u32 n = m->avail;
	if (n > RETINA_DNS_MAX_PAYLOAD)
		n = RETINA_DNS_MAX_PAYLOAD;
	if (n < DNS_HDR_LEN || bpf_skb_load_bytes(skb, m->off, ev->payload, n) < 0) {
		bpf_ringbuf_discard(ev, 0);
		retina_stat_inc(RETINA_STAT_TRUNCATED);
		return 0;
	}
	if (n < m->wire_len)
		dns_stat_inc(RETINA_DNS_STAT_CUT);
	retina_hdr_fill(&ev->hdr, RETINA_EV_DNS, RETINA_DNS_EVENT_VERSION, offsetof(struct retina_dns_event, payload) + n);
	__builtin_memcpy(&ev->tuple, &m->tuple, sizeof(ev->tuple));
	ev->ifindex = skb->ifindex;
	ev->obs_point = m->egress ? RETINA_OBS_TO_NETWORK : RETINA_OBS_FROM_NETWORK;
	ev->_pad0 = 0;
	ev->dns_len = n;
	ev->wire_len = m->wire_len;
	ev->_pad1 = 0;
	retina_ringbuf_submit(ev);
	return 0;
}

/* Where the next message of a TCP stream starts, per direction and hook, so
 * that a segment continuing a long message is not read as a new one. */
struct dns_stream_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 egress;
	__u8 _pad[3];
};

struct dns_stream {
	__u64 ts;
	__u32 next;     /* sequence number of the next message's length prefix */
	__u32 body_seq; /* has_body: where a message whose length came alone starts */
	__u16 body_len;
	__u8 has_body;
	__u8 _pad[5];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct dns_stream_key);
	__type(value, struct dns_stream);
} retina_dns_tcp SEC(".maps");

/* What a message start looks like: one question and a defined opcode. */
static __always_inline bool dns_plausible(const __u8 *h)
{
	__u8 opcode = (h[2] >> 3) & 0x0f;
	__u16 qdcount = ((__u16)h[4] << 8) | h[5];
	return qdcount == 1 && opcode != 3 && opcode <= 6;
}

/* The messages that start in a TCP segment's payload [off, len), whose
 * first byte has sequence number seq. */
static __always_inline void dns_tcp(struct __sk_buff *skb, struct dns_msg *m, __u32 off, __u32 len, __u32 seq)
{
	const __u32 payload = off;
	const __u64 now = bpf_ktime_get_boot_ns();
	struct dns_stream_key sk;
	__builtin_memset(&sk, 0, sizeof(sk));
	retina_addr_copy(sk.saddr, m->tuple.saddr);
	retina_addr_copy(sk.daddr, m->tuple.daddr);
	sk.sport = m->tuple.sport;
	sk.dport = m->tuple.dport;
	sk.egress = m->egress;

	struct dns_stream nv;
	__builtin_memset(&nv, 0, sizeof(nv));
	bool save = false;
	bool aligned = false; /* a message is known to start at off */
	struct dns_stream *st = bpf_map_lookup_elem(&retina_dns_tcp, &sk);
	if (st && now - st->ts <= cfg_tcp_seen_ns) {
		__s32 b = (__s32)(st->body_seq - seq);
		__s32 d = (__s32)(st->next - seq);
		if (st->has_body && b >= 0 && (__u32)b < len - off) {
			/* The body of a message whose length prefix came alone. */
			__u32 blen = st->body_len;
			__u32 boff = off + b;
			__u8 h[DNS_HDR_LEN];
			if (len - boff >= DNS_HDR_LEN && bpf_skb_load_bytes(skb, boff, h, sizeof(h)) == 0 &&
			    dns_plausible(h)) {
				__u32 avail = len - boff;
				m->off = boff;
				m->avail = avail < blen ? avail : blen;
				m->wire_len = blen;
				m->seq = st->body_seq - 2;
				dns_report(skb, m);
			} else {
				dns_stat_inc(RETINA_DNS_STAT_NO_MESSAGE);
			}
			off = boff + blen;
			nv.next = st->body_seq + blen;
			save = true;
			aligned = true;
		} else if (d > 0) {
			if ((__u32)d >= len - off)
				return; /* inside a message already handled */
			off += d;
			aligned = true;
		} else {
			aligned = d == 0;
		}
	}

	int i;
	/* Kept a loop: bounded loops need 5.3, ring buffers already 5.8. */
#pragma clang loop unroll(disable)
	for (i = 0; i < DNS_TCP_MAX_MSGS; i++) {
		if (off >= len)
			break;
		__u32 rem = len - off;
		__u32 mseq = seq + (off - payload);
		__u8 h[2 + DNS_HDR_LEN];
		if (rem < 2 || bpf_skb_load_bytes(skb, off, h, 2) < 0) {
			/* Not even the length: the next segment cannot be framed. */
			if (aligned)
				retina_stat_inc(RETINA_STAT_TRUNCATED);
			else
				dns_stat_inc(RETINA_DNS_STAT_NO_MESSAGE);
			save = false;
			break;
		}
		__u32 mlen = ((__u32)h[0] << 8) | h[1];
		if (rem == 2 && mlen >= DNS_HDR_LEN) {
			/* The length alone (written on its own): the message
			 * follows in the next segment. */
			nv.next = mseq + 2 + mlen;
			nv.body_seq = mseq + 2;
			nv.body_len = mlen;
			nv.has_body = 1;
			save = true;
			break;
		}
		if (rem < sizeof(h) || bpf_skb_load_bytes(skb, off, h, sizeof(h)) < 0) {
			/* The header runs into the next segment: this message
			 * cannot be read, but the next one can be found. */
			if (aligned) {
				retina_stat_inc(RETINA_STAT_TRUNCATED);
				nv.next = mseq + 2 + mlen;
				save = true;
			} else {
				dns_stat_inc(RETINA_DNS_STAT_NO_MESSAGE);
				save = false;
			}
			break;
		}
		if (mlen < DNS_HDR_LEN || !dns_plausible(h + 2)) {
			/* Not a message start: a stream picked up mid-message, or
			 * not DNS at all. */
			dns_stat_inc(RETINA_DNS_STAT_NO_MESSAGE);
			save = false;
			break;
		}
		__u32 avail = rem - 2;
		m->off = off + 2;
		m->avail = avail < mlen ? avail : mlen;
		m->wire_len = mlen;
		m->seq = mseq;
		dns_report(skb, m);
		off += 2 + mlen;
		nv.next = mseq + 2 + mlen;
		save = true;
		aligned = true;
	}
	if (i == DNS_TCP_MAX_MSGS && off < len) {
		/* More messages than one segment is searched for. */
		retina_stat_inc(RETINA_STAT_TRUNCATED);
		save = false;
	}
	if (save) {
		nv.ts = now;
		bpf_map_update_elem(&retina_dns_tcp, &sk, &nv, BPF_ANY);
	}
}

/* Cheap first look, as the programs run for every packet of every socket:
 * false when the packet plainly is no TCP or UDP to or from port 53. IPv6
 * with extension headers is left to the full parse. */
static __always_inline bool dns_maybe(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 *ip = data;
	__u8 proto;
	__u32 l4;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if ((void *)(ip + 20) > end)
			return true;
		proto = ip[9];
		l4 = (ip[0] & 0x0f) * 4;
		if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
			return false;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if ((void *)(ip + 40) > end)
			return true;
		proto = ip[6];
		l4 = 40;
		if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
			return proto == RETINA_NEXTHDR_HOP || proto == RETINA_NEXTHDR_ROUTING ||
			       proto == RETINA_NEXTHDR_DEST || proto == RETINA_NEXTHDR_FRAGMENT ||
			       proto == RETINA_NEXTHDR_AUTH;
	} else {
		return false;
	}
	if (l4 < 20 || l4 > 60)
		return true;
	__u8 *ports = data + l4;
	if ((void *)(ports + 4) > end)
		return true;
	return (ports[0] == 0 && ports[1] == DNS_PORT) || (ports[2] == 0 && ports[3] == DNS_PORT);
}

static __always_inline int dns_handle(struct __sk_buff *skb, __u32 egress)
{
	if (!dns_maybe(skb))
		return 1;
	struct retina_pkt p;
	struct retina_cursor cur = {
		.data = (void *)(long)skb->data,
		.end = (void *)(long)skb->data_end,
		.off = 0,
	};

	__builtin_memset(&p, 0, sizeof(p));
	/* At the socket the network header is at data, and the stack has
	 * already made the IP and transport headers linear. */
	int r = retina_parse_l3(&cur, skb->protocol, &p);
	if (r != RETINA_PARSE_OK)
		return 1;
	__u8 proto = p.tuple.proto;
	if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
		return 1;
	if (p.tuple.sport != DNS_PORT && p.tuple.dport != DNS_PORT)
		return 1;

	struct dns_msg m;
	__builtin_memset(&m, 0, sizeof(m));
	__builtin_memcpy(&m.tuple, &p.tuple, sizeof(m.tuple));
	m.egress = egress;
	__u32 len = skb->len;
	__u32 l4 = p.l4_off;

	if (proto == IPPROTO_UDP) {
		__u32 off = l4 + 8;
		if (len < off + DNS_HDR_LEN) {
			dns_stat_inc(RETINA_DNS_STAT_NO_MESSAGE);
			return 1;
		}
		m.off = off;
		m.avail = len - off;
		m.wire_len = len - off;
		dns_report(skb, &m);
		return 1;
	}

	/* TCP: sequence number, data offset and flags. */
	__u8 th[14];
	if (bpf_skb_load_bytes(skb, l4, th, sizeof(th)) < 0) {
		retina_stat_inc(RETINA_STAT_TRUNCATED);
		return 1;
	}
	__u32 seq = ((__u32)th[4] << 24) | ((__u32)th[5] << 16) | ((__u32)th[6] << 8) | th[7];
	__u32 off = l4 + (th[12] >> 4) * 4;
	if (th[13] & RETINA_TCP_SYN)
		seq += 1; /* data on a SYN (TCP Fast Open) starts after it */
	if (off >= len)
		return 1; /* no payload */
	dns_tcp(skb, &m, off, len, seq);
	return 1;
}

SEC("cgroup_skb/egress")
int retina_dns_egr(struct __sk_buff *skb)
{
	return dns_handle(skb, 1);
}

SEC("cgroup_skb/ingress")
int retina_dns_ing(struct __sk_buff *skb)
{
	return dns_handle(skb, 0);
}
