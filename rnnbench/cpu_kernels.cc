// rnnbench's C++ kernels for XLA:CPU, called through XLA's FFI (rnnbench/cpu_kernels.py
// builds them): the LSTM and GRU (reset_after=False) recurrences (rnnbench/cpu_rnn.py),
// the lookup of an embedding's rows and Keras' Adam of the table from their gradient
// (rnnbench/embedding_adam.py), the input projection of an embedding's rows once per
// distinct token (cpu_rnn.project), and the max over time of the outputs (cpu_rnn.max_pool),
// at the end of this file.
//
// The recurrences:
//
// The math and the residuals are rnnbench/fused_rnn.py's, op for op: the forward computes
// z_t = (xw_t + b) + h_{t-1} U and the gates, and saves the slabs fused_rnn saves; the
// backward carries only the state gradients and writes the pre-activation gradients dZ
// (T, B, G H); the weight gradient H_prev^T dZ stays one XLA matmul outside.
//
// What XLA's loop cannot do and this does:
// * one call runs all T steps: no per-step thunk launches, slices or copies;
// * u (H, G H) stays in cache for the whole sequence;
// * the rows of the batch are independent: the batch is split into blocks that the
//   intra-op thread pool's threads (and the caller) take from an atomic counter, so the
//   caller never waits for a task that has not started (no deadlock when the pool is busy).
//
// Element-wise math: tanh_f below (expm1 by range reduction and a degree-8 polynomial,
// within 2 ulp) and the sigmoid from exp_f (a degree-7 polynomial after range reduction),
// not XLA's own approximations; results equal fused_rnn's to float32 rounding
// (tests/test_cpu_rnn.py). The hard sigmoid and its
// derivative (0.2 inside, 0.1 on a corner, 0 outside) are jnp.clip's under autodiff.
// Compiled with -ffp-contract=off, so 0.2 x + 0.5 is rounded twice, as XLA does.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

enum Gate : int32_t { kHardSigmoid = 0, kSigmoid = 1 };

// a b + c, in one rounding where the CPU has FMA (the polynomials below are rnnbench's own,
// not XLA's, so this changes no result that must match), else a multiply and an add.
inline float fma_f(float a, float b, float c) {
#if defined(__FMA__)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

inline float exp_f(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (std::floor does not vectorize)
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693145751953125f;  // ln 2 in two parts (Cody-Waite)
  r = r - n * 1.42860682030941723212e-6f;
  float p = 1.0f / 5040.0f;  // Horner's steps in fused multiply-adds
  p = fma_f(p, r, 1.0f / 720.0f);
  p = fma_f(p, r, 1.0f / 120.0f);
  p = fma_f(p, r, 1.0f / 24.0f);
  p = fma_f(p, r, 1.0f / 6.0f);
  p = fma_f(p, r, 0.5f);
  p = fma_f(p, r, 1.0f);
  p = fma_f(p, r, 1.0f);
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  return p * __builtin_bit_cast(float, bits);
}

// tanh(x) = -expm1(-2|x|) / (2 + expm1(-2|x|)) with the sign of x, where for y <= 0,
// y = n ln 2 + r (|r| <= ln 2 / 2) and expm1(y) = 2^n (expm1(r) + 1) - 1 =
// fma(2^n, expm1(r), 2^n - 1): exact at n = 0, so small |x| lose nothing to cancellation
// and need no series of their own (no branch: about two thirds of the vector operations of
// the exp-based (1 - e) / (1 + e) with a series below 1/4 it replaced). Within 2 ulp of
// tanh (1.89 at most over 1.3e9 float32s in (-20, 20) against double precision, when
// written; the form it replaced: 2.7).
inline float tanh_f(float x) {
  const float y = std::max(-2.0f * std::fabs(x), -87.0f);  // 2^n stays a normal float
  const float n = fma_f(y, 1.44269504088896341f, 12582912.0f) - 12582912.0f;  // round(y / ln 2)
  float r = fma_f(n, -0.693145751953125f, y);  // ln 2 in two parts (Cody-Waite)
  r = fma_f(n, -1.42860682030941723212e-6f, r);
  float p = 1.0f / 40320;  // expm1(r) = r + r^2 p(r), p's Taylor coefficients 1/2! .. 1/8!
  p = fma_f(p, r, 1.0f / 5040);
  p = fma_f(p, r, 1.0f / 720);
  p = fma_f(p, r, 1.0f / 120);
  p = fma_f(p, r, 1.0f / 24);
  p = fma_f(p, r, 1.0f / 6);
  p = fma_f(p, r, 0.5f);
  const float em_r = fma_f(p * r, r, r);
  const float s = __builtin_bit_cast(float, (static_cast<int32_t>(n) + 127) << 23);  // 2^n
  // expm1(y) and 2 + expm1(y), each rounded once (2^n - 1 and 2^n + 1 are exact)
  const float t = fma_f(s, em_r, s - 1.0f) / fma_f(s, em_r, s + 1.0f);  // -tanh(|x|)
  return __builtin_bit_cast(float, (__builtin_bit_cast(uint32_t, t) & 0x7FFFFFFFu) |
                                       (__builtin_bit_cast(uint32_t, x) & 0x80000000u));
}

inline float hard_sigmoid(float x) {
  float s = 0.2f * x + 0.5f;
  return std::min(std::max(s, 0.0f), 1.0f);
}

// d gate(x) / dx times the cotangent t, as autodiff computes it: jnp.clip is
// min(max(s, 0), 1), and max and min split the derivative evenly on a tie.
inline float hard_sigmoid_vjp(float x, float t) {
  float s = 0.2f * x + 0.5f;
  float lo = s > 0.0f ? 1.0f : (s == 0.0f ? 0.5f : 0.0f);
  float hi = s < 1.0f ? 1.0f : (s == 1.0f ? 0.5f : 0.0f);
  return 0.2f * (t * (lo * hi));
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_f(-x)); }

inline float sigmoid_vjp(float ans, float t) { return t * (ans * (1.0f - ans)); }

// Rows of the batch are computed kRows at a time, columns kLanes at a time: in the matmuls
// each loaded vector of u is used by kRows rows held in registers.
constexpr int64_t kLanes = 16;
constexpr int64_t kRows = 8;
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

inline int64_t padded(int64_t n) { return (n + kLanes - 1) / kLanes * kLanes; }

// acc + s w in one rounding where the CPU has AVX-512 (-ffp-contract=off keeps every other
// multiply and add apart), else a multiply and an add.
inline Vec multiply_add(float s, Vec w, Vec acc) {
#if defined(__AVX512F__)
  return reinterpret_cast<Vec>(_mm512_fmadd_ps(_mm512_set1_ps(s), reinterpret_cast<__m512>(w),
                                               reinterpret_cast<__m512>(acc)));
#else
  return acc + s * w;
#endif
}

// dst[0, n) = src[0, n): the kernels copy short rows (50 to 200 floats) every step. A plain
// memcpy: glibc's is as fast as inline vector moves at these sizes (and GCC turned a loop of
// them into a memmove call anyway).
inline void copy_floats(float* __restrict dst, const float* __restrict src, int64_t n) {
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
}

