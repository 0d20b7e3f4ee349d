// Tests for the examples' file helpers: atomic replace (including failures half way through a
// write), read_file and crc32_of.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/temp_dir.hpp"
#include "common/atomic_file.hpp"

namespace se = sparsereg_examples;
namespace fs = std::filesystem;
using Catch::Contains;
using sparsereg_test::temp_dir;

namespace {

using bytes = std::vector<std::uint8_t>;

bytes pattern(std::size_t n, unsigned seed) {
    bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>((i * 131 + seed) % 251);
    return b;
}

// Everything in the directory except `keep`: no temp file may survive any call.
std::vector<std::string> other_entries(const temp_dir& dir, const std::string& keep) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir.path))
        if (e.path().filename() != keep) out.push_back(e.path().filename().string());
    return out;
}

// Lowers the file-size limit for this process for one scope, so a write fails with EFBIG part way
// through; this works even as root, where permission bits would not stop a write.
struct file_size_limit {
    rlimit old{};
    void (*old_handler)(int) = SIG_DFL;
    explicit file_size_limit(rlim_t bytes_limit) {
        ::getrlimit(RLIMIT_FSIZE, &old);
        old_handler = std::signal(SIGXFSZ, SIG_IGN);  // else the kernel kills us instead of EFBIG
        rlimit lower = old;
        lower.rlim_cur = bytes_limit;
        ::setrlimit(RLIMIT_FSIZE, &lower);
    }
    ~file_size_limit() {
        ::setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, old_handler);
    }
};

}  // namespace

TEST_CASE("atomic_file: write creates and replaces files exactly", "[atomic_file]") {
    temp_dir dir;
    const std::string path = dir / "model.bin";
    const bytes first = pattern(5000, 1);
    se::write_file_atomically(path, first.data(), first.size());
    REQUIRE(se::read_file(path) == first);

    const bytes second = pattern(3 * 1024 * 1024 + 7, 2);  // larger than read_file's 1 MiB chunk
    se::write_file_atomically(path, second.data(), second.size());
    REQUIRE(se::read_file(path) == second);

    const bytes third = pattern(10, 3);  // shrinking must not leave a tail of the old contents
    se::write_file_atomically(path, third.data(), third.size());
    REQUIRE(se::read_file(path) == third);

    se::write_file_atomically(path, nullptr, 0);
    REQUIRE(se::read_file(path).empty());
    REQUIRE(fs::file_size(path) == 0);
    REQUIRE(other_entries(dir, "model.bin").empty());
}

TEST_CASE("atomic_file: a relative path works (temp file lands in the same directory)", "[atomic_file]") {
    temp_dir dir;
    const fs::path old_cwd = fs::current_path();
    fs::current_path(dir.path);
    const bytes data = pattern(100, 4);
    se::write_file_atomically("rel.bin", data.data(), data.size());
    fs::current_path(old_cwd);
    REQUIRE(se::read_file(dir / "rel.bin") == data);
    REQUIRE(other_entries(dir, "rel.bin").empty());
}

TEST_CASE("atomic_file: a path in a missing directory throws and names the path", "[atomic_file][errors]") {
    temp_dir dir;
    const std::string path = dir / "no/such/dir/model.bin";
    const bytes data = pattern(10, 5);
    REQUIRE_THROWS_AS(se::write_file_atomically(path, data.data(), data.size()), se::file_error);
    REQUIRE_THROWS_WITH(se::write_file_atomically(path, data.data(), data.size()),
                        Contains(path) && Contains("No such file or directory"));
    REQUIRE(fs::is_empty(dir.path));
}

TEST_CASE("atomic_file: check_can_write fails up front for what write_file_atomically cannot write",
          "[atomic_file][errors]") {
    temp_dir dir;
    const std::string missing = dir / "no/such/dir/model.bin";
    REQUIRE_THROWS_AS(se::check_can_write(missing), se::file_error);
    REQUIRE_THROWS_WITH(se::check_can_write(missing), Contains(missing) && Contains("No such file or directory"));
    fs::create_directory(dir / "sub");
    REQUIRE_THROWS_WITH(se::check_can_write(dir / "sub"), Contains(dir / "sub") && Contains("is a directory"));
    REQUIRE(other_entries(dir, "sub").empty());
}

TEST_CASE("atomic_file: check_can_write leaves no file behind and the target as it was", "[atomic_file]") {
    temp_dir dir;
    const std::string path = dir / "ckpt.bin";
    se::check_can_write(path);
    REQUIRE(fs::is_empty(dir.path));  // neither the target nor a temp file
    const bytes old_contents = pattern(100, 11);
    se::write_file_atomically(path, old_contents.data(), old_contents.size());
    se::check_can_write(path);
    REQUIRE(se::read_file(path) == old_contents);
    REQUIRE(other_entries(dir, "ckpt.bin").empty());
}

