// Dense f32 linear algebra for the SVD merges (src/tensor/linalg): a packed, cache-blocked matrix product with an
// AVX-512 12 x 32 register tile, an in-place matrix inverse by blocked Gauss-Jordan elimination with partial pivoting
// whose work is almost all that product, and the scaled Newton iteration for the orthogonal polar factor of a square
// matrix built on it; in f64, a blocked Householder reduction to tridiagonal form (LAPACK dsytrd's panel scheme) and
// the top-k eigenpairs of a symmetric matrix on it. Our own code (the blocking follows the published BLIS/GotoBLAS
// scheme; no code copied).
//
// Determinism: every output element is accumulated in the same order whatever the thread count (threads split the
// output into column or row ranges; the k blocking is fixed), so results are the same bits at 1 or 2 threads.
// Compiled into the same addon as gta.cc (scripts/build-native.mjs); registered by registerDense().

#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#include <immintrin.h>
#define WK_DENSE 1
#endif

#ifdef WK_DENSE
namespace {

constexpr int MR = 12;   // rows of the register tile (broadcasts of A)
constexpr int NR = 32;   // columns of the register tile (two vectors of B)
constexpr int KC = 256;  // depth of a packed block (a B sliver of KC x NR is 32 KB: stays in L1)
constexpr int MC = 480;  // rows of a packed A block (MC x KC floats: 480 KB, in L2)
constexpr int NC = 4096; // columns of a packed B block (KC x NC floats: 4 MB, in L3)

// C[i][j] for i < m, j < n (row-major, leading dimension ldc); op(A) is m x k, op(B) is k x n.
struct Gemm {
  int64_t m, n, k;
  const float* a;
  int64_t lda;
  bool ta;
  const float* b;
  int64_t ldb;
  bool tb;
  float alpha, beta;
  float* c;
  int64_t ldc;
  float opA(int64_t i, int64_t p) const { return ta ? a[p * lda + i] : a[i * lda + p]; }
};

// The packing buffers of one worker, grown on demand and kept by the calling thread across calls.
struct Buffers {
  std::vector<float> ap, bp;
  float* alignedA(size_t n) { return aligned(ap, n); }
  float* alignedB(size_t n) { return aligned(bp, n); }
  static float* aligned(std::vector<float>& v, size_t n) {
    if (v.size() < n + 16) v.resize(n + 16);
    uintptr_t p = reinterpret_cast<uintptr_t>(v.data());
    return reinterpret_cast<float*>((p + 63) & ~uintptr_t(63));
  }
};

// Pack rows [i0, i0 + mc) x depth [p0, p0 + kc) of alpha·op(A) into MR-row slivers: ap[s][p][r], zero past m.
void packA(const Gemm& g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* ap) {
  for (int64_t s = 0; s < mc; s += MR) {
    float* dst = ap + s * kc;
    const int64_t rows = std::min<int64_t>(MR, mc - s);
    if (!g.ta) {
      for (int r = 0; r < MR; r++) {
        if (r >= rows) {
          for (int64_t p = 0; p < kc; p++) dst[p * MR + r] = 0.0f;
          continue;
        }
        const float* src = g.a + (i0 + s + r) * g.lda + p0;
        for (int64_t p = 0; p < kc; p++) dst[p * MR + r] = g.alpha * src[p];
      }
    } else {
      for (int64_t p = 0; p < kc; p++) {
        const float* src = g.a + (p0 + p) * g.lda + i0 + s;
        for (int r = 0; r < MR; r++) dst[p * MR + r] = r < rows ? g.alpha * src[r] : 0.0f;
      }
    }
  }
}

// Column slivers of a block of nc output columns: the first `shift` columns (0: none) as a sliver of their own, so
// that the others start on a cache line of C (see gemmRange), then NR at a time.
struct Slivers {
  int64_t nc, shift;
  int64_t count() const { return shift == 0 ? (nc + NR - 1) / NR : 1 + (nc - shift + NR - 1) / NR; }
  int64_t start(int64_t s) const { return shift == 0 ? s * NR : s == 0 ? 0 : shift + (s - 1) * NR; }
  int64_t width(int64_t s) const { return std::min<int64_t>(s == 0 && shift != 0 ? shift : NR, nc - start(s)); }
};

// Pack depth [p0, p0 + kc) x columns [j0, j0 + nc) of op(B) into NR-column slivers (the grid of sl): bp[s][p][c], zero
// past each sliver's width.
void packB(const Gemm& g, int64_t p0, int64_t kc, int64_t j0, const Slivers& sl, float* bp) {
  for (int64_t si = 0; si < sl.count(); si++) {
    const int64_t s = sl.start(si);
    float* dst = bp + si * NR * kc;
    const int64_t cols = sl.width(si);
    if (!g.tb) {
      const __mmask16 m0 = cols >= 16 ? 0xffff : static_cast<__mmask16>((1u << cols) - 1);
      const __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : static_cast<__mmask16>((1u << (cols - 16)) - 1);
      for (int64_t p = 0; p < kc; p++) {
        const float* src = g.b + (p0 + p) * g.ldb + j0 + s;
        _mm512_store_ps(dst + p * NR, _mm512_maskz_loadu_ps(m0, src));
        _mm512_store_ps(dst + p * NR + 16, _mm512_maskz_loadu_ps(m1, src + 16));
      }
    } else {
      for (int c = 0; c < NR; c++) {
        if (c >= cols) {
          for (int64_t p = 0; p < kc; p++) dst[p * NR + c] = 0.0f;
          continue;
        }
        const float* src = g.b + (j0 + s + c) * g.ldb + p0;
        for (int64_t p = 0; p < kc; p++) dst[p * NR + c] = src[p];
      }
    }
  }
}

// acc = A sliver (kc x MR: packed, ap[p·MR + r], or, with Direct, rows of A itself at a[r·lda + p]) · Bp sliver
// (kc x NR); then C tile (rows x cols valid) = acc + (first ? beta·C : C). A direct sliver's rows past `rows` repeat
// its last row (read, never stored).
template <bool Direct>
void kernel(int64_t kc, const float* a, int64_t lda, const float* bp, float* c, int64_t ldc, int rows, int cols, bool first, float beta) {
  // the C tile is read once at the end: fetch it while the products run (short products are otherwise bound by
  // its cache misses)
  for (int r = 0; r < rows; r++) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 16), _MM_HINT_T0);
  }
  const float* row[MR];
  if (Direct)
    for (int r = 0; r < MR; r++) row[r] = a + std::min(r, rows - 1) * lda;
  __m512 acc[MR][2];
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; p++) {
    const __m512 b0 = _mm512_load_ps(bp + p * NR);
    const __m512 b1 = _mm512_load_ps(bp + p * NR + 16);
#pragma GCC unroll 12
    for (int r = 0; r < MR; r++) {
      const __m512 x = _mm512_set1_ps(Direct ? row[r][p] : a[p * MR + r]);
      acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
    }
  }
  const __mmask16 m0 = cols >= 16 ? 0xffff : static_cast<__mmask16>((1u << cols) - 1);
  const __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : static_cast<__mmask16>((1u << (cols - 16)) - 1);
  const bool zeroBeta = first && beta == 0.0f;
  const __m512 vb = _mm512_set1_ps(beta);
  for (int r = 0; r < rows; r++) {
    float* out = c + r * ldc;
    __m512 v0 = acc[r][0], v1 = acc[r][1];
    if (!zeroBeta) {
      __m512 c0 = _mm512_maskz_loadu_ps(m0, out), c1 = _mm512_maskz_loadu_ps(m1, out + 16);
      if (first && beta != 1.0f) {
        c0 = _mm512_mul_ps(c0, vb);
        c1 = _mm512_mul_ps(c1, vb);
      }
      v0 = _mm512_add_ps(c0, v0);
      v1 = _mm512_add_ps(c1, v1);
    }
    _mm512_mask_storeu_ps(out, m0, v0);
    if (m1) _mm512_mask_storeu_ps(out + 16, m1, v1);
  }
}

// Narrow products (few output columns) read A in place instead of packing it: each packed A element would serve
// only a few column slivers, and packing a 64 MB A cost as much as the products (4096² x 128: 130 -> ~170 GFLOP/s).
constexpr int64_t DIRECT_A_MAX_COLUMNS = 256;

// One worker's share: output rows [r0, r1) x columns [c0, c1).
void gemmRange(const Gemm& g, int64_t r0, int64_t r1, int64_t c0, int64_t c1, Buffers& buf) {
  for (int64_t jc = c0; jc < c1; jc += NC) {
    const int64_t nc = std::min<int64_t>(NC, c1 - jc);
    // C rows off a cache line (every JS array starts 16 bytes into one): a first narrow sliver up to the line, so
    // that the tiles' vector stores do not split across two lines (4096³ into such a C: 187 -> 225 GFLOP/s per
    // thread); rows a whole number of lines apart only, and not for narrow blocks (an extra sliver there cost more)
    const uintptr_t off = reinterpret_cast<uintptr_t>(g.c + jc) % 64;
    const bool shifted = off != 0 && off % sizeof(float) == 0 && (g.ldc * sizeof(float)) % 64 == 0 && nc > DIRECT_A_MAX_COLUMNS;
    const Slivers sl{nc, shifted ? static_cast<int64_t>((64 - off) / sizeof(float)) : 0};
    for (int64_t pc = 0; pc < g.k; pc += KC) {
      const int64_t kc = std::min<int64_t>(KC, g.k - pc);
      float* bp = buf.alignedB(static_cast<size_t>(sl.count() * NR * kc));
      packB(g, pc, kc, jc, sl, bp);
      const bool direct = !g.ta && g.alpha == 1.0f && nc <= DIRECT_A_MAX_COLUMNS;
      for (int64_t ic = r0; ic < r1; ic += MC) {
        const int64_t mc = std::min<int64_t>(MC, r1 - ic);
        const int64_t mcPad = (mc + MR - 1) / MR * MR;
        float* ap = nullptr;
        if (!direct) {
          ap = buf.alignedA(static_cast<size_t>(mcPad * kc));
          packA(g, ic, mc, pc, kc, ap);
        }
        for (int64_t si = 0; si < sl.count(); si++) {
          const int64_t jr = sl.start(si);
          const int cols = static_cast<int>(sl.width(si));
          const float* bs = bp + si * NR * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int rows = static_cast<int>(std::min<int64_t>(MR, mc - ir));
            float* ct = g.c + (ic + ir) * g.ldc + jc + jr;
            if (direct)
              kernel<true>(kc, g.a + (ic + ir) * g.lda + pc, g.lda, bs, ct, g.ldc, rows, cols, pc == 0, g.beta);
            else
              kernel<false>(kc, ap + ir * kc, 0, bs, ct, g.ldc, rows, cols, pc == 0, g.beta);
          }
        }
      }
    }
  }
}