// A matrix whose rows are zero-padded to ld, a multiple of kLanes.
struct Padded {
  std::vector<float> data;
  int64_t ld;
};

// The columns [c0, c0 + cols) of a (rows, lda), as (rows, padded(cols)).
Padded columns(const float* a, int64_t rows, int64_t lda, int64_t c0, int64_t cols) {
  Padded p{std::vector<float>(rows * padded(cols), 0.0f), padded(cols)};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) p.data[r * p.ld + c] = a[r * lda + c0 + c];
  return p;
}

// The columns [c0, c0 + cols) of a (rows, lda), transposed: (cols, padded(rows)). Written
// row by row (reading a down its columns): writing down the columns instead, ld floats
// apart, took 15 times as long for the projection's (200, 128) (the stores' lines collide
// in the cache's sets).
Padded columns_t(const float* a, int64_t rows, int64_t lda, int64_t c0, int64_t cols) {
  Padded p{std::vector<float>(cols * padded(rows), 0.0f), padded(rows)};
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) p.data[c * p.ld + r] = a[r * lda + c0 + c];
  return p;
}

// out (kRows, kVecs * kLanes) at column j (+)= x (kRows, k) @ w's columns from j: each
// loaded vector of w meets kRows rows, kRows x kVecs accumulators stay in registers (24 of
// the 32 with AVX-512: two FMAs a cycle, four cycles' latency, need that many in flight).
template <int64_t kVecs, bool kAdd>
inline void matmul_block(float* __restrict out, int64_t ldo, const float* __restrict x,
                         int64_t ldx, int64_t xcs, const float* __restrict w, int64_t ldw,
                         int64_t k, int64_t j) {
  Vec acc[kRows][kVecs] = {};
  if constexpr (kAdd)
    for (int64_t r = 0; r < kRows; ++r)
      for (int64_t v = 0; v < kVecs; ++v)
        std::memcpy(&acc[r][v], out + r * ldo + j + v * kLanes, sizeof(Vec));
  for (int64_t i = 0; i < k; ++i) {
    Vec wv[kVecs];
    for (int64_t v = 0; v < kVecs; ++v) std::memcpy(&wv[v], w + i * ldw + j + v * kLanes, sizeof(Vec));
    for (int64_t r = 0; r < kRows; ++r) {
      const float s = x[r * ldx + i * xcs];
      for (int64_t v = 0; v < kVecs; ++v) acc[r][v] = multiply_add(s, wv[v], acc[r][v]);
    }
  }
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t v = 0; v < kVecs; ++v)
      std::memcpy(out + r * ldo + j + v * kLanes, &acc[r][v], sizeof(Vec));
}

// out (kRows, ldw) (+)= x (kRows, k) @ w (k, ldw), ldw a multiple of kLanes; x(r, i) at
// x[r ldx + i xcs] (xcs = 1: rows of stride ldx; ldx = 1: x transposed), out rows of
// stride ldo.
template <bool kAdd = false>
inline void matmul_into(float* __restrict out, int64_t ldo, const float* __restrict x,
                        int64_t ldx, int64_t xcs, const float* __restrict w, int64_t ldw,
                        int64_t k) {
  int64_t j = 0;
  for (; j + 3 * kLanes <= ldw; j += 3 * kLanes)
    matmul_block<3, kAdd>(out, ldo, x, ldx, xcs, w, ldw, k, j);
  if (ldw - j == 2 * kLanes) matmul_block<2, kAdd>(out, ldo, x, ldx, xcs, w, ldw, k, j);
  if (ldw - j == kLanes) matmul_block<1, kAdd>(out, ldo, x, ldx, xcs, w, ldw, k, j);
}

// out (kRows, w.ld) = x (kRows, k) @ w (k, w.ld).
inline void matmul_rows(float* __restrict out, int64_t ldo, const float* __restrict x,
                        int64_t ldx, const Padded& w, int64_t k) {
  matmul_into(out, ldo, x, ldx, 1, w.data.data(), w.ld, k);
}

inline int64_t round_rows(int64_t n) { return (n + kRows - 1) / kRows * kRows; }

// Asks for the rows [row, row + rows) of a (.., width) float array to be brought into cache
// (the next step's rows of a block: a stride of the whole batch apart from this step's,
// which the hardware prefetcher does not follow).
template <int kForWrite>
inline void prefetch_lines(const float* a, int64_t row, int64_t rows, int64_t width) {
  const char* p = reinterpret_cast<const char*>(a + row * width);
  const int64_t bytes = rows * width * static_cast<int64_t>(sizeof(float));
  for (int64_t k = 0; k < bytes; k += 64) __builtin_prefetch(p + k, kForWrite);
}

inline void prefetch_rows(const float* a, int64_t row, int64_t rows, int64_t width) {
  prefetch_lines<0>(a, row, rows, width);
}

// The same for rows about to be written: the outputs are megabytes that the step's other
// work (the embedding's Adam streams 30 MB) has pushed out of cache, and a store to a line
// not in cache waits for it to be read; asked for a step (or a block) ahead, it does not.
inline void prefetch_rows_for_write(const float* a, int64_t row, int64_t rows, int64_t width) {
  prefetch_lines<1>(a, row, rows, width);
}

// Runs body(start, count) for the blocks of `block` items of [0, n) (the last may have
// fewer), on the caller and the pool's threads: each takes the next block from an atomic
// counter, so the caller never waits for a task that has not started.
template <typename Pool, typename Body>
void parallel_blocks(Pool& pool, int64_t n, int64_t block, Body body) {
  const int64_t blocks = (n + block - 1) / block;
  const int64_t helpers = std::min<int64_t>(std::max<int64_t>(0, pool.num_threads()),
                                            blocks - 1);
  if (helpers <= 0) {
    for (int64_t i = 0; i < blocks; ++i) body(i * block, std::min(block, n - i * block));
    return;
  }
  struct State {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
  };
  auto state = std::make_shared<State>();
  auto work = [state, n, block, blocks, body]() {
    for (int64_t i; (i = state->next.fetch_add(1)) < blocks;) {
      body(i * block, std::min(block, n - i * block));
      state->done.fetch_add(1, std::memory_order_release);
    }
  };
  for (int64_t i = 0; i < helpers; ++i) pool.Schedule(decltype(work)(work));
  work();
  while (state->done.load(std::memory_order_acquire) < blocks) std::this_thread::yield();
}

// body(b0, rows) for the blocks of kRows batch rows.
template <typename Pool, typename Body>
void parallel_rows(Pool& pool, int64_t batch, Body body) {
  parallel_blocks(pool, batch, kRows, body);
}

ffi::Error check_gate(int32_t gate) {
  if (gate != kHardSigmoid && gate != kSigmoid)
    return ffi::Error::InvalidArgument("gate must be 0 (hard_sigmoid) or 1 (sigmoid)");
  return ffi::Error::Success();
}

// The gate as a template parameter, so that the element-wise loops vectorize.
template <int32_t kGate>
inline float gate_f(float x) {
  if constexpr (kGate == kHardSigmoid) return hard_sigmoid(x);
  return sigmoid(x);
}

