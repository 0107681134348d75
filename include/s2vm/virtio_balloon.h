/* SPDX-License-Identifier: MIT */
/* virtio-balloon protocol values (virtio 1.2 §5.5) shared by the device
 * (vmm/virtio_balloon.c) and guestos's driver; docs/DEVICES.md has the contract. */
#ifndef S2VM_INCLUDE_VIRTIO_BALLOON_H
#define S2VM_INCLUDE_VIRTIO_BALLOON_H

#define VIRTIO_ID_BALLOON 5

/* Feature bits (§5.5.3). */
#define VIRTIO_BALLOON_F_MUST_TELL_HOST 0 /* deflate before reusing a page: always offered */
#define VIRTIO_BALLOON_F_STATS_VQ 1 /* always offered */
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2 /* deflate_on_oom=on */
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT 3 /* never offered */
#define VIRTIO_BALLOON_F_PAGE_POISON 4 /* never offered */
#define VIRTIO_BALLOON_F_REPORTING 5 /* free_page_reporting=on */

/* Queues: 0 inflate, 1 deflate, then the stats queue if STATS_VQ was negotiated, then
 * the reporting queue if REPORTING was (so 3 with stats, 2 without: Linux's numbering). */
#define VIRTIO_BALLOON_Q_INFLATE 0
#define VIRTIO_BALLOON_Q_DEFLATE 1

/* Config space (§5.5.4), little-endian. */
#define VIRTIO_BALLOON_CFG_NUM_PAGES 0 /* le32, device: target size in 4 KiB pages */
#define VIRTIO_BALLOON_CFG_ACTUAL 4 /* le32, driver: pages it has in the balloon */
#define VIRTIO_BALLOON_CFG_HINT_CMD 8 /* le32, 0 (no free page hinting) */
#define VIRTIO_BALLOON_CFG_POISON 12 /* le32, 0 */
#define VIRTIO_BALLOON_CFG_SIZE 16

#define VIRTIO_BALLOON_PFN_SHIFT 12 /* inflate/deflate entries are le32 4 KiB PFNs */

/* Memory statistics (§5.5.6.3): le16 tag, le64 value, packed (10 bytes each). */
#define VIRTIO_BALLOON_S_SWAP_IN 0
#define VIRTIO_BALLOON_S_SWAP_OUT 1
#define VIRTIO_BALLOON_S_MAJFLT 2
#define VIRTIO_BALLOON_S_MINFLT 3
#define VIRTIO_BALLOON_S_MEMFREE 4
#define VIRTIO_BALLOON_S_MEMTOT 5
#define VIRTIO_BALLOON_S_AVAIL 6
#define VIRTIO_BALLOON_S_CACHES 7
#define VIRTIO_BALLOON_S_HTLB_PGALLOC 8
#define VIRTIO_BALLOON_S_HTLB_PGFAIL 9
#define VIRTIO_BALLOON_S_NR 10
#define VIRTIO_BALLOON_STAT_SIZE 10

#endif
