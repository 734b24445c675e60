/* vd-img.c — a small command line over the formats/ layer, for tests.
 *
 * Drives a driver the way the daemon would (through image.c) so shell
 * tests can compare the result with qemu-img and qemu-io.
 *
 *   vd-img [-f FMT] [-A DIR]... [-r] [-s SNAPSHOT] [-C CACHEBYTES] COMMAND
 * ARGS...
 *   (-s opens the image read-only as that internal snapshot's view)
 *   create [-c CLUSTER] [-p off|metadata|falloc|full] [-b BACKING [-F FMT]]
 *          FMT PATH SIZE
 *   write PATH OFF LEN BYTE      read PATH OFF LEN (raw bytes to stdout)
 *   verify PATH OFF LEN BYTE     copy-in PATH SRC     copy-out PATH DST
 *   zero PATH OFF LEN [unmap]    discard PATH OFF LEN
 *   map PATH                     check PATH           resize PATH SIZE
 *   info PATH                    snapshot PATH -c|-d|-a NAME, or -l
 *   changes PATH SNAP [SINCE]    changed extents "OFF LEN" a line
 *   stress PATH COUNT SEED [SHADOW]  random writes, zeroes, discards and
 *          flushes; with SHADOW, the expected contents are saved there */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "vd_error.h"

#define MAX_DIRS 8
#define CHUNK (1u << 20)

static const char *fmt;
static const char *dirs[MAX_DIRS + 1];
static int ndirs;
static bool readonly;
static uint64_t cache_bytes;
static const char *snapshot;

static uint64_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    switch (*end) {
    case 'K':
    case 'k':
        v <<= 10;
        break;
    case 'M':
    case 'm':
        v <<= 20;
        break;
    case 'G':
    case 'g':
        v <<= 30;
        break;
    case 'T':
    case 't':
        v <<= 40;
        break;
    case '\0':
        break;
    default:
        fprintf(stderr, "vd-img: bad size '%s'\n", s);
        exit(2);
    }
    return v;
}

static struct vd_image *open_img(const char *path, bool ro)
{
    struct vd_open_opts o = {
        .readonly = ro || readonly,
        .cache_bytes = cache_bytes,
        .allowed_dirs = ndirs ? dirs : NULL,
        .snapshot = snapshot,
    };
    struct vd_error err = {0};
    struct vd_image *img;
    if (vd_image_open(fmt, path, &o, &img, &err) < 0) {
        fprintf(stderr, "vd-img: %s\n", err.msg);
        exit(1);
    }
    return img;
}

static int print_extent(void *arg, uint64_t off, uint64_t len)
{
    (void)arg;
    printf("%llu %llu\n", (unsigned long long)off, (unsigned long long)len);
    return 0;
}

static int finish(struct vd_image *img, int ret, const char *what)
{
    int r2 = vd_image_close(img);
    if (ret == 0) {
        ret = r2;
    }
    if (ret < 0) {
        fprintf(stderr, "vd-img: %s: %s\n", what, strerror(-ret));
        return 1;
    }
    return 0;
}