template <int32_t kGate>
inline float gate_vjp(float x, float t) {
  if constexpr (kGate == kHardSigmoid) return hard_sigmoid_vjp(x, t);
  return sigmoid_vjp(sigmoid(x), t);
}

// f<kHardSigmoid>(args...) or f<kSigmoid>(args...) by the runtime gate.
#define RNNBENCH_BY_GATE(gate, f, ...) \
  ((gate) == kHardSigmoid ? f<kHardSigmoid>(__VA_ARGS__) : f<kSigmoid>(__VA_ARGS__))

// ---------------------------------------------------------------------------------------
// LSTM, gates i, f, c, o: z = (xw_t + b) + h U; c = f c + i tanh(z_c); h = o tanh(c).

// xw (T, B, 4H), b (4H), u (H, 4H) -> hs (T, B, H); with zs: zs (T, B, 4H), h_prev and
// c_prev (T, B, H), the state each step started from.
template <int32_t kGate, typename Pool>
void lstm_forward(Pool& pool, int64_t steps, int64_t batch, int64_t units,
                  const float* xw, const float* bias, const float* u, float* hs, float* zs,
                  float* h_prev, float* c_prev) {
  const int64_t g = 4 * units, hp = padded(units), gp = padded(g);
  const Padded up = columns(u, units, g, 0, g);
  parallel_rows(pool, batch, [=, &up](int64_t b0, int64_t rows) {
    std::vector<float> h(kRows * hp, 0.0f), c(kRows * hp, 0.0f), z(kRows * gp);
    for (int64_t t = 0; t < steps; ++t) {
      if (t + 1 < steps) {
        const int64_t next = (t + 1) * batch + b0;
        prefetch_rows(xw, next, rows, g);
        prefetch_rows_for_write(hs, next, rows, units);
        if (zs != nullptr) {
          prefetch_rows_for_write(zs, next, rows, g);
          prefetch_rows_for_write(h_prev, next, rows, units);
          prefetch_rows_for_write(c_prev, next, rows, units);
        }
      }
      matmul_rows(z.data(), gp, h.data(), hp, up, units);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = t * batch + b0 + r;
        const float* x = xw + row * g;
        float* zr = z.data() + r * gp;
        float* hr = h.data() + r * hp;
        float* cr = c.data() + r * hp;
        for (int64_t j = 0; j < g; ++j) zr[j] = (x[j] + bias[j]) + zr[j];
        if (zs != nullptr) {
          copy_floats(h_prev + row * units, hr, units);
          copy_floats(c_prev + row * units, cr, units);
          copy_floats(zs + row * g, zr, g);
        }
        const float *zi = zr, *zf = zi + units, *zc = zf + units, *zo = zc + units;
        for (int64_t j = 0; j < units; ++j) {
          cr[j] = gate_f<kGate>(zf[j]) * cr[j] + gate_f<kGate>(zi[j]) * tanh_f(zc[j]);
          hr[j] = gate_f<kGate>(zo[j]) * tanh_f(cr[j]);
        }
        copy_floats(hs + row * units, hr, units);
      }
    }
  });
}

// One row of one step of the LSTM's backward: the pre-activation gradients dz (i, f, c, o)
// from z, c_prev and the gradient of h (dh_t + dh_rec); dc is carried in place.
template <int32_t kGate>
inline void lstm_cell_bwd(int64_t n, const float* __restrict zi, const float* __restrict zf,
                          const float* __restrict zc, const float* __restrict zo,
                          const float* __restrict cp, const float* __restrict dh_t,
                          const float* __restrict dh_rec, float* __restrict dc,
                          float* __restrict dzi, float* __restrict dzf,
                          float* __restrict dzc, float* __restrict dzo) {
  for (int64_t j = 0; j < n; ++j) {
    const float gi = gate_f<kGate>(zi[j]), gf = gate_f<kGate>(zf[j]);
    const float go = gate_f<kGate>(zo[j]), tz = tanh_f(zc[j]);
    const float c = gf * cp[j] + gi * tz;
    const float tc = tanh_f(c);
    const float dh = dh_t[j] + dh_rec[j];
    const float dcj = dc[j] + (dh * go) * (1.0f - tc * tc);
    dzo[j] = gate_vjp<kGate>(zo[j], dh * tc);
    dzf[j] = gate_vjp<kGate>(zf[j], dcj * cp[j]);
    dzi[j] = gate_vjp<kGate>(zi[j], dcj * tz);
    dzc[j] = (dcj * gi) * (1.0f - tz * tz);
    dc[j] = dcj * gf;
  }
}

// dhs (T, B, H), zs (T, B, 4H), c_prev (T, B, H), u (H, 4H) -> dzs (T, B, 4H).
template <int32_t kGate, typename Pool>
void lstm_backward(Pool& pool, int64_t steps, int64_t batch, int64_t units,
                   const float* dhs, const float* zs, const float* c_prev, const float* u,
                   float* dzs) {
  const int64_t g = 4 * units, hp = padded(units), gp = padded(g);
  const Padded ut = columns_t(u, units, g, 0, g);
  parallel_rows(pool, batch, [=, &ut](int64_t b0, int64_t rows) {
    std::vector<float> dh_rec(kRows * hp, 0.0f), dc(kRows * hp, 0.0f), dz(kRows * gp, 0.0f);
    for (int64_t t = steps - 1; t >= 0; --t) {
      if (t > 0) {
        const int64_t prev = (t - 1) * batch + b0;
        prefetch_rows(zs, prev, rows, g);
        prefetch_rows(c_prev, prev, rows, units);
        prefetch_rows(dhs, prev, rows, units);
        prefetch_rows_for_write(dzs, prev, rows, g);
      }
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = t * batch + b0 + r;
        const float *zi = zs + row * g, *zf = zi + units, *zc = zf + units, *zo = zc + units;
        const float* cp = c_prev + row * units;
        const float* dh_t = dhs + row * units;
        const float* dhr = dh_rec.data() + r * hp;
        float* dcr = dc.data() + r * hp;
        float *dzi = dz.data() + r * gp, *dzf = dzi + units, *dzc = dzf + units,
              *dzo = dzc + units;
        lstm_cell_bwd<kGate>(units, zi, zf, zc, zo, cp, dh_t, dhr, dcr, dzi, dzf, dzc, dzo);
        copy_floats(dzs + row * g, dzi, g);
      }
      matmul_rows(dh_rec.data(), hp, dz.data(), gp, ut, g);
    }
  });
}

ffi::Error LstmFwd(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> xw, ffi::Buffer<ffi::F32> b,
                   ffi::Buffer<ffi::F32> u, ffi::ResultBuffer<ffi::F32> hs,
                   ffi::ResultBuffer<ffi::F32> zs, ffi::ResultBuffer<ffi::F32> h_prev,
                   ffi::ResultBuffer<ffi::F32> c_prev, int32_t gate) {
  if (auto e = check_gate(gate); e.failure()) return e;
  auto d = xw.dimensions();
  RNNBENCH_BY_GATE(gate, lstm_forward, pool, d[0], d[1], u.dimensions()[0], xw.typed_data(), b.typed_data(),
               u.typed_data(), hs->typed_data(), zs->typed_data(), h_prev->typed_data(),
               c_prev->typed_data());
  return ffi::Error::Success();
}

