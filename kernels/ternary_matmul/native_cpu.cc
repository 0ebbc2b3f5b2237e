// Packed ternary x int8 -> int32 on the CPU: an XLA FFI handler built on first use by
// native.py (g++ -O3 -march=native). Same contract as reference.py:
//   out[m, n] = sum_k x[m, k] * w[n, k],   w in {-1, 0, +1} packed as in pack.py,
// with the inputs handed over as x4 [M, K4, 4] int8 (x4[m, i, j] = x[m, i + j*K4]), so one
// byte row i of the packed data and one 32-bit word of x4 hold the same four inputs.
//
// AVX-512 VBMI + VNNI path: a byte (4 weights of one column) is widened to a dword, its
// 2-bit codes are split into the dword's 4 bytes (vpmultishiftqb), mapped to w + 1 in
// {0, 1, 2} (vpermb) and dotted with the row's 4 inputs (vpdpbusd: unsigned x signed, exact
// in int32). sum x * (w + 1) - sum x = sum x * w. The portable path (any other CPU, or
// -DNEUROJAX_PORTABLE) is plain loops. Both are exact; the tests check each against the
// reference.
//
// Decode (M <= 4 rows) reads the weights as one sequential stream, split by byte rows over
// the threads, with software prefetch: on the 2-core EPYC this was written on, that is ~45 G
// weights/s per core from DRAM against ~26 for column tiles. Prefill (M > 4) keeps 6 rows x
// 64 columns of accumulators in registers and splits columns over the threads.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "xla/ffi/api/ffi.h"

