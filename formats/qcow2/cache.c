/* cache.c — a small write-back cache of cluster-sized metadata tables
 * (one instance for L2 tables, one for refcount blocks).
 *
 * Least-recently-used eviction. A dirty L2 table is written only after
 * every dirty refcount block and all data are durable (DESIGN NOTES in
 * qcow2.c, invariant 1 and 2). Callers hold the metadata lock. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "io_util.h"
#include "qcow2-int.h"

int q2_cache_init(struct q2_cache *c, size_t nslots, uint64_t cluster_size,
                  bool is_l2)
{
    memset(c, 0, sizeof(*c));
    c->slots = calloc(nslots, sizeof(*c->slots));
    if (c->slots == NULL) {
        return -ENOMEM;
    }
    c->nslots = nslots;
    c->is_l2 = is_l2;
    for (size_t i = 0; i < nslots; i++) {
        c->slots[i].data = malloc(cluster_size);
        if (c->slots[i].data == NULL) {
            q2_cache_destroy(c);
            return -ENOMEM;
        }
    }
    return 0;
}

void q2_cache_destroy(struct q2_cache *c)
{
    if (c->slots != NULL) {
        for (size_t i = 0; i < c->nslots; i++) {
            free(c->slots[i].data);
        }
    }
    free(c->slots);
    memset(c, 0, sizeof(*c));
}

/* Before an L2 table reaches the disk, the refcounts and data it points
 * at must be durable. */
static int l2_barrier(struct q2_state *s)
{
    int ret = q2_cache_writeback(s, &s->rb_cache);
    if (ret < 0) {
        return ret;
    }
    return q2_sync(s);
}

static int write_slot(struct q2_state *s, struct q2_cache *c,
                      struct q2_cache_slot *slot)
{
    int ret;
    if (s->broken || s->readonly) {
        return -EIO;
    }
    if (c->is_l2) {
        ret = l2_barrier(s);
        if (ret < 0) {
            return ret;
        }
    }
    ret = vd_meta_pwrite(s->fd, slot->data, s->cluster_size, slot->offset);
    if (ret == 0) {
        slot->dirty = false;
    }
    return ret;
}

int q2_cache_get(struct q2_state *s, struct q2_cache *c, uint64_t off,
                 bool load, uint8_t **out)
{
    struct q2_cache_slot *victim = NULL;
    int ret;

    c->tick++;
    for (size_t i = 0; i < c->nslots; i++) {
        struct q2_cache_slot *sl = &c->slots[i];
        if (sl->offset == off) {
            sl->lru = c->tick;
            *out = sl->data;
            return 0;
        }
        if (victim == NULL || (victim->offset != 0 &&
                               (sl->offset == 0 || sl->lru < victim->lru))) {
            victim = sl;
        }
    }
    if (victim->dirty) {
        ret = write_slot(s, c, victim);
        if (ret < 0) {
            return ret;
        }
    }
    victim->offset = 0;
    if (load) {
        ret = vd_pread_full(s->fd, victim->data, s->cluster_size, off);
        if (ret < 0) {
            return ret;
        }
    } else {
        memset(victim->data, 0, s->cluster_size);
    }
    victim->offset = off;
    victim->lru = c->tick;
    victim->dirty = false;
    *out = victim->data;
    return 0;
}

void q2_cache_mark_dirty(struct q2_cache *c, const uint8_t *table)
{
    for (size_t i = 0; i < c->nslots; i++) {
        if (c->slots[i].data == table) {
            c->slots[i].dirty = true;
            return;
        }
    }
}

int q2_cache_writeback(struct q2_state *s, struct q2_cache *c)
{
    bool barrier_done = false;
    int ret;
    for (size_t i = 0; i < c->nslots; i++) {
        struct q2_cache_slot *sl = &c->slots[i];
        if (!sl->dirty) {
            continue;
        }
        if (s->broken || s->readonly) {
            return -EIO;
        }
        if (c->is_l2 && !barrier_done) {
            ret = l2_barrier(s);
            if (ret < 0) {
                return ret;
            }
            barrier_done = true;
        }
        ret = vd_meta_pwrite(s->fd, sl->data, s->cluster_size, sl->offset);
        if (ret < 0) {
            return ret;
        }
        sl->dirty = false;
    }
    return 0;
}

void q2_cache_drop(struct q2_cache *c, uint64_t off)
{
    for (size_t i = 0; i < c->nslots; i++) {
        if (c->slots[i].offset == off) {
            c->slots[i].offset = 0;
            c->slots[i].dirty = false;
        }
    }
}

void q2_cache_clear(struct q2_cache *c)
{
    for (size_t i = 0; i < c->nslots; i++) {
        c->slots[i].offset = 0;
        c->slots[i].dirty = false;
    }
}

bool q2_cache_has_dirty(const struct q2_cache *c)
{
    for (size_t i = 0; i < c->nslots; i++) {
        if (c->slots[i].dirty) {
            return true;
        }
    }
    return false;
}
