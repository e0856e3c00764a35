/* Batched ring-buffer submits, for the objects whose rings see bursts
 * (packetparser, dropreason). Kept out of common.h: the per-CPU map it
 * needs would be created for every object that includes that header.
 */
#ifndef RETINA_BPF_RINGBUF_BATCHED_H
#define RETINA_BPF_RINGBUF_BATCHED_H

#include "common.h"

/* The jiffy of this CPU's last forced wakeup (retina_ringbuf_submit_batched). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} retina_wake SEC(".maps");

/* Wakes the reader only once wake_bytes are waiting, and then at most once
 * per jiffy on each CPU. A wakeup per record costs the reader a context
 * switch per event; a forced wakeup per record while a backlog waits costs
 * the producer an interrupt per event. A woken reader drains until the
 * ring is empty; its periodic drain picks up smaller batches. */
static __always_inline __u64 retina_ringbuf_wake_flags(void *ringbuf, __u64 wake_bytes)
{
	if (bpf_ringbuf_query(ringbuf, BPF_RB_AVAIL_DATA) >= wake_bytes) {
		__u32 zero = 0;
		__u64 *last = bpf_map_lookup_elem(&retina_wake, &zero);
		__u64 now = bpf_jiffies64();
		if (last && *last != now) {
			*last = now;
			return BPF_RB_FORCE_WAKEUP;
		}
	}
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void retina_ringbuf_submit_batched(void *ringbuf, void *rec, __u64 wake_bytes)
{
	bpf_ringbuf_submit(rec, retina_ringbuf_wake_flags(ringbuf, wake_bytes));
	retina_stat_inc(RETINA_STAT_REPORTS);
}

#endif /* RETINA_BPF_RINGBUF_BATCHED_H */