thread_local Buffers localBuffers[2];

// C = alpha·op(A)·op(B) + beta·C on up to `threads` threads (1 or 2), split over output columns (or rows when the
// output is narrow); k = 0 scales C by beta.
void gemm(const Gemm& g, int threads) {
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) {
    for (int64_t i = 0; i < g.m; i++)
      for (int64_t j = 0; j < g.n; j++) g.c[i * g.ldc + j] = g.beta == 0.0f ? 0.0f : g.beta * g.c[i * g.ldc + j];
    return;
  }
  const double work = static_cast<double>(g.m) * static_cast<double>(g.n) * static_cast<double>(g.k);
  if (threads < 2 || work < 4e6) {
    gemmRange(g, 0, g.m, 0, g.n, localBuffers[0]);
    return;
  }
  Buffers& second = localBuffers[1];
  std::thread t;
  if (g.n >= 2 * NR && g.n >= g.m / 4) {
    const int64_t half = (g.n / 2 + NR - 1) / NR * NR;
    t = std::thread([&] { gemmRange(g, 0, g.m, half, g.n, second); });
    gemmRange(g, 0, g.m, 0, half, localBuffers[0]);
  } else {
    const int64_t half = (g.m / 2 + MR - 1) / MR * MR;
    t = std::thread([&] { gemmRange(g, half, g.m, 0, g.n, second); });
    gemmRange(g, 0, half, 0, g.n, localBuffers[0]);
  }
  t.join();
}

// ---------------------------------------------------------------------------------------------------------------
// Inverse: Gauss-Jordan elimination with partial pivoting, in place, in panels of NB columns. Unblocked GJ applies,
// for each column k, a row swap and then E_k (scale row k by 1/pivot, subtract multiples of it from every other row)
// to every column, storing the inverse's column k where the identity's column would be. Over a panel K of columns
// this is one row permutation and one matrix M that differs from I only in columns K, and the in-place panel ends
// holding M[:, K]; every other column j then becomes A[:, j] + (M[:, K] − I[:, K])·A[K, j]: one product. Panels are
// factored the same way in leaves of LEAF columns. At the end the row swaps are undone as column swaps.

constexpr int64_t NB = 256;
constexpr int64_t LEAF = 32;

struct Inverse {
  float* a;
  int64_t n;
  int threads;
  std::vector<int64_t> perm;  // perm[k]: the row swapped with row k at step k
  std::vector<float> z, r;    // M[:, K] − I[:, K] (n x w) and the old rows K (w x n)
  std::vector<float> leaf;    // a leaf's columns, n x LEAF
  bool singular = false;
};

// Two threads meeting at a point, spinning (the waits here are microseconds).
struct SpinBarrier {
  std::atomic<int> arrived{0};
  std::atomic<int> phase{0};
  void wait() {
    const int ph = phase.load(std::memory_order_acquire);
    if (arrived.fetch_add(1, std::memory_order_acq_rel) == 1) {
      arrived.store(0, std::memory_order_relaxed);
      phase.store(ph + 1, std::memory_order_release);
    } else {
      while (phase.load(std::memory_order_acquire) == ph) _mm_pause();
    }
  }
};

// The first largest |L[i][c]| over rows [i0, i1) of the leaf buffer (n x LEAF); at = -1 for an empty range.
void pivotSearch(const float* L, int64_t i0, int64_t i1, int64_t c, float* best, int64_t* at) {
  *at = -1;
  *best = 0;
  for (int64_t i = i0; i < i1; i++) {
    const float x = std::fabs(L[i * LEAF + c]);
    if (*at < 0) {
      *best = x;
      *at = i;
    } else if (x > *best) {
      *best = x;
      *at = i;
    }
  }
}

// Step k's elimination of rows [i0, i1) except k (row k of the leaf holds the scaled pivot row r0|r1), then the
// next column's pivot candidate among those rows at or past k + 1 (none when c + 1 == w).
void eliminateRows(float* L, int64_t i0, int64_t i1, int64_t k, int64_t c, int64_t w, __m512 r0, __m512 r1, float* best, int64_t* at) {
  *at = -1;
  *best = 0;
  const bool next = c + 1 < w;
  // row[c] is set to 0 before the update: by a masked load (a scalar store there would stall the vector load
  // that follows it: store forwarding cannot split a vector)
  const __mmask16 keep0 = c < 16 ? static_cast<__mmask16>(~(1u << c)) : 0xffff;
  const __mmask16 keep1 = c >= 16 ? static_cast<__mmask16>(~(1u << (c - 16))) : 0xffff;
  for (int64_t i = i0; i < i1; i++) {
    if (i == k) continue;
    float* row = L + i * LEAF;
    const float f = row[c];
    if (f != 0.0f) {
      const __m512 vf = _mm512_set1_ps(f);
      _mm512_store_ps(row, _mm512_sub_ps(_mm512_maskz_load_ps(keep0, row), _mm512_mul_ps(vf, r0)));
      _mm512_store_ps(row + 16, _mm512_sub_ps(_mm512_maskz_load_ps(keep1, row + 16), _mm512_mul_ps(vf, r1)));
    }
    if (next && i > k) {
      const float x = std::fabs(row[c + 1]);
      if (*at < 0 || x > *best) {
        *best = x;
        *at = i;
      }
    }
  }
}

// The unblocked Gauss-Jordan steps k0 .. k1 - 1 on the leaf's columns (buffer L, n x LEAF), then their row swaps on
// the rest of a.
// With two threads the rows are split in halves: thread 0 picks the pivot (from both halves' candidates, the first
// largest as one scan would), swaps and scales, then both eliminate their halves; the same bits either way.
void leafSteps(Inverse& v, int64_t k0, int64_t k1, float* L) {
  const int64_t n = v.n, w = k1 - k0;
  float* a = v.a;
  const bool two = v.threads >= 2 && n >= 512;
  const int64_t h = two ? n / 2 : n;
  SpinBarrier ready, done;
  struct Shared {
    __m512 r0, r1;
    int64_t k = 0;
    bool stop = false;
    float best1 = 0;
    int64_t at1 = -1;
  } sh;
  auto helper = [&] {
    for (int64_t k = k0; k < k1; k++) {
      ready.wait();
      if (sh.stop) return;
      eliminateRows(L, h, n, k, k - k0, w, sh.r0, sh.r1, &sh.best1, &sh.at1);
      done.wait();
    }
  };
  std::thread t;
  if (two) t = std::thread(helper);
  float best0;
  int64_t at0;
  pivotSearch(L, k0, h, 0, &best0, &at0);
  if (two) pivotSearch(L, std::max(h, k0), n, 0, &sh.best1, &sh.at1);
  for (int64_t k = k0; k < k1; k++) {
    const int64_t c = k - k0;
    int64_t p = at0;
    float best = best0;
    if (two && sh.at1 >= 0 && (p < 0 || sh.best1 > best)) {
      p = sh.at1;
      best = sh.best1;
    }
    if (p < 0 || !(best > 0.0f) || !std::isfinite(best)) {
      v.singular = true;
      sh.stop = true;
      if (two) {
        ready.wait();
        t.join();
      }
      return;
    }
    v.perm[k] = p;
    if (p != k) std::swap_ranges(L + k * LEAF, L + (k + 1) * LEAF, L + p * LEAF);
    float* rowk = L + k * LEAF;
    const float d = 1.0f / rowk[c];
    rowk[c] = 1.0f;
    const __m512 vd = _mm512_set1_ps(d);
    sh.r0 = _mm512_mul_ps(_mm512_load_ps(rowk), vd);
    sh.r1 = _mm512_mul_ps(_mm512_load_ps(rowk + 16), vd);
    _mm512_store_ps(rowk, sh.r0);
    _mm512_store_ps(rowk + 16, sh.r1);
    if (two) ready.wait();
    eliminateRows(L, 0, h, k, c, w, sh.r0, sh.r1, &best0, &at0);
    if (two) done.wait();
  }
  if (two) t.join();
  // the same row swaps on the rest of each row (columns outside the leaf), in order, the columns split between the
  // threads: out of the steps above, where they were memory-bound serial work
  auto swapRows = [&](int64_t j0, int64_t j1) {
    for (int64_t k = k0; k < k1; k++) {
      const int64_t p = v.perm[k];
      if (p == k) continue;
      if (j0 < k0) std::swap_ranges(a + k * n + j0, a + k * n + std::min(j1, k0), a + p * n + j0);
      if (j1 > k1) std::swap_ranges(a + k * n + std::max(j0, k1), a + k * n + j1, a + p * n + std::max(j0, k1));
    }
  };
  if (two) {
    std::thread s2(swapRows, n / 2, n);
    swapRows(0, n / 2);
    s2.join();
  } else {
    swapRows(0, n);
  }
}

