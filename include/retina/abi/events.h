/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The kernel <-> user space ABI of retina. Included by the BPF programs
 * (after vmlinux.h) and by the C++ decoder, which static_asserts every size
 * and offset. All structs have explicit padding and naturally aligned
 * fields, so the layout is identical under clang -target bpf and g++.
 *
 * Every ring-buffer record starts with struct retina_event_hdr. A decoder
 * checks the record size, then type and version, then copies the record
 * into a local struct; it never reads past what the kernel wrote.
 */
#ifndef RETINA_ABI_EVENTS_H
#define RETINA_ABI_EVENTS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define RETINA_ABI_VERSION 1

enum retina_event_type {
	RETINA_EV_PACKET = 1,     /* packetparser: one packet (low) or a conntrack report (high) */
	RETINA_EV_DROP = 2,       /* dropreason: one dropped packet */
	RETINA_EV_DNS = 3,        /* dns: one DNS message; the message bytes follow */
	RETINA_EV_TCPRETRANS = 4, /* tcpretrans: one retransmitted segment */
	RETINA_EV_BATCH = 5,      /* several records of the above, back to back (struct retina_batch_hdr) */
	RETINA_EV_MAX,
};

/* Where a packet was seen. The decoder maps these to Hubble's points. */
enum retina_obs_point {
	RETINA_OBS_FROM_ENDPOINT = 0, /* host side of a pod veth, tc ingress */
	RETINA_OBS_TO_ENDPOINT = 1,   /* host side of a pod veth, tc egress */
	RETINA_OBS_FROM_NETWORK = 2,  /* node interface, tc ingress */
	RETINA_OBS_TO_NETWORK = 3,    /* node interface, tc egress */
	RETINA_OBS_KERNEL = 4,        /* a tracepoint inside the stack */
	RETINA_OBS_MAX,
};

/* TCP flag bits as they appear in byte 13 of the TCP header, plus NS. */
enum retina_tcp_flag {
	RETINA_TCP_FIN = 0x01,
	RETINA_TCP_SYN = 0x02,
	RETINA_TCP_RST = 0x04,
	RETINA_TCP_PSH = 0x08,
	RETINA_TCP_ACK = 0x10,
	RETINA_TCP_URG = 0x20,
	RETINA_TCP_ECE = 0x40,
	RETINA_TCP_CWR = 0x80,
	RETINA_TCP_NS = 0x100,
};

/* Index of each flag in the per-flag count arrays below. */
enum retina_tcp_flag_idx {
	RETINA_FLAG_IDX_FIN = 0,
	RETINA_FLAG_IDX_SYN,
	RETINA_FLAG_IDX_RST,
	RETINA_FLAG_IDX_PSH,
	RETINA_FLAG_IDX_ACK,
	RETINA_FLAG_IDX_URG,
	RETINA_FLAG_IDX_ECE,
	RETINA_FLAG_IDX_CWR,
	RETINA_FLAG_IDX_NS,
	RETINA_FLAG_IDX_MAX, /* 9 */
};

struct retina_event_hdr {
	__u16 type;    /* enum retina_event_type */
	__u8 version;  /* per-type layout version */
	__u8 _pad0;
	__u16 len;     /* bytes in the record, header included */
	__u16 _pad1;
	__u64 ts_ns;   /* CLOCK_BOOTTIME, bpf_ktime_get_boot_ns() */
};

/* IPv4 addresses are stored IPv4-mapped (::ffff:a.b.c.d). Ports are host order.
 * ICMP and ICMPv6 carry the message type in sport and the code in dport;
 * other protocols and non-first fragments have both ports zero. */
struct retina_tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 proto;  /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6 */
	__u8 family; /* 4 or 6 */
	__u16 _pad;
};

/* A batch: `count` records of `stride` bytes each follow this header, each
 * a whole record with its own header (never a batch itself). packetparser
 * at aggregation "low" stages packets per CPU and sends them in batches:
 * one ring-buffer reservation, one copy and one reader callback for up to
 * RETINA_BATCH_MAX packets. hdr.ts_ns is when the batch was sent; each
 * record keeps its own packet's time. */
