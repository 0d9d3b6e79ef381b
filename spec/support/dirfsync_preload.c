/*
 * dirfsync_preload.c — LD_PRELOAD library for spec/atomic_write_spec.lua: fsync()
 * of a directory fails with EIO (a dying flash, a full journal), fsync() of
 * anything else goes to the real call. Lets a test see that
 * hwfota.core.write_file_atomic reports a rename that could not be made durable.
 */
#include <dlfcn.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

int fsync(int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        errno = EIO;
        return -1;
    }
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return real(fd);
}
