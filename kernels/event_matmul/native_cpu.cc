// Event-driven integer matmul on the CPU: an XLA FFI handler built on first use by native.py
// (g++ -O3 -march=native). Same contract as reference.py:
//   out[t, n] = sum_k events[t, k] * fanout[k, n]   (int32, wrapping like an int32 dot),
// but only the non-zero events cost work: for each step t the kernel walks events[t, :] and
// adds the fan-out row of every source that fired (times its payload unless it is 1) into the
// output row. At 10% activity that is a tenth of a dense GEMM's adds, and the fan-out rows
// are read in the order a neuromorphic core reads its synapse memory.
//
// Integer arithmetic is done in uint32 (wrap-around is defined there), so the result equals the
// int32 dot bit for bit even when a sum overflows. Float32 events and fan-outs (a spiking
// network's binary input projection) accumulate in float32 in event order, four events a pass. Rows are split over XLA's intra-op threads in
// blocks claimed from an atomic counter; the calling thread claims blocks too and only waits
// for blocks already being worked on, so the call cannot wait on a task that never starts.
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <type_traits>
#include <vector>

#include "xla/ffi/api/ffi.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace ffi = xla::ffi;

namespace {

// Accumulator types: integers add in uint32 (defined wrap-around), floats in float.
inline uint32_t acc(int8_t w) { return static_cast<uint32_t>(static_cast<int32_t>(w)); }
inline uint32_t acc(int32_t w) { return static_cast<uint32_t>(w); }
inline float acc(float w) { return w; }

// o[j] += sum over the events in `ev` (sources `src`, payloads `val`) of val * fan[src, j], for
// columns j in [c0, c1), four events per pass over o (a quarter of the output loads and stores).
template <typename O, typename W>
void add_events(O* __restrict o, const W* __restrict fan, const int64_t* src, const O* val, int64_t m, int64_t n,
                int64_t c0, int64_t c1) {
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) {
    const W* __restrict a = fan + src[i] * n;
    const W* __restrict b = fan + src[i + 1] * n;
    const W* __restrict c = fan + src[i + 2] * n;
    const W* __restrict d = fan + src[i + 3] * n;
    const O va = val[i], vb = val[i + 1], vc = val[i + 2], vd = val[i + 3];
    if (va == O(1) && vb == O(1) && vc == O(1) && vd == O(1)) {  // binary spikes: adds only
      for (int64_t j = c0; j < c1; ++j) o[j] += acc(a[j]) + acc(b[j]) + acc(c[j]) + acc(d[j]);
    } else {
      for (int64_t j = c0; j < c1; ++j) o[j] += va * acc(a[j]) + vb * acc(b[j]) + vc * acc(c[j]) + vd * acc(d[j]);
    }
  }
  for (; i < m; ++i) {
    const W* __restrict a = fan + src[i] * n;
    const O v = val[i];
    for (int64_t j = c0; j < c1; ++j) o[j] += v * acc(a[j]);
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

// The same for float events (NaN counts as an event; +0 and -0 do not).
inline uint64_t nonzero64(const float* e) {
#ifdef __AVX512F__
  uint64_t m = 0;
  for (int i = 0; i < 4; ++i) {
    const __m512 v = _mm512_loadu_ps(e + 16 * i);
    m |= static_cast<uint64_t>(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ)) << (16 * i);
  }
  return m;
#else
  uint64_t m = 0;
  for (int i = 0; i < 64; ++i) m |= static_cast<uint64_t>(e[i] != 0.0f) << i;
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

inline uint32_t payload(int32_t e) { return static_cast<uint32_t>(e); }
inline float payload(float e) { return e; }

template <typename E, typename W, typename O>
void rows(const E* ev, const W* fan, O* out, int64_t k, int64_t n, int64_t t0, int64_t t1) {
#if NJ_SMALL_ROWS
  if constexpr (std::is_same_v<E, int32_t>) {
    if (n <= 64) {
      for (int64_t t = t0; t < t1; ++t) small_row(ev + t * k, fan, reinterpret_cast<int32_t*>(out) + t * n, k, n);
      return;
    }
  }
#endif
  std::vector<int64_t> src(k);
  std::vector<O> val(k);
  for (int64_t t = t0; t < t1; ++t) {
    O* o = out + t * n;
    std::fill(o, o + n, O(0));
    const E* e = ev + t * k;
    // List the step's events, finding them 64 sources at a time (a vector compare into a bit
    // mask): no per-source branch to mispredict at low activity.
    int64_t m = 0, s0 = 0;
    for (; s0 + 64 <= k; s0 += 64)
      for (uint64_t mask = nonzero64(e + s0); mask; mask &= mask - 1) src[m++] = s0 + __builtin_ctzll(mask);
    for (int64_t s = s0; s < k; ++s)
      if (e[s] != E(0)) src[m++] = s;
    for (int64_t i = 0; i < m; ++i) val[i] = payload(e[src[i]]);
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

template <ffi::DataType ET, ffi::DataType WT>
ffi::Error EventMatmul(ffi::ThreadPool pool, ffi::Buffer<ET> events, ffi::Buffer<WT> fanout,
                       ffi::Result<ffi::Buffer<ET>> out) {
  using E = ffi::NativeType<ET>;
  using W = ffi::NativeType<WT>;
  using O = std::conditional_t<std::is_same_v<E, float>, float, uint32_t>;
  const auto ed = events.dimensions();
  const auto fd = fanout.dimensions();
  if (ed.size() != 2 || fd.size() != 2 || ed[1] != fd[0])
    return ffi::Error::InvalidArgument("neurojax event_matmul (native): expects events [T, K] and fanout [K, N]");
  const int64_t t_all = ed[0], k = ed[1], n = fd[1];
  if (t_all == 0 || n == 0) return ffi::Error::Success();
  const E* ev = events.typed_data();
  const W* fan = fanout.typed_data();
  O* op = reinterpret_cast<O*>(out->typed_data());
  // the dense size T * K * N bounds the work; kSerialWork is about a tenth of a millisecond of it
  parallel_rows(pool, threads_for(pool, t_all * k * n), t_all,
                [=](int64_t t0, int64_t t1) { rows(ev, fan, op, k, n, t0, t1); });
  return ffi::Error::Success();
}

// The transposed form, out = acc + events^T @ rows (a weight gradient accumulated over chunks:
// for each event (r, s), row r of `rows` [R, N] is added, times the payload, to output row s
// of [K, N]). Threads split the
// columns (so no two write one output); each walks the event rows in order.
template <ffi::DataType ET>
ffi::Error EventMatmulT(ffi::ThreadPool pool, ffi::Buffer<ET> events, ffi::Buffer<ET> rows_in,
                        ffi::Buffer<ET> acc_in, ffi::Result<ffi::Buffer<ET>> out) {
  using E = ffi::NativeType<ET>;
  using O = std::conditional_t<std::is_same_v<E, float>, float, uint32_t>;
  const auto ed = events.dimensions();
  const auto rd = rows_in.dimensions();
  if (ed.size() != 2 || rd.size() != 2 || ed[0] != rd[0])
    return ffi::Error::InvalidArgument("neurojax event_matmul_t (native): expects events [R, K] and rows [R, N]");
  const int64_t r_all = ed[0], k = ed[1], n = rd[1];
  if (acc_in.element_count() != k * n)
    return ffi::Error::InvalidArgument("neurojax event_matmul_t (native): the accumulator must be [K, N]");
  O* op = reinterpret_cast<O*>(out->typed_data());
  const O* ap = reinterpret_cast<const O*>(acc_in.typed_data());
  if (ap != op) std::copy(ap, ap + k * n, op);  // XLA aliases them where it can (the sum is in place)
  if (r_all == 0 || n == 0 || k == 0) return ffi::Error::Success();
  const E* ev = events.typed_data();
  const O* rp = reinterpret_cast<const O*>(rows_in.typed_data());
  // the events of every row, listed once: (source, payload) pairs in row order
  std::vector<int64_t> start(r_all + 1, 0), src;
  std::vector<O> val;
  src.reserve(r_all * 8);
  for (int64_t r = 0; r < r_all; ++r) {
    const E* e = ev + r * k;
    int64_t s0 = 0;
    for (; s0 + 64 <= k; s0 += 64)
      for (uint64_t mask = nonzero64(e + s0); mask; mask &= mask - 1) {
        const int64_t s = s0 + __builtin_ctzll(mask);
        src.push_back(s);
        val.push_back(payload(e[s]));
      }
    for (int64_t s = s0; s < k; ++s)
      if (e[s] != E(0)) {
        src.push_back(s);
        val.push_back(payload(e[s]));
      }
    start[r + 1] = static_cast<int64_t>(src.size());
  }
  const int64_t* sp = src.data();
  const O* vp = val.data();
  const int64_t* st = start.data();
  // columns per block (16..256, about four blocks): an output block of K x 256 stays in L2
  const int64_t width = std::min<int64_t>(256, std::max<int64_t>(16, (n / 4 + 15) / 16 * 16));
  const int64_t blocks = (n + width - 1) / width;
  const int64_t threads = threads_for(pool, static_cast<int64_t>(src.size()) * n * 16);
  parallel_rows(pool, threads, blocks, [=](int64_t b0, int64_t b1) {
    const int64_t c0 = b0 * width, c1 = std::min(n, b1 * width);
    for (int64_t r = 0; r < r_all; ++r) {
      const O* row = rp + r * n;
      for (int64_t i = st[r]; i < st[r + 1]; ++i) {
        O* o = op + sp[i] * n;
        const O v = vp[i];
        if (v == O(1)) {
          for (int64_t j = c0; j < c1; ++j) o[j] += row[j];
        } else {
          for (int64_t j = c0; j < c1; ++j) o[j] += v * row[j];
        }
      }
    }
  });
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

XLA_FFI_DEFINE_HANDLER_SYMBOL(NeurojaxEventMatmulS8, (EventMatmul<ffi::S32, ffi::S8>),
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S8>>()
                                  .Ret<ffi::Buffer<ffi::S32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(NeurojaxEventMatmulS32, (EventMatmul<ffi::S32, ffi::S32>),
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

XLA_FFI_DEFINE_HANDLER_SYMBOL(NeurojaxEventMatmulF32, (EventMatmul<ffi::F32, ffi::F32>),
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(NeurojaxEventMatmulTF32, EventMatmulT<ffi::F32>,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(NeurojaxEventMatmulTS32, EventMatmulT<ffi::S32>,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::S32>>());