#define RETINA_BATCH_VERSION 1
#define RETINA_BATCH_MAX 16
struct retina_batch_hdr {
	struct retina_event_hdr hdr;  /*   0 type RETINA_EV_BATCH, len = 24 + count * stride */
	__u16 count;                  /*  16 records that follow, 1..RETINA_BATCH_MAX */
	__u16 stride;                 /*  18 bytes per record: a multiple of 8 */
	__u32 _pad;                   /*  20 */
};                                /*  24 */

/* packet event flags */
#define RETINA_PKT_F_REPLY 0x01      /* packet travels responder -> initiator */
#define RETINA_PKT_F_CT_REPORT 0x02  /* produced by in-kernel conntrack (aggregation high) */
#define RETINA_PKT_F_NO_PACKET 0x04  /* a flush of pending counts: bytes is 0, no current packet */
#define RETINA_PKT_F_DIR_UNKNOWN 0x08 /* connection seen mid-stream, initiator guessed */

/* why a conntrack report was sent */
enum retina_report_reason {
	RETINA_REPORT_PACKET = 0,   /* aggregation low: every (sampled) packet */
	RETINA_REPORT_NEW = 1,      /* first packet of a connection */
	RETINA_REPORT_FLAGS = 2,    /* new TCP flags in this direction, or FIN/RST/SYN/URG/ECE/CWR */
	RETINA_REPORT_INTERVAL = 3, /* report interval elapsed */
	RETINA_REPORT_TIMEOUT = 4,  /* connection expired; pending counts flushed */
	RETINA_REPORT_MAP_FULL = 5, /* conntrack map full: packet reported on its own */
};

#define RETINA_PACKET_EVENT_VERSION 1
struct retina_packet_event {
	struct retina_event_hdr hdr;  /*   0 */
	struct retina_tuple tuple;    /*  16 */
	__u32 ifindex;                /*  56 */
	__u32 bytes;                  /*  60 this packet's length (skb->len) */
	__u8 obs_point;               /*  64 enum retina_obs_point */
	__u8 flags;                   /*  65 RETINA_PKT_F_* */
	__u16 tcp_flags;              /*  66 this packet's flags, RETINA_TCP_* */
	__u8 report_reason;           /*  68 enum retina_report_reason */
	__u8 _pad0[3];                /*  69 */
	__u32 prev_packets;           /*  72 packets since the previous report, this one excluded */
	__u32 tcp_id;                 /*  76 TCP timestamp value (tsval) when present */
	__u64 prev_bytes;             /*  80 bytes since the previous report, this one excluded */
	__u32 prev_flag_counts[RETINA_FLAG_IDX_MAX]; /* 88 per-flag counts since the previous report */
	__u32 _pad1;                  /* 124 */
};                                /* 128 */

/* Drops (dropreason). The kernel's enum skb_drop_reason keeps a subsystem
 * in the upper 16 bits of a value (SKB_DROP_REASON_SUBSYS_SHIFT; 0 is the
 * core enum, others name reasons of openvswitch, mac80211, ...). User-space
 * name tables are indexed by slot = subsystem * RETINA_DROP_REASON_SLOTS +
 * code, which keeps them small; a code past the slots has no slot. */
#define RETINA_DROP_SUBSYS_SHIFT 16
#define RETINA_DROP_CODE_MASK 0xffffu
#define RETINA_DROP_REASON_SLOTS 1024u
#define RETINA_DROP_MAX_SUBSYS 64u
#define RETINA_DROP_NO_SLOT 0xffffffffu

#ifdef __cplusplus
#define RETINA_ABI_FN static constexpr inline
#else
#define RETINA_ABI_FN static inline
#endif

