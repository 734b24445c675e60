/* test_fuse_seek.c — SEEK_DATA/SEEK_HOLE from block status
 * (daemon/fuse_seek.c): over a made-up map whose runs a status function
 * hands out in small pieces, every answer is the one a file system would
 * give, and errors are passed on. */
#include <errno.h>
#include <unistd.h>

#include "fuse-int.h"
#include "vd_driver.h"
#include "vd_test.h"

/* A 1 MiB file: data [64k, 192k), a zero-flag run [192k, 256k), backing
 * data (not allocated here) [512k, 576k), data [1M - 4k, 1M). */
#define K 1024ULL
#define SIZE (1024 * K)

struct fake {
    uint64_t piece;   /* longest run handed out at once */
    uint64_t fail_at; /* status at or past this fails with -EIO; 0 = never */
    int calls;
};

static int map_at(uint64_t off, uint64_t *end)
{
    static const struct {
        uint64_t start, end;
        int flags;
    } runs[] = {
        {0, 64 * K, VD_BS_ZERO},
        {64 * K, 192 * K, VD_BS_DATA | VD_BS_ALLOCATED},
        {192 * K, 256 * K, VD_BS_ZERO | VD_BS_ALLOCATED},
        {256 * K, 512 * K, VD_BS_ZERO},
        {512 * K, 576 * K, VD_BS_DATA},
        {576 * K, SIZE - 4 * K, VD_BS_ZERO},
        {SIZE - 4 * K, SIZE, VD_BS_DATA | VD_BS_ALLOCATED},
    };
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        if (off >= runs[i].start && off < runs[i].end) {
            *end = runs[i].end;
            return runs[i].flags;
        }
    }
    return -EINVAL;
}

static int status(void *obj, uint64_t off, uint64_t len, uint64_t *pnum)
{
    struct fake *f = obj;
    uint64_t end;
    int flags = map_at(off, &end);
    f->calls++;
    if (f->fail_at != 0 && off >= f->fail_at) {
        return -EIO;
    }
    if (flags < 0) {
        return flags;
    }
    *pnum = end - off;
    if (*pnum > len) {
        *pnum = len;
    }
    if (*pnum > f->piece) {
        *pnum = f->piece;
    }
    return flags;
}

/* lseek's answer: the offset, or -errno. */
static long long seek(struct fake *f, long long off, int whence)
{
    off_t out = -1;
    int ret = vd_fuse_seek(status, f, SIZE, (off_t)off, whence, &out);
    return ret < 0 ? ret : (long long)out;
}

static void check_map(uint64_t piece)
{
    struct fake f = {.piece = piece};

    CHECK_EQ(seek(&f, 0, SEEK_DATA), 64 * K);
    CHECK_EQ(seek(&f, 0, SEEK_HOLE), 0);
    CHECK_EQ(seek(&f, 64 * K, SEEK_DATA), 64 * K);
    CHECK_EQ(seek(&f, 100 * K, SEEK_DATA), 100 * K);
    CHECK_EQ(seek(&f, 64 * K, SEEK_HOLE), 192 * K);
    /* a zero-flag run is a hole even though it is allocated */
    CHECK_EQ(seek(&f, 192 * K, SEEK_DATA), 512 * K);
    CHECK_EQ(seek(&f, 200 * K, SEEK_HOLE), 200 * K);
    /* data from a backing file is data */
    CHECK_EQ(seek(&f, 512 * K, SEEK_HOLE), 576 * K);
    CHECK_EQ(seek(&f, 600 * K, SEEK_DATA), SIZE - 4 * K);
    /* the end of the file is a hole; nothing lies at or beyond it */
    CHECK_EQ(seek(&f, SIZE - 4 * K, SEEK_HOLE), SIZE);
    CHECK_EQ(seek(&f, SIZE - 1, SEEK_DATA), SIZE - 1);
    CHECK_EQ(seek(&f, SIZE, SEEK_DATA), -ENXIO);
    CHECK_EQ(seek(&f, SIZE, SEEK_HOLE), -ENXIO);
    CHECK_EQ(seek(&f, SIZE + 5, SEEK_HOLE), -ENXIO);
    CHECK_EQ(seek(&f, -1, SEEK_DATA), -ENXIO);
    CHECK_EQ(seek(&f, 0, SEEK_SET), -EINVAL);
}

int main(void)
{
    struct fake f = {.piece = SIZE};

    check_map(SIZE);  /* whole runs */
    check_map(4 * K); /* runs handed out in 4 KiB pieces */
    check_map(1);     /* and byte by byte */

    /* One status call per run walked, not per byte. */
    f.calls = 0;
    CHECK_EQ(seek(&f, 0, SEEK_HOLE), 0);
    CHECK_EQ(seek(&f, 200 * K, SEEK_DATA), 512 * K);
    CHECK_EQ(f.calls, 1 + 3);

    /* A failing status is the answer. */
    f.fail_at = 300 * K;
    CHECK_EQ(seek(&f, 192 * K, SEEK_DATA), -EIO);
    CHECK_EQ(seek(&f, 100 * K, SEEK_HOLE), 192 * K); /* before the failure */
    return vd_test_done("test_fuse_seek");
}