// Columns [k0, k1) within the scope [s0, s1) (k0 >= s0, k1 <= s1): the leaf steps on the leaf's columns, then the
// rest of the scope updated by one product per side. Row swaps always move whole rows.
void gjColumns(Inverse& v, int64_t s0, int64_t s1, int64_t k0, int64_t k1) {
  const int64_t n = v.n;
  float* a = v.a;
  const int64_t w = k1 - k0;
  if (w > LEAF) {
    const int64_t mid = k0 + ((w / 2 + LEAF - 1) / LEAF) * LEAF;
    gjColumns(v, k0, k1, k0, mid);
    if (v.singular) return;
    gjColumns(v, k0, k1, mid, k1);
    if (v.singular) return;
  } else {
    // the leaf's columns in a contiguous n x 32 buffer (zero padded): two vectors per row
    v.leaf.resize(static_cast<size_t>(n * LEAF + 16));
    float* L = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.leaf.data()) + 63) & ~uintptr_t(63));
    const __mmask16 m0 = w >= 16 ? 0xffff : static_cast<__mmask16>((1u << w) - 1);
    const __mmask16 m1 = w >= 32 ? 0xffff : w <= 16 ? 0 : static_cast<__mmask16>((1u << (w - 16)) - 1);
    for (int64_t i = 0; i < n; i++) {
      _mm512_store_ps(L + i * LEAF, _mm512_maskz_loadu_ps(m0, a + i * n + k0));
      _mm512_store_ps(L + i * LEAF + 16, _mm512_maskz_loadu_ps(m1, a + i * n + k0 + 16));
    }
    leafSteps(v, k0, k1, L);
    if (v.singular) return;
    for (int64_t i = 0; i < n; i++) {
      _mm512_mask_storeu_ps(a + i * n + k0, m0, _mm512_load_ps(L + i * LEAF));
      if (m1) _mm512_mask_storeu_ps(a + i * n + k0 + 16, m1, _mm512_load_ps(L + i * LEAF + 16));
    }
  }
  if (s0 == k0 && s1 == k1) return;
  // the rest of the scope: A[:, J] += (M[:, K] − I[:, K])·R with R = A[K, J] as it was (rows K are overwritten)
  v.z.resize(static_cast<size_t>(n * w));
  float* z = v.z.data();
  for (int64_t i = 0; i < n; i++) {
    memcpy(z + i * w, a + i * n + k0, sizeof(float) * w);
    if (i >= k0 && i < k1) z[i * w + (i - k0)] -= 1.0f;
  }
  const int64_t sides[2][2] = {{s0, k0}, {k1, s1}};
  for (const auto& side : sides) {
    const int64_t j0 = side[0], j1 = side[1];
    if (j1 <= j0) continue;
    v.r.resize(static_cast<size_t>(w * (j1 - j0)));
    for (int64_t q = 0; q < w; q++) memcpy(v.r.data() + q * (j1 - j0), a + (k0 + q) * n + j0, sizeof(float) * (j1 - j0));
    Gemm g{n, j1 - j0, w, z, w, false, v.r.data(), j1 - j0, false, 1.0f, 1.0f, a + j0, n};
    gemm(g, v.threads);
  }
}

// In-place inverse of the n x n row-major matrix a; false (a left partly transformed) when a pivot is 0 or not finite,
// or (checkFinite) an entry of the result is not finite.
bool invert(float* a, int64_t n, int threads, bool checkFinite = true) {
  Inverse v{a, n, threads, std::vector<int64_t>(static_cast<size_t>(n)), {}, {}};
  for (int64_t k0 = 0; k0 < n; k0 += NB) {
    gjColumns(v, 0, n, k0, std::min(n, k0 + NB));
    if (v.singular) return false;
  }
  // undo the row swaps as column swaps, last first: one gather per row
  std::vector<int64_t> col(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; j++) col[j] = j;
  for (int64_t k = n - 1; k >= 0; k--) std::swap(col[k], col[v.perm[k]]);
  std::vector<float> tmp(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) {
    float* row = a + i * n;
    for (int64_t j = 0; j < n; j++) tmp[j] = row[col[j]];
    memcpy(row, tmp.data(), sizeof(float) * n);
  }
  if (checkFinite)
    for (int64_t i = 0; i < n * n; i++)
      if (!std::isfinite(a[i])) return false;
  return true;
}

// A float buffer on a 64-byte (cache line) boundary: the inverse's products store into its rows, and with rows
// 16 bytes off a line (new float[] here) every vector store of a C tile split across two lines (a 4096³ product:
// 186 GFLOP/s on one thread with such a C, 236 with an aligned one).
struct AlignedFloats {
  float* data = nullptr;
  explicit AlignedFloats(size_t count) { data = static_cast<float*>(aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64)); }
  ~AlignedFloats() { free(data); }
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
};

// ---------------------------------------------------------------------------------------------------------------
// Polar factor of a square matrix by the scaled Newton iteration X <- (ζX + X⁻ᵀ/ζ)/2 (Higham 1986) with the
// suboptimal scaling of Byers & Xu (2008): from α ≈ σ_max and β ≈ σ_min (power estimates of ‖X‖₂ and ‖X⁻¹‖₂ on X
// and the first inverse), ζ₀ = 1/sqrt(αβ), ζ₁ = sqrt(2·sqrt(αβ)/(α+β)), ζ_k = 1/sqrt((ζ_{k-1} + 1/ζ_{k-1})/2), then
// unscaled steps once ζ is within 1e-3 of 1. Each step is one inverse (about 2n³ flops) and a transposed
// combination; 5 steps on a 4096² TSV-M U_cat (condition ~1e4). The error after a step is about half the square of
// its relative change (quadratic convergence) plus (ζ − 1)²/2, and the iteration stops when that is below the
// tolerance. The (1,∞)-norm bound sqrt(‖X‖₁‖X‖∞·‖X⁻¹‖₁‖X⁻¹‖∞) >= κ₂ decides whether to run at all.

constexpr int64_t TILE = 64;
// power steps of each norm estimate of the Newton scaling (two passes over the matrix each)
constexpr int POWER_STEPS = 4;

struct PolarRun {
  int iterations = 0;
  double delta = 0;      // last ‖X_{k+1} − X_k‖_F / ‖X_{k+1}‖_F
  double condition = 0;  // the (1,∞)-norm bound on κ₂(A)
};

// Runs body(b) for row blocks b of TILE rows on up to two threads (each block's result is kept per block, so that
// sums over blocks in block order are the same at any thread count).
template <typename F>
void overBlocks(int64_t n, int threads, F body) {
  const int64_t blocks = (n + TILE - 1) / TILE;
  auto run = [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; b++) body(b, b * TILE, std::min(n, (b + 1) * TILE));
  };
  if (threads >= 2 && blocks >= 2) {
    std::thread t(run, blocks / 2, blocks);
    run(0, blocks / 2);
    t.join();
  } else {
    run(0, blocks);
  }
}

// sqrt(‖a‖₁·‖a‖∞) of an n x n matrix (an upper bound on its 2-norm), sums in f64.
double normBound(const float* a, int64_t n, int threads) {
  const int64_t blocks = (n + TILE - 1) / TILE;
  std::vector<double> rowMax(static_cast<size_t>(blocks)), cols(static_cast<size_t>(blocks * n));
  overBlocks(n, threads, [&](int64_t b, int64_t i0, int64_t i1) {
    double* c = cols.data() + b * n;
    double rm = 0;
    for (int64_t i = i0; i < i1; i++) {
      const float* row = a + i * n;
      double r = 0;
      for (int64_t j = 0; j < n; j++) {
        const double x = std::fabs(static_cast<double>(row[j]));
        r += x;
        c[j] += x;
      }
      rm = std::max(rm, r);
    }
    rowMax[b] = rm;
  });
  double inf = 0, one = 0;
  for (int64_t b = 0; b < blocks; b++) inf = std::max(inf, rowMax[b]);
  for (int64_t j = 0; j < n; j++) {
    double s = 0;
    for (int64_t b = 0; b < blocks; b++) s += cols[b * n + j];
    one = std::max(one, s);
  }
  return std::sqrt(one * inf);
}

// Estimate of ‖a‖₂ (from below) for an n x n matrix: `iterations` power steps v <- aᵀ(a·v)/‖·‖ from a fixed start,
// f64 sums; a·v split by rows and aᵀu by columns between the threads (the same sums at any thread count).
double spectralNorm(const float* a, int64_t n, int iterations, int threads) {
  std::vector<double> v(static_cast<size_t>(n)), u(static_cast<size_t>(n)), w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) v[i] = 1 + std::fmod(static_cast<double>(i) * 0.6180339887, 1.0);
  double norm = 0;
  for (double x : v) norm += x * x;
  for (double& x : v) x /= std::sqrt(norm);
  double sigma = 0;
  auto split = [&](auto&& body) {
    if (threads >= 2 && n >= 256) {
      const int64_t half = (n / 2 + 7) / 8 * 8;
      std::thread t([&] { body(half, n); });
      body(0, half);
      t.join();
    } else {
      body(0, n);
    }
  };
  for (int it = 0; it < iterations; it++) {
    split([&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; i++) {
        const float* row = a + i * n;
        __m512d s8 = _mm512_setzero_pd();
        int64_t j = 0;
        for (; j + 8 <= n; j += 8) s8 = _mm512_add_pd(s8, _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(row + j)), _mm512_loadu_pd(v.data() + j)));
        double s = _mm512_reduce_add_pd(s8);
        for (; j < n; j++) s += static_cast<double>(row[j]) * v[j];
        u[i] = s;
      }
    });
    double uu = 0;
    for (double x : u) uu += x * x;
    sigma = std::sqrt(uu);
    if (!(sigma > 0)) return 0;
    split([&](int64_t j0, int64_t j1) {
      std::fill(w.begin() + j0, w.begin() + j1, 0.0);
      for (int64_t i = 0; i < n; i++) {
        const float* row = a + i * n;
        const __m512d ui = _mm512_set1_pd(u[i]);
        int64_t j = j0;
        for (; j + 8 <= j1; j += 8) _mm512_storeu_pd(w.data() + j, _mm512_add_pd(_mm512_loadu_pd(w.data() + j), _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(row + j)), ui)));
        for (; j < j1; j++) w[j] += static_cast<double>(row[j]) * u[i];
      }
    });
    double ww = 0;
    for (double x : w) ww += x * x;
    const double inv = 1 / std::sqrt(ww);
    for (int64_t j = 0; j < n; j++) v[j] = w[j] * inv;
  }
  return sigma;
}