RETINA_ABI_FN __u32 retina_drop_reason_slot(__u32 reason)
{
	__u32 subsys = reason >> RETINA_DROP_SUBSYS_SHIFT;
	__u32 code = reason & RETINA_DROP_CODE_MASK;
	if (subsys >= RETINA_DROP_MAX_SUBSYS || code >= RETINA_DROP_REASON_SLOTS)
		return RETINA_DROP_NO_SLOT;
	return subsys * RETINA_DROP_REASON_SLOTS + code;
}

/* retina_drop_event.direction and retina_drop_key.direction */
#define RETINA_DROP_DIR_UNKNOWN 0
#define RETINA_DROP_DIR_INGRESS 1  /* received by the namespace, not yet routed out */
#define RETINA_DROP_DIR_EGRESS 2   /* locally generated, or routed towards an output device */

#define RETINA_DROP_EVENT_VERSION 1
struct retina_drop_event {
	struct retina_event_hdr hdr;  /*   0 */
	struct retina_tuple tuple;    /*  16 zero for non-IP packets */
	__u32 ifindex;                /*  56 */
	__u32 bytes;                  /*  60 skb->len */
	__u32 reason;                 /*  64 enum skb_drop_reason, raw kernel value */
	__u8 direction;               /*  68 1 ingress, 2 egress, 0 unknown */
	__u8 _pad0[3];                /*  69 */
	__u32 suppressed;             /*  72 drops of this flow not sent since the last event (rate limit) */
	__u32 _pad1;                  /*  76 */
	__u64 location;               /*  80 kernel text address that freed the skb */
};                                /*  88 */

/* Per-CPU drop counts (hash map), aggregated in kernel so they stay exact
 * when per-flow events are rate limited. */
struct retina_drop_key {
	__u32 reason;                 /*   0 raw enum skb_drop_reason value */
	__u8 direction;               /*   4 RETINA_DROP_DIR_* */
	__u8 _pad[3];                 /*   5 */
};                                /*   8 */

/* Key reason of the drops the count map had no room for (never expected:
 * the map holds far more keys than the kernel has reasons). */
#define RETINA_DROP_REASON_OVERFLOW 0xffffffffu

/* Packets and bytes: the value of the drop counts (per CPU) and of the
 * packetforward counts (per-CPU array indexed by enum retina_fwd_dir). */
struct retina_pkt_counts {
	__u64 packets;                /*   0 */
	__u64 bytes;                  /*   8 */
};                                /*  16 */

enum retina_fwd_dir {
	RETINA_FWD_INGRESS = 0,       /* received on the interface */
	RETINA_FWD_EGRESS = 1,        /* sent on it (PACKET_OUTGOING) */
	RETINA_FWD_MAX = 2,
};

#define RETINA_DNS_MAX_PAYLOAD 512
#define RETINA_DNS_EVENT_VERSION 1
struct retina_dns_event {
	struct retina_event_hdr hdr;  /*   0 */
	struct retina_tuple tuple;    /*  16 */
	__u32 ifindex;                /*  56 */
	__u8 obs_point;               /*  60 */
	__u8 _pad0;                   /*  61 */
	__u16 dns_len;                /*  62 bytes of DNS message captured in payload */
	__u32 wire_len;               /*  64 length of the DNS message on the wire */
	__u32 _pad1;                  /*  68 */
	__u8 payload[RETINA_DNS_MAX_PAYLOAD]; /* 72 */
};                                /* 584 */

/* dns: what the programs did with port-53 traffic besides reporting it
 * (per-CPU array "retina_dns_stats"; retina_stats counts reports and losses). */
enum retina_dns_stat {
	RETINA_DNS_STAT_DUPLICATE = 0, /* a copy of a message already reported (other end, retransmission) */
	RETINA_DNS_STAT_NO_MESSAGE = 1, /* port-53 payload where no DNS message starts (too short, TCP continuation) */
	RETINA_DNS_STAT_CUT = 2,       /* reported with only its first RETINA_DNS_MAX_PAYLOAD bytes or the bytes in its segment */
	RETINA_DNS_STAT_MAX = 3,
};

