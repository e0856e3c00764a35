// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * packetforward: a socket filter on an AF_PACKET socket bound to the
 * node's default-route interface. It counts every packet the interface
 * receives and sends, by direction, and returns 0 so that nothing is ever
 * queued to (or copied into) the socket.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "retina/abi/events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

_Static_assert(sizeof(struct retina_pkt_counts) == 16, "retina_pkt_counts layout");

#ifndef PACKET_OUTGOING
#define PACKET_OUTGOING 4 /* uapi linux/if_packet.h */
#endif

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RETINA_FWD_MAX);
	__type(key, __u32);
	__type(value, struct retina_pkt_counts);
} retina_pf_cnt SEC(".maps");

SEC("socket")
int retina_pf_sock(struct __sk_buff *skb)
{
	__u32 key = skb->pkt_type == PACKET_OUTGOING ? RETINA_FWD_EGRESS : RETINA_FWD_INGRESS;
	struct retina_pkt_counts *c = bpf_map_lookup_elem(&retina_pf_cnt, &key);
	if (c) {
		/* Atomic: socket filters run in both process and softirq
		 * context, which may interleave on one CPU. */
		__sync_fetch_and_add(&c->packets, 1);
		__sync_fetch_and_add(&c->bytes, skb->len);
	}
	return 0;
}
