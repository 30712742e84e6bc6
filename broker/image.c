/* Template image probing (image.h). */
#include "image.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define QCOW2_MAGIC "QFI\xfb"

const char *image_format_to_string(enum image_format format)
{
    return format == IMAGE_QCOW2 ? "qcow2" : "raw";
}

int image_probe(const char *path, enum image_format *ret_format, uint64_t *ret_size)
{
    _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    uint8_t header[32];
    struct stat st;
    ssize_t n;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return -EINVAL;

    n = pread(fd, header, sizeof(header), 0);
    if (n < 0)
        return -errno;
    if ((size_t)n == sizeof(header) && memcmp(header, QCOW2_MAGIC, 4) == 0) {
        uint32_t version;
        uint64_t size;
        memcpy(&version, header + 4, sizeof(version));
        memcpy(&size, header + 24, sizeof(size));
        version = be32toh(version);
        size = be64toh(size);
        if ((version != 2 && version != 3) || size == 0)
            return -EINVAL;
        *ret_format = IMAGE_QCOW2;
        *ret_size = size;
        return 0;
    }

    if (S_ISBLK(st.st_mode)) {
        off_t end = lseek(fd, 0, SEEK_END);
        if (end < 0)
            return -errno;
        st.st_size = end;
    }
    if (st.st_size <= 0)
        return -EINVAL;
    *ret_format = IMAGE_RAW;
    *ret_size = (uint64_t)st.st_size;
    return 0;
}
