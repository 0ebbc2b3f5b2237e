// Event-driven integer matmul on the CPU: an XLA FFI handler built on first use by native.py
// (g++ -O3 -march=native). Same contract as reference.py:
//   out[t, n] = sum_k events[t, k] * fanout[k, n]   (int32, wrapping like an int32 dot),
// but only the non-zero events cost work: for each step t the kernel walks events[t, :] and
// adds the fan-out row of every source that fired (times its payload unless it is 1) into the
// output row. At 10% activity that is a tenth of a dense GEMM's adds, and the fan-out rows
// are read in the order a neuromorphic core reads its synapse memory.
//
// Arithmetic is done in uint32 (wrap-around is defined there), so the result equals the int32
// dot bit for bit even when a sum overflows. Rows are split over XLA's intra-op threads in
// blocks claimed from an atomic counter; the calling thread claims blocks too and only waits
// for blocks already being worked on, so the call cannot wait on a task that never starts.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "xla/ffi/api/ffi.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace ffi = xla::ffi;

namespace {

inline uint32_t u32(int8_t w) { return static_cast<uint32_t>(static_cast<int32_t>(w)); }
inline uint32_t u32(int32_t w) { return static_cast<uint32_t>(w); }

// o[j] += sum over the events in `ev` (sources `src`, payloads `val`) of val * fan[src, j], for
// columns j in [c0, c1), four events per pass over o (a quarter of the output loads and stores).
template <typename W>
void add_events(uint32_t* __restrict o, const W* __restrict fan, const int64_t* src, const uint32_t* val,
                int64_t m, int64_t n, int64_t c0, int64_t c1) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) {
    const W* __restrict a = fan + src[i] * n;
    const W* __restrict b = fan + src[i + 1] * n;
    const W* __restrict c = fan + src[i + 2] * n;
    const W* __restrict d = fan + src[i + 3] * n;
    if ((val[i] & val[i + 1] & val[i + 2] & val[i + 3]) == 1 && (val[i] | val[i + 1] | val[i + 2] | val[i + 3]) == 1) {
      for (int64_t j = c0; j < c1; ++j) o[j] += u32(a[j]) + u32(b[j]) + u32(c[j]) + u32(d[j]);
    } else {
      const uint32_t va = val[i], vb = val[i + 1], vc = val[i + 2], vd = val[i + 3];
      for (int64_t j = c0; j < c1; ++j) o[j] += va * u32(a[j]) + vb * u32(b[j]) + vc * u32(c[j]) + vd * u32(d[j]);
    }
  }
  for (; i < m; ++i) {
    const W* __restrict a = fan + src[i] * n;
    const uint32_t v = val[i];
    for (int64_t j = c0; j < c1; ++j) o[j] += v * u32(a[j]);
  }
}

constexpr int64_t kColumns = 2048;

// Bit i set where e[i] != 0, for 64 int32 events.
inline uint64_t nonzero64(const int32_t* e) {
#ifdef __AVX512F__
  uint64_t m = 0;
  for (int i = 0; i < 4; ++i) {
    const __m512i v = _mm512_loadu_si512(e + 16 * i);
    m |= static_cast<uint64_t>(_mm512_test_epi32_mask(v, v)) << (16 * i);
  }
  return m;
#else
  uint64_t m = 0;
  for (int i = 0; i < 64; ++i) m |= static_cast<uint64_t>(e[i] != 0) << i;
  return m;
#endif
}

#if defined(__AVX512F__) && defined(__AVX512BW__)
#define NJ_SMALL_ROWS 1
// Rows of at most 64 outputs (the interpreter's event counters: a few per core) stay in four
// registers while the step's events are added: adding into memory would stall on
// store-to-load forwarding, every event touching the same few outputs.
inline __m512i load16(const int8_t* w, __mmask16 m) {
  return _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, w));
}
inline __m512i load16(const int32_t* w, __mmask16 m) { return _mm512_maskz_loadu_epi32(m, w); }