#if !defined(NEUROJAX_PORTABLE) && defined(__AVX512F__) && defined(__AVX512BW__) && \
    defined(__AVX512VBMI__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#define NJ_VNNI 1
#else
#define NJ_VNNI 0
#endif

namespace ffi = xla::ffi;

namespace {


// Sign-extended 2-bit code of plane j (bits 2j..2j+1) of a packed byte.
inline int32_t code(uint32_t b, int j) { return (int32_t)(int8_t)(uint8_t)(b << (6 - 2 * j)) >> 6; }

// Exact sum_k x * w over byte rows [r0, r1) and columns [c0, c1), added to acc[m * ld + c - c0].
void add_portable(const int8_t* x4, const uint8_t* data, int32_t* acc, int64_t ld, int64_t m_rows, int64_t k4,
                  int64_t n, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
  for (int64_t m = 0; m < m_rows; ++m) {
    int32_t* a = acc + m * ld - c0;
    for (int64_t r = r0; r < r1; ++r) {
      const int8_t* xr = x4 + (m * k4 + r) * 4;
      const int32_t x0 = xr[0], x1 = xr[1], x2 = xr[2], x3 = xr[3];
      const uint8_t* row = data + r * n;
      for (int64_t c = c0; c < c1; ++c) {
        const uint32_t b = row[c];
        a[c] += x0 * code(b, 0) + x1 * code(b, 1) + x2 * code(b, 2) + x3 * code(b, 3);
      }
    }
  }
}

#if NJ_VNNI
// Columns [0, vec_end(n)) are accumulated as sum x * (w + 1) and corrected by - sum x at the end.
inline int64_t vec_end(int64_t n) { return n / 16 * 16; }

struct Decoder {
  __m512i shifts = _mm512_set1_epi64(0x2624222006040200LL);  // bytes 0..3 <- bits 0,2,4,6 of each dword
  __m512i lut;  // w + 1 for code = byte & 3: 0 -> 1, 1 -> 2, 3 -> 0 (2 is never written)
  Decoder() {
    alignas(64) int8_t bytes[64];
    for (int i = 0; i < 64; ++i) bytes[i] = (int8_t)(((i & 3) + 1) & 3);
    lut = _mm512_load_si512(bytes);
  }
  // 16 columns' weights + 1, four per dword, from 16 packed bytes.
  inline __m512i operator()(const uint8_t* p) const {
    const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm512_permutexvar_epi8(_mm512_multishift_epi64_epi8(shifts, b), lut);
  }
};

const Decoder& decoder() {
  static const Decoder dec;
  return dec;
}

inline __m512i broadcast_x(const int8_t* x4, int64_t k4, int64_t m, int64_t r) {
  int32_t word;
  std::memcpy(&word, x4 + (m * k4 + r) * 4, 4);
  return _mm512_set1_epi32(word);
}

// Few rows (decode): read byte rows [r0, r1) whole and in order (one sequential stream of
// the weights, which the prefetchers keep up with), accumulators for every column in acc.
#ifndef NJ_PREFETCH
#define NJ_PREFETCH 2048
#endif
constexpr int64_t kPrefetch = NJ_PREFETCH;  // bytes ahead of the stream: one core's demand misses alone cannot fill DRAM bandwidth
template <int MR>
void stream_rows(const Decoder& dec, const int8_t* x4, const uint8_t* data, int32_t* acc, int64_t k4, int64_t n,
                 int64_t r0, int64_t r1) {
  const int64_t ve = vec_end(n);
  for (int64_t r = r0; r < r1; ++r) {
    __m512i xv[MR];
    for (int m = 0; m < MR; ++m) xv[m] = broadcast_x(x4, k4, m, r);
    const uint8_t* row = data + r * n;
    for (int64_t c = 0; c < ve; c += 16) {
      if ((c & 63) == 0) _mm_prefetch(reinterpret_cast<const char*>(row + c + kPrefetch), _MM_HINT_T0);
      const __m512i u = dec(row + c);
      for (int m = 0; m < MR; ++m) {
        int32_t* a = acc + m * n + c;
        _mm512_storeu_si512(a, _mm512_dpbusd_epi32(_mm512_loadu_si512(a), u, xv[m]));
      }
    }
  }
  if (ve < n) add_portable(x4, data, acc + ve, n, MR, k4, n, r0, r1, ve, n);
}

void add_rows(const int8_t* x4, const uint8_t* data, int32_t* acc, int64_t m_rows, int64_t k4, int64_t n,
              int64_t r0, int64_t r1) {
  const Decoder& dec = decoder();
  switch (m_rows) {
    case 1: return stream_rows<1>(dec, x4, data, acc, k4, n, r0, r1);
    case 2: return stream_rows<2>(dec, x4, data, acc, k4, n, r0, r1);
    case 3: return stream_rows<3>(dec, x4, data, acc, k4, n, r0, r1);
    default: return stream_rows<4>(dec, x4, data, acc, k4, n, r0, r1);
  }
}

// Many rows (prefill): MB rows x 64 columns of accumulators in registers; the 64-column
// slice of the weights stays in cache across the row blocks.
constexpr int kRowBlock = 6;
template <int MB>
void block_gemm(const Decoder& dec, const int8_t* x4, const uint8_t* data, int32_t* out, int64_t m0,
                int64_t k4, int64_t n, int64_t c, const int32_t* xsum) {
  __m512i acc[MB][4];
  for (int m = 0; m < MB; ++m)
    for (int q = 0; q < 4; ++q) acc[m][q] = _mm512_setzero_si512();
  for (int64_t r = 0; r < k4; ++r) {
    const uint8_t* p = data + r * n + c;
    const __m512i u0 = dec(p), u1 = dec(p + 16), u2 = dec(p + 32), u3 = dec(p + 48);
    for (int m = 0; m < MB; ++m) {
      const __m512i xv = broadcast_x(x4, k4, m0 + m, r);
      acc[m][0] = _mm512_dpbusd_epi32(acc[m][0], u0, xv);
      acc[m][1] = _mm512_dpbusd_epi32(acc[m][1], u1, xv);
      acc[m][2] = _mm512_dpbusd_epi32(acc[m][2], u2, xv);
      acc[m][3] = _mm512_dpbusd_epi32(acc[m][3], u3, xv);
    }
  }
  for (int m = 0; m < MB; ++m) {
    const __m512i s = _mm512_set1_epi32(xsum[m0 + m]);
    for (int q = 0; q < 4; ++q)
      _mm512_storeu_si512(out + (m0 + m) * n + c + 16 * q, _mm512_sub_epi32(acc[m][q], s));
  }
}

// Output columns [c0, c1) of every row, complete (xsum subtracted); c0 a multiple of 64.
void gemm_columns(const int8_t* x4, const uint8_t* data, int32_t* out, int64_t m_rows, int64_t k4, int64_t n,
                  int64_t c0, int64_t c1, const int32_t* xsum) {
  const Decoder& dec = decoder();
  const int64_t full = c0 + (c1 - c0) / 64 * 64;
  for (int64_t c = c0; c < full; c += 64) {
    int64_t m = 0;
    for (; m + kRowBlock <= m_rows; m += kRowBlock) block_gemm<kRowBlock>(dec, x4, data, out, m, k4, n, c, xsum);
    for (; m < m_rows; ++m) block_gemm<1>(dec, x4, data, out, m, k4, n, c, xsum);
  }
  if (full < c1) {
    for (int64_t m = 0; m < m_rows; ++m) std::fill(out + m * n + full, out + m * n + c1, 0);
    add_portable(x4, data, out + full, n, m_rows, k4, n, 0, k4, full, c1);
  }
}
#else
inline int64_t vec_end(int64_t) { return 0; }

void add_rows(const int8_t* x4, const uint8_t* data, int32_t* acc, int64_t m_rows, int64_t k4, int64_t n,
              int64_t r0, int64_t r1) {
  add_portable(x4, data, acc, n, m_rows, k4, n, r0, r1, 0, n);
}

void gemm_columns(const int8_t* x4, const uint8_t* data, int32_t* out, int64_t m_rows, int64_t k4, int64_t n,
                  int64_t c0, int64_t c1, const int32_t*) {
  for (int64_t m = 0; m < m_rows; ++m) std::fill(out + m * n + c0, out + m * n + c1, 0);
  add_portable(x4, data, out + c0, n, m_rows, k4, n, 0, k4, c0, c1);
}
#endif

constexpr int64_t kStreamRows = 4;  // at most this many x rows stream the weights (decode)

// Helper threads of the kernel, started on first use and kept for the process. XLA's own
// pool wakes a sleeping worker too late for a ~50 us decode matmul (measured: the second
// core took under half the units and the call was no faster), so the helpers spin for a
// while after each job before they sleep. One caller at a time uses them; a concurrent
// caller (XLA running independent ops in parallel) does its units alone.
class Helpers {
 public:
  static Helpers& get(int64_t threads) {
    static Helpers* helpers = new Helpers(threads - 1);  // never destroyed: no join at exit
    return *helpers;
  }

  // fn(u) for every u in [0, units), on the caller and the helpers.
  void run(int64_t units, std::function<void(int64_t)> fn) {
    std::unique_lock<std::mutex> mine(submit_, std::try_to_lock);
    if (!mine.owns_lock() || workers_ == 0 || units == 1) {
      for (int64_t u = 0; u < units; ++u) fn(u);
      return;
    }
    // Each job is its own object: a helper that wakes after its job ended finds no unit
    // left in it, and never touches a later job's counters.
    auto job = std::make_shared<Job>(units, std::move(fn));
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = job;
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    job->work();
    while (job->done.load(std::memory_order_acquire) != units) pause();
  }

 private:
  struct Job {
    Job(int64_t units, std::function<void(int64_t)> fn) : units(units), fn(std::move(fn)) {}
    void work() {
      for (int64_t u; (u = next.fetch_add(1)) < units;) {
        fn(u);
        done.fetch_add(1, std::memory_order_release);
      }
    }
    const int64_t units;
    const std::function<void(int64_t)> fn;
    std::atomic<int64_t> next{0}, done{0};
  };

  explicit Helpers(int64_t workers) : workers_(std::max<int64_t>(0, workers)) {
    for (int64_t i = 0; i < workers_; ++i) std::thread([this] { loop(); }).detach();
  }

  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  void loop() {
    uint64_t seen = 0;
    for (;;) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(kSpinMicros);
      while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < until)
        for (int i = 0; i < 64; ++i) pause();
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_.load() != seen; });
        seen = generation_.load();
        job = job_;
      }
      job->work();
    }
  }

  static constexpr int64_t kSpinMicros = 200;  // decode calls follow each other within this
  const int64_t workers_;
  std::mutex submit_, mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::shared_ptr<Job> job_;
};