#define RETINA_TCPRETRANS_EVENT_VERSION 1
struct retina_tcpretrans_event {
	struct retina_event_hdr hdr;  /*   0 */
	struct retina_tuple tuple;    /*  16 local -> remote */
	__u8 state;                   /*  56 TCP state (TCP_ESTABLISHED = 1, ...) */
	__u8 _pad0;                   /*  57 */
	__u16 tcp_flags;              /*  58 flags of the retransmitted segment */
	__u32 netns_ino;              /*  60 inode number of the socket's network namespace (0: kernel without netns) */
	__u16 segs;                   /*  64 segments in the retransmitted skb (what RetransSegs adds) */
	__u16 _pad1;                  /*  66 */
	__u32 _pad2;                  /*  68 */
};                                /*  72 */

/* tcpretrans: tracepoint hits not reported (per-CPU array "retina_rt_stats"). */
enum retina_tcpretrans_stat {
	RETINA_RT_STAT_FAILED = 0,     /* the retransmission failed and sent nothing (err != 0) */
	RETINA_RT_STAT_OTHER_FAMILY = 1, /* a socket neither AF_INET nor AF_INET6 */
	RETINA_RT_STAT_MAX = 2,
};

/* Per-CPU statistics every BPF object keeps (array map "retina_stats").
 * Lost entries are events that never reached user space. */
enum retina_stat {
	RETINA_STAT_RINGBUF_FULL = 0, /* lost: no room in the ring (a batch counts the records it held) */
	RETINA_STAT_CT_FULL = 1,      /* conntrack map full: packet reported without aggregation */
	RETINA_STAT_SAMPLED_OUT = 2,  /* not reported because of dataSamplingRate */
	RETINA_STAT_RATE_LIMITED = 3, /* not reported because of a rate limit; counts carried on */
	RETINA_STAT_NOT_IP = 4,       /* packets that carried no IPv4/IPv6 */
	RETINA_STAT_TRUNCATED = 5,    /* headers shorter than they claim */
	RETINA_STAT_CT_EXPIRED = 6,   /* connections removed after their timeout */
	RETINA_STAT_REPORTS = 7,      /* records successfully submitted (a batch counts the records it holds) */
	RETINA_STAT_OTHER_PROTO = 8,  /* IP packets of a protocol other than TCP, UDP, ICMP, ICMPv6 (not reported) */
	RETINA_STAT_MAX = 9,
};

/* In-kernel conntrack (aggregation "high"). The key orders the two
 * addresses so both directions of a connection share one entry, and
 * includes the interface so each observation point counts separately. */
struct retina_ct_key {
	__u8 addr_lo[16];
	__u8 addr_hi[16];
	__u16 port_lo;
	__u16 port_hi;
	__u8 proto;
	__u8 _pad[3];
	__u32 ifindex;
};                                /* 44 */

/* What one TC hook direction of an entry has seen since its last report.
 * Pending counts are only ever added to atomically and taken with an atomic
 * exchange, so concurrent CPUs never lose or double count a packet. A
 * packet of an established connection costs one atomic add, to `pending`:
 * its packet and byte counts share a word, and its flags need no count of
 * their own because the word takes only packets whose flags it implies: a
 * TCP packet with ACK (the word's packet count is also its ACK count; PSH
 * and other flags add to pending_flags) and any other protocol's packet (no
 * flags). The wide counters below take the rest (TCP without ACK, packets
 * of 16 MiB or more), and the word's contents ("spill") before either of
 * its fields can overflow. A report takes the sum of both. */
#define RETINA_CT_PEND_BYTES_BITS 40
#define RETINA_CT_PEND_BYTES_MASK ((1ULL << RETINA_CT_PEND_BYTES_BITS) - 1)
#define RETINA_CT_PEND_ONE_PACKET (1ULL << RETINA_CT_PEND_BYTES_BITS)
struct retina_ct_side {
	__u64 pending_bytes;          /*  0 wide counters: spills and the rest */
	__u32 pending_packets;        /*  8 */
	__u32 _pad1;                  /* 12 */
	__u64 pending;                /* 16 packets << 40 | bytes */
	__u64 last_report_ns;         /* 24 */
	__u16 flags_seen;             /* 32 OR of flags already reported in this direction */
	__u8 last_reply;              /* 34 1: the last packet here travelled responder -> initiator */
	__u8 _pad0;                   /* 35 */
	__u32 pending_flags[RETINA_FLAG_IDX_MAX]; /* 36 per-flag counts of the pending packets */
};                                /* 72 */

