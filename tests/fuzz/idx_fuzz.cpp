// libFuzzer target for the IDX reader (examples/common/idx.hpp). Not part of the Catch build;
// build and run with tests/fuzz/run.sh.
//
// Input layout: a 2-byte little-endian length L, then L bytes of images file, then the rest as
// labels file (L is clamped to what is there). Three legs per input:
//  1. parse_idx_pair on the two parts (the in-memory entry point);
//  2. load_idx on the same two parts written to memory-backed files, which drives the chunked
//     gzread path; for non-gzip input its result or error message must equal leg 1's exactly,
//     since the file loaders promise to be the same checks;
//  3. the single-file parsers on the whole remainder.
// Only std::runtime_error is caught: anything else escaping is a bug.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <sys/mman.h>
#include <unistd.h>

#include "common/idx.hpp"

namespace se = sparsereg_examples;

namespace {

// Re-checks the parser's promises so the fuzzer finds wrong results, not only crashes.
void check(const se::dataset& d) {
    if (d.images.size() != d.count * d.rows * d.cols) __builtin_trap();
    if (!d.labels.empty() && d.labels.size() != d.count) __builtin_trap();
    for (float v : d.images)
        if (!(v >= 0.0f && v <= 1.0f)) __builtin_trap();
}

// A memory-backed file reachable by path, reused across inputs.
struct mem_file {
    int fd = -1;
    std::string path;
    explicit mem_file(const char* name) : fd(::memfd_create(name, 0)) {
        if (fd < 0) __builtin_trap();
        path = "/proc/self/fd/" + std::to_string(fd);
    }
    void assign(const std::uint8_t* p, std::size_t n) const {
        if (::ftruncate(fd, 0) != 0) __builtin_trap();
        std::size_t done = 0;
        while (done < n) {
            const ssize_t w = ::pwrite(fd, p + done, n - done, static_cast<off_t>(done));
            if (w <= 0) __builtin_trap();
            done += static_cast<std::size_t>(w);
        }
    }
};

bool looks_gzip(const std::uint8_t* p, std::size_t n) { return n >= 2 && p[0] == 0x1f && p[1] == 0x8b; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const mem_file img_file("idx_fuzz_images");
    static const mem_file lab_file("idx_fuzz_labels");
    if (size < 2) return 0;
    std::size_t split = std::size_t{data[0]} | (std::size_t{data[1]} << 8);
    const std::uint8_t* rest = data + 2;
    const std::size_t rest_n = size - 2;
    if (split > rest_n) split = rest_n;
    const std::uint8_t* img = rest;
    const std::uint8_t* lab = rest + split;
    const std::size_t img_n = split, lab_n = rest_n - split;

    bool mem_ok = false;
    se::dataset mem;
    std::string mem_error;
    try {
        mem = se::parse_idx_pair(img, img_n, lab, lab_n, img_file.path, lab_file.path);
        if (mem.labels.size() != mem.count || mem.count == 0) __builtin_trap();
        check(mem);
        mem_ok = true;
    } catch (const std::runtime_error& e) {
        mem_error = e.what();
    }

    img_file.assign(img, img_n);
    lab_file.assign(lab, lab_n);
    const bool comparable = !looks_gzip(img, img_n) && !looks_gzip(lab, lab_n);
    try {
        const se::dataset disk = se::load_idx(img_file.path, lab_file.path);
        check(disk);
        if (comparable && (!mem_ok || disk.images != mem.images || disk.labels != mem.labels)) __builtin_trap();
    } catch (const std::runtime_error& e) {
        if (comparable && (mem_ok || mem_error != e.what())) __builtin_trap();
    }

    try {
        check(se::parse_idx_images(rest, rest_n));
    } catch (const std::runtime_error&) {
    }
    try {
        const auto labels = se::parse_idx_labels(rest, rest_n);
        if (labels.empty()) __builtin_trap();
    } catch (const std::runtime_error&) {
    }
    return 0;
}
