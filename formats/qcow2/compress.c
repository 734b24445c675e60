/* compress.c — decompression of compressed qcow2 clusters.
 *
 * Deflate clusters are raw deflate streams (no zlib header, 4 KiB window);
 * zstd clusters are zstd frames. Either may be followed by padding up to
 * the sector boundary, so decoding stops once the cluster is full. */
#include <errno.h>
#include <stdlib.h>
#include <zlib.h>
#include <zstd.h>

#include "io_util.h"
#include "qcow2-int.h"

static int inflate_cluster(const uint8_t *src, size_t slen, uint8_t *dst,
                           size_t dlen)
{
    z_stream z;
    int ret;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -12) != Z_OK) {
        return -ENOMEM;
    }
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)slen;
    z.next_out = dst;
    z.avail_out = (uInt)dlen;
    ret = inflate(&z, Z_FINISH);
    inflateEnd(&z);
    if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR) && z.avail_out == 0) {
        return 0;
    }
    return -EIO;
}

static int zstd_cluster(const uint8_t *src, size_t slen, uint8_t *dst,
                        size_t dlen)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    ZSTD_inBuffer in = {src, slen, 0};
    ZSTD_outBuffer out = {dst, dlen, 0};
    int ret = -EIO;
    if (dctx == NULL) {
        return -ENOMEM;
    }
    while (out.pos < out.size) {
        size_t r = ZSTD_decompressStream(dctx, &out, &in);
        if (ZSTD_isError(r)) {
            break;
        }
        if (out.pos == out.size) {
            ret = 0;
            break;
        }
        if (in.pos == in.size) {
            break; /* input ended before the cluster was full */
        }
    }
    ZSTD_freeDCtx(dctx);
    return ret;
}

int q2_decompress(uint8_t type, const uint8_t *src, size_t slen, uint8_t *dst,
                  size_t dlen)
{
    switch (type) {
    case QCOW2_COMPRESSION_DEFLATE:
        return inflate_cluster(src, slen, dst, dlen);
    case QCOW2_COMPRESSION_ZSTD:
        return zstd_cluster(src, slen, dst, dlen);
    default:
        return -EIO;
    }
}

int q2_read_compressed(struct q2_state *s, const struct q2_map *m, uint8_t *out)
{
    uint8_t *src = malloc(m->csize);
    int ret;
    if (src == NULL) {
        return -ENOMEM;
    }
    /* The last compressed cluster may end before its final sector: bytes
     * past the end of the file read as zeroes. */
    ret = vd_pread_full(s->fd, src, m->csize, m->host);
    if (ret == 0) {
        ret = q2_decompress(s->hdr.compression_type, src, m->csize, out,
                            s->cluster_size);
    }
    free(src);
    return ret;
}