TEST_CASE("atomic_file: a write failing half way leaves the old file byte-identical", "[atomic_file][errors]") {
    temp_dir dir;
    const std::string path = dir / "ckpt.bin";
    const bytes old_contents = pattern(1000, 6);
    se::write_file_atomically(path, old_contents.data(), old_contents.size());

    const bytes big = pattern(256 * 1024, 7);
    {
        file_size_limit limit(64 * 1024);
        REQUIRE_THROWS_WITH(se::write_file_atomically(path, big.data(), big.size()),
                            Contains(path) && Contains("write") && Contains("File too large"));
    }
    REQUIRE(se::read_file(path) == old_contents);
    REQUIRE(other_entries(dir, "ckpt.bin").empty());  // the partial temp file was removed
}

TEST_CASE("atomic_file: an unwritable directory leaves the old file byte-identical", "[atomic_file][errors]") {
    if (::geteuid() == 0) {
        WARN("running as root: directory permissions are not enforced, test skipped (the RLIMIT_FSIZE "
             "test covers the failed-write path)");
        return;
    }
    temp_dir dir;
    const std::string path = dir / "ckpt.bin";
    const bytes old_contents = pattern(1000, 8);
    se::write_file_atomically(path, old_contents.data(), old_contents.size());
    fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec);
    const bytes data = pattern(10, 9);
    REQUIRE_THROWS_WITH(se::write_file_atomically(path, data.data(), data.size()),
                        Contains(path) && Contains("Permission denied"));
    fs::permissions(dir.path, fs::perms::owner_all);
    REQUIRE(se::read_file(path) == old_contents);
    REQUIRE(other_entries(dir, "ckpt.bin").empty());
}

TEST_CASE("atomic_file: a failing rename removes the temp file and leaves the target", "[atomic_file][errors]") {
    temp_dir dir;
    // A non-empty directory cannot be replaced by a file, so rename fails after a complete write.
    const std::string path = dir / "target";
    fs::create_directory(path);
    std::ofstream(path + "/inside") << "keep me";
    const bytes data = pattern(100, 10);
    REQUIRE_THROWS_WITH(se::write_file_atomically(path, data.data(), data.size()),
                        Contains(path) && Contains("rename") && Contains("Is a directory"));
    REQUIRE(fs::is_directory(path));
    REQUIRE(se::read_file(path + "/inside") == bytes{'k', 'e', 'e', 'p', ' ', 'm', 'e'});
    REQUIRE(other_entries(dir, "target").empty());
}

TEST_CASE("atomic_file: read_file errors name the path", "[atomic_file][errors]") {
    temp_dir dir;
    const std::string missing = dir / "missing.bin";
    REQUIRE_THROWS_AS(se::read_file(missing), se::file_error);
    REQUIRE_THROWS_WITH(se::read_file(missing), Contains(missing) && Contains("No such file or directory"));
    REQUIRE_THROWS_WITH(se::read_file(dir.path.string()), Contains(dir.path.string()) && Contains("Is a directory"));
}

TEST_CASE("atomic_file: read_file takes regular files up to a size limit only", "[atomic_file][errors]") {
    temp_dir dir;
    const std::string path = dir / "hundred.bin";
    const bytes data = pattern(100, 5);
    se::write_file_atomically(path, data.data(), data.size());
    REQUIRE(se::read_file(path, 100) == data);
    REQUIRE_THROWS_AS(se::read_file(path, 99), se::file_error);
    REQUIRE_THROWS_WITH(se::read_file(path, 99),
                        Contains(path) && Contains("too large") && Contains("100 bytes") && Contains("at most 99"));
    // A device or a pipe fails at once instead of being read (/dev/zero: without end).
    REQUIRE_THROWS_WITH(se::read_file("/dev/zero"), Contains("'/dev/zero' is not a regular file"));
    const std::string fifo = dir / "fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    REQUIRE_THROWS_WITH(se::read_file(fifo), Contains(fifo) && Contains("not a regular file"));
}

TEST_CASE("atomic_file: crc32_of matches the standard check value", "[atomic_file][crc]") {
    const char check[] = "123456789";
    REQUIRE(se::crc32_of(check, 9) == 0xCBF43926u);
    REQUIRE(se::crc32_of(nullptr, 0) == 0u);
    const char fox[] = "The quick brown fox jumps over the lazy dog";
    REQUIRE(se::crc32_of(fox, sizeof fox - 1) == 0x414FA339u);
}