template <typename W>
void small_row(const int32_t* e, const W* fan, int32_t* o, int64_t k, int64_t n) {
  __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                    _mm512_setzero_si512()};
  __mmask16 lane[4];
  for (int i = 0; i < 4; ++i) {
    const int64_t left = std::max<int64_t>(0, std::min<int64_t>(16, n - 16 * i));
    lane[i] = static_cast<__mmask16>((1u << left) - 1u);
  }
  const int vecs = static_cast<int>((n + 15) / 16);
  auto add = [&](int64_t s) {
    const W* w = fan + s * n;
    const __m512i v = _mm512_set1_epi32(e[s]);
    for (int i = 0; i < vecs; ++i) {
      __m512i x = load16(w + 16 * i, lane[i]);
      if (e[s] != 1) x = _mm512_mullo_epi32(x, v);
      acc[i] = _mm512_add_epi32(acc[i], x);
    }
  };
  int64_t s0 = 0;
  for (; s0 + 64 <= k; s0 += 64)
    for (uint64_t mask = nonzero64(e + s0); mask; mask &= mask - 1) add(s0 + __builtin_ctzll(mask));
  for (int64_t s = s0; s < k; ++s)
    if (e[s] != 0) add(s);
  for (int i = 0; i < vecs; ++i) _mm512_mask_storeu_epi32(o + 16 * i, lane[i], acc[i]);
}
#else
#define NJ_SMALL_ROWS 0
#endif

template <typename W>
void rows(const int32_t* ev, const W* fan, int32_t* out, int64_t k, int64_t n, int64_t t0, int64_t t1) {
#if NJ_SMALL_ROWS
  if (n <= 64) {
    for (int64_t t = t0; t < t1; ++t) small_row(ev + t * k, fan, out + t * n, k, n);
    return;
  }
#endif
  std::vector<int64_t> src(k);
  std::vector<uint32_t> val(k);
  for (int64_t t = t0; t < t1; ++t) {
    uint32_t* o = reinterpret_cast<uint32_t*>(out + t * n);
    std::fill(o, o + n, 0u);
    const int32_t* e = ev + t * k;
    // List the step's events, finding them 64 sources at a time (a vector compare into a bit
    // mask): no per-source branch to mispredict at low activity.
    int64_t m = 0, s0 = 0;
    for (; s0 + 64 <= k; s0 += 64)
      for (uint64_t mask = nonzero64(e + s0); mask; mask &= mask - 1) src[m++] = s0 + __builtin_ctzll(mask);
    for (int64_t s = s0; s < k; ++s)
      if (e[s] != 0) src[m++] = s;
    for (int64_t i = 0; i < m; ++i) val[i] = static_cast<uint32_t>(e[src[i]]);
    for (int64_t c0 = 0; c0 < n; c0 += kColumns)  // column blocks keep the output block in L1
      add_events(o, fan, src.data(), val.data(), m, n, c0, std::min(n, c0 + kColumns));
  }
}

constexpr int64_t kSerialWork = int64_t{1} << 24;

struct Shared {
  std::mutex mu;
  std::condition_variable cv;
  int64_t next = 0;  // the next unclaimed block
  int64_t busy = 0;  // blocks claimed and not finished
};

// Runs f(t0, t1) over row blocks [0, t_all) on `threads` threads (the caller one of them).
template <typename F>
void parallel_rows(ffi::ThreadPool& pool, int64_t threads, int64_t t_all, F f) {
  const int64_t block = std::max<int64_t>(1, std::min<int64_t>(16, t_all / (4 * threads)));
  const int64_t blocks = (t_all + block - 1) / block;
  auto sh = std::make_shared<Shared>();
  auto work = [=]() {
    std::unique_lock<std::mutex> lock(sh->mu);
    while (sh->next < blocks) {
      const int64_t b = sh->next++;
      ++sh->busy;
      lock.unlock();
      f(b * block, std::min(t_all, (b + 1) * block));
      lock.lock();
      if (--sh->busy == 0) sh->cv.notify_all();
    }
  };
  for (int64_t h = 0; h < std::min(threads, blocks) - 1; ++h) pool.Schedule(decltype(work)(work));
  work();
  std::unique_lock<std::mutex> lock(sh->mu);
  sh->cv.wait(lock, [&] { return sh->busy == 0; });
}

// Threads only pay off for big calls (waking one costs tens of microseconds).
int64_t threads_for(ffi::ThreadPool& pool, int64_t work) {
  return work < kSerialWork ? 1 : std::max<int64_t>(1, pool.num_threads());
}