ffi::Error LstmInfer(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> xw, ffi::Buffer<ffi::F32> b,
                     ffi::Buffer<ffi::F32> u, ffi::ResultBuffer<ffi::F32> hs, int32_t gate) {
  if (auto e = check_gate(gate); e.failure()) return e;
  auto d = xw.dimensions();
  RNNBENCH_BY_GATE(gate, lstm_forward, pool, d[0], d[1], u.dimensions()[0], xw.typed_data(), b.typed_data(),
               u.typed_data(), hs->typed_data(), nullptr, nullptr, nullptr);
  return ffi::Error::Success();
}

ffi::Error LstmBwd(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> dhs, ffi::Buffer<ffi::F32> zs,
                   ffi::Buffer<ffi::F32> c_prev, ffi::Buffer<ffi::F32> u,
                   ffi::ResultBuffer<ffi::F32> dzs, int32_t gate) {
  if (auto e = check_gate(gate); e.failure()) return e;
  auto d = dhs.dimensions();
  RNNBENCH_BY_GATE(gate, lstm_backward, pool, d[0], d[1], d[2], dhs.typed_data(), zs.typed_data(),
                c_prev.typed_data(), u.typed_data(), dzs->typed_data());
  return ffi::Error::Success();
}

// ---------------------------------------------------------------------------------------
// GRU, reset_after=False, gates z, r, h: xb = xw_t + b; s_zr = xb_zr + h U_zr;
// s_h = xb_h + (gate(s_r) h) U_h; h = z h + (1 - z) tanh(s_h).

// xw (T, B, 3H), b (3H), u (H, 3H) -> hs (T, B, H); with s_zr: s_zr (T, B, 2H),
// s_h (T, B, H), h_prev (T, B, H).
template <int32_t kGate, typename Pool>
void gru_forward(Pool& pool, int64_t steps, int64_t batch, int64_t units,
                 const float* xw, const float* bias, const float* u, float* hs, float* s_zr,
                 float* s_h, float* h_prev) {
  const int64_t g = 3 * units, hp = padded(units), zp = padded(2 * units);
  const Padded u_zr = columns(u, units, g, 0, 2 * units);
  const Padded u_h = columns(u, units, g, 2 * units, units);
  parallel_rows(pool, batch, [=, &u_zr, &u_h](int64_t b0, int64_t rows) {
    std::vector<float> h(kRows * hp, 0.0f), zr(kRows * zp), sh(kRows * hp),
        rh(kRows * hp, 0.0f);
    for (int64_t t = 0; t < steps; ++t) {
      if (t + 1 < steps) {
        const int64_t next = (t + 1) * batch + b0;
        prefetch_rows(xw, next, rows, g);
        prefetch_rows_for_write(hs, next, rows, units);
        if (s_zr != nullptr) {
          prefetch_rows_for_write(s_zr, next, rows, 2 * units);
          prefetch_rows_for_write(s_h, next, rows, units);
          prefetch_rows_for_write(h_prev, next, rows, units);
        }
      }
      matmul_rows(zr.data(), zp, h.data(), hp, u_zr, units);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = t * batch + b0 + r;
        const float* x = xw + row * g;
        float* zrr = zr.data() + r * zp;
        const float* hr = h.data() + r * hp;
        float* rhr = rh.data() + r * hp;
        for (int64_t j = 0; j < 2 * units; ++j) zrr[j] = (x[j] + bias[j]) + zrr[j];
        for (int64_t j = 0; j < units; ++j) rhr[j] = gate_f<kGate>(zrr[units + j]) * hr[j];
      }
      matmul_rows(sh.data(), hp, rh.data(), hp, u_h, units);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = t * batch + b0 + r;
        const float* x = xw + row * g + 2 * units;
        const float* b = bias + 2 * units;
        const float* zrr = zr.data() + r * zp;
        float* shr = sh.data() + r * hp;
        float* hr = h.data() + r * hp;
        if (s_zr != nullptr) copy_floats(h_prev + row * units, hr, units);
        for (int64_t j = 0; j < units; ++j) {
          shr[j] = (x[j] + b[j]) + shr[j];
          const float z = gate_f<kGate>(zrr[j]);
          hr[j] = z * hr[j] + (1.0f - z) * tanh_f(shr[j]);
        }
        copy_floats(hs + row * units, hr, units);
        if (s_zr != nullptr) {
          copy_floats(s_zr + row * 2 * units, zrr, 2 * units);
          copy_floats(s_h + row * units, shr, units);
        }
      }
    }
  });
}

// One row of one step of the GRU's backward through h = z h + (1 - z) tanh(s_h): the
// gradients of s_z and s_h; dh_u holds dh_rec and becomes the gradient through z h.
template <int32_t kGate>
inline void gru_update_bwd(int64_t n, const float* __restrict sz, const float* __restrict sh,
                           const float* __restrict h, const float* __restrict dh_t,
                           float* __restrict dh_u, float* __restrict dsz,
                           float* __restrict dsh) {
  for (int64_t j = 0; j < n; ++j) {
    const float z = gate_f<kGate>(sz[j]), th = tanh_f(sh[j]);
    const float dh = dh_t[j] + dh_u[j];
    dsz[j] = gate_vjp<kGate>(sz[j], dh * h[j] + -(dh * th));
    dsh[j] = (dh * (1.0f - z)) * (1.0f - th * th);
    dh_u[j] = dh * z;
  }
}