ffi::Error TernaryMatmul(ffi::ThreadPool pool, ffi::Buffer<ffi::S8> x4, ffi::Buffer<ffi::U8> data,
                         ffi::Result<ffi::Buffer<ffi::S32>> out) {
  const auto xd = x4.dimensions();
  const auto dd = data.dimensions();
  if (xd.size() != 3 || xd[2] != 4 || dd.size() != 2 || xd[1] != dd[0])
    return ffi::Error::InvalidArgument("neurojax ternary_matmul (native): expects x4 [M, K4, 4] and data [K4, N]");
  const int64_t m_rows = xd[0], k4 = xd[1], n = dd[1];
  if (m_rows == 0 || n == 0) return ffi::Error::Success();
  const int8_t* xp = x4.typed_data();
  const uint8_t* dp = data.typed_data();
  int32_t* op = out->typed_data();
  std::vector<int32_t> xsum(m_rows, 0);
  for (int64_t m = 0; m < m_rows; ++m)
    for (int64_t i = 0; i < k4 * 4; ++i) xsum[m] += xp[m * k4 * 4 + i];
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());

  if (m_rows > kStreamRows) {
    // Prefill: units are column ranges (multiples of 64, about two per thread, at most 2048).
    const int64_t slices = std::max<int64_t>(1, std::min<int64_t>(threads * 2, (n + 63) / 64));
    const int64_t width = std::min<int64_t>(2048, ((n + slices - 1) / slices + 63) / 64 * 64);
    const int32_t* xs = xsum.data();
    Helpers::get(threads).run((n + width - 1) / width, [=](int64_t u) {
      gemm_columns(xp, dp, op, m_rows, k4, n, u * width, std::min(n, (u + 1) * width), xs);
    });
    return ffi::Error::Success();
  }
  // Decode: units are byte-row ranges, each streamed whole into its own accumulators (the
  // first unit's are the output), summed at the end.
  const int64_t units = std::max<int64_t>(1, std::min<int64_t>(threads, k4 / 16));
  const int64_t size = m_rows * n;
  std::vector<int32_t> partial((units - 1) * size, 0);
  std::fill(op, op + size, 0);
  int32_t* pp = partial.data();
  Helpers::get(threads).run(units, [=](int64_t u) {
    add_rows(xp, dp, u == 0 ? op : pp + (u - 1) * size, m_rows, k4, n, k4 * u / units, k4 * (u + 1) / units);
  });
  const int64_t ve = vec_end(n);
  for (int64_t m = 0; m < m_rows; ++m) {
    int32_t* o = op + m * n;
    for (int64_t u = 1; u < units; ++u) {
      const int32_t* p = pp + (u - 1) * size + m * n;
      for (int64_t c = 0; c < n; ++c) o[c] += p[c];
    }
    for (int64_t c = 0; c < ve; ++c) o[c] -= xsum[m];
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(NeurojaxTernaryMatmul, TernaryMatmul,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::S8>>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Ret<ffi::Buffer<ffi::S32>>());

// Which path this build compiled: 1 = AVX-512 VBMI + VNNI, 0 = portable loops.
extern "C" int neurojax_ternary_matmul_path() { return NJ_VNNI; }