template <ffi::DataType WT>
ffi::Error EventMatmul(ffi::ThreadPool pool, ffi::Buffer<ffi::S32> events, ffi::Buffer<WT> fanout,
                       ffi::Result<ffi::Buffer<ffi::S32>> out) {
  using W = ffi::NativeType<WT>;
  const auto ed = events.dimensions();
  const auto fd = fanout.dimensions();
  if (ed.size() != 2 || fd.size() != 2 || ed[1] != fd[0])
    return ffi::Error::InvalidArgument("neurojax event_matmul (native): expects events [T, K] and fanout [K, N]");
  const int64_t t_all = ed[0], k = ed[1], n = fd[1];
  if (t_all == 0 || n == 0) return ffi::Error::Success();
  const int32_t* ev = events.typed_data();
  const W* fan = fanout.typed_data();
  int32_t* op = out->typed_data();
  // the dense size T * K * N bounds the work; kSerialWork is about a tenth of a millisecond of it
  parallel_rows(pool, threads_for(pool, t_all * k * n), t_all,
                [=](int64_t t0, int64_t t1) { rows(ev, fan, op, k, n, t0, t1); });
  return ffi::Error::Success();
}

// Sparse fan-outs (CSR: the targets of source s are indices[indptr[s]:indptr[s + 1]], with
// values): out[t, indices[p]] += events[t, s] * values[p]. The interpreter's event counters.
// Entries from indptr[K] on are padding and never read.
ffi::Error EventMatmulCsr(ffi::ThreadPool pool, ffi::Buffer<ffi::S32> events, ffi::Buffer<ffi::S32> indptr,
                          ffi::Buffer<ffi::S32> indices, ffi::Buffer<ffi::S32> values,
                          ffi::Result<ffi::Buffer<ffi::S32>> out) {
  const auto ed = events.dimensions();
  const auto od = out->dimensions();
  if (ed.size() != 2 || od.size() != 2 || od[0] != ed[0])
    return ffi::Error::InvalidArgument("neurojax event_matmul_csr (native): expects events [T, K] and out [T, N]");
  const int64_t t_all = ed[0], k = ed[1], n = od[1], nnz = indices.element_count();
  if (indptr.element_count() != k + 1 || values.element_count() != nnz)
    return ffi::Error::InvalidArgument("neurojax event_matmul_csr (native): expects events [T, K], indptr [K + 1], "
                                       "indices and values [P]");
  if (t_all == 0 || n == 0) return ffi::Error::Success();
  const int32_t* ev = events.typed_data();
  const int32_t* ptr = indptr.typed_data();  // validated below: a bad index must not write out of bounds
  const int32_t* idx = indices.typed_data();
  const uint32_t* val = reinterpret_cast<const uint32_t*>(values.typed_data());
  uint32_t* op = reinterpret_cast<uint32_t*>(out->typed_data());
  for (int64_t s = 0; s <= k; ++s)
    if (ptr[s] < 0 || ptr[s] > nnz || (s > 0 && ptr[s] < ptr[s - 1]))
      return ffi::Error::InvalidArgument("neurojax event_matmul_csr (native): indptr is not a valid CSR row index");
  for (int64_t p = 0; p < ptr[k]; ++p)
    if (idx[p] < 0 || idx[p] >= n)
      return ffi::Error::InvalidArgument("neurojax event_matmul_csr (native): an index is out of [0, N)");
  parallel_rows(pool, threads_for(pool, t_all * (k + nnz)), t_all, [=](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      uint32_t* o = op + t * n;
      std::fill(o, o + n, 0u);
      const int32_t* e = ev + t * k;
      auto add = [&](int64_t s) {
        const uint32_t v = static_cast<uint32_t>(e[s]);
        for (int32_t p = ptr[s]; p < ptr[s + 1]; ++p) o[idx[p]] += v * val[p];
      };
      int64_t s0 = 0;
      for (; s0 + 64 <= k; s0 += 64)
        for (uint64_t mask = nonzero64(e + s0); mask; mask &= mask - 1) add(s0 + __builtin_ctzll(mask));
      for (int64_t s = s0; s < k; ++s)
        if (e[s] != 0) add(s);
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(NeurojaxEventMatmulS8, EventMatmul<ffi::S8>,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S8>>()
                                  .Ret<ffi::Buffer<ffi::S32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(NeurojaxEventMatmulS32, EventMatmul<ffi::S32>,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::S32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(NeurojaxEventMatmulCsr, EventMatmulCsr,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::S32>>());