#define RETINA_CT_INIT_IS_LO 0x01   /* the initiator is addr_lo:port_lo */
#define RETINA_CT_DIR_UNKNOWN 0x02  /* first packet was not a SYN */
#define RETINA_CT_FIN_LO 0x04       /* FIN seen from addr_lo */
#define RETINA_CT_FIN_HI 0x08       /* FIN seen from addr_hi */
#define RETINA_CT_RST 0x10          /* RST seen */
#define RETINA_CT_ACK_SEEN 0x20     /* an ACK was seen: the connection is past SYN-only */
#define RETINA_CT_HOST_IF 0x40      /* the key's interface is a node interface (role HOST) */

/* expires_ns value of an entry the sweeper is deleting. */
#define RETINA_CT_EXPIRES_DYING 1ULL

/* skb->mark of a sweeper run (BPF_PROG_TEST_RUN ctx): flush every pending
 * count now, whether or not its report interval has passed (on stop). */
#define RETINA_SWEEP_FLUSH_ALL 1

/* Conntrack times (expires_ns, last_report_ns) follow the jiffies clock in
 * nanoseconds where the kernel's CONFIG_HZ is known, and CLOCK_BOOTTIME
 * otherwise; records carry CLOCK_BOOTTIME. packets and bytes count what
 * was reported (records and flushes); the sweeper adds what is pending for
 * the conntrack_* gauges, so the per-packet path never touches them.
 *
 * A veth's two hooks run on different CPUs for one flow (its data on the
 * sender's, its ACKs on the receiver's), and a hash map value has no fixed
 * cache-line alignment, so the layout keeps what each hook writes for every
 * packet (its side's `pending`) and reads (`last_report_ns`, `flags_seen`,
 * `last_reply`) at least 64 bytes from the other side's: the ingress side
 * first, the egress side last, the fields both read between them. */
struct retina_ct_entry {
	struct retina_ct_side side_ing; /*   0 tc ingress; hot fields at 16..35 */
	__u64 expires_ns;             /*  72 the entry is expired once now > expires_ns */
	__u32 state;                  /*  80 RETINA_CT_* bits */
	__u32 _pad;                   /*  84 */
	__u64 packets[2];             /*  88 [0] initiator -> responder (tx), [1] reply (rx) */
	__u64 bytes[2];               /* 104 */
	struct retina_ct_side side_egr; /* 120 tc egress; hot fields at 136..155 */
};                                /* 192 */

/* Sums over live conntrack entries, written by the sweeper (array map,
 * one element) and exported as the conntrack_* gauges. */
struct retina_ct_gauges {
	__u64 packets_tx;             /*  0 initiator -> responder */
	__u64 packets_rx;             /*  8 responder -> initiator */
	__u64 bytes_tx;               /* 16 */
	__u64 bytes_rx;               /* 24 */
	__u64 connections;            /* 32 live entries */
	__u64 sweep_ns;               /* 40 when the sweep ran */
};                                /* 48 */

/* Interface role map (hash, ifindex -> __u32), filled by user space on
 * attach; it selects the observation point of a TC hook. */
enum retina_if_role {
	RETINA_IF_ROLE_POD = 0,       /* host side of a pod veth: FROM/TO_ENDPOINT */
	RETINA_IF_ROLE_HOST = 1,      /* node interface: FROM/TO_NETWORK */
};

/* "IPs of interest" filter key (LPM trie). IPv4 is stored IPv4-mapped;
 * a single address has prefixlen 128. */
struct retina_lpm_key {
	__u32 prefixlen;
	__u8 addr[16];
};                                /* 20 */

#endif /* RETINA_ABI_EVENTS_H */