// In-register transpose of a 16 x 16 f32 block (r[i] = row i on entry, column i on return).
inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int g = 0; g < 4; g++) {
    const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int h = 0; h < 2; h++)
    for (int q = 0; q < 4; q++) {
      t[8 * h + q] = _mm512_shuffle_f32x4(u[8 * h + q], u[8 * h + 4 + q], 0x88);
      t[8 * h + 4 + q] = _mm512_shuffle_f32x4(u[8 * h + q], u[8 * h + 4 + q], 0xdd);
    }
  for (int q = 0; q < 8; q++) {
    r[q] = _mm512_shuffle_f32x4(t[q], t[8 + q], 0x88);
    r[8 + q] = _mm512_shuffle_f32x4(t[q], t[8 + q], 0xdd);
  }
}

// x <- zx·x + zy·yᵀ by row blocks of TILE rows; returns ‖x_new − x_old‖²_F and ‖x_new‖²_F (f64, per-block sums in
// a fixed order). Whole 16 x 16 tiles read y by rows and transpose it in registers; the edges of a size that is not
// a multiple of 16 go element by element (the same formula: fma(zx, x, zy·y)).
void combine(float* x, const float* y, int64_t n, float zx, float zy, int threads, double* diff2, double* norm2) {
  const int64_t blocks = (n + TILE - 1) / TILE;
  std::vector<double> pd(static_cast<size_t>(blocks)), pn(static_cast<size_t>(blocks));
  const int64_t n16 = n / 16 * 16;
  overBlocks(n, threads, [&](int64_t b, int64_t i0, int64_t i1) {
    __m512d dv = _mm512_setzero_pd(), mv = dv;
    const __m512 vzx = _mm512_set1_ps(zx), vzy = _mm512_set1_ps(zy);
    double d = 0, m = 0;
    auto one = [&](int64_t i, int64_t j) {
      float* at = x + i * n + j;
      const float nw = std::fma(zx, *at, zy * y[j * n + i]);
      const double e = static_cast<double>(nw) - *at;
      d += e * e;
      m += static_cast<double>(nw) * nw;
      *at = nw;
    };
    const int64_t iv = std::min(i1, n16);
    for (int64_t ii = i0; ii + 16 <= iv; ii += 16) {
      for (int64_t jj = 0; jj < n16; jj += 16) {
        __m512 r[16];
        for (int c = 0; c < 16; c++) r[c] = _mm512_loadu_ps(y + (jj + c) * n + ii);
        transpose16(r);  // r[q] lane c = y[jj + c][ii + q]
        for (int q = 0; q < 16; q++) {
          float* row = x + (ii + q) * n + jj;
          const __m512 old = _mm512_loadu_ps(row);
          const __m512 nw = _mm512_fmadd_ps(vzx, old, _mm512_mul_ps(vzy, r[q]));
          _mm512_storeu_ps(row, nw);
          const __m512d n0 = _mm512_cvtps_pd(_mm512_castps512_ps256(nw));
          const __m512d n1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(nw), 1)));
          const __m512d e0 = _mm512_sub_pd(n0, _mm512_cvtps_pd(_mm512_castps512_ps256(old)));
          const __m512d e1 = _mm512_sub_pd(n1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(old), 1))));
          dv = _mm512_fmadd_pd(e1, e1, _mm512_fmadd_pd(e0, e0, dv));
          mv = _mm512_fmadd_pd(n1, n1, _mm512_fmadd_pd(n0, n0, mv));
        }
      }
      for (int64_t i = ii; i < ii + 16; i++)
        for (int64_t j = n16; j < n; j++) one(i, j);
    }
    for (int64_t i = std::max(i0, iv); i < i1; i++)
      for (int64_t j = 0; j < n; j++) one(i, j);
    pd[b] = d + _mm512_reduce_add_pd(dv);
    pn[b] = m + _mm512_reduce_add_pd(mv);
  });
  *diff2 = 0;
  *norm2 = 0;
  for (int64_t b = 0; b < blocks; b++) {
    *diff2 += pd[b];
    *norm2 += pn[b];
  }
}

// One Newton step x <- (ζ·x + x⁻ᵀ/ζ)/2 from y = x⁻¹; records the relative change.
void combineStep(float* x, const float* y, int64_t n, double zeta, int threads, PolarRun* run) {
  double d2, m2;
  combine(x, y, n, static_cast<float>(0.5 * zeta), static_cast<float>(0.5 / zeta), threads, &d2, &m2);
  run->delta = m2 > 0 ? std::sqrt(d2 / m2) : 0;
}

