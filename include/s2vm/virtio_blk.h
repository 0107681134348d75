/* SPDX-License-Identifier: MIT */
/* virtio-blk protocol values (virtio 1.2 §5.2) shared by the device (vmm/virtio_blk.c) and
 * guestos's driver, so the two can never disagree. */
#ifndef S2VM_INCLUDE_VIRTIO_BLK_H
#define S2VM_INCLUDE_VIRTIO_BLK_H

#define VIRTIO_ID_BLOCK 2

/* Feature bits (§5.2.3). */
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status values (§5.2.6). */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_ID_BYTES 20 /* GET_ID answer */
#define VIRTIO_BLK_WZ_F_UNMAP 1u /* WRITE_ZEROES range flag */

#endif