// dhs, s_zr, s_h, h_prev, u -> ds_zr (T, B, 2H), ds_h (T, B, H).
template <int32_t kGate, typename Pool>
void gru_backward(Pool& pool, int64_t steps, int64_t batch, int64_t units,
                  const float* dhs, const float* s_zr, const float* s_h, const float* h_prev,
                  const float* u, float* ds_zr, float* ds_h) {
  const int64_t g = 3 * units, hp = padded(units), zp = padded(2 * units);
  const Padded ut_zr = columns_t(u, units, g, 0, 2 * units);
  const Padded ut_h = columns_t(u, units, g, 2 * units, units);
  parallel_rows(pool, batch, [=, &ut_zr, &ut_h](int64_t b0, int64_t rows) {
    // dh_rec: the gradient of h carried to the step before; dh_u: its part through z h
    std::vector<float> dh_rec(kRows * hp, 0.0f), dsh(kRows * hp, 0.0f),
        dzr(kRows * zp, 0.0f), dr_h(kRows * hp), d_zr(kRows * hp);
    for (int64_t t = steps - 1; t >= 0; --t) {
      if (t > 0) {
        const int64_t prev = (t - 1) * batch + b0;
        prefetch_rows(s_zr, prev, rows, 2 * units);
        prefetch_rows(s_h, prev, rows, units);
        prefetch_rows(h_prev, prev, rows, units);
        prefetch_rows(dhs, prev, rows, units);
        prefetch_rows_for_write(ds_zr, prev, rows, 2 * units);
        prefetch_rows_for_write(ds_h, prev, rows, units);
      }
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = t * batch + b0 + r;
        const float* sz = s_zr + row * 2 * units;
        const float* shr = s_h + row * units;
        const float* h = h_prev + row * units;
        const float* dh_t = dhs + row * units;
        float* dh_u = dh_rec.data() + r * hp;
        float* dszr = dzr.data() + r * zp;
        float* dshr = dsh.data() + r * hp;
        gru_update_bwd<kGate>(units, sz, shr, h, dh_t, dh_u, dszr, dshr);
      }
      matmul_rows(dr_h.data(), hp, dsh.data(), hp, ut_h, units);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = t * batch + b0 + r;
        const float* sr = s_zr + row * 2 * units + units;
        const float* h = h_prev + row * units;
        const float* drr = dr_h.data() + r * hp;
        float* dh_u = dh_rec.data() + r * hp;
        float* dsr = dzr.data() + r * zp + units;
        for (int64_t j = 0; j < units; ++j) {
          dsr[j] = gate_vjp<kGate>(sr[j], drr[j] * h[j]);
          dh_u[j] = dh_u[j] + drr[j] * gate_f<kGate>(sr[j]);
        }
      }
      matmul_rows(d_zr.data(), hp, dzr.data(), zp, ut_zr, 2 * units);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t row = t * batch + b0 + r;
        float* dh_u = dh_rec.data() + r * hp;
        const float* dzrr = d_zr.data() + r * hp;
        for (int64_t j = 0; j < units; ++j) dh_u[j] = dh_u[j] + dzrr[j];
        const float* dszr = dzr.data() + r * zp;
        copy_floats(ds_zr + row * 2 * units, dszr, 2 * units);
        const float* dshr = dsh.data() + r * hp;
        copy_floats(ds_h + row * units, dshr, units);
      }
    }
  });
}

ffi::Error GruFwd(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> xw, ffi::Buffer<ffi::F32> b,
                  ffi::Buffer<ffi::F32> u, ffi::ResultBuffer<ffi::F32> hs,
                  ffi::ResultBuffer<ffi::F32> s_zr, ffi::ResultBuffer<ffi::F32> s_h,
                  ffi::ResultBuffer<ffi::F32> h_prev, int32_t gate) {
  if (auto e = check_gate(gate); e.failure()) return e;
  auto d = xw.dimensions();
  RNNBENCH_BY_GATE(gate, gru_forward, pool, d[0], d[1], u.dimensions()[0], xw.typed_data(), b.typed_data(),
              u.typed_data(), hs->typed_data(), s_zr->typed_data(), s_h->typed_data(),
              h_prev->typed_data());
  return ffi::Error::Success();
}

ffi::Error GruInfer(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> xw, ffi::Buffer<ffi::F32> b,
                    ffi::Buffer<ffi::F32> u, ffi::ResultBuffer<ffi::F32> hs, int32_t gate) {
  if (auto e = check_gate(gate); e.failure()) return e;
  auto d = xw.dimensions();
  RNNBENCH_BY_GATE(gate, gru_forward, pool, d[0], d[1], u.dimensions()[0], xw.typed_data(), b.typed_data(),
              u.typed_data(), hs->typed_data(), nullptr, nullptr, nullptr);
  return ffi::Error::Success();
}

ffi::Error GruBwd(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> dhs, ffi::Buffer<ffi::F32> s_zr,
                  ffi::Buffer<ffi::F32> s_h, ffi::Buffer<ffi::F32> h_prev,
                  ffi::Buffer<ffi::F32> u, ffi::ResultBuffer<ffi::F32> ds_zr,
                  ffi::ResultBuffer<ffi::F32> ds_h, int32_t gate) {
  if (auto e = check_gate(gate); e.failure()) return e;
  auto d = dhs.dimensions();
  RNNBENCH_BY_GATE(gate, gru_backward, pool, d[0], d[1], d[2], dhs.typed_data(), s_zr.typed_data(),
               s_h.typed_data(), h_prev.typed_data(), u.typed_data(), ds_zr->typed_data(),
               ds_h->typed_data());
  return ffi::Error::Success();
}

// The table row that jnp.take(table, ids, axis=0) reads for id, -1 for none: ids in
// [-vocab, 0) count from the end, ids outside [-vocab, vocab) have no row (NaN in jnp.take).
inline int64_t table_row(int32_t id, int64_t vocab) {
  const int64_t r = id < 0 ? id + vocab : id;
  return r >= 0 && r < vocab ? r : -1;
}

// ---------------------------------------------------------------------------------------
// The embedding lookup: out (N, E) = jnp.take(table (V, E), ids (N,), axis=0), row copies
// shared out over the pool (XLA's gather is an element-wise loop over the output, with a
// bounds select per element). A row without a table row is NaN, as jnp.take fills it.
template <typename Pool>
void gather_rows(Pool& pool, int64_t vocab, int64_t width, int64_t n, const float* table,
                 const int32_t* ids, float* out) {
  constexpr int64_t kAhead = 8;
  parallel_blocks(pool, n, 512, [=](int64_t i0, int64_t count) {
    for (int64_t i = i0; i < i0 + count; ++i) {
      // the table's rows are mostly out of cache, and its rows' addresses known: a few
      // rows ahead, their lines are asked for (the copies wait on memory, not the CPU)
      if (i + kAhead < i0 + count) {
        const int64_t ahead = table_row(ids[i + kAhead], vocab);
        if (ahead >= 0) prefetch_rows(table, ahead, 1, width);
      }
      const int64_t r = table_row(ids[i], vocab);
      float* dst = out + i * width;
      if (r < 0)
        std::fill(dst, dst + width, std::numeric_limits<float>::quiet_NaN());
      else
        copy_floats(dst, table + r * width, width);
    }
  });
}

ffi::Error GatherRows(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> table,
                      ffi::Buffer<ffi::S32> ids, ffi::ResultBuffer<ffi::F32> out) {
  auto d = table.dimensions();
  if (d.size() != 2 || out->element_count() != ids.element_count() * d[1])
    return ffi::Error::InvalidArgument("gather_rows: table (V, E), ids (...), out (..., E)");
  gather_rows(pool, d[0], d[1], ids.element_count(), table.typed_data(), ids.typed_data(),
              out->typed_data());
  return ffi::Error::Success();
}

// One row of Keras' Adam, in place.
inline void adam_row(int64_t width, float* __restrict p, float* __restrict m,
                     float* __restrict v, const float* __restrict g, float neg_lr, float b1,
                     float c1, float b2, float c2, float eps) {
  for (int64_t e = 0; e < width; ++e) {
    const float mm = b1 * m[e] + c1 * g[e];
    const float vv = b2 * v[e] + c2 * (g[e] * g[e]);
    p[e] = p[e] + (neg_lr * mm) / (std::sqrt(vv) + eps);
    m[e] = mm;
    v[e] = vv;
  }
}