static int cmd_create(int argc, char **argv)
{
    struct vd_create_opts o = {0};
    struct vd_error err = {0};
    int c;
    optind = 1;
    while ((c = getopt(argc, argv, "c:p:b:F:")) != -1) {
        switch (c) {
        case 'c':
            o.cluster_size = (uint32_t)parse_size(optarg);
            break;
        case 'b':
            o.backing_file = optarg;
            break;
        case 'F':
            o.backing_format = optarg;
            break;
        case 'p':
            o.prealloc = !strcmp(optarg, "metadata") ? VD_PREALLOC_METADATA
                         : !strcmp(optarg, "falloc") ? VD_PREALLOC_FALLOC
                         : !strcmp(optarg, "full")   ? VD_PREALLOC_FULL
                                                     : VD_PREALLOC_OFF;
            break;
        default:
            return 2;
        }
    }
    if (argc - optind != 3) {
        return 2;
    }
    o.size = parse_size(argv[optind + 2]);
    if (vd_image_create(argv[optind], argv[optind + 1], &o, &err) < 0) {
        fprintf(stderr, "vd-img: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int fill(struct vd_image *img, uint64_t off, uint64_t len, int byte,
                bool verify)
{
    uint8_t *buf = malloc(CHUNK), *got = malloc(CHUNK);
    int ret = 0;
    memset(buf, byte, CHUNK);
    while (len > 0 && ret == 0) {
        size_t n = len < CHUNK ? (size_t)len : CHUNK;
        if (verify) {
            ret = vd_image_pread(img, got, n, off);
            if (ret == 0 && memcmp(got, buf, n) != 0) {
                for (size_t i = 0; i < n; i++) {
                    if (got[i] != buf[i]) {
                        fprintf(stderr,
                                "vd-img: byte %llu is 0x%02x, "
                                "expected 0x%02x\n",
                                (unsigned long long)(off + i), got[i], byte);
                        break;
                    }
                }
                ret = -EILSEQ;
            }
        } else {
            ret = vd_image_pwrite(img, buf, n, off);
        }
        off += n;
        len -= n;
    }
    free(buf);
    free(got);
    return ret;
}

static int copy(struct vd_image *img, const char *file, bool in)
{
    int fd = in ? open(file, O_RDONLY)
                : open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    uint8_t *buf = malloc(CHUNK);
    uint64_t off = 0, size = vd_image_length(img);
    int ret = 0;
    if (fd < 0) {
        free(buf);
        return -errno;
    }
    while (ret == 0 && off < size) {
        size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
        if (in) {
            ssize_t r = read(fd, buf, n); /* sequential: pipes work */
            if (r <= 0) {
                ret = r < 0 ? -errno : 0;
                break;
            }
            n = (size_t)r;
            ret = vd_image_pwrite(img, buf, n, off);
        } else {
            ret = vd_image_pread(img, buf, n, off);
            if (ret == 0 && pwrite(fd, buf, n, (off_t)off) != (ssize_t)n) {
                ret = -EIO;
            }
        }
        off += n;
    }
    if (!in && ret == 0 && ftruncate(fd, (off_t)size) < 0) {
        ret = -errno;
    }
    close(fd);
    free(buf);
    return ret;
}

/* Random mixed operations; the shadow buffer mirrors what reads must
 * return (discard may expose zeroes only: used on images without backing). */
static int cmd_stress(struct vd_image *img, long count, unsigned seed,
                      const char *shadow_path)
{
    uint64_t size = vd_image_length(img);
    uint8_t *shadow = calloc(1, size), *buf = malloc(256 * 1024);
    int ret = 0;
    if (shadow == NULL || buf == NULL) {
        return -ENOMEM;
    }
    ret = vd_image_pread(img, shadow, size, 0);
    for (long i = 0; i < count && ret == 0; i++) {
        unsigned r = (unsigned)rand_r(&seed);
        uint64_t off = ((uint64_t)rand_r(&seed) * 4099) % size;
        uint64_t len = 1 + (uint64_t)rand_r(&seed) % (256 * 1024);
        if (len > size - off) {
            len = size - off;
        }
        switch (r % 20) {
        case 0:
            ret = vd_image_flush(img);
            break;
        case 1:
        case 2:
            ret = vd_image_discard(img, off, len);
            if (ret == 0) {
                /* discard may leave partial clusters: reread them */
                ret = vd_image_pread(img, shadow + off, len, off);
            }
            break;
        case 3:
        case 4:
            ret = vd_image_write_zeroes(img, off, len,
                                        r & 64 ? VD_ZERO_MAY_UNMAP : 0);
            memset(shadow + off, 0, len);
            break;
        default:
            memset(buf, (int)(i & 0xff) | 1, len);
            ret = vd_image_pwrite(img, buf, len, off);
            memcpy(shadow + off, buf, len);
            break;
        }
    }
    if (ret == 0 && shadow_path != NULL) {
        FILE *f = fopen(shadow_path, "wb");
        if (f == NULL || fwrite(shadow, 1, size, f) != size) {
            ret = -EIO;
        }
        if (f != NULL) {
            fclose(f);
        }
    }
    free(shadow);
    free(buf);
    return ret;
}

static int cmd_map(struct vd_image *img)
{
    uint64_t off = 0, size = vd_image_length(img), n;
    while (off < size) {
        int f = vd_image_block_status(img, off, size - off, &n);
        if (f < 0) {
            fprintf(stderr, "vd-img: block_status: %s\n", strerror(-f));
            return f;
        }
        printf("%llu %llu%s%s%s\n", (unsigned long long)off,
               (unsigned long long)n, f & VD_BS_DATA ? " data" : "",
               f & VD_BS_ZERO ? " zero" : "",
               f & VD_BS_ALLOCATED ? " allocated" : "");
        off += n;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct vd_image *img;
    const char *cmd;
    int c, ret = 0;

    while ((c = getopt(argc, argv, "+f:A:rs:C:")) != -1) {
        switch (c) {
        case 'f':
            fmt = optarg;
            break;
        case 'A':
            if (ndirs < MAX_DIRS) {
                dirs[ndirs++] = optarg;
            }
            break;
        case 'r':
            readonly = true;
            break;
        case 's':
            snapshot = optarg;
            break;
        case 'C':
            cache_bytes = parse_size(optarg);
            break;
        default:
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: vd-img [-f FMT] [-A DIR] [-r] COMMAND ...\n");
        return 2;
    }
    cmd = argv[optind];
    argv += optind;
    argc -= optind;
    if (!strcmp(cmd, "create")) {
        return cmd_create(argc, argv);
    }
    if (argc < 2) {
        return 2;
    }
    bool ro = !strcmp(cmd, "read") || !strcmp(cmd, "verify") ||
              !strcmp(cmd, "copy-out") || !strcmp(cmd, "map") ||
              !strcmp(cmd, "info") || !strcmp(cmd, "check") ||
              !strcmp(cmd, "changes");
    img = open_img(argv[1], ro);
    if (!strcmp(cmd, "write") && argc == 5) {
        ret = fill(img, parse_size(argv[2]), parse_size(argv[3]),
                   (int)strtol(argv[4], NULL, 0), false);
    } else if (!strcmp(cmd, "verify") && argc == 5) {
        ret = fill(img, parse_size(argv[2]), parse_size(argv[3]),
                   (int)strtol(argv[4], NULL, 0), true);
    } else if (!strcmp(cmd, "read") && argc == 4) {
        size_t n = (size_t)parse_size(argv[3]);
        uint8_t *buf = malloc(n ? n : 1);
        ret = vd_image_pread(img, buf, n, parse_size(argv[2]));
        if (ret == 0 && fwrite(buf, 1, n, stdout) != n) {
            ret = -EIO;
        }
        free(buf);
    } else if (!strcmp(cmd, "copy-in") && argc == 3) {
        ret = copy(img, argv[2], true);
    } else if (!strcmp(cmd, "copy-out") && argc == 3) {
        ret = copy(img, argv[2], false);
    } else if (!strcmp(cmd, "zero") && argc >= 4) {
        ret =
            vd_image_write_zeroes(img, parse_size(argv[2]), parse_size(argv[3]),
                                  argc > 4 ? VD_ZERO_MAY_UNMAP : 0);
    } else if (!strcmp(cmd, "discard") && argc == 4) {
        ret = vd_image_discard(img, parse_size(argv[2]), parse_size(argv[3]));
    } else if (!strcmp(cmd, "stress") && argc >= 4) {
        ret = cmd_stress(img, strtol(argv[2], NULL, 0),
                         (unsigned)strtoul(argv[3], NULL, 0),
                         argc > 4 ? argv[4] : NULL);
    } else if (!strcmp(cmd, "snapshot") && argc >= 3) {
        struct vd_error err = {0};
        if (!strcmp(argv[2], "-l")) {
            struct vd_snapshot_info *v;
            ret = vd_image_snapshot_list(img, &v);
            for (int i = 0; i < ret; i++) {
                printf("%s %s %llu\n", v[i].id, v[i].name,
                       (unsigned long long)v[i].disk_size);
            }
            ret = ret < 0 ? ret : 0;
            free(v);
        } else if (argc == 4 && !strcmp(argv[2], "-c")) {
            ret = vd_image_snapshot_create(img, argv[3], &err);
        } else if (argc == 4 && !strcmp(argv[2], "-d")) {
            ret = vd_image_snapshot_delete(img, argv[3], &err);
        } else if (argc == 4 && !strcmp(argv[2], "-a")) {
            ret = vd_image_snapshot_revert(img, argv[3], &err);
        } else {
            ret = -EINVAL;
        }
        if (ret < 0 && err.msg[0]) {
            fprintf(stderr, "vd-img: %s\n", err.msg);
        }
    } else if (!strcmp(cmd, "changes") && argc >= 3) {
        struct vd_error err = {0};
        ret = vd_image_snapshot_changes(img, argc > 3 ? argv[3] : NULL, argv[2],
                                        print_extent, NULL, &err);
        if (ret < 0 && err.msg[0]) {
            fprintf(stderr, "vd-img: %s\n", err.msg);
        }
    } else if (!strcmp(cmd, "map")) {
        ret = cmd_map(img);
    } else if (!strcmp(cmd, "resize") && argc == 3) {
        struct vd_error err = {0};
        ret = vd_image_truncate(img, parse_size(argv[2]), &err);
        if (ret < 0) {
            fprintf(stderr, "vd-img: %s\n", err.msg);
        }
    } else if (!strcmp(cmd, "check")) {
        struct vd_check_result r;
        ret = vd_image_check(img, &r);
        if (ret == 0) {
            printf("corruptions %llu leaks %llu errors %llu\n",
                   (unsigned long long)r.corruptions,
                   (unsigned long long)r.leaks,
                   (unsigned long long)r.check_errors);
            if (r.corruptions || r.leaks || r.check_errors) {
                vd_image_close(img);
                return 3;
            }
        }
    } else if (!strcmp(cmd, "info")) {
        printf("format %s\nlength %llu\nallocated %lld\n", vd_image_format(img),
               (unsigned long long)vd_image_length(img),
               (long long)vd_image_allocated(img));
    } else {
        fprintf(stderr, "vd-img: bad command or arguments: %s\n", cmd);
        vd_image_close(img);
        return 2;
    }
    return finish(img, ret, cmd);
}