// p (n x n) holds A on entry and its polar factor on success (return true). false: A is singular to working
// precision, its condition bound α/β exceeds maxCondition, or the working copy could not be allocated (p is then
// unspecified; the caller uses another method).
bool polarNewton(float* p, int64_t n, int threads, int maxIterations, double tolerance, double maxCondition, PolarRun* run) {
  AlignedFloats yBuf(static_cast<size_t>(n * n));
  float* y = yBuf.data;
  if (y == nullptr) return false;
  double zeta = 1;
  for (int it = 0; it < maxIterations; it++) {
    memcpy(y, p, sizeof(float) * n * n);
    // past the first step a non-finite inverse shows in the step's change (checked below) instead of a pass of its own
    if (!invert(y, n, threads, it == 0)) return false;
    double used;
    if (it == 0) {
      run->condition = normBound(p, n, threads) * normBound(y, n, threads);
      if (!(run->condition <= maxCondition)) return false;
      // the scaling from power estimates of σ_max and 1/σ_min: the (1,∞) bounds above can be n times loose, which
      // costs a Newton step; estimates a little off only slow the first steps slightly
      const double alpha = spectralNorm(p, n, POWER_STEPS, threads), beta = 1.0 / spectralNorm(y, n, POWER_STEPS, threads);
      if (!(alpha > 0) || !(beta > 0) || !std::isfinite(alpha * beta)) return false;
      used = 1.0 / std::sqrt(alpha * beta);
      zeta = std::sqrt(2.0 * std::sqrt(alpha * beta) / (alpha + beta));
    } else {
      used = zeta;
      zeta = std::fabs(zeta - 1.0) < 1e-3 ? 1.0 : 1.0 / std::sqrt(0.5 * (zeta + 1.0 / zeta));
    }
    combineStep(p, y, n, used, threads, run);
    run->iterations = it + 1;
    if (!std::isfinite(run->delta)) return false;
    // the error left after a step: about half its relative change squared (quadratic convergence), plus what a
    // scaling ζ ≠ 1 adds to an orthogonal iterate, (ζ − 1)²/2
    if (it > 0 && 0.5 * (run->delta * run->delta + (used - 1) * (used - 1)) <= tolerance) return true;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Householder reduction of a symmetric matrix to tridiagonal form in f64, with tred2's result layout (see
// tridiagonalize below).

// Rows [j0, j1) of the symmetric product of the leading block held in the lower triangle (row j: columns [0, j]):
// part[j] += Σ_{k<=j} W[j][k]·d[k] and part[k] += W[j][k]·d[j] for k < j. Two rows at a time from j0 (the two share
// the loads of d and part), FMA, two accumulators per row; the order of every sum depends only on j0 and j1.
void symvLower(const double* W, int64_t n, const double* d, double* part, int64_t j0, int64_t j1) {
  int64_t j = j0;
  for (; j + 2 <= j1; j += 2) {
    const double* w0 = W + j * n;
    const double* w1 = w0 + n;
    const __m512d f0 = _mm512_set1_pd(d[j]), f1 = _mm512_set1_pd(d[j + 1]);
    __m512d g0a = _mm512_setzero_pd(), g0b = g0a, g1a = g0a, g1b = g0a;
    int64_t k = 0;
    for (; k + 16 <= j; k += 16) {
      const __m512d a0 = _mm512_loadu_pd(w0 + k), a1 = _mm512_loadu_pd(w1 + k), x = _mm512_loadu_pd(d + k);
      const __m512d b0 = _mm512_loadu_pd(w0 + k + 8), b1 = _mm512_loadu_pd(w1 + k + 8), y = _mm512_loadu_pd(d + k + 8);
      g0a = _mm512_fmadd_pd(a0, x, g0a);
      g1a = _mm512_fmadd_pd(a1, x, g1a);
      g0b = _mm512_fmadd_pd(b0, y, g0b);
      g1b = _mm512_fmadd_pd(b1, y, g1b);
      _mm512_storeu_pd(part + k, _mm512_fmadd_pd(a1, f1, _mm512_fmadd_pd(a0, f0, _mm512_loadu_pd(part + k))));
      _mm512_storeu_pd(part + k + 8, _mm512_fmadd_pd(b1, f1, _mm512_fmadd_pd(b0, f0, _mm512_loadu_pd(part + k + 8))));
    }
    double g0 = _mm512_reduce_add_pd(_mm512_add_pd(g0a, g0b)), g1 = _mm512_reduce_add_pd(_mm512_add_pd(g1a, g1b));
    for (; k < j; k++) {
      g0 += w0[k] * d[k];
      g1 += w1[k] * d[k];
      part[k] += w0[k] * d[j] + w1[k] * d[j + 1];
    }
    // row j + 1's entry in column j, then the diagonals
    g1 += w1[j] * d[j];
    part[j] += g0 + w0[j] * d[j] + w1[j] * d[j + 1];
    part[j + 1] += g1 + w1[j + 1] * d[j + 1];
  }
  if (j < j1) {
    const double* w0 = W + j * n;
    double g0 = 0;
    for (int64_t k = 0; k < j; k++) {
      g0 += w0[k] * d[k];
      part[k] += w0[k] * d[j];
    }
    part[j] += g0 + w0[j] * d[j];
  }
}

// Rows [0, split(i)) and [split(i), i) carry about equal shares of the lower triangle of the leading i x i block
// (row j has j + 1 entries); even, so that the two-row steps pair the same rows either way.
int64_t splitRows(int64_t i) { return static_cast<int64_t>(static_cast<double>(i) * 0.7071067811865476) & ~int64_t{7}; }

// W[j][k] -= Σ_q L[j][q]·R[k][q] (depth D) for rows j in [r0, r1) (r0 a multiple of 8) and, for each 8-row block j0,
// columns k in [0, min(iEnd, 16·⌈(j0 + 8)/16⌉)): the lower triangle of the leading iEnd x iEnd block plus a few
// entries right of the diagonal, which are never read (the upper triangle is cleared at the end). L is row-major
// (n x D), R packed by 16-column blocks (Rp[kb][q][c]). Each entry is accumulated in the same order whoever computes it.
void symUpdateRows(double* W, int64_t n, const double* L, const double* Rp, int64_t D, int64_t r0, int64_t r1, int64_t iEnd) {
  for (int64_t j0 = r0; j0 < r1; j0 += 8) {
    const int rows = static_cast<int>(std::min<int64_t>(8, r1 - j0));
    const double* lrow[8];
    for (int r = 0; r < 8; r++) lrow[r] = L + (j0 + std::min(r, rows - 1)) * D;
    const int64_t kEnd = std::min(iEnd, (j0 + rows + 15) / 16 * 16);
    for (int64_t k0 = 0; k0 < kEnd; k0 += 16) {
      __m512d acc[8][2];
      for (int r = 0; r < 8; r++) acc[r][0] = acc[r][1] = _mm512_setzero_pd();
      const double* bp = Rp + k0 * D;
      for (int64_t q = 0; q < D; q++) {
        const __m512d b0 = _mm512_loadu_pd(bp + q * 16), b1 = _mm512_loadu_pd(bp + q * 16 + 8);
        for (int r = 0; r < 8; r++) {
          const __m512d av = _mm512_set1_pd(lrow[r][q]);
          acc[r][0] = _mm512_fmadd_pd(av, b0, acc[r][0]);
          acc[r][1] = _mm512_fmadd_pd(av, b1, acc[r][1]);
        }
      }
      const int64_t cols = std::min<int64_t>(16, kEnd - k0);
      const __mmask8 m0 = cols >= 8 ? 0xff : static_cast<__mmask8>((1u << cols) - 1);
      const __mmask8 m1 = cols >= 16 ? 0xff : cols <= 8 ? 0 : static_cast<__mmask8>((1u << (cols - 8)) - 1);
      for (int r = 0; r < rows; r++) {
        double* c = W + (j0 + r) * n + k0;
        _mm512_mask_storeu_pd(c, m0, _mm512_sub_pd(_mm512_maskz_loadu_pd(m0, c), acc[r][0]));
        _mm512_mask_storeu_pd(c + 8, m1, _mm512_sub_pd(_mm512_maskz_loadu_pd(m1, c + 8), acc[r][1]));
      }
    }
  }
}

// Panel width of the blocked reduction: the rank-2 updates of TRID_NB steps are applied at once.
constexpr int64_t TRID_NB = 32;
constexpr int64_t TRID_LD = 2 * TRID_NB;

// Σ_q x[q]·y[q] over q in [0, np) and [TRID_NB, TRID_NB + np) (np <= TRID_NB), in 8-wide chunks (zeros past np).
inline double panelDot(const double* x, const double* y, int64_t np) {
  __m512d s = _mm512_setzero_pd();
  for (int64_t q = 0; q < np; q += 8) {
    s = _mm512_fmadd_pd(_mm512_loadu_pd(x + q), _mm512_loadu_pd(y + q), s);
    s = _mm512_fmadd_pd(_mm512_loadu_pd(x + TRID_NB + q), _mm512_loadu_pd(y + TRID_NB + q), s);
  }
  return _mm512_reduce_add_pd(s);
}

// Householder reduction of a symmetric matrix to tridiagonal form in f64 with the result in tred2's layout
// (src/tensor/linalg/svd.ts tred2Reduce: step i = n-1 .. 1 reduces row i; its Householder vector in row i, columns
// [0, i); h_i in d[i]; T's diagonal on W's diagonal; the strict upper triangle zero; d[0] = T[0][0]), blocked as
// LAPACK's dsytrd: the matrix is kept in the lower triangle, and within a panel of TRID_NB steps the leading block is
// not updated; step i's row and its symmetric product A·u are those of the stored matrix corrected by the panel's
// earlier pairs (u_p, e_p): A_cur = A − Σ_p (u_p e_pᵀ + e_p u_pᵀ); at the panel's end one rank-2·TRID_NB update
// (symUpdateRows) brings the leading block up to date. Per step one pass over the leading triangle (the product)
// instead of three (the product, then the rank-2 update's read and write). The pairs are kept row-major, row j =
// (u_0[j] .. u_31[j], e_0[j] .. e_31[j]), so that each correction is one short dot product. The product is split by
// rows into two fixed halves (splitRows), each half's contribution summed separately and then added, and the update
// by 8-row blocks on either side of the same kind of split: the same arithmetic whether one thread does both halves
// or two threads one each (steps below 256 rows stay on one).
void tridiagonalize(int64_t n, double* W, double* d, double* e, int threads) {
  std::vector<double> part0(static_cast<size_t>(n)), part1(static_cast<size_t>(n));
  std::vector<double> L(static_cast<size_t>(n * TRID_LD)), Rp;
  alignas(64) double ri[TRID_LD], ab[TRID_LD], ba[TRID_LD];
  // per step or update, written by thread 0 before the barrier that releases the helper
  struct Step {
    int64_t i = 0, j1 = 0;
    int kind = 0;  // 0 stop, 1 product rows [j1, i), 2 update rows [j1, i)
  } st;
  SpinBarrier bar;
  auto symvPart = [&](int64_t j0, int64_t j1, int64_t i, double* part) {
    std::fill(part, part + i, 0.0);
    symvLower(W, n, d, part, j0, j1);
  };
  const bool two = threads >= 2 && n >= 256;
  // the second half of what st describes
  auto secondHalf = [&] {
    if (st.kind == 1) symvPart(st.j1, st.i, st.i, part1.data());
    else symUpdateRows(W, n, L.data(), Rp.data(), TRID_LD, st.j1, st.i, st.i);
  };
  std::thread helper;
  if (two) {
    helper = std::thread([&] {
      for (;;) {
        bar.wait();  // published
        if (st.kind == 0) return;
        secondHalf();
        bar.wait();
      }
    });
  }
  // the two halves of a product (kind 1) or an update (kind 2) of the leading i rows split at j1: the first here, the
  // second by the helper (or here after the first, on one thread or below 256 rows)
  auto halves = [&](int kind, int64_t i, int64_t j1, auto&& first) {
    st.i = i;
    st.j1 = j1;
    st.kind = kind;
    if (two && i >= 256) {
      bar.wait();
      first();
      bar.wait();
    } else {
      first();
      secondHalf();
    }
  };
  int64_t np = 0;  // the panel's pairs so far (L's columns np .. TRID_NB - 1 and TRID_NB + np .. are zero)
  auto flush = [&](int64_t iEnd) {
    // W[0, iEnd)² -= Σ_p (u_p e_pᵀ + e_p u_pᵀ) = L·Rᵀ with R's rows (e_p[k] .., u_p[k] ..), packed by 16 rows
    const int64_t kbs = (iEnd + 15) / 16;
    Rp.assign(static_cast<size_t>(kbs * 16 * TRID_LD), 0.0);
    for (int64_t k = 0; k < iEnd; k++) {
      const double* lk = L.data() + k * TRID_LD;
      double* rp = Rp.data() + (k / 16) * 16 * TRID_LD + (k % 16);
      for (int64_t q = 0; q < np; q++) {
        rp[q * 16] = lk[TRID_NB + q];
        rp[(TRID_NB + q) * 16] = lk[q];
      }
    }
    const int64_t split = splitRows(iEnd);
    halves(2, iEnd, split, [&] { symUpdateRows(W, n, L.data(), Rp.data(), TRID_LD, 0, split, iEnd); });
    std::fill(L.begin(), L.begin() + iEnd * TRID_LD, 0.0);
    np = 0;
  };
  for (int64_t i = n - 1; i > 0; i--) {
    // row i of the current matrix (columns [0, i]) from the stored one and the panel's pairs; the diagonal entry is
    // stored back (it is T's diagonal)
    double* wi = W + i * n;
    const double* li = L.data() + i * TRID_LD;
    for (int64_t q = 0; q < TRID_NB; q++) {
      ri[q] = li[TRID_NB + q];
      ri[TRID_NB + q] = li[q];
    }
    if (np > 0) {
      for (int64_t j = 0; j < i; j++) d[j] = wi[j] - panelDot(L.data() + j * TRID_LD, ri, np);
      wi[i] -= panelDot(li, ri, np);
    } else {
      std::copy(wi, wi + i, d);
    }
    double scale = 0, h = 0;
    for (int64_t k = 0; k < i; k++) scale += std::fabs(d[k]);
    if (scale == 0) {
      e[i] = d[i - 1];
      for (int64_t j = 0; j < i; j++) wi[j] = 0;
    } else {
      for (int64_t k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      double f = d[i - 1];
      double g = std::sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (int64_t j = 0; j < i; j++) wi[j] = d[j];
      halves(1, i, splitRows(i), [&] { symvPart(0, splitRows(i), i, part0.data()); });
      f = 0;
      if (np > 0) {
        // A_cur·u = A·u − Σ_p (u_p (e_p·u) + e_p (u_p·u)): ab = Lᵀu = (u_p·u .., e_p·u ..), ba its halves swapped
        __m512d acc[TRID_LD / 8];
        for (auto& x : acc) x = _mm512_setzero_pd();
        for (int64_t k = 0; k < i; k++) {
          const __m512d dk = _mm512_set1_pd(d[k]);
          const double* lk = L.data() + k * TRID_LD;
          for (int64_t c = 0; c < TRID_LD / 8; c++) acc[c] = _mm512_fmadd_pd(dk, _mm512_loadu_pd(lk + 8 * c), acc[c]);
        }
        for (int64_t c = 0; c < TRID_LD / 8; c++) _mm512_store_pd(ab + 8 * c, acc[c]);
        for (int64_t q = 0; q < TRID_NB; q++) {
          ba[q] = ab[TRID_NB + q];
          ba[TRID_NB + q] = ab[q];
        }
        for (int64_t j = 0; j < i; j++) {
          e[j] = (part0[j] + part1[j] - panelDot(L.data() + j * TRID_LD, ba, np)) / h;
          f += e[j] * d[j];
        }
      } else {
        for (int64_t j = 0; j < i; j++) {
          e[j] = (part0[j] + part1[j]) / h;
          f += e[j] * d[j];
        }
      }
      const double hh = f / (h + h);
      for (int64_t j = 0; j < i; j++) {
        e[j] -= hh * d[j];
        L[j * TRID_LD + np] = d[j];
        L[j * TRID_LD + TRID_NB + np] = e[j];
      }
    }
    np++;
    d[i] = h;
    if (np == TRID_NB || i == 1) flush(i);
  }
  d[0] = W[0];
  e[0] = 0;
  if (two) {
    st.kind = 0;
    bar.wait();
    helper.join();
  }
  for (int64_t j = 0; j < n; j++) std::fill(W + j * n + j + 1, W + (j + 1) * n, 0.0);
}

// ---------------------------------------------------------------------------------------------------------------
// Top-k eigenpairs of a symmetric matrix (the l x l cores of the randomized SVDs), the algorithm of
// src/tensor/linalg/eigen.ts symmetricEigenF32 restricted to the k largest eigenvalues: the reduction above, each
// unreduced tridiagonal block's eigenvalues by implicit QL (values only), the wanted eigenvectors of T by inverse
// iteration (tridiagonal LU with partial pivoting, three solves from a seeded start, modified Gram-Schmidt within
// clusters of close eigenvalues), then the back-transformation by blocks of 64 Householder reflectors (compact WY)
// with the f32 product above. Vectors f32, orthonormal to about 1e-6; not the same bits as the JS version.

constexpr double EPS = 2.220446049250313e-16;
constexpr double CLUSTER_GAP = 1e-7;
constexpr int SOLVES = 3;
constexpr int64_t WY = 64;

// Implicit QL eigenvalues (JAMA tql2 without vectors) of the tridiagonal d[0, m), e[i] coupling i - 1 and i.
bool tqlValues(int64_t m, double* d, double* e) {
  for (int64_t i = 1; i < m; i++) e[i - 1] = e[i];
  e[m - 1] = 0;
  double f = 0, tst1 = 0;
  for (int64_t l = 0; l < m; l++) {
    tst1 = std::max(tst1, std::fabs(d[l]) + std::fabs(e[l]));
    int64_t mm = l;
    while (mm < m && !(std::fabs(e[mm]) <= EPS * tst1)) mm++;
    if (mm > l) {
      int iter = 0;
      do {
        if (++iter > 60) return false;
        double g = d[l];
        double p = (d[l + 1] - g) / (2 * e[l]);
        double r = std::sqrt(p * p + 1.0);
        if (!(r <= 1e150)) r = std::hypot(p, 1.0);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const double dl1 = d[l + 1];
        double h = g - d[l];
        for (int64_t i = l + 2; i < m; i++) d[i] -= h;
        f += h;
        p = d[mm];
        double c = 1, c2 = 1, c3 = 1, s = 0, s2 = 0;
        const double el1 = e[l + 1];
        for (int64_t i = mm - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = std::sqrt(p * p + e[i] * e[i]);
          // the plain form unless it could have under- or overflowed (the block is scaled to norm 1: rare)
          if (!(r >= 1e-150 && r <= 1e150)) r = std::hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (std::fabs(e[l]) > EPS * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
  return true;
}

// LU with partial pivoting of T - λI for a tridiagonal (d, b[1, m) couplings); zero pivots become ±tiny.
struct TriLu {
  std::vector<double> dl, dd, du, du2;
  std::vector<uint8_t> swp;
  int64_t m;
  explicit TriLu(int64_t m_) : dl(m_), dd(m_), du(m_), du2(m_), swp(m_), m(m_) {}
  void factor(const double* d, const double* b, double lambda, double tiny) {
    for (int64_t i = 0; i < m; i++) {
      dd[i] = d[i] - lambda;
      dl[i] = i + 1 < m ? b[i + 1] : 0;
      du[i] = dl[i];
      du2[i] = 0;
      swp[i] = 0;
    }
    for (int64_t i = 0; i + 1 < m; i++) {
      if (std::fabs(dd[i]) >= std::fabs(dl[i])) {
        if (dd[i] != 0) {
          const double f = dl[i] / dd[i];
          dl[i] = f;
          dd[i + 1] -= f * du[i];
        }
      } else {
        const double f = dd[i] / dl[i];
        dd[i] = dl[i];
        dl[i] = f;
        const double t = du[i];
        du[i] = dd[i + 1];
        dd[i + 1] = t - f * dd[i + 1];
        if (i + 2 < m) {
          du2[i] = du[i + 1];
          du[i + 1] = -f * du[i + 1];
        }
        swp[i] = 1;
      }
    }
    for (int64_t i = 0; i < m; i++)
      if (std::fabs(dd[i]) < tiny) dd[i] = dd[i] < 0 ? -tiny : tiny;
  }
  void solve(double* x) const {
    for (int64_t i = 0; i + 1 < m; i++) {
      if (!swp[i]) {
        x[i + 1] -= dl[i] * x[i];
      } else {
        const double t = x[i];
        x[i] = x[i + 1];
        x[i + 1] = t - dl[i] * x[i];
      }
    }
    x[m - 1] /= dd[m - 1];
    if (m > 1) x[m - 2] = (x[m - 2] - du[m - 2] * x[m - 1]) / dd[m - 2];
    for (int64_t i = m - 3; i >= 0; i--) x[i] = (x[i] - du[i] * x[i + 1] - du2[i] * x[i + 2]) / dd[i];
  }
};

void normalize(double* x, int64_t m) {
  double s = 0;
  for (int64_t i = 0; i < m; i++) s += x[i] * x[i];
  if (s == 0) return;
  const double inv = 1 / std::sqrt(s);
  for (int64_t i = 0; i < m; i++) x[i] *= inv;
}

// splitmix64: the seeded starts of inverse iteration
struct Mix {
  uint64_t x;
  double next() {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return static_cast<double>((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  }
};

// S (n x k, f32) <- P_{n-1}···P_1·S, P_i = I - u_i·u_iᵀ/h_i with u_i in row i of w, columns [0, i).
void applyReflectors(const double* w, const double* h, int64_t n, float* S, int64_t k, int threads) {
  std::vector<int64_t> idx;
  std::vector<float> y, yts, tyts;
  std::vector<double> t, dots, acc;
  for (int64_t j = 1; j < n; j += WY) {
    idx.clear();
    for (int64_t i = std::min(n, j + WY) - 1; i >= j; i--)
      if (h[i] != 0) idx.push_back(i);
    const int64_t b = static_cast<int64_t>(idx.size());
    if (b == 0) continue;
    const int64_t rows = idx[0];
    y.assign(static_cast<size_t>(rows * b), 0.0f);
    for (int64_t c = 0; c < b; c++)
      for (int64_t r = 0; r < idx[c]; r++) y[r * b + c] = static_cast<float>(w[idx[c] * n + r]);
    t.assign(static_cast<size_t>(b * b), 0.0);
    dots.assign(static_cast<size_t>(b), 0.0);
    for (int64_t c = 0; c < b; c++) {
      const int64_t i = idx[c];
      const double tau = 1 / h[i];
      for (int64_t p = 0; p < c; p++) {
        const double* up = w + idx[p] * n;
        const double* ui = w + i * n;
        __m512d s8 = _mm512_setzero_pd();
        int64_t r = 0;
        for (; r + 8 <= i; r += 8) s8 = _mm512_add_pd(s8, _mm512_mul_pd(_mm512_loadu_pd(up + r), _mm512_loadu_pd(ui + r)));
        double dot = _mm512_reduce_add_pd(s8);
        for (; r < i; r++) dot += up[r] * ui[r];
        dots[p] = dot;
      }
      for (int64_t p = 0; p < c; p++) {
        double a = 0;
        for (int64_t q = p; q < c; q++) a += t[p * b + q] * dots[q];
        t[p * b + c] = -tau * a;
      }
      t[c * b + c] = tau;
    }
    yts.resize(static_cast<size_t>(b * k));
    Gemm g1{b, k, rows, y.data(), b, true, S, k, false, 1.0f, 0.0f, yts.data(), k};
    gemm(g1, threads);
    tyts.resize(static_cast<size_t>(b * k));
    acc.resize(static_cast<size_t>(k));
    for (int64_t p = 0; p < b; p++) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t q = p; q < b; q++) {
        const double tq = t[p * b + q];
        if (tq == 0) continue;
        const float* row = yts.data() + q * k;
        for (int64_t c = 0; c < k; c++) acc[c] += tq * row[c];
      }
      for (int64_t c = 0; c < k; c++) tyts[p * k + c] = static_cast<float>(-acc[c]);
    }
    Gemm g2{rows, k, b, y.data(), b, false, tyts.data(), k, false, 1.0f, 1.0f, S, k};
    gemm(g2, threads);
  }
}

// The k largest eigenvalues' pairs of the symmetric n x n w (destroyed): values (n, all, descending) and vectors
// (n x k f32, column r the unit eigenvector of values[r], its largest-magnitude entry positive). false: a non-finite
// input, or QL did not converge.
bool symEigenTop(double* w, int64_t n, int64_t k, double* values, float* vectors, int threads) {
  if (n == 0) return true;
  for (int64_t i = 0; i < n * n; i++)
    if (!std::isfinite(w[i])) return false;
  std::vector<double> h(n), e(n), d(n);
  tridiagonalize(n, w, h.data(), e.data(), threads);
  for (int64_t i = 0; i < n; i++) d[i] = w[i * n + i];
  double tnorm = 0;
  for (int64_t i = 0; i < n; i++) tnorm = std::max(tnorm, std::fabs(d[i]) + std::fabs(e[i]) + (i + 1 < n ? std::fabs(e[i + 1]) : 0));
  struct Block {
    int64_t lo, m;
    double norm;
    std::vector<double> d, b, values;  // scaled by 1/norm; values ascending
  };
  struct Pair {
    double value;
    int64_t block, at;
  };
  std::vector<Block> blocks;
  std::vector<Pair> pairs;
  int64_t lo = 0;
  for (int64_t i = 1; i <= n; i++) {
    if (i < n && std::fabs(e[i]) > EPS * tnorm) continue;
    Block bl;
    bl.lo = lo;
    bl.m = i - lo;
    bl.norm = 0;
    for (int64_t q = 0; q < bl.m; q++)
      bl.norm = std::max(bl.norm, std::fabs(d[lo + q]) + (q > 0 ? std::fabs(e[lo + q]) : 0) + (q + 1 < bl.m ? std::fabs(e[lo + q + 1]) : 0));
    const double scale = bl.norm > 0 ? 1 / bl.norm : 1;
    bl.d.resize(bl.m);
    bl.b.resize(bl.m);
    for (int64_t q = 0; q < bl.m; q++) {
      bl.d[q] = d[lo + q] * scale;
      bl.b[q] = q > 0 ? e[lo + q] * scale : 0;
    }
    bl.values = bl.d;
    if (bl.m > 1 && bl.norm > 0) {
      std::vector<double> off = bl.b;
      if (!tqlValues(bl.m, bl.values.data(), off.data())) return false;
    }
    std::sort(bl.values.begin(), bl.values.end());
    for (int64_t q = 0; q < bl.m; q++) pairs.push_back({bl.values[q] * (bl.norm > 0 ? bl.norm : 1), static_cast<int64_t>(blocks.size()), q});
    blocks.push_back(std::move(bl));
    lo = i;
  }
  std::stable_sort(pairs.begin(), pairs.end(), [](const Pair& p, const Pair& q) {
    if (p.value != q.value) return p.value > q.value;
    if (p.block != q.block) return p.block < q.block;
    return p.at > q.at;
  });
  for (int64_t r = 0; r < n; r++) values[r] = pairs[r].value;
  // per block, the wanted vectors are its largest values: indices [first, m) in ascending order
  std::vector<int64_t> first(blocks.size());
  for (size_t q = 0; q < blocks.size(); q++) first[q] = blocks[q].m;
  for (int64_t r = 0; r < k; r++) first[pairs[r].block] = std::min(first[pairs[r].block], pairs[r].at);
  std::vector<std::vector<double>> rows(blocks.size());
  for (size_t q = 0; q < blocks.size(); q++) {
    Block& bl = blocks[q];
    const int64_t m = bl.m, f = first[q];
    if (f >= m) continue;
    std::vector<double>& out = rows[q];
    out.assign(static_cast<size_t>((m - f) * m), 0.0);
    if (bl.norm == 0 || m == 1) {
      for (int64_t j = f; j < m; j++) out[(j - f) * m + j] = 1;
      continue;
    }
    // vectors [j0, j1) of the block, each from its own seeded start; ranges begin at a cluster start (below), so
    // splitting [f, m) between two threads computes exactly what one thread would
    auto vectorsOf = [&bl, &out, f, m](int64_t j0, int64_t j1) {
      TriLu lu(m);
      std::vector<double> x(m);
      int64_t clusterStart = j0;
      double prev = -INFINITY;
      for (int64_t j = j0; j < j1; j++) {
        double lambda = bl.values[j];
        if (j == j0 || lambda - bl.values[j - 1] > CLUSTER_GAP) clusterStart = j;
        if (lambda <= prev + 10 * EPS) lambda = prev + 10 * EPS;
        prev = lambda;
        lu.factor(bl.d.data(), bl.b.data(), lambda, EPS);
        Mix rng{static_cast<uint64_t>(bl.lo + 1) * 0x100000001b3ull + static_cast<uint64_t>(j)};
        for (int64_t i = 0; i < m; i++) x[i] = rng.next() - 0.5;
        for (int s = 0; s < SOLVES; s++) {
          normalize(x.data(), m);
          lu.solve(x.data());
          for (int64_t c = clusterStart; c < j; c++) {
            const double* row = out.data() + (c - f) * m;
            double dot = 0;
            for (int64_t i = 0; i < m; i++) dot += x[i] * row[i];
            for (int64_t i = 0; i < m; i++) x[i] -= dot * row[i];
          }
        }
        normalize(x.data(), m);
        std::copy(x.begin(), x.end(), out.begin() + (j - f) * m);
      }
    };
    // the second thread's share starts at the first cluster start past the middle (a gap > CLUSTER_GAP: the
    // nudges of close values, 10·EPS each, never reach across it)
    int64_t mid = m;
    if (threads >= 2 && (m - f) * m >= 65536) {
      mid = f + (m - f) / 2;
      while (mid < m && !(bl.values[mid] - bl.values[mid - 1] > CLUSTER_GAP)) mid++;
    }
    if (mid < m) {
      std::thread t(vectorsOf, mid, m);
      vectorsOf(f, mid);
      t.join();
    } else {
      vectorsOf(f, m);
    }
  }
  std::fill(vectors, vectors + n * k, 0.0f);
  for (int64_t r = 0; r < k; r++) {
    const Pair& p = pairs[r];
    const Block& bl = blocks[p.block];
    const double* src = rows[p.block].data() + (p.at - first[p.block]) * bl.m;
    for (int64_t i = 0; i < bl.m; i++) vectors[(bl.lo + i) * k + r] = static_cast<float>(src[i]);
  }
  applyReflectors(w, h.data(), n, vectors, k, threads);
  for (int64_t c = 0; c < k; c++) {
    float best = 0;
    bool negative = false;
    for (int64_t i = 0; i < n; i++) {
      const float x = vectors[i * k + c];
      if (std::fabs(x) > best) {
        best = std::fabs(x);
        negative = x < 0;
      }
    }
    if (negative)
      for (int64_t i = 0; i < n; i++) vectors[i * k + c] = -vectors[i * k + c];
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// N-API

bool floatArray(napi_env env, napi_value v, float** data, size_t* len) {
  napi_typedarray_type type;
  void* d;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &type, len, &d, &ab, &off) != napi_ok || type != napi_float32_array) return false;
  *data = static_cast<float*>(d);
  return true;
}

bool number(napi_env env, napi_value v, double* out) { return napi_get_value_double(env, v, out) == napi_ok && std::isfinite(*out); }

// One kernel call on a libuv pool thread: parse the arguments on the JS thread (throwing there), run them off it, and
// settle the returned Promise with run's boolean (or undefined); the argument arrays are referenced meanwhile so the
// garbage collector cannot free them.
template <typename Args>
struct AsyncJob {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::vector<napi_ref> refs;
  Args a;
  bool (*run)(Args&) = nullptr;
  bool returnsBool = true;
  bool result = false;
};

template <typename Args>
napi_value queueJob(napi_env env, napi_callback_info info, const char* name, bool (*parse)(napi_env, napi_callback_info, const char*, Args*),
                    bool (*run)(Args&), bool returnsBool) {
  auto* job = new AsyncJob<Args>();
  if (!parse(env, info, name, &job->a)) {
    delete job;
    return nullptr;
  }
  job->run = run;
  job->returnsBool = returnsBool;
  napi_value promise, resource;
  napi_create_promise(env, &job->deferred, &promise);
  for (napi_value v : job->a.arrays) {
    napi_ref ref;
    napi_create_reference(env, v, 1, &ref);
    job->refs.push_back(ref);
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource);
  napi_create_async_work(
      env, nullptr, resource,
      [](napi_env, void* data) {
        auto* j = static_cast<AsyncJob<Args>*>(data);
        j->result = j->run(j->a);
      },
      [](napi_env env, napi_status, void* data) {
        auto* j = static_cast<AsyncJob<Args>*>(data);
        napi_value r;
        if (j->returnsBool) napi_get_boolean(env, j->result, &r);
        else napi_get_undefined(env, &r);
        napi_resolve_deferred(env, j->deferred, r);
        for (napi_ref ref : j->refs) napi_delete_reference(env, ref);
        napi_delete_async_work(env, j->work);
        delete j;
      },
      job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

// The same call on the JS thread: run's boolean.
template <typename Args>
napi_value runNow(napi_env env, napi_callback_info info, const char* name, bool (*parse)(napi_env, napi_callback_info, const char*, Args*), bool (*run)(Args&)) {
  Args a;
  if (!parse(env, info, name, &a)) return nullptr;
  napi_value r;
  napi_get_boolean(env, run(a), &r);
  return r;
}

// The arguments of denseGemm(Async): (a, b, c, m, k, n, flags, threads), see below.
struct GemmArgs {
  Gemm g{};
  int threads = 1;
  napi_value arrays[3];  // a, b, c (kept alive by the async version)
};

bool gemmArgs(napi_env env, napi_callback_info info, const char* name, GemmArgs* out) {
  size_t argc = 8;
  napi_value argv[8];
  float *a, *b, *c;
  size_t la, lb, lc;
  double m, k, n, flags, threads;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 8 || !floatArray(env, argv[0], &a, &la) ||
      !floatArray(env, argv[1], &b, &lb) || !floatArray(env, argv[2], &c, &lc) || !number(env, argv[3], &m) || !number(env, argv[4], &k) ||
      !number(env, argv[5], &n) || !number(env, argv[6], &flags) || !number(env, argv[7], &threads) || m < 0 || k < 0 || n < 0 ||
      la < m * k || lb < k * n || lc < m * n) {
    napi_throw_error(env, "WK_NATIVE", (std::string(name) + ": arguments out of range").c_str());
    return false;
  }
  const int f = static_cast<int>(flags);
  const int64_t M = static_cast<int64_t>(m), K = static_cast<int64_t>(k), N = static_cast<int64_t>(n);
  out->g = Gemm{M, N, K, a, (f & 1) ? M : K, (f & 1) != 0, b, (f & 2) ? K : N, (f & 2) != 0, 1.0f, (f & 4) ? 1.0f : 0.0f, c, N};
  out->threads = static_cast<int>(threads);
  for (int q = 0; q < 3; q++) out->arrays[q] = argv[q];
  return true;
}

// denseGemm(a, b, c, m, k, n, flags, threads): c (m x n) = op(a)·op(b); flags bit 0 transA (a stored k x m), bit 1
// transB (b stored n x k), bit 2 accumulate (c += ...). Arrays are dense row-major Float32Arrays, c disjoint from a, b.
napi_value denseGemm(napi_env env, napi_callback_info info) {
  GemmArgs a;
  if (gemmArgs(env, info, "denseGemm", &a)) gemm(a.g, a.threads);
  return nullptr;
}

// denseGemmAsync(...): denseGemm on a libuv pool thread (see queueJob); the arrays must not be touched until it settles.
bool runGemm(GemmArgs& a) {
  gemm(a.g, a.threads);
  return true;
}

napi_value denseGemmAsync(napi_env env, napi_callback_info info) { return queueJob<GemmArgs>(env, info, "denseGemmAsync", gemmArgs, runGemm, false); }

// denseInverse(a, n, threads): a (n x n) replaced by its inverse; returns false when a pivot is 0 or the result is
// not finite (a is then garbage).
napi_value denseInverse(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  float* a;
  size_t la;
  double n, threads;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 3 || !floatArray(env, argv[0], &a, &la) ||
      !number(env, argv[1], &n) || !number(env, argv[2], &threads) || n < 0 || la < n * n) {
    napi_throw_error(env, "WK_NATIVE", "denseInverse: arguments out of range");
    return nullptr;
  }
  const bool ok = invert(a, static_cast<int64_t>(n), static_cast<int>(threads));
  napi_value r;
  napi_get_boolean(env, ok, &r);
  return r;
}


// densePolar(p, n, threads, info): p (n x n) replaced by its orthogonal polar factor (scaled Newton); info (Float64Array,
// 6): in [0] most iterations, [1] tolerance on the relative step, [2] largest ‖A‖_F·‖A⁻¹‖_F / n accepted; out [3]
// iterations, [4] last relative step, [5] that condition estimate. Returns false (p unspecified) when A is singular
// or worse conditioned than [2].
// The arguments of densePolar(Async): (p, n, threads, info), see below.
struct PolarArgs {
  float* p = nullptr;
  double* io = nullptr;
  int64_t n = 0;
  int threads = 1;
  napi_value arrays[2];  // p, info (kept alive by the async version)
};

bool polarArgs(napi_env env, napi_callback_info info, const char* name, PolarArgs* out) {
  size_t argc = 4;
  napi_value argv[4];
  size_t lp, li;
  double n, threads;
  napi_typedarray_type type;
  void* d;
  napi_value ab;
  size_t off;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 4 || !floatArray(env, argv[0], &out->p, &lp) ||
      !number(env, argv[1], &n) || !number(env, argv[2], &threads) || n < 0 || lp < n * n ||
      napi_get_typedarray_info(env, argv[3], &type, &li, &d, &ab, &off) != napi_ok || type != napi_float64_array || li < 6) {
    napi_throw_error(env, "WK_NATIVE", (std::string(name) + ": arguments out of range").c_str());
    return false;
  }
  out->io = static_cast<double*>(d);
  out->n = static_cast<int64_t>(n);
  out->threads = static_cast<int>(threads);
  out->arrays[0] = argv[0];
  out->arrays[1] = argv[3];
  return true;
}

// Runs the polar factor with the limits in io[0..2] and reports into io[3..5].
bool runPolar(PolarArgs& a) {
  PolarRun run;
  const bool ok = polarNewton(a.p, a.n, a.threads, static_cast<int>(a.io[0]), a.io[1], a.io[2], &run);
  a.io[3] = run.iterations;
  a.io[4] = run.delta;
  a.io[5] = run.condition;
  return ok;
}

napi_value densePolar(napi_env env, napi_callback_info info) { return runNow<PolarArgs>(env, info, "densePolar", polarArgs, runPolar); }


// denseTridiagonalize(w, n, d, e): Float64Arrays; tred2Reduce's contract (src/tensor/linalg/svd.ts).
napi_value denseTridiagonalize(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  double* arr[3];
  size_t len[3];
  double n;
  bool ok = napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) == napi_ok && argc >= 4 && number(env, argv[1], &n) && n >= 0;
  const int idx[3] = {0, 2, 3};
  for (int q = 0; ok && q < 3; q++) {
    napi_typedarray_type type;
    void* data;
    napi_value ab;
    size_t off;
    ok = napi_get_typedarray_info(env, argv[idx[q]], &type, &len[q], &data, &ab, &off) == napi_ok && type == napi_float64_array;
    arr[q] = static_cast<double*>(data);
  }
  if (!ok || len[0] < n * n || len[1] < n || len[2] < n) {
    napi_throw_error(env, "WK_NATIVE", "denseTridiagonalize: arguments out of range");
    return nullptr;
  }
  tridiagonalize(static_cast<int64_t>(n), arr[0], arr[1], arr[2], 2);
  return nullptr;
}


// denseSymEigen(w, n, k, values, vectors, threads): w (Float64Array n x n, symmetric, destroyed); values (Float64Array
// n) all eigenvalues descending; vectors (Float32Array n x k) the top k eigenvectors. Returns false when QL does not
// converge (non-finite input).
// The arguments of denseSymEigen(Async): (w, n, k, values, vectors, threads), see below.
struct EigenArgs {
  double *w = nullptr, *values = nullptr;
  float* vectors = nullptr;
  int64_t n = 0, k = 0;
  int threads = 1;
  napi_value arrays[3];  // w, values, vectors (kept alive by the async version)
};

bool eigenArgs(napi_env env, napi_callback_info info, const char* name, EigenArgs* out) {
  size_t argc = 6;
  napi_value argv[6];
  double n, k, threads;
  size_t lw = 0, lv = 0, lvec = 0;
  bool ok = napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) == napi_ok && argc >= 6 && number(env, argv[1], &n) && number(env, argv[2], &k) &&
            number(env, argv[5], &threads) && n >= 0 && k >= 0 && k <= n && floatArray(env, argv[4], &out->vectors, &lvec);
  for (int q = 0; ok && q < 2; q++) {
    napi_typedarray_type type;
    void* data;
    napi_value ab;
    size_t off, len;
    ok = napi_get_typedarray_info(env, argv[q == 0 ? 0 : 3], &type, &len, &data, &ab, &off) == napi_ok && type == napi_float64_array;
    (q == 0 ? out->w : out->values) = static_cast<double*>(data);
    (q == 0 ? lw : lv) = len;
  }
  if (!ok || lw < n * n || lv < n || lvec < n * k) {
    napi_throw_error(env, "WK_NATIVE", (std::string(name) + ": arguments out of range").c_str());
    return false;
  }
  out->n = static_cast<int64_t>(n);
  out->k = static_cast<int64_t>(k);
  out->threads = static_cast<int>(threads);
  out->arrays[0] = argv[0];
  out->arrays[1] = argv[3];
  out->arrays[2] = argv[4];
  return true;
}

bool runEigen(EigenArgs& a) { return symEigenTop(a.w, a.n, a.k, a.values, a.vectors, a.threads); }

napi_value denseSymEigen(napi_env env, napi_callback_info info) { return runNow<EigenArgs>(env, info, "denseSymEigen", eigenArgs, runEigen); }


// densePolarAsync(p, n, threads, info): densePolar on a libuv pool thread; returns a Promise of its boolean. p and
// info must not be touched until it settles (references keep them alive).
napi_value densePolarAsync(napi_env env, napi_callback_info info) { return queueJob<PolarArgs>(env, info, "densePolarAsync", polarArgs, runPolar, true); }


// denseSymEigenAsync(w, n, k, values, vectors, threads): denseSymEigen on a libuv pool thread; a Promise of its
// boolean. The arrays must not be touched until it settles.
napi_value denseSymEigenAsync(napi_env env, napi_callback_info info) { return queueJob<EigenArgs>(env, info, "denseSymEigenAsync", eigenArgs, runEigen, true); }

}  // namespace
#endif

// Adds the dense kernels to the addon's exports (called by gta.cc's module init on a CPU that has AVX-512).
void registerDense(napi_env env, napi_value exports) {
#ifdef WK_DENSE
  const std::pair<const char*, napi_callback> fns[] = {
      {"denseGemm", denseGemm},
      {"denseGemmAsync", denseGemmAsync},
      {"denseInverse", denseInverse},
      {"densePolar", densePolar},
      {"densePolarAsync", densePolarAsync},
      {"denseTridiagonalize", denseTridiagonalize},
      {"denseSymEigen", denseSymEigen},
      {"denseSymEigenAsync", denseSymEigenAsync},
  };
  for (const auto& [name, fn] : fns) {
    napi_value f;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &f);
    napi_set_named_property(env, exports, name, f);
  }
#else
  (void)env;
  (void)exports;
#endif
}