// ---------------------------------------------------------------------------------------
// Keras' Adam of an embedding table (V, E) from the gradient of the rows a batch gathered:
// rows (N, E) at ids (N,). A row's gradient is the sum of its gathered rows' gradients (in
// their order; 0 for a row no token touched), and then every row of p, m and v is read and
// written once, with optim.keras_adam's ops in its order:
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p = p + (-lr_t m) / (sqrt(v) + eps),
// so rows no token touched decay, as in Keras' dense update. Ids are read as jnp.take reads
// them (table_row): those in [-V, 0) count from the end, those outside [-V, V) are dropped (the
// dense path's scatter drops them).

// p, m, v are updated in place (the custom call aliases them to its outputs).
template <typename Pool>
void embedding_adam(Pool& pool, int64_t vocab, int64_t width, int64_t n, float* p, float* m,
                    float* v, const int32_t* ids, const float* rows, float lr_t, float b1,
                    float c1, float b2, float c2, float eps) {
  std::vector<int32_t> head(vocab, -1), next(n, -1);
  for (int64_t i = n - 1; i >= 0; --i) {  // each row's list of its ids' positions, ascending
    const int64_t id = table_row(ids[i], vocab);
    if (id < 0) continue;
    next[i] = head[id];
    head[id] = static_cast<int32_t>(i);
  }
  const int32_t* headp = head.data();
  const int32_t* nextp = next.data();
  const float neg_lr = -lr_t;
  parallel_blocks(pool, vocab, 256, [=](int64_t r0, int64_t count) {
    std::vector<float> g(width);
    for (int64_t r = r0; r < r0 + count; ++r) {
      // the gradient rows 8 table rows ahead (scattered over the batch's rows), and p, m and
      // v 4 rows ahead: the stream restarts at each block, faster than the hardware ramps up
      if (r + 8 < r0 + count)
        for (int32_t i = headp[r + 8]; i >= 0; i = nextp[i]) prefetch_rows(rows, i, 1, width);
      if (r + 4 < r0 + count)
        for (float* a : {p, m, v}) prefetch_rows_for_write(a, r + 4, 1, width);
      std::fill(g.begin(), g.end(), 0.0f);
      for (int32_t i = headp[r]; i >= 0; i = nextp[i]) {
        const float* src = rows + static_cast<int64_t>(i) * width;
        for (int64_t e = 0; e < width; ++e) g[e] += src[e];
      }
      adam_row(width, p + r * width, m + r * width, v + r * width, g.data(), neg_lr, b1, c1,
               b2, c2, eps);
    }
  });
}

ffi::Error EmbeddingAdam(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> p, ffi::Buffer<ffi::F32> m,
                         ffi::Buffer<ffi::F32> v, ffi::Buffer<ffi::S32> ids,
                         ffi::Buffer<ffi::F32> rows, ffi::Buffer<ffi::F32> lr_t,
                         ffi::ResultBuffer<ffi::F32> p_out, ffi::ResultBuffer<ffi::F32> m_out,
                         ffi::ResultBuffer<ffi::F32> v_out, float beta_1,
                         float one_minus_beta_1, float beta_2, float one_minus_beta_2,
                         float epsilon) {
  auto d = p.dimensions();
  if (d.size() != 2 || rows.dimensions().size() != 2 || rows.dimensions()[1] != d[1] ||
      ids.element_count() != rows.dimensions()[0])
    return ffi::Error::InvalidArgument("embedding_adam: p (V, E), ids (N,), rows (N, E)");
  // The outputs alias the inputs (input_output_aliases): XLA hands the same buffers, copying
  // an input first where it cannot be donated. Copy anyway if it ever does not.
  const size_t bytes = static_cast<size_t>(p.element_count()) * sizeof(float);
  if (p_out->typed_data() != p.typed_data()) std::memcpy(p_out->typed_data(), p.typed_data(), bytes);
  if (m_out->typed_data() != m.typed_data()) std::memcpy(m_out->typed_data(), m.typed_data(), bytes);
  if (v_out->typed_data() != v.typed_data()) std::memcpy(v_out->typed_data(), v.typed_data(), bytes);
  embedding_adam(pool, d[0], d[1], rows.dimensions()[0], p_out->typed_data(),
                 m_out->typed_data(), v_out->typed_data(), ids.typed_data(), rows.typed_data(),
                 lr_t.typed_data()[0], beta_1, one_minus_beta_1, beta_2, one_minus_beta_2,
                 epsilon);
  return ffi::Error::Success();
}

// ---------------------------------------------------------------------------------------
// The input projection of rows gathered from a table: xw (T, B, G) = x W for x (B, T, D)
// whose rows are a function of ids (B, T) (an embedding's output: equal ids, equal rows),
// computed once per distinct id. A batch of the notebook's has about 1,200 distinct ids in
// its 3,200 positions, so the three matmuls of the projection and its backward do about
// 40% of XLA's work. The backward gives W's gradient exactly (sum over positions of
// x_p^T dxw_p = sum over ids of x_id^T S_id, S_id the sum of its positions' dxw) and x's
// gradient summed per id, at the id's first position (zeros at the others): exact for the
// table whose rows x gathered (its gradient is that sum), not the gradient of each x row.

// The distinct ids of ids (B, T), in the order of their first time-major position
// p = t B + b: of[p] is p's group, first[g] group g's first position.
struct Groups {
  std::vector<int32_t> of, first;
};

Groups group_ids(const int32_t* ids, int64_t batch, int64_t steps) {
  const int64_t n = batch * steps;
  int64_t capacity = 16, bits = 4;
  while (capacity < 2 * n) capacity *= 2, ++bits;
  std::vector<int32_t> keys(capacity), slot_group(capacity, -1);
  Groups groups{std::vector<int32_t>(n), {}};
  const uint64_t mask = static_cast<uint64_t>(capacity - 1);
  for (int64_t t = 0; t < steps; ++t) {
    for (int64_t b = 0; b < batch; ++b) {
      const int32_t id = ids[b * steps + t];
      // the product's HIGH bits (Fibonacci hashing): its low bits are the id's low bits,
      // so ids that are multiples of a power of two would all probe one slot
      uint64_t s = (static_cast<uint64_t>(static_cast<uint32_t>(id)) *
                    0x9E3779B97F4A7C15ull) >> (64 - bits);
      while (slot_group[s] >= 0 && keys[s] != id) s = (s + 1) & mask;
      if (slot_group[s] < 0) {
        keys[s] = id;
        slot_group[s] = static_cast<int32_t>(groups.first.size());
        groups.first.push_back(static_cast<int32_t>(t * batch + b));
      }
      groups.of[t * batch + b] = slot_group[s];
    }
  }
  return groups;
}

// Each group's positions in ascending order: next[p] is the position after p in p's group
// (-1 after its last); a group's list starts at groups.first.
std::vector<int32_t> chains(const Groups& groups) {
  const int64_t positions = static_cast<int64_t>(groups.of.size());
  std::vector<int32_t> last(groups.first.size(), -1), next(positions, -1);
  for (int64_t p = positions - 1; p >= 0; --p) {
    next[p] = last[groups.of[p]];
    last[groups.of[p]] = static_cast<int32_t>(p);
  }
  return next;
}

