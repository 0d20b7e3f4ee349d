// File helpers for checkpoints and exports: a crash or a full disk in the middle of a save must
// never leave a half-written file where the last good checkpoint used to be.
#pragma once

#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

namespace sparsereg_examples {

struct file_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

namespace detail {

inline std::string errno_text(int err) { return std::strerror(err); }

// Closes on scope exit unless released; close errors on the success path are checked explicitly.
struct fd_guard {
    int fd = -1;
    ~fd_guard() {
        if (fd >= 0) ::close(fd);
    }
    int release() {
        const int f = fd;
        fd = -1;
        return f;
    }
};

inline std::string parent_dir(const std::string& path) {
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

// The temp file write_file_atomically writes first: same directory, per process.
inline std::string temp_path_for(const std::string& path) {
    return path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
}

}  // namespace detail

// Writes [data, data+n) to `path` so that readers see either the old file or the complete new
// one: write to `path.tmp.<pid>` in the same directory (rename is only atomic within a file
// system), fsync it, rename it over `path`, then fsync the directory so the rename itself survives
// a power cut. On failure the temp file is removed, `path` is left as it was, and file_error names
// the path, the step and the errno text.
// The temp name is per process: two threads of one process must not save the same path at once.
inline void write_file_atomically(const std::string& path, const void* data, std::size_t n) {
    const std::string tmp = detail::temp_path_for(path);
    const auto fail = [&](const char* step, int err, bool remove_tmp) {
        if (remove_tmp) ::unlink(tmp.c_str());
        throw file_error("write_file_atomically: cannot " + std::string(step) + " for '" + path +
                         "' (temp file '" + tmp + "'): " + detail::errno_text(err));
    };

    detail::fd_guard fd{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)};
    if (fd.fd < 0) fail("create temp file", errno, false);

    const auto* p = static_cast<const unsigned char*>(data);
    std::size_t left = n;
    while (left > 0) {
        // Bounded chunks: some kernels cap a single write at ~2 GiB anyway.
        const std::size_t want = left < (std::size_t{1} << 30) ? left : (std::size_t{1} << 30);
        const ssize_t wrote = ::write(fd.fd, p, want);
        if (wrote < 0) {
            if (errno == EINTR) continue;
            fail("write", errno, true);
        }
        if (wrote == 0) fail("write (no progress)", EIO, true);
        p += wrote;
        left -= static_cast<std::size_t>(wrote);
    }
    if (::fsync(fd.fd) != 0) fail("fsync temp file", errno, true);
    // close can report a deferred write error (e.g. NFS), so it is part of the write.
    if (::close(fd.release()) != 0) fail("close temp file", errno, true);
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename temp file over target", errno, true);

    // The new contents are in place now; a failure to persist the directory entry cannot be undone
    // by removing anything, and the data is already correct for every reader, so it is only
    // best effort.
    const int dir = ::open(detail::parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        (void)::fsync(dir);
        ::close(dir);
    }
}

// Checks up front, before hours of work whose result would go to `path`, that
// write_file_atomically(path, ...) will be able to start: creates its temp file and removes it
// again. Throws file_error naming the path and the errno text for a missing or read-only
// directory, and when `path` is a directory. `path` itself is not touched. A later write can
// still fail (a full disk); that failure leaves the old file in place, as always.
inline void check_can_write(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        throw file_error("cannot write '" + path + "': it is a directory");
    const std::string tmp = detail::temp_path_for(path);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        throw file_error("cannot write '" + path + "' (temp file '" + tmp + "'): " + detail::errno_text(errno));
    ::close(fd);
    ::unlink(tmp.c_str());
}

// zlib's CRC-32 (the one in gzip and PNG): crc32_of("123456789", 9) == 0xCBF43926.
inline std::uint32_t crc32_of(const void* data, std::size_t n) {
    const auto* p = static_cast<const Bytef*>(data);
    uLong crc = ::crc32(0L, Z_NULL, 0);
    // zlib takes uInt lengths; feed anything larger in pieces.
    while (n > 0) {
        const uInt piece = n > UINT_MAX ? UINT_MAX : static_cast<uInt>(n);
        crc = ::crc32(crc, p, piece);
        p += piece;
        n -= piece;
    }
    return static_cast<std::uint32_t>(crc);
}

// Reads a whole regular file of at most `max_bytes` bytes into memory. Throws file_error naming
// the path and the errno text, or the path and the size: a device (/dev/zero), a pipe or a file
// larger than max_bytes fails at once instead of being read until the memory is exhausted.
inline std::vector<std::uint8_t> read_file(const std::string& path,
                                           std::size_t max_bytes = std::numeric_limits<std::size_t>::max()) {
    // O_NONBLOCK: opening a FIFO without a writer must not hang before the check below rejects it.
    detail::fd_guard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
    if (fd.fd < 0)
        throw file_error("read_file: cannot open '" + path + "': " + detail::errno_text(errno));
    struct stat st {};
    if (::fstat(fd.fd, &st) != 0)
        throw file_error("read_file: cannot stat '" + path + "': " + detail::errno_text(errno));
    if (S_ISDIR(st.st_mode))
        throw file_error("read_file: cannot read '" + path + "': " + detail::errno_text(EISDIR));
    if (!S_ISREG(st.st_mode)) throw file_error("read_file: '" + path + "' is not a regular file");
    const auto too_large = [&](std::uint64_t size) {
        return file_error("read_file: '" + path + "' is too large (" + std::to_string(size) + " bytes, at most " +
                          std::to_string(max_bytes) + ")");
    };
    if (static_cast<std::uint64_t>(st.st_size) > max_bytes) throw too_large(static_cast<std::uint64_t>(st.st_size));
    std::vector<std::uint8_t> out;
    // The size is a hint only (the file may change); the loop reads to end of file.
    if (st.st_size > 0) out.reserve(static_cast<std::size_t>(st.st_size));
    // Read through a fixed buffer so reaching end of file never grows `out` past its final size.
    std::vector<std::uint8_t> buf(std::size_t{1} << 20);
    for (;;) {
        const ssize_t got = ::read(fd.fd, buf.data(), buf.size());
        if (got < 0) {
            const int err = errno;
            if (err == EINTR) continue;
            throw file_error("read_file: cannot read '" + path + "': " + detail::errno_text(err));
        }
        if (got == 0) break;
        if (static_cast<std::size_t>(got) > max_bytes - out.size())  // the file grew while being read
            throw too_large(static_cast<std::uint64_t>(out.size()) + static_cast<std::uint64_t>(got));
        out.insert(out.end(), buf.begin(), buf.begin() + got);
    }
    return out;
}

}  // namespace sparsereg_examples
