// IDX (MNIST / Fashion-MNIST) reader for the bundled examples.
//
// Format: big-endian magic 0x00000803 (images: u8, 3 dims) or 0x00000801 (labels: u8, 1 dim),
// then one big-endian u32 per dimension, then the bytes. Files may be gzip-compressed or raw;
// zlib's gzread reads both, so one code path serves either.
//
// Everything in a header is untrusted: dimensions are bounded before any arithmetic, and no buffer
// is sized from the header alone. The file loaders read the header, then read the body in chunks
// (so a lying header costs at most what the file really contains), and hand the bytes to the same
// in-memory parsers the fuzzer drives (tests/fuzz/idx_fuzz.cpp).
//
// Trailing bytes after the last item are rejected: the official files have none, and extra bytes
// almost always mean a wrong or damaged file, which is better reported than silently trained on.
// (Trailing garbage after a gzip member is a zlib matter: gzread ignores it.)
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <zlib.h>

namespace sparsereg_examples {

struct dataset {
    std::vector<float> images;         // count*rows*cols, row-major per image, scaled to [0,1]
    std::vector<std::uint8_t> labels;  // count raw label bytes (not checked against 0..9 here)
    std::size_t count = 0, rows = 0, cols = 0;
    std::string images_source, labels_source;  // the files it was loaded from (for error messages)
};

struct idx_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Limits on what a header may claim. MNIST-like sets are 28x28 and 70k samples; these leave
// generous room while keeping the largest possible float buffer at 8 GiB.
inline constexpr std::uint32_t idx_max_side = 4096;
inline constexpr std::uint64_t idx_max_count = 10'000'000;
inline constexpr std::uint64_t idx_max_elements = std::uint64_t{1} << 31;

inline constexpr const char* idx_install_hint =
    "Fashion-MNIST: `sudo apt-get install dataset-fashion-mnist` (installs "
    "/usr/share/datasets/fashion-mnist); MNIST and everything else: `scripts/install-deps.sh`";

enum class idx_kind { images, labels };

// The validated shape of one IDX file: what a well-formed file of this header must contain.
struct idx_layout {
    idx_kind kind = idx_kind::images;
    std::size_t count = 0, rows = 0, cols = 0;  // rows = cols = 1 for labels
    std::size_t header_bytes = 0;
    std::size_t total_bytes = 0;  // header + body
};

namespace detail {

inline std::uint32_t read_be32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

inline std::string hex32(std::uint32_t v) {
    static const char digits[] = "0123456789abcdef";
    std::string s = "0x";
    for (int shift = 28; shift >= 0; shift -= 4) s += digits[(v >> shift) & 0xF];
    return s;
}

inline std::size_t header_size(idx_kind kind) { return kind == idx_kind::images ? 16 : 8; }

inline std::string prefix(const std::string& source) { return "idx: '" + source + "': "; }

}  // namespace detail

// Validates the header at the start of [data, data+n) (n may be just the header) and returns the
// layout it promises. Throws idx_error for a short header, a wrong magic number, zero samples or
// dimensions out of bounds. `source` names the file in messages.
inline idx_layout parse_idx_header(const std::uint8_t* data, std::size_t n, idx_kind kind,
                                   const std::string& source) {
    const bool images = kind == idx_kind::images;
    const std::uint32_t expected_magic = images ? 0x00000803u : 0x00000801u;
    const char* what = images ? "IDX3 unsigned-byte images" : "IDX1 unsigned-byte labels";
    if (n < 4)
        throw idx_error(detail::prefix(source) + "truncated file: expected at least 4 bytes (magic number), got " +
                        std::to_string(n));
    const std::uint32_t magic = detail::read_be32(data);
    if (magic != expected_magic) {
        std::string msg = detail::prefix(source) + "wrong magic number: expected " + detail::hex32(expected_magic) +
                          " (" + what + "), found " + detail::hex32(magic);
        if (magic == (images ? 0x00000801u : 0x00000803u))
            msg += images ? " (this is a labels file)" : " (this is an images file)";
        else if ((magic >> 16) == 0x1f8b)
            msg += " (gzip data inside a gzip file? decompress once)";
        throw idx_error(msg);
    }
    idx_layout layout;
    layout.kind = kind;
    layout.header_bytes = detail::header_size(kind);
    if (n < layout.header_bytes)
        throw idx_error(detail::prefix(source) + "truncated file: expected a " +
                        std::to_string(layout.header_bytes) + "-byte header, got " + std::to_string(n) + " bytes");
    const std::uint64_t count = detail::read_be32(data + 4);
    const std::uint64_t rows = images ? detail::read_be32(data + 8) : 1;
    const std::uint64_t cols = images ? detail::read_be32(data + 12) : 1;
    if (count == 0) throw idx_error(detail::prefix(source) + "no samples (count is 0)");
    // All factors are < 2^32 and checked one by one, so the product below cannot overflow 64 bits.
    if (rows == 0 || cols == 0 || rows > idx_max_side || cols > idx_max_side || count > idx_max_count ||
        count * rows * cols > idx_max_elements) {
        throw idx_error(detail::prefix(source) + "absurd dimensions " + std::to_string(count) + "x" +
                        std::to_string(rows) + "x" + std::to_string(cols) + " (limits: rows and cols in 1.." +
                        std::to_string(idx_max_side) + ", count <= " + std::to_string(idx_max_count) +
                        ", count*rows*cols <= " + std::to_string(idx_max_elements) + ")");
    }
    layout.count = static_cast<std::size_t>(count);
    layout.rows = static_cast<std::size_t>(rows);
    layout.cols = static_cast<std::size_t>(cols);
    layout.total_bytes = layout.header_bytes + static_cast<std::size_t>(count * rows * cols);
    return layout;
}

namespace detail {

inline std::string expected_size(const idx_layout& layout) {
    const std::string shape = layout.kind == idx_kind::images
                                  ? std::to_string(layout.count) + "x" + std::to_string(layout.rows) + "x" +
                                        std::to_string(layout.cols) + " pixels"
                                  : std::to_string(layout.count) + " labels";
    return "expected " + std::to_string(layout.total_bytes) + " bytes (header " +
           std::to_string(layout.header_bytes) + " + " + shape + ")";
}

[[noreturn]] inline void throw_trailing(const idx_layout& layout, std::uint64_t n, const std::string& source) {
    throw idx_error(prefix(source) + "trailing data: " + expected_size(layout) + ", got " + std::to_string(n) +
                    " (extra bytes usually mean a wrong or damaged file)");
}

// Full-file check shared by both parsers: header valid and the size exactly as promised.
inline idx_layout check_whole(const std::uint8_t* data, std::size_t n, idx_kind kind, const std::string& source) {
    const idx_layout layout = parse_idx_header(data, n, kind, source);
    if (n < layout.total_bytes)
        throw idx_error(prefix(source) + "truncated file: " + expected_size(layout) + ", got " + std::to_string(n));
    if (n > layout.total_bytes) throw_trailing(layout, n, source);
    return layout;
}

}  // namespace detail

// Parses a whole images file held in memory. Fills images, count, rows, cols; labels stay empty.
inline dataset parse_idx_images(const std::uint8_t* data, std::size_t n, const std::string& source = "<memory>") {
    const idx_layout layout = detail::check_whole(data, n, idx_kind::images, source);
    dataset out;
    out.count = layout.count;
    out.rows = layout.rows;
    out.cols = layout.cols;
    const std::uint8_t* pixels = data + layout.header_bytes;
    out.images.resize(layout.total_bytes - layout.header_bytes);
    for (std::size_t i = 0; i < out.images.size(); ++i) out.images[i] = static_cast<float>(pixels[i]) / 255.0f;
    return out;
}

// Parses a whole labels file held in memory; returns the raw label bytes.
inline std::vector<std::uint8_t> parse_idx_labels(const std::uint8_t* data, std::size_t n,
                                                  const std::string& source = "<memory>") {
    const idx_layout layout = detail::check_whole(data, n, idx_kind::labels, source);
    return std::vector<std::uint8_t>(data + layout.header_bytes, data + layout.total_bytes);
}

// Parses an images file and its labels file, both in memory, and checks that they match.
inline dataset parse_idx_pair(const std::uint8_t* img, std::size_t img_n, const std::uint8_t* lab, std::size_t lab_n,
                              const std::string& img_source = "<images>",
                              const std::string& lab_source = "<labels>") {
    // Each file is checked on its own first (a damaged file is the more basic problem), and the
    // counts are compared before the float conversion, the only costly step.
    std::vector<std::uint8_t> labels = parse_idx_labels(lab, lab_n, lab_source);
    const idx_layout img_layout = detail::check_whole(img, img_n, idx_kind::images, img_source);
    if (img_layout.count != labels.size())
        throw idx_error("idx: image/label count mismatch: '" + img_source + "' has " +
                        std::to_string(img_layout.count) + " images but '" + lab_source + "' has " +
                        std::to_string(labels.size()) + " labels");
    dataset out = parse_idx_images(img, img_n, img_source);
    out.labels = std::move(labels);
    return out;
}

namespace detail {

// RAII for a gzFile so every throw below closes it.
struct gz_closer {
    gzFile f;
    ~gz_closer() {
        if (f) gzclose(f);
    }
};

inline std::string gz_message(gzFile f) {
    int errnum = Z_OK;
    const char* msg = gzerror(f, &errnum);
    if (errnum == Z_ERRNO) return std::strerror(errno);
    return msg ? msg : "unknown zlib error";
}

// Reads up to `limit` bytes of the decompressed (or raw) file, appending to `out`, in bounded
// chunks so memory grows only with data actually present. Returns false at end of file.
inline bool gz_read_upto(gzFile f, std::vector<std::uint8_t>& out, std::size_t limit, const std::string& path) {
    constexpr std::size_t chunk = std::size_t{1} << 20;
    while (out.size() < limit) {
        const std::size_t want = std::min(chunk, limit - out.size());
        const std::size_t old = out.size();
        out.resize(old + want);
        const int got = gzread(f, out.data() + old, static_cast<unsigned>(want));
        if (got < 0) {
            out.resize(old);
            throw idx_error(prefix(path) + "read error: " + gz_message(f));
        }
        out.resize(old + static_cast<std::size_t>(got));
        if (got == 0) {
            // gzread reports a cut-off gzip stream as end of file plus an error state; surface it,
            // since a damaged archive should not pass for a short file.
            int errnum = Z_OK;
            gzerror(f, &errnum);
            if (errnum != Z_OK)
                throw idx_error(prefix(path) + "damaged gzip data after " + std::to_string(out.size()) +
                                " bytes: " + gz_message(f));
            return false;
        }
    }
    return true;
}

// Reads an IDX file (gzip or raw) whole, bounded by what its header promises plus one byte, so
// check_whole can tell truncated from trailing data without ever trusting the header for memory.
inline std::vector<std::uint8_t> read_idx_file(const std::string& path, idx_kind kind) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (status.type() == std::filesystem::file_type::not_found)
        throw idx_error("idx: cannot open '" + path + "': no such file. Install the data: " + idx_install_hint);
    if (status.type() == std::filesystem::file_type::directory)
        throw idx_error(prefix(path) + "is a directory, expected an IDX file");
    errno = 0;
    gz_closer f{gzopen(path.c_str(), "rb")};
    if (!f.f) {
        const int err = errno;
        throw idx_error("idx: cannot open '" + path + "': " +
                        (err ? std::strerror(err) : "out of memory in zlib") +
                        (err == ENOENT ? std::string(". Install the data: ") + idx_install_hint : std::string()));
    }
    std::vector<std::uint8_t> bytes;
    gz_read_upto(f.f, bytes, header_size(kind), path);
    // Throws for a short or bad header; otherwise says how many bytes a correct file has.
    const idx_layout layout = parse_idx_header(bytes.data(), bytes.size(), kind, path);
    // A header can lie; reserving only a bounded amount keeps a 16-byte file from costing gigabytes.
    bytes.reserve(std::min<std::size_t>(layout.total_bytes + 1, std::size_t{64} << 20));
    if (gz_read_upto(f.f, bytes, layout.total_bytes + 1, path)) {
        // More data than the header promises. Count it without keeping it, so the message gives
        // the real size (as the in-memory parser would) while memory stays bounded.
        std::uint64_t total = bytes.size();
        std::vector<std::uint8_t> scratch;
        while (gz_read_upto(f.f, scratch, std::size_t{1} << 20, path)) {
            total += scratch.size();
            scratch.clear();
        }
        throw_trailing(layout, total + scratch.size(), path);
    }
    // Report a short file now, so load_idx finds problems in the same order as parse_idx_pair.
    check_whole(bytes.data(), bytes.size(), kind, path);
    return bytes;
}

}  // namespace detail