// Scratch memory the calling thread keeps from call to call (grown, never shrunk): the
// backward's temporaries are megabytes, which malloc would map afresh, page faults and all,
// on every call.
float* scratch(int slot, int64_t n) {
  thread_local std::vector<float> buffers[2];
  std::vector<float>& b = buffers[slot];
  if (static_cast<int64_t>(b.size()) < n) b.resize(n);
  return b.data();
}

// The row of x (B, T, D) at time-major position p.
template <typename F>  // float or const float: the row as x's constness
inline F* row_at(F* x, int64_t p, int64_t batch, int64_t steps, int64_t width) {
  return x + ((p % batch) * steps + p / batch) * width;
}

// x (B, T, D), ids (B, T), w (D, G) -> xw (T, B, G): each block of groups projects its rows
// (gathered, kRows at a time) and copies each to its group's positions.
template <typename Pool>
void rows_project(Pool& pool, int64_t batch, int64_t steps, int64_t width, int64_t g,
                  const float* x, const int32_t* ids, const float* w, float* xw) {
  const Groups groups = group_ids(ids, batch, steps);
  const std::vector<int32_t> next = chains(groups);
  const int64_t n = static_cast<int64_t>(groups.first.size()), gp = padded(g);
  const Padded wp = columns(w, width, g, 0, g);
  const int32_t* firstp = groups.first.data();
  const int32_t* nextp = next.data();
  parallel_blocks(pool, n, 4 * kRows, [=, &wp](int64_t g0, int64_t count) {
    std::vector<float> xb(kRows * width, 0.0f), pb(kRows * gp);
    for (int64_t r0 = g0; r0 < g0 + count; r0 += kRows) {
      const int64_t rows = std::min(kRows, g0 + count - r0);
      // the next block's rows of x (a (B, T) stride apart) and of xw
      for (int64_t r = r0 + kRows; r < std::min(r0 + 2 * kRows, g0 + count); ++r) {
        prefetch_rows(row_at(x, firstp[r], batch, steps, width), 0, 1, width);
        for (int32_t p = firstp[r]; p >= 0; p = nextp[p]) prefetch_rows_for_write(xw, p, 1, g);
      }
      for (int64_t r = 0; r < rows; ++r)
        copy_floats(xb.data() + r * width, row_at(x, firstp[r0 + r], batch, steps, width), width);
      std::fill(xb.begin() + rows * width, xb.end(), 0.0f);
      matmul_rows(pb.data(), gp, xb.data(), width, wp, width);
      for (int64_t r = 0; r < rows; ++r)
        for (int32_t p = firstp[r0 + r]; p >= 0; p = nextp[p])
          copy_floats(xw + static_cast<int64_t>(p) * g, pb.data() + r * gp, g);
    }
  });
}

// x (B, T, D), ids (B, T), w (D, G), dxw (T, B, G) -> dx (B, T, D) (each id's gradient at
// its first position, zeros elsewhere), dw (D, G). Each block of groups sums its groups'
// dxw rows, multiplies the sums by w^T and writes its groups' rows of dx (every position
// is in one group); then dw = x_u^T sums over all groups.
template <typename Pool>
void rows_project_bwd(Pool& pool, int64_t batch, int64_t steps, int64_t width, int64_t g,
                      const float* x, const int32_t* ids, const float* w, const float* dxw,
                      float* dx, float* dw) {
  const Groups groups = group_ids(ids, batch, steps);
  const std::vector<int32_t> next = chains(groups);
  const int64_t n = static_cast<int64_t>(groups.first.size());
  const int64_t gp = padded(g), dp = padded(width);
  const Padded wt = columns_t(w, width, g, 0, g);  // (G, dp)
  float* sp = scratch(0, round_rows(n) * gp);      // each group's sum of dxw, (groups, gp)
  float* xup = scratch(1, n * width);               // each group's row of x, (groups, D)
  const int32_t* firstp = groups.first.data();
  const int32_t* nextp = next.data();
  parallel_blocks(pool, n, 4 * kRows, [=, &wt](int64_t g0, int64_t count) {
    std::vector<float> db(kRows * dp);
    for (int64_t r0 = g0; r0 < g0 + count; r0 += kRows) {
      const int64_t rows = std::min(kRows, g0 + count - r0);
      float* sb = sp + r0 * gp;
      // the next block's rows of x, dxw and dx
      for (int64_t r = r0 + kRows; r < std::min(r0 + 2 * kRows, g0 + count); ++r) {
        prefetch_rows(row_at(x, firstp[r], batch, steps, width), 0, 1, width);
        for (int32_t p = firstp[r]; p >= 0; p = nextp[p]) {
          prefetch_rows(dxw, p, 1, g);
          prefetch_rows_for_write(row_at(dx, p, batch, steps, width), 0, 1, width);
        }
      }
      std::fill(sb, sb + kRows * gp, 0.0f);
      for (int64_t r = 0; r < rows; ++r) {
        float* sr = sb + r * gp;
        for (int32_t p = firstp[r0 + r]; p >= 0; p = nextp[p]) {
          const float* src = dxw + static_cast<int64_t>(p) * g;
          for (int64_t j = 0; j < g; ++j) sr[j] += src[j];
        }
        copy_floats(xup + (r0 + r) * width, row_at(x, firstp[r0 + r], batch, steps, width),
                    width);
      }
      matmul_rows(db.data(), dp, sb, gp, wt, g);
      for (int64_t r = 0; r < rows; ++r) {
        const int32_t first = firstp[r0 + r];
        copy_floats(row_at(dx, first, batch, steps, width), db.data() + r * dp, width);
        for (int32_t p = nextp[first]; p >= 0; p = nextp[p]) {
          float* dst = row_at(dx, p, batch, steps, width);
          std::fill(dst, dst + width, 0.0f);
        }
      }
    }
  });
  // dw = x_u^T sums: each task takes kSlab rows of dw and runs over the groups kChunk at a
  // time, so a chunk of sums is read from memory once per task
  constexpr int64_t kSlab = 8 * kRows, kChunk = 256;
  std::vector<float> dwp(round_rows(width) * gp);
  float* dwpp = dwp.data();
  parallel_blocks(pool, round_rows(width), kSlab, [=](int64_t d0, int64_t count) {
    for (int64_t c0 = 0; c0 < std::max<int64_t>(n, 1); c0 += kChunk) {
      const int64_t k = std::min(kChunk, n - c0);
      for (int64_t d = d0; d < d0 + count; d += kRows) {
        // x_u^T's rows d.. d + kRows: x_u's columns, at stride width along the groups
        float* out = dwpp + d * gp;
        const float* xr = xup + c0 * width + d;
        if (d + kRows > width) {  // the last block, rows past width zero
          if (c0 == 0) std::fill(out, out + kRows * gp, 0.0f);
          float tail[kRows * kChunk] = {};
          for (int64_t i = 0; i < k; ++i)
            for (int64_t r = 0; d + r < width; ++r) tail[r * kChunk + i] = xr[i * width + r];
          matmul_into<true>(out, gp, tail, kChunk, 1, sp + c0 * gp, gp, k);
        } else if (c0 == 0) {
          matmul_into<false>(out, gp, xr, 1, width, sp + c0 * gp, gp, k);
        } else {
          matmul_into<true>(out, gp, xr, 1, width, sp + c0 * gp, gp, k);
        }
      }
    }
  });
  for (int64_t d = 0; d < width; ++d) copy_floats(dw + d * g, dwpp + d * gp, g);
}

ffi::Error check_rows(ffi::Buffer<ffi::F32>& x, ffi::Buffer<ffi::S32>& ids,
                      ffi::Buffer<ffi::F32>& w) {
  auto d = x.dimensions();
  if (d.size() != 3 || ids.dimensions().size() != 2 || ids.dimensions()[0] != d[0] ||
      ids.dimensions()[1] != d[1] || w.dimensions().size() != 2 || w.dimensions()[0] != d[2])
    return ffi::Error::InvalidArgument("rows_project: x (B, T, D), ids (B, T), w (D, G)");
  return ffi::Error::Success();
}

ffi::Error RowsProject(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::S32> ids,
                       ffi::Buffer<ffi::F32> w, ffi::ResultBuffer<ffi::F32> xw) {
  if (auto e = check_rows(x, ids, w); e.failure()) return e;
  auto d = x.dimensions();
  rows_project(pool, d[0], d[1], d[2], w.dimensions()[1], x.typed_data(), ids.typed_data(),
               w.typed_data(), xw->typed_data());
  return ffi::Error::Success();
}

ffi::Error RowsProjectBwd(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                          ffi::Buffer<ffi::S32> ids, ffi::Buffer<ffi::F32> w,
                          ffi::Buffer<ffi::F32> dxw, ffi::ResultBuffer<ffi::F32> dx,
                          ffi::ResultBuffer<ffi::F32> dw) {
  if (auto e = check_rows(x, ids, w); e.failure()) return e;
  auto d = x.dimensions();
  rows_project_bwd(pool, d[0], d[1], d[2], w.dimensions()[1], x.typed_data(),
                   ids.typed_data(), w.typed_data(), dxw.typed_data(), dx->typed_data(),
                   dw->typed_data());
  return ffi::Error::Success();
}

// ---------------------------------------------------------------------------------------
// The max over time of a sequence's outputs, read from the time-major hs (T, B, H) that
// the recurrences write: jnp.max(x, axis=1) of x (B, T, H) = hs transposed (XLA would
// transpose, reduce, and for the gradient compare, count and transpose back), and its
// gradient as autodiff gives it, split among the ties: dhs = ct / count where hs == max, 0
// elsewhere (count: the steps equal to the max; XLA turns autodiff's product with the 0/1
// indicator into this select).

// hs (T, N) -> max (N) (NaN if any step is NaN, as numpy's max), count (N) of hs == max.
void max_over_time(int64_t steps, int64_t n, const float* hs, float* max, float* count) {
  copy_floats(max, hs, n);
  for (int64_t t = 1; t < steps; ++t) {
    const float* x = hs + t * n;
    for (int64_t i = 0; i < n; ++i) max[i] = (x[i] > max[i] || x[i] != x[i]) ? x[i] : max[i];
  }
  std::fill(count, count + n, 0.0f);
  for (int64_t t = 0; t < steps; ++t) {
    const float* x = hs + t * n;
    for (int64_t i = 0; i < n; ++i) count[i] += x[i] == max[i] ? 1.0f : 0.0f;
  }
}

ffi::Error MaxOverTime(ffi::Buffer<ffi::F32> hs, ffi::ResultBuffer<ffi::F32> max,
                       ffi::ResultBuffer<ffi::F32> count) {
  auto d = hs.dimensions();
  if (d.size() < 1 || max->element_count() * d[0] != hs.element_count())
    return ffi::Error::InvalidArgument("max_over_time: hs (T, ...), max (...)");
  max_over_time(d[0], max->element_count(), hs.typed_data(), max->typed_data(),
                count->typed_data());
  return ffi::Error::Success();
}

ffi::Error MaxOverTimeBwd(ffi::Buffer<ffi::F32> hs, ffi::Buffer<ffi::F32> max,
                          ffi::Buffer<ffi::F32> count, ffi::Buffer<ffi::F32> ct,
                          ffi::ResultBuffer<ffi::F32> dhs) {
  const int64_t n = max.element_count(), steps = hs.dimensions().size() ? hs.dimensions()[0] : 0;
  if (steps * n != hs.element_count() || count.element_count() != n ||
      ct.element_count() != n || dhs->element_count() != hs.element_count())
    return ffi::Error::InvalidArgument(
        "max_over_time_bwd: hs (T, ...), max, count and ct (...), dhs as hs");
  std::vector<float> q(n);
  for (int64_t i = 0; i < n; ++i) q[i] = ct.typed_data()[i] / count.typed_data()[i];
  for (int64_t t = 0; t < steps; ++t) {
    const float* x = hs.typed_data() + t * n;
    float* out = dhs->typed_data() + t * n;
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] == max.typed_data()[i] ? q[i] : 0.0f;
  }
  return ffi::Error::Success();
}

using F32 = ffi::Buffer<ffi::F32>;
using R32 = ffi::ResultBuffer<ffi::F32>;

}  // namespace


XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchLstmFwd, LstmFwd,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>()
                                  .Attr<int32_t>("gate"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchLstmInfer, LstmInfer,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Ret<F32>().Attr<int32_t>("gate"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchLstmBwd, LstmBwd,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Arg<F32>().Ret<F32>().Attr<int32_t>("gate"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchGruFwd, GruFwd,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Ret<F32>().Ret<F32>().Ret<F32>().Ret<F32>()
                                  .Attr<int32_t>("gate"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchGruInfer, GruInfer,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Ret<F32>().Attr<int32_t>("gate"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchEmbeddingAdam, EmbeddingAdam,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Arg<ffi::Buffer<ffi::S32>>().Arg<F32>()
                                  .Arg<F32>().Ret<F32>().Ret<F32>().Ret<F32>()
                                  .Attr<float>("beta_1").Attr<float>("one_minus_beta_1")
                                  .Attr<float>("beta_2").Attr<float>("one_minus_beta_2")
                                  .Attr<float>("epsilon"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchGruBwd, GruBwd,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<F32>().Arg<F32>()
                                  .Arg<F32>().Arg<F32>().Arg<F32>().Ret<F32>().Ret<F32>()
                                  .Attr<int32_t>("gate"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchGatherRows, GatherRows,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<F32>()
                                  .Arg<ffi::Buffer<ffi::S32>>().Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchMaxOverTime, MaxOverTime,
                              ffi::Ffi::Bind().Arg<F32>().Ret<F32>().Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchMaxOverTimeBwd, MaxOverTimeBwd,
                              ffi::Ffi::Bind().Arg<F32>().Arg<F32>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchRowsProject, RowsProject,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<F32>()
                                  .Arg<ffi::Buffer<ffi::S32>>().Arg<F32>().Ret<F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(RnnbenchRowsProjectBwd, RowsProjectBwd,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<F32>()
                                  .Arg<ffi::Buffer<ffi::S32>>().Arg<F32>().Arg<F32>()
                                  .Ret<F32>().Ret<F32>());