// Loads an images file and its labels file (each gzip or raw) from disk.
inline dataset load_idx(const std::string& images_path, const std::string& labels_path) {
    const std::vector<std::uint8_t> lab = detail::read_idx_file(labels_path, idx_kind::labels);
    const std::vector<std::uint8_t> img = detail::read_idx_file(images_path, idx_kind::images);
    dataset d = parse_idx_pair(img.data(), img.size(), lab.data(), lab.size(), images_path, labels_path);
    d.images_source = images_path;
    d.labels_source = labels_path;
    return d;
}

struct split_files {
    std::string images, labels;
};

// Finds `<dir>/<split>-images-idx3-ubyte[.gz]` and `<dir>/<split>-labels-idx1-ubyte[.gz]`, also
// accepting the `<split>-images.idx3-ubyte` spelling some mirrors use. Raw is preferred over .gz
// when both exist (it loads faster; the contents are the same).
inline split_files locate_split(const std::string& dir, const std::string& split) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto status = fs::status(dir, ec);
    if (status.type() == fs::file_type::not_found)
        throw idx_error("idx: data directory '" + dir + "' does not exist. Install the data: " + idx_install_hint);
    if (status.type() != fs::file_type::directory)
        throw idx_error("idx: data directory '" + dir + "' is not a directory");
    // Listing it proves we may read it; otherwise every candidate would look merely "missing".
    fs::directory_iterator probe(dir, ec);
    if (ec) throw idx_error("idx: cannot read data directory '" + dir + "': " + ec.message());

    const auto find = [&](const char* kind, const char* idx_n) {
        const std::string stems[] = {split + "-" + kind + "-" + idx_n + "-ubyte",
                                     split + "-" + kind + "." + idx_n + "-ubyte"};
        std::string tried;
        for (const std::string& stem : stems) {
            for (const char* ext : {"", ".gz"}) {
                const fs::path p = fs::path(dir) / (stem + ext);
                std::error_code e;
                if (fs::is_regular_file(p, e)) return p.string();
                tried += (tried.empty() ? "" : ", ") + p.filename().string();
            }
        }
        throw idx_error("idx: no " + std::string(kind) + " file for split '" + split + "' in '" + dir +
                        "' (tried " + tried + "). Install the data: " + idx_install_hint);
    };
    split_files files;
    files.images = find("images", "idx3");
    files.labels = find("labels", "idx1");
    return files;
}

// Loads one split ("train" or "t10k") from a directory of IDX files.
inline dataset load_split(const std::string& dir, const std::string& split) {
    const split_files files = locate_split(dir, split);
    return load_idx(files.images, files.labels);
}

}  // namespace sparsereg_examples
