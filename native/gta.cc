// Optional native kernels of the merge engine (AVX-512, F16C), with exactly the IEEE operations of the WebAssembly and
// JS kernels in the same order, so the output bits are identical (test/plan/native-kernels.test.ts). Built at install
// by scripts/build-native.mjs for AVX-512 (whatever the build machine's CPU) with -ffp-contract=off (no fused
// multiply-adds); on a CPU without AVX-512 or F16C the module exports no kernels and the WebAssembly ones run
// (src/plan/native.ts).
//
// tiesTensor (see tiesCore at the end): a whole tensor of BF16 or F16 inputs, in memory or mapped from its files, merged
// by TIES, DARE, breadcrumbs, DELLA (with the sign consensus or as a sum), task_arithmetic, linear, slerp or
// model_stock into BF16 or F16 bits: thresholds, norms, ranks or Gram sums over the whole tensor first, then the
// output range by range.
//
// tiesPiece / histWindows: the TIES piece step of src/merge/methods/gta-core.ts (magnitude masks fused with the BF16
// delta, then the sign consensus; windowed top-k counts) on the merge-kernel module's memory (delta_mag, delta_all,
// ties_out of src/tensor/wasm/merge-kernels.wat), for tensors that run in row chunks.
// Layout read from that memory (byte offsets, all inside the module's fixed regions, see merge-kernels.wat):
//   ARGS = 657408: i32 n, m, base pointer, output pointer, divide, bf16 output; f64 lambda at ARGS + 32;
//                  per model i at ARGS + 64 + 32 i: i32 input pointer, mode (0 all, 1 none, 2 magnitude), bits,
//                  ties (in: the tie budget; out: what is left), kept (out)
//   655360 + 32 i: sc_i (f64, twice), w_i (f64, twice), as setParams writes them
//   131072 + 65536 i: model i's masked delta (written here, as the wasm kernels do)
// Inputs (base and models) are BF16 bits; the output is f32, or its BF16 bits (round to nearest even, as narrow_bf16).

#include <node_api.h>
#include <stdint.h>
#include <string.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>
#include <cerrno>
#include <cstdio>
#include <time.h>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && defined(__BMI2__) && defined(__F16C__)
#include <immintrin.h>
#define WK_NATIVE 1
#endif

#ifdef WK_NATIVE
namespace {

constexpr uint32_t ARGS = 657408;
constexpr uint32_t PARAMS = 655360;
constexpr uint32_t MODELS = 131072;
constexpr uint32_t REGION = 65536;
constexpr int MAX_MODELS = 8;
constexpr int32_t ABS = 0x7fffffff;
constexpr int32_t INF_BITS = 0x7f800000;

// The 2-byte formats of the current call's inputs and output: BF16 (bits << 16 is the f32) or F16 (F16C's exact
// widening; its narrowing rounds to nearest even, overflow to inf, NaN quiet with the top payload bits, as
// src/tensor/convert.ts f16FromF32Bits). Set per call by tiesTensor; the piece kernels are BF16 only.
thread_local bool inF16 = false, outF16 = false;

template <bool F16>
inline float widenT(uint16_t u) {
  if constexpr (F16) return _cvtsh_ss(u);
  uint32_t v = static_cast<uint32_t>(u) << 16;
  float f;
  memcpy(&f, &v, 4);
  return f;
}

template <bool F16>
inline __m512 widen16T(const uint16_t* p) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if constexpr (F16) return _mm512_cvtph_ps(v);
  else return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

// The same conversions with the format from a local: inF16 and outF16 are thread_local in a shared library, where
// every read calls __tls_get_addr, so element loops read them once (DELLA's ranking spent 4.6% of its time in it).
inline float widenF(bool f16, uint16_t u) { return f16 ? widenT<true>(u) : widenT<false>(u); }
inline __m512 widen16F(bool f16, const uint16_t* p) { return f16 ? widen16T<true>(p) : widen16T<false>(p); }
inline __m256 widen8F(bool f16, const uint16_t* p) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (f16) return _mm256_cvtph_ps(v);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}

// Top-k membership of 16 lanes of |d| bits: a > t (a <= inf), or a == t while *budget lasts (lane order); tv: t in
// every lane.
inline __mmask16 topMask(__m512i a, __m512i tv, int32_t* budget) {
  __mmask16 m = _mm512_cmpgt_epi32_mask(a, tv) & _mm512_cmple_epi32_mask(a, _mm512_set1_epi32(INF_BITS));
  if (*budget > 0) {
    const uint32_t eq = _mm512_cmpeq_epi32_mask(a, tv);
    const int32_t c = __builtin_popcount(eq);
    const int32_t take = c < *budget ? c : *budget;
    m |= static_cast<__mmask16>(_pdep_u32((1u << take) - 1u, eq));
    *budget -= take;
  }
  return m;
}

// d = f32(x - b) kept iff bits < |d| bits <= inf bits (signed compares, as the wasm kernel), or |d| bits == bits
// while ties last (element order); a dropped delta becomes +0. Returns how many were kept; *ties is updated.
int deltaMag(const uint16_t* x, const uint16_t* b, float* d, int n, int32_t bits, int32_t* ties) {
  const bool f16 = inF16;
  const __m512i bv = _mm512_set1_epi32(bits), absv = _mm512_set1_epi32(ABS);
  int kept = 0;
  int32_t t = *ties;
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512i dv = _mm512_castps_si512(_mm512_sub_ps(widen16F(f16, x + j), widen16F(f16, b + j)));
    const __mmask16 keep = topMask(_mm512_and_si512(dv, absv), bv, &t);
    _mm512_storeu_si512(d + j, _mm512_maskz_mov_epi32(keep, dv));
    kept += __builtin_popcount(keep);
  }
  for (; j < n; j++) {
    float v = widenF(f16, x[j]) - widenF(f16, b[j]);
    int32_t u;
    memcpy(&u, &v, 4);
    int32_t al = u & ABS;
    int32_t keep = (al > bits) & (al <= INF_BITS);
    if (al == bits && t > 0) {
      keep = 1;
      t--;
    }
    u &= -keep;
    memcpy(d + j, &u, 4);
    kept += keep;
  }
  *ties = t;
  return kept;
}

void deltaAll(const uint16_t* x, const uint16_t* b, float* d, int n) {
  const bool f16 = inF16;
  int j = 0;
  for (; j + 16 <= n; j += 16) _mm512_storeu_ps(d + j, _mm512_sub_ps(widen16F(f16, x + j), widen16F(f16, b + j)));
  for (; j < n; j++) d[j] = widenF(f16, x[j]) - widenF(f16, b[j]);
}

// The consensus of m masked deltas, eight elements per step in f64 (ties_out's operations and order):
// v_i = d_i * sc_i; S = ((0 + v_0) + v_1) + ...; agree_i = v_i > 0 where S >= 0, v_i < 0 elsewhere;
// M = 0 + sum of agreeing v_i, Z = 0 + sum of agreeing w_i (disagreeing terms add +0);
// out = f32(b + (M / (Z == 0 ? 1 : Z)) * lambda) if divide, else f32(b + M * lambda).
// f32 bits to BF16 bits, round to nearest even, NaN kept NaN with its quiet bit set (narrow_bf16's rule).
inline uint16_t bf16Of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if (f != f) return static_cast<uint16_t>((u | 0x00400000u) >> 16);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// f32 bits to BF16 bits of sixteen lanes (bf16Of's rule).
// BF16 bits of 16 f32 lanes in the low halves of 32-bit lanes, rounded to nearest even; NaNs are not quieted (for NaNs
// whose low 16 bits are zero the rounding leaves them unchanged).
inline __m512i bf16Round32(__m512 f) {
  const __m512i u = _mm512_castps_si512(f);
  return _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1))), 16);
}

inline __m256i bf16Of16(__m512 f) {
  const __m512i u = _mm512_castps_si512(f);
  const __m512i rounded = bf16Round32(f);
  const __m512i quiet = _mm512_srli_epi32(_mm512_or_si512(u, _mm512_set1_epi32(0x00400000)), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q);
  return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet));
}

// The same of eight lanes (the upper eight of the wide call are not looked at).
inline __m128i bf16Of8(__m256 f) { return _mm256_castsi256_si128(bf16Of16(_mm512_castps256_ps512(f))); }

// The consensus of eight elements from v_i = d_i * sc_i (f64), ties_out's operations in its order: S = ((0 + v_0) +
// v_1) + ...; agree_i = v_i > 0 where S >= 0, v_i < 0 elsewhere; M, Z = 0 + the agreeing v_i, w_i; the f32 results
// b + (M / (Z == 0 ? 1 : Z)) * lambda if divide, else b + M * lambda.
inline __m256 consensus8(const __m512d* v, int m, __m256 b, const __m512d* W, int divide, __m512d lam) {
  const __m512d zero = _mm512_setzero_pd();
  __m512d s = zero;
  for (int i = 0; i < m; i++) s = _mm512_add_pd(s, v[i]);
  const __mmask8 ge = _mm512_cmp_pd_mask(s, zero, _CMP_GE_OQ);
  __m512d mm = zero, z = zero;
  for (int i = 0; i < m; i++) {
    const __mmask8 a = (ge & _mm512_cmp_pd_mask(v[i], zero, _CMP_GT_OQ)) | (static_cast<__mmask8>(~ge) & _mm512_cmp_pd_mask(v[i], zero, _CMP_LT_OQ));
    mm = _mm512_add_pd(mm, _mm512_maskz_mov_pd(a, v[i]));
    z = _mm512_add_pd(z, _mm512_maskz_mov_pd(a, W[i]));
  }
  if (divide) mm = _mm512_div_pd(mm, _mm512_mask_blend_pd(_mm512_cmp_pd_mask(z, zero, _CMP_EQ_OQ), z, _mm512_set1_pd(1.0)));
  return _mm512_cvtpd_ps(_mm512_add_pd(_mm512_cvtps_pd(b), _mm512_mul_pd(mm, lam)));
}

// The output format's bits of eight f32 (BF16 or F16, see inF16).
template <bool F16>
inline __m128i narrow8T(__m256 f) {
  if constexpr (F16) return _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  else return bf16Of8(f);
}

// The same of eight / one f32, the format from a local (see widenF).
inline __m128i narrow8F(bool o16, __m256 f) { return o16 ? narrow8T<true>(f) : narrow8T<false>(f); }
inline uint16_t narrow1F(bool o16, float f) { return o16 ? static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)) : bf16Of(f); }

// With bf16out, o receives BF16 bits (as uint16_t) of the f32 results instead of the f32 values.
void tiesOut(float* const* d, int m, int n, const uint16_t* b, float* o, int divide, double lambda, const double* sc, const double* w, int bf16out) {
  const bool f16 = inF16;
  const bool o16 = outF16;
  const __m512d lam = _mm512_set1_pd(lambda);
  __m512d S[MAX_MODELS], W[MAX_MODELS];
  for (int i = 0; i < m; i++) {
    S[i] = _mm512_set1_pd(sc[i]);
    W[i] = _mm512_set1_pd(w[i]);
  }
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m512d v[MAX_MODELS];
    for (int i = 0; i < m; i++) v[i] = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(d[i] + j)), S[i]);
    const __m256 bv = widen8F(f16, b + j);
    const __m256 r = consensus8(v, m, bv, W, divide, lam);
    if (bf16out) _mm_storeu_si128(reinterpret_cast<__m128i*>(reinterpret_cast<uint16_t*>(o) + j), narrow8F(o16, r));
    else _mm256_storeu_ps(o + j, r);
  }
  for (; j < n; j++) {
    double v[MAX_MODELS];
    double s = 0;
    for (int i = 0; i < m; i++) {
      v[i] = static_cast<double>(d[i][j]) * sc[i];
      s = s + v[i];
    }
    const bool ge = s >= 0;
    double mm = 0, z = 0;
    for (int i = 0; i < m; i++) {
      const bool a = ge ? v[i] > 0 : v[i] < 0;
      mm = mm + (a ? v[i] : 0.0);
      z = z + (a ? w[i] : 0.0);
    }
    if (divide) mm = mm / (z == 0 ? 1.0 : z);
    const float r = static_cast<float>(static_cast<double>(widenF(f16, b[j])) + mm * lambda);
    if (bf16out) reinterpret_cast<uint16_t*>(o)[j] = narrow1F(o16, r);
    else o[j] = r;
  }
}

// DARE's uniform draws (src/tensor/rng.ts fillUniform, delta_random in merge-kernels.wat): u(i) of element i for the
// stream (k0, k1), a delta kept iff u <= thr (= ceil(density * 2^32) - 1, unsigned).
inline uint32_t draw1(uint32_t i, uint32_t k0, uint32_t k1) {
  uint32_t u = i ^ k0;
  u ^= u >> 16;
  u *= 0x7feb352du;
  u ^= u >> 15;
  u *= 0x846ca68bu;
  u ^= u >> 16;
  u ^= k1;
  u ^= u >> 16;
  u *= 0x7feb352du;
  u ^= u >> 15;
  u *= 0x846ca68bu;
  return u ^ (u >> 16);
}

// draw1 of 16 lanes from u = index ^ k0 on.
inline __m512i drawTail16(__m512i u, uint32_t k1) {
  const __m512i c1 = _mm512_set1_epi32(0x7feb352d), c2 = _mm512_set1_epi32(static_cast<int32_t>(0x846ca68bu));
  u = _mm512_xor_si512(u, _mm512_srli_epi32(u, 16));
  u = _mm512_mullo_epi32(u, c1);
  u = _mm512_xor_si512(u, _mm512_srli_epi32(u, 15));
  u = _mm512_mullo_epi32(u, c2);
  u = _mm512_xor_si512(u, _mm512_srli_epi32(u, 16));
  u = _mm512_xor_si512(u, _mm512_set1_epi32(static_cast<int32_t>(k1)));
  u = _mm512_xor_si512(u, _mm512_srli_epi32(u, 16));
  u = _mm512_mullo_epi32(u, c1);
  u = _mm512_xor_si512(u, _mm512_srli_epi32(u, 15));
  u = _mm512_mullo_epi32(u, c2);
  return _mm512_xor_si512(u, _mm512_srli_epi32(u, 16));
}

// draw1 of the 16 elements from `start` on, compared with thr: the keep mask.
inline __mmask16 keep16(uint32_t start, uint32_t k0, uint32_t k1, uint32_t thr) {
  const __m512i u = _mm512_xor_si512(_mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(start)), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),
                                     _mm512_set1_epi32(static_cast<int32_t>(k0)));
  return _mm512_cmple_epu32_mask(drawTail16(u, k1), _mm512_set1_epi32(static_cast<int32_t>(thr)));
}

// A model's DARE stream: keys and threshold.
struct Draws {
  uint32_t k0 = 0, k1 = 0, thr = 0;
};


// A model's mask for the merge pass: mode 0 every delta (NaN too), 1 none, 2 the top-k by |d| (bits, ties: keep |d|
// bits in (bits, inf], and == bits while the tie budget lasts, in element order; mode 3 arrives as 2 with no ties),
// 4 DARE's draw, 6 DELLA's (a precomputed bit mask), 5 breadcrumbs' band: in the top keepK (bits, ties; or every delta when keepAll) and not in the top
// dropK (bits2, ties2; none when dropNone), each set with its own tie budget (maskOutliersInto's rule).
struct MaskParams {
  int mode = 0;
  int32_t bits = 0, ties = 0, bits2 = 0, ties2 = 0;
  bool keepAll = false, dropNone = true;
  Draws dr;
  const uint8_t* keepBits = nullptr;  // mode 6 (DELLA): the tensor's keep mask, bit i for element i
};

// 16 bits of a bit mask from bit i on (the mask has 8 readable bytes past its end).
inline __mmask16 maskBits16(const uint8_t* m, uint64_t i) {
  uint64_t w;
  memcpy(&w, m + (i >> 3), 8);
  return static_cast<__mmask16>(w >> (i & 7));
}

// The mask of 16 lanes of d (elements start.. of the tensor) for a model (its tie budgets updated).
inline __mmask16 maskOf(__m512 d, MaskParams& p, uint32_t start) {
  // the top-k first: TIES runs it for every model and element
  if (p.mode == 2) return topMask(_mm512_and_si512(_mm512_castps_si512(d), _mm512_set1_epi32(ABS)), _mm512_set1_epi32(p.bits), &p.ties);
  if (p.mode == 0) return 0xffff;
  if (p.mode == 1) return 0;
  if (p.mode == 4) return keep16(start, p.dr.k0, p.dr.k1, p.dr.thr);
  if (p.mode == 6) return maskBits16(p.keepBits, start);
  const __m512i a = _mm512_and_si512(_mm512_castps_si512(d), _mm512_set1_epi32(ABS));
  const __mmask16 in = p.keepAll ? static_cast<__mmask16>(0xffff) : topMask(a, _mm512_set1_epi32(p.bits), &p.ties);
  const __mmask16 top = p.dropNone ? static_cast<__mmask16>(0) : topMask(a, _mm512_set1_epi32(p.bits2), &p.ties2);
  return static_cast<__mmask16>(in & ~top);
}

// The scalar mask of one element (maskOf's rule) for tails.
inline bool maskOf1(float d, MaskParams& p, uint32_t index) {
  uint32_t u;
  memcpy(&u, &d, 4);
  const int32_t a = static_cast<int32_t>(u & ABS);
  auto top = [a](int32_t t, int32_t* budget) {
    if (a > t && a <= INF_BITS) return true;
    if (a == t && *budget > 0) {
      --*budget;
      return true;
    }
    return false;
  };
  switch (p.mode) {
    case 0:
      return true;
    case 1:
      return false;
    case 4:
      return draw1(index, p.dr.k0, p.dr.k1) <= p.dr.thr;
    case 6:
      return (p.keepBits[index >> 3] >> (index & 7)) & 1;
    case 2:
      return top(p.bits, &p.ties);
    default: {
      const bool in = p.keepAll || top(p.bits, &p.ties);
      const bool dropped = !p.dropNone && top(p.bits2, &p.ties2);
      return in && !dropped;
    }
  }
}

// d = the masked f32(x - b) (dropped: +0) of n elements from `start` on; returns how many were kept.
int deltaMasked(const uint16_t* x, const uint16_t* b, float* d, int n, uint32_t start, MaskParams& p) {
  const bool f16 = inF16;
  int kept = 0;
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 v = _mm512_sub_ps(widen16F(f16, x + j), widen16F(f16, b + j));
    const __mmask16 keep = maskOf(v, p, start + static_cast<uint32_t>(j));
    _mm512_storeu_ps(d + j, _mm512_maskz_mov_ps(keep, v));
    kept += __builtin_popcount(keep);
  }
  for (; j < n; j++) {
    const float v = widenF(f16, x[j]) - widenF(f16, b[j]);
    const bool keep = maskOf1(v, p, start + static_cast<uint32_t>(j));
    d[j] = keep ? v : 0.0f;
    kept += keep;
  }
  return kept;
}

// The last n - j (< 16) elements of a fused kernel's range through the separate kernels (deltaMasked, tiesOut): the
// same bits, kept counts and tie budgets.
void fusedTail(const uint16_t* const* x, const uint16_t* b, int m, int j, int n, uint16_t* o, MaskParams* mp, int64_t* kept, int divide, double lambda,
               const double* sc, const double* w, uint32_t start) {
  float* d[MAX_MODELS];
  thread_local float tail[MAX_MODELS][16];
  for (int i = 0; i < m; i++) {
    d[i] = tail[i];
    kept[i] += deltaMasked(x[i] + j, b + j, d[i], n - j, start + static_cast<uint32_t>(j), mp[i]);
  }
  tiesOut(d, m, n - j, b + j, reinterpret_cast<float*>(o + j), divide, lambda, sc, w, 1);
}

// The masks (maskOf) and the consensus of M models fused (M <= 4: every model's masked delta stays in registers),
// tiesOut's operations in its order, BF16 out; kept[i] and the masks' tie budgets are updated. Same bits as
// deltaMasked + tiesOut.
template <int M, bool TopOnly, bool InF16, bool OutF16>
void tiesFused(const uint16_t* const* x, const uint16_t* b, int n, uint16_t* o, MaskParams* mp, int64_t* kept, int divide, double lambda,
               const double* sc, const double* w, uint32_t start) {
  const __m512d lam = _mm512_set1_pd(lambda);
  __m512d S[M], W[M];
  int64_t k[M];
  // TopOnly (every mask all, none or a top-k, TIES' case): thresholds and tie budgets in registers
  __m512i B[M];
  int32_t t[M];
  for (int i = 0; i < M; i++) {
    S[i] = _mm512_set1_pd(sc[i]);
    W[i] = _mm512_set1_pd(w[i]);
    k[i] = 0;
    B[i] = _mm512_set1_epi32(mp[i].bits);
    t[i] = mp[i].ties;
  }
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 bf = widen16T<InF16>(b + j);
    __m512 dm[M];
    for (int i = 0; i < M; i++) {
      const __m512 d = _mm512_sub_ps(widen16T<InF16>(x[i] + j), bf);
      __mmask16 keep;
      if constexpr (TopOnly) {
        if (mp[i].mode == 0) keep = 0xffff;
        else if (mp[i].mode == 1) keep = 0;
        else keep = topMask(_mm512_and_si512(_mm512_castps_si512(d), _mm512_set1_epi32(ABS)), B[i], &t[i]);
      } else {
        keep = maskOf(d, mp[i], start + static_cast<uint32_t>(j));
      }
      dm[i] = _mm512_maskz_mov_ps(keep, d);
      k[i] += __builtin_popcount(keep);
    }
    for (int h = 0; h < 2; h++) {
      __m512d v[M];
      for (int i = 0; i < M; i++) {
        const __m256 half = h == 0 ? _mm512_castps512_ps256(dm[i]) : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(dm[i]), 1));
        v[i] = _mm512_mul_pd(_mm512_cvtps_pd(half), S[i]);
      }
      const __m256 bh = h == 0 ? _mm512_castps512_ps256(bf) : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(bf), 1));
      const __m256 r = consensus8(v, M, bh, W, divide, lam);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o + j + 8 * h), narrow8T<OutF16>(r));
    }
  }
  if constexpr (TopOnly) {
    for (int i = 0; i < M; i++) {
      if (mp[i].mode == 2) mp[i].ties = t[i];
    }
  }
  for (int i = 0; i < M; i++) kept[i] += k[i];
  if (j < n) fusedTail(x, b, M, j, n, o, mp, kept, divide, lambda, sc, w, start);
}

template <bool F16>
inline __m256i narrow16T(__m512 f) {
  if constexpr (F16) return _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  else return bf16Of16(f);
}

// Whether tiesFast may run for these scales: each |sc_i| in [2^-900, 2^900], so that v_i = f64(d_i) sc_i is never 0,
// inf or subnormal-rounded to 0 for a nonzero f32 d_i and its sign is d_i's times sc_i's.
inline bool fastScales(const double* sc, int m) {
  for (int i = 0; i < m; i++) {
    const double a = fabs(sc[i]);
    if (!(a >= 0x1p-900 && a <= 0x1p900)) return false;
  }
  return true;
}

// keep = |d| bits in (bits, inf] (topMask without a tie budget) by one unsigned compare: a - (bits + 1) < inf - bits
// (valid for bits >= -1: below bits + 1 the difference wraps past inf - bits).
inline __mmask16 aboveMask(__m512i a, __m512i lo1, __m512i span) { return _mm512_cmplt_epu32_mask(_mm512_sub_epi32(a, lo1), span); }


// The masks tiesLean takes: every model's a top-k (LEAN_TOP), a DARE draw (LEAN_RAND) or a breadcrumbs band
// (LEAN_BAND); or a top-k while some tie budget lasts (LEAN_TIES: the first deltas at the threshold are kept too).
constexpr int LEAN_TOP = 0, LEAN_RAND = 1, LEAN_BAND = 2, LEAN_TIES = 3;

// tiesFast's steady state for BF16 in and out, and tiesFused's for DARE and breadcrumbs: every model's mask a top-k
// with threshold bits >= 0 (so every kept delta is nonzero and not NaN) and no tie budget left (aboveMask), or every
// model's a DARE draw, or every model's a band (in the top keep set unless keepAll, not in the top drop set unless
// dropNone, both thresholds >= -1 and no tie budgets left); a drawn or banded delta agrees only when nonzero and not
// NaN, as the compares of tiesFused say; every scale positive; the same operations per element, so the same bits. 32
// elements a step with no per-step branches: each input's 64 bytes widened by unpacking against zero (lanes in the
// unpack order, the same for every input; the draws are taken for the elements of those lanes) and the output packed
// back into element order; an agreeing delta is a kept one whose sign bit differs from the vote's >= 0. Returns where
// it stopped (fewer than 32 left); kept counts in cnt. start: the element index of x[0] (the draws'). LEAN_TIES
// (tiesFast's start, while tie budgets last; thresholds >= 0): a top-k that also keeps the first `ties[i]` deltas
// whose |d| bits equal the threshold, in element order (topMask's rule over the step's 32 elements: the same as its
// two 16-element blocks in turn), the budgets updated; such a delta may be zero (a threshold of 0), so only the nonzero
// kept ones may agree; it stops as soon as no budget is left.
template <int M, bool Unit, bool Divide, bool Lam, int Kind>
int tiesLean(const uint16_t* const* x, const uint16_t* b, int j, int n, uint16_t* o, const MaskParams* mp, __m512i* cnt, const double* sc, const double* w,
             double lambda, uint32_t start, int32_t* ties) {
  const __m512d lam = _mm512_set1_pd(lambda), zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0);
  const __m512i absv = _mm512_set1_epi32(ABS), onei = _mm512_set1_epi32(1), zi = _mm512_setzero_si512();
  // the elements of the unpack order's lanes within a step: 0-3, 8-11, 16-19, 24-27 (low), 4 more (high)
  const __m512i lanes[2] = {_mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27),
                            _mm512_setr_epi32(4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31)};
  const uint16_t* xp[M];
  __m512d S[M], W[M];
  __m512i L1[M], SP[M], c[M], K0[M], THR[M], L2[M], SP2[M], T[M];
  __mmask16 inAll[M], dropOn[M];
  const auto lowBound = [](int32_t bits) { return _mm512_set1_epi32(bits + 1); };
  const auto span = [](int32_t bits) { return _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(INF_BITS) - static_cast<uint32_t>(bits))); };
  // the deltas in (0, inf] (aboveMask with bits 0): those a draw or a band may count as agreeing
  const __m512i nz1 = lowBound(0), nzSpan = span(0);
  for (int i = 0; i < M; i++) {
    xp[i] = x[i];
    S[i] = _mm512_set1_pd(sc[i]);
    W[i] = _mm512_set1_pd(w[i]);
    L1[i] = lowBound(mp[i].bits);
    SP[i] = span(mp[i].bits);
    L2[i] = lowBound(mp[i].bits2);
    SP2[i] = span(mp[i].bits2);
    inAll[i] = mp[i].keepAll ? 0xffff : 0;
    dropOn[i] = mp[i].dropNone ? 0 : 0xffff;
    K0[i] = _mm512_set1_epi32(static_cast<int32_t>(mp[i].dr.k0));
    THR[i] = _mm512_set1_epi32(static_cast<int32_t>(mp[i].dr.thr));
    T[i] = _mm512_set1_epi32(mp[i].bits);
    c[i] = cnt[i];
  }
  for (; j + 32 <= n; j += 32) {
    // the tie budgets' picks of this step (element order: a step's low unpack lanes hold elements 8g..8g+3, its high
    // ones 8g+4..8g+7, g = 0..3)
    __mmask16 tied[2][M];
    if constexpr (Kind == LEAN_TIES) {
      bool left = false;
      for (int i = 0; i < M; i++) left = left || ties[i] > 0;
      if (!left) break;
    }
    const __m512i braw = _mm512_loadu_si512(b + j);
    const __m512 bq[2] = {_mm512_castsi512_ps(_mm512_unpacklo_epi16(zi, braw)), _mm512_castsi512_ps(_mm512_unpackhi_epi16(zi, braw))};
    __m512 dq[2][M];
    for (int i = 0; i < M; i++) {
      const __m512i xr = _mm512_loadu_si512(xp[i] + j);
      dq[0][i] = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_unpacklo_epi16(zi, xr)), bq[0]);
      dq[1][i] = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_unpackhi_epi16(zi, xr)), bq[1]);
    }
    if constexpr (Kind == LEAN_TIES) {
      for (int i = 0; i < M; i++) {
        tied[0][i] = tied[1][i] = 0;
        if (ties[i] <= 0) continue;
        const uint32_t e0 = _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(dq[0][i]), absv), T[i]);
        const uint32_t e1 = _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(dq[1][i]), absv), T[i]);
        const uint32_t eq = _pdep_u32(e0, 0x0F0F0F0Fu) | _pdep_u32(e1, 0xF0F0F0F0u);
        if (eq == 0) continue;
        const int32_t have = __builtin_popcount(eq);
        const int32_t take = have < ties[i] ? have : ties[i];
        const uint32_t pick = take >= 32 ? eq : _pdep_u32((1u << take) - 1u, eq);
        ties[i] -= take;
        tied[0][i] = static_cast<__mmask16>(_pext_u32(pick, 0x0F0F0F0Fu));
        tied[1][i] = static_cast<__mmask16>(_pext_u32(pick, 0xF0F0F0F0u));
      }
    }
    __m512i bits[2];
    for (int q = 0; q < 2; q++) {
      __m512 dm[M];
      __mmask16 keep[M], neg[M];
      for (int i = 0; i < M; i++) {
        const __m512i a = _mm512_and_si512(_mm512_castps_si512(dq[q][i]), absv);
        // in: the deltas kept (they count, and vote); keep[i]: those of them that may agree
        __mmask16 in;
        if constexpr (Kind == LEAN_RAND) {
          const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(start + static_cast<uint32_t>(j))), lanes[q]);
          in = _mm512_cmple_epu32_mask(drawTail16(_mm512_xor_si512(index, K0[i]), mp[i].dr.k1), THR[i]);
          keep[i] = in & aboveMask(a, nz1, nzSpan);
        } else if constexpr (Kind == LEAN_BAND) {
          in = static_cast<__mmask16>((aboveMask(a, L1[i], SP[i]) | inAll[i]) & ~(aboveMask(a, L2[i], SP2[i]) & dropOn[i]));
          keep[i] = in & aboveMask(a, nz1, nzSpan);
        } else if constexpr (Kind == LEAN_TIES) {
          in = aboveMask(a, L1[i], SP[i]) | tied[q][i];
          keep[i] = in & aboveMask(a, nz1, nzSpan);
        } else {
          in = keep[i] = aboveMask(a, L1[i], SP[i]);
        }
        dm[i] = _mm512_maskz_mov_ps(in, dq[q][i]);
        c[i] = _mm512_mask_add_epi32(c[i], in, c[i], onei);
        neg[i] = _mm512_movepi32_mask(_mm512_castps_si512(dq[q][i]));
      }
      __m512d v[2][M];
      __mmask8 ge[2];
      for (int h = 0; h < 2; h++) {
        for (int i = 0; i < M; i++) {
          v[h][i] = _mm512_cvtps_pd(h == 0 ? _mm512_castps512_ps256(dm[i]) : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(dm[i]), 1)));
          if constexpr (!Unit) v[h][i] = _mm512_mul_pd(v[h][i], S[i]);
        }
        __m512d s = v[h][0];
        for (int i = 1; i < M; i++) s = _mm512_add_pd(s, v[h][i]);
        ge[h] = _mm512_cmp_pd_mask(s, zero, _CMP_GE_OQ);
      }
      const __mmask16 ge16 = _mm512_kunpackb(ge[1], ge[0]);
      __m256 r[2];
      for (int h = 0; h < 2; h++) {
        __m512d mm = zero, z = zero;
        for (int i = 0; i < M; i++) {
          const __mmask16 ag = _kand_mask16(keep[i], _kxor_mask16(ge16, neg[i]));
          const __mmask8 a8 = static_cast<__mmask8>(h == 0 ? ag : _kshiftri_mask16(ag, 8));
          mm = _mm512_mask_add_pd(mm, a8, mm, v[h][i]);
          if constexpr (Divide) z = _mm512_mask_add_pd(z, a8, z, W[i]);
        }
        if constexpr (Divide) mm = _mm512_div_pd(mm, _mm512_mask_blend_pd(_mm512_cmp_pd_mask(z, zero, _CMP_EQ_OQ), z, one));
        if constexpr (Lam) mm = _mm512_mul_pd(mm, lam);
        const __m256 bh = h == 0 ? _mm512_castps512_ps256(bq[q]) : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(bq[q]), 1));
        r[h] = _mm512_cvtpd_ps(_mm512_add_pd(_mm512_cvtps_pd(bh), mm));
      }
      // a NaN here is the result of f64 arithmetic on BF16-born numbers (quiet, its low 29 f64 payload bits zero), so
      // its f32 has zero low halves and the rounding leaves it as it is: bf16Of16's quieting would change nothing
      bits[q] = bf16Round32(_mm512_insertf32x8(_mm512_castps256_ps512(r[0]), r[1], 1));
    }
    _mm512_storeu_si512(o + j, _mm512_packus_epi32(bits[0], bits[1]));
  }
  for (int i = 0; i < M; i++) cnt[i] = c[i];
  return j;
}

using LeanFn = int (*)(const uint16_t* const*, const uint16_t*, int, int, uint16_t*, const MaskParams*, __m512i*, const double*, const double*, double,
                       uint32_t, int32_t*);

template <int M, bool Unit, int Kind = LEAN_TOP>
LeanFn leanFor(int divide, bool lam) {
  if (divide) return lam ? tiesLean<M, Unit, true, true, Kind> : tiesLean<M, Unit, true, false, Kind>;
  return lam ? tiesLean<M, Unit, false, true, Kind> : tiesLean<M, Unit, false, false, Kind>;
}

// tiesFused for top-k masks (TopOnly) with fewer operations and the same bits: each model's agreement with the vote's
// sign taken from d's f32 sign on sixteen lanes (v_i's sign is d_i's times sc_i's, see fastScales), the agreeing sums
// by masked adds (a disagreeing +0 leaves a sum unchanged: the sums start at +0 and every agreeing term is nonzero, so
// they are never -0), the products by sc_i skipped when every sc_i is 1 (Unit) and by lambda when it is 1 (exact
// either way), the vote's sign of both halves joined before the agreement masks are formed sixteen lanes at a time, a
// mask without a tie budget left by one unsigned compare (aboveMask), the kept counts in vector lanes, and the output
// narrowed sixteen lanes at a time. S = ((0 + v_0) + v_1) + ... is taken without the
// leading 0 + (only the sign of a zero S could differ, and S >= 0 holds for both zeros).
template <int M, bool InF16, bool OutF16, bool Unit>
void tiesFast(const uint16_t* const* x, const uint16_t* b, int n, uint16_t* o, MaskParams* mp, int64_t* kept, int divide, double lambda,
              const double* sc, const double* w, uint32_t start) {
  const __m512d lam = _mm512_set1_pd(lambda), zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0);
  const __m512i absv = _mm512_set1_epi32(ABS), onei = _mm512_set1_epi32(1);
  const bool lamOne = lambda == 1.0;
  __m512d S[M], W[M];
  __m512i B[M], L1[M], SP[M], cnt[M];
  int32_t t[M];
  bool flip[M], quick[M];
  for (int i = 0; i < M; i++) {
    S[i] = _mm512_set1_pd(sc[i]);
    W[i] = _mm512_set1_pd(w[i]);
    B[i] = _mm512_set1_epi32(mp[i].bits);
    quick[i] = mp[i].bits >= -1;
    L1[i] = _mm512_set1_epi32(mp[i].bits + (quick[i] ? 1 : 0));
    SP[i] = _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(INF_BITS) - static_cast<uint32_t>(mp[i].bits)));
    cnt[i] = _mm512_setzero_si512();
    t[i] = mp[i].ties;
    flip[i] = sc[i] < 0;
  }
  auto step = [&](int j) {
    const __m512 bf = widen16T<InF16>(b + j);
    __m512 dm[M];
    __mmask16 pos[M], neg[M];
    for (int i = 0; i < M; i++) {
      const __m512 d = _mm512_sub_ps(widen16T<InF16>(x[i] + j), bf);
      __mmask16 keep;
      if (mp[i].mode == 0) keep = 0xffff;
      else if (mp[i].mode == 1) keep = 0;
      else if (t[i] > 0 || !quick[i]) keep = topMask(_mm512_and_si512(_mm512_castps_si512(d), absv), B[i], &t[i]);
      else keep = aboveMask(_mm512_and_si512(_mm512_castps_si512(d), absv), L1[i], SP[i]);
      dm[i] = _mm512_maskz_mov_ps(keep, d);
      cnt[i] = _mm512_mask_add_epi32(cnt[i], keep, cnt[i], onei);
      const __mmask16 gt = _mm512_cmp_ps_mask(dm[i], _mm512_setzero_ps(), _CMP_GT_OQ), lt = _mm512_cmp_ps_mask(dm[i], _mm512_setzero_ps(), _CMP_LT_OQ);
      pos[i] = flip[i] ? lt : gt;
      neg[i] = flip[i] ? gt : lt;
    }
    __m512d v[2][M];
    __mmask8 ge[2];
    for (int h = 0; h < 2; h++) {
      for (int i = 0; i < M; i++) {
        const __m256 half = h == 0 ? _mm512_castps512_ps256(dm[i]) : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(dm[i]), 1));
        v[h][i] = _mm512_cvtps_pd(half);
        if constexpr (!Unit) v[h][i] = _mm512_mul_pd(v[h][i], S[i]);
      }
      __m512d s = v[h][0];
      for (int i = 1; i < M; i++) s = _mm512_add_pd(s, v[h][i]);
      ge[h] = _mm512_cmp_pd_mask(s, zero, _CMP_GE_OQ);
    }
    const __mmask16 ge16 = static_cast<__mmask16>(ge[0] | (static_cast<uint32_t>(ge[1]) << 8));
    __mmask16 ag[M];
    for (int i = 0; i < M; i++) ag[i] = static_cast<__mmask16>((ge16 & pos[i]) | (~ge16 & neg[i]));
    __m256 r[2];
    for (int h = 0; h < 2; h++) {
      __m512d mm = zero, z = zero;
      for (int i = 0; i < M; i++) {
        const __mmask8 a8 = static_cast<__mmask8>(ag[i] >> (8 * h));
        mm = _mm512_mask_add_pd(mm, a8, mm, v[h][i]);
        z = _mm512_mask_add_pd(z, a8, z, W[i]);
      }
      if (divide) mm = _mm512_div_pd(mm, _mm512_mask_blend_pd(_mm512_cmp_pd_mask(z, zero, _CMP_EQ_OQ), z, one));
      if (!lamOne) mm = _mm512_mul_pd(mm, lam);
      const __m256 bh = h == 0 ? _mm512_castps512_ps256(bf) : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(bf), 1));
      r[h] = _mm512_cvtpd_ps(_mm512_add_pd(_mm512_cvtps_pd(bh), mm));
    }
    const __m512 rr = _mm512_insertf32x8(_mm512_castps256_ps512(r[0]), r[1], 1);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + j), narrow16T<OutF16>(rr));
  };
  int j = 0;
  if constexpr (!InF16 && !OutF16) {
    // BF16 in and out, top-k masks with thresholds >= 0 and positive scales: tiesLean once no tie budget is left
    bool lean = true;
    for (int i = 0; i < M; i++) lean = lean && mp[i].mode == 2 && mp[i].bits >= 0 && !flip[i];
    if (lean) {
      auto ties = [&]() {
        for (int i = 0; i < M; i++) {
          if (t[i] > 0) return true;
        }
        return false;
      };
      // while tie budgets last: 32 elements a step with the budgets' picks, then (fewer than 32 left) 16 a step
      if (ties()) j = leanFor<M, Unit, LEAN_TIES>(divide, !lamOne)(x, b, j, n, o, mp, cnt, sc, w, lambda, start, t);
      for (; j + 16 <= n && ties(); j += 16) step(j);
      j = leanFor<M, Unit>(divide, !lamOne)(x, b, j, n, o, mp, cnt, sc, w, lambda, start, nullptr);
    }
  }
  for (; j + 16 <= n; j += 16) step(j);
  for (int i = 0; i < M; i++) {
    if (mp[i].mode == 2) mp[i].ties = t[i];
    kept[i] += _mm512_reduce_add_epi32(cnt[i]);
  }
  if (j < n) fusedTail(x, b, M, j, n, o, mp, kept, divide, lambda, sc, w, start);
}

using FusedFn = void (*)(const uint16_t* const*, const uint16_t*, int, uint16_t*, MaskParams*, int64_t*, int, double, const double*, const double*,
                        uint32_t);

// DARE's or breadcrumbs' fused merge (every mask a draw, or every mask a band) through tiesLean (BF16 in and out,
// positive scales that fastScales allows); tiesFused takes the elements before (16 at a time, while a band's tie
// budget lasts: it spends them in element order) and after (fewer than 32), and every element when a band's
// threshold lies below -1 (aboveMask's domain).
template <int M, bool Unit, int Kind>
void maskLean(const uint16_t* const* x, const uint16_t* b, int n, uint16_t* o, MaskParams* mp, int64_t* kept, int divide, double lambda, const double* sc,
              const double* w, uint32_t start) {
  const auto fused = [&](int j, int len) {
    const uint16_t* xj[M];
    for (int i = 0; i < M; i++) xj[i] = x[i] + j;
    tiesFused<M, false, false, false>(xj, b + j, len, o + j, mp, kept, divide, lambda, sc, w, start + static_cast<uint32_t>(j));
  };
  int j = 0;
  if constexpr (Kind == LEAN_BAND) {
    for (int i = 0; i < M; i++) {
      if ((!mp[i].keepAll && mp[i].bits < -1) || (!mp[i].dropNone && mp[i].bits2 < -1)) return fused(0, n);
    }
    const auto budgets = [&]() {
      for (int i = 0; i < M; i++) {
        if ((!mp[i].keepAll && mp[i].ties > 0) || (!mp[i].dropNone && mp[i].ties2 > 0)) return true;
      }
      return false;
    };
    for (; j + 16 <= n && budgets(); j += 16) fused(j, 16);
  }
  __m512i cnt[M];
  for (int i = 0; i < M; i++) cnt[i] = _mm512_setzero_si512();
  j = leanFor<M, Unit, Kind>(divide, lambda != 1.0)(x, b, j, n, o, mp, cnt, sc, w, lambda, start, nullptr);
  for (int i = 0; i < M; i++) kept[i] += _mm512_reduce_add_epi32(cnt[i]);
  if (j < n) fused(j, n - j);
}

template <int M>
FusedFn maskLeanFor(bool unit, int kind) {
  if (kind == LEAN_RAND) return unit ? maskLean<M, true, LEAN_RAND> : maskLean<M, false, LEAN_RAND>;
  return unit ? maskLean<M, true, LEAN_BAND> : maskLean<M, false, LEAN_BAND>;
}

template <int M>
FusedFn fusedFor(bool topOnly, bool in16, bool out16, bool fast, bool unit) {
  if (topOnly && fast) {
    if (unit) {
      if (in16) return out16 ? tiesFast<M, true, true, true> : tiesFast<M, true, false, true>;
      return out16 ? tiesFast<M, false, true, true> : tiesFast<M, false, false, true>;
    }
    if (in16) return out16 ? tiesFast<M, true, true, false> : tiesFast<M, true, false, false>;
    return out16 ? tiesFast<M, false, true, false> : tiesFast<M, false, false, false>;
  }
  if (topOnly) {
    if (in16) return out16 ? tiesFused<M, true, true, true> : tiesFused<M, true, true, false>;
    return out16 ? tiesFused<M, true, false, true> : tiesFused<M, true, false, false>;
  }
  if (in16) return out16 ? tiesFused<M, false, true, true> : tiesFused<M, false, true, false>;
  return out16 ? tiesFused<M, false, false, true> : tiesFused<M, false, false, false>;
}

// The fused kernel for m models (1..4), TIES' register-resident top-k masks or any masks, and the formats; top-k
// masks run tiesFast where the scales sc allow it (fastScales), every model's DARE draw or breadcrumbs band (kind
// LEAN_RAND, LEAN_BAND; LEAN_TOP: neither) maskLean where they also are positive and the inputs and output BF16,
// unless `fused` (tests: tiesFused itself).
FusedFn fusedKernel(int m, bool topOnly, int kind, bool in16, bool out16, const double* sc, bool fused) {
  const bool fast = !fused && fastScales(sc, m);
  bool unit = true, positive = true;
  for (int i = 0; i < m; i++) {
    unit = unit && sc[i] == 1.0;
    positive = positive && sc[i] > 0;
  }
  if (kind != LEAN_TOP && fast && positive && !in16 && !out16) {
    switch (m) {
      case 1: return maskLeanFor<1>(unit, kind);
      case 2: return maskLeanFor<2>(unit, kind);
      case 3: return maskLeanFor<3>(unit, kind);
      default: return maskLeanFor<4>(unit, kind);
    }
  }
  switch (m) {
    case 1: return fusedFor<1>(topOnly, in16, out16, fast, unit);
    case 2: return fusedFor<2>(topOnly, in16, out16, fast, unit);
    case 3: return fusedFor<3>(topOnly, in16, out16, fast, unit);
    default: return fusedFor<4>(topOnly, in16, out16, fast, unit);
  }
}

// Windowed high-bits counts of d = f32(x - b) (BF16 inputs) for a top-k whose threshold is known to lie in the bins
// [lo >> 16, hi >> 16]: elements with |d| bits in [lo, hi] are counted by bin (u32 at h + 4 * (bits >> 16), or 1M
// further when the low 16 bits are nonzero: delta_hist_inexact's layout); the others are only counted, as above
// (hi < |d| bits <= inf bits) or below (|d| bits < lo); NaNs are not counted at all.
void histWindow(const uint16_t* x, const uint16_t* b, int n, uint8_t* h, int32_t lo, int32_t hi, uint32_t* above, uint32_t* below) {
  const bool f16 = inF16;
  const __m512i absv = _mm512_set1_epi32(ABS), inf = _mm512_set1_epi32(INF_BITS);
  const __m512i lov = _mm512_set1_epi32(lo), hiv = _mm512_set1_epi32(hi);
  uint32_t up = 0, down = 0;
  static thread_local uint32_t list[16384 + 16];
  int listed = 0;
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512i a = _mm512_and_si512(_mm512_castps_si512(_mm512_sub_ps(widen16F(f16, x + j), widen16F(f16, b + j))), absv);
    const __mmask16 gt = _mm512_cmpgt_epi32_mask(a, hiv);
    const __mmask16 lt = _mm512_cmplt_epi32_mask(a, lov);
    up += __builtin_popcount(gt & _mm512_cmple_epi32_mask(a, inf));
    down += __builtin_popcount(lt);
    // the lanes inside the window, appended without a branch (counted by bucket below)
    const __mmask16 in = static_cast<__mmask16>(~(gt | lt));
    _mm512_storeu_si512(list + listed, _mm512_maskz_compress_epi32(in, a));
    listed += __builtin_popcount(in);
  }
  for (int i = 0; i < listed; i++) {
    const uint32_t u = list[i];
    ++*reinterpret_cast<uint32_t*>(h + ((u >> 14) & 0x1fffc) + ((u & 0xffff) != 0 ? 0x100000 : 0));
  }
  for (; j < n; j++) {
    float v = widenF(f16, x[j]) - widenF(f16, b[j]);
    int32_t u;
    memcpy(&u, &v, 4);
    const int32_t al = u & ABS;
    if (al > hi) up += al <= INF_BITS;
    else if (al < lo) down++;
    else ++*reinterpret_cast<uint32_t*>(h + ((static_cast<uint32_t>(al) >> 14) & 0x1fffc) + ((al & 0xffff) != 0 ? 0x100000 : 0));
  }
  *above += up;
  *below += down;
}

// ---- the whole-tensor TIES merge (tiesTensor): one call per tensor held in memory ----

constexpr int PIECE = 16384;
constexpr int SAMPLE_BLOCK = 512;
constexpr int NBUCKETS = 65536;

// |f32(x - b)| bits of 16 BF16 pairs
template <bool F16>
inline __m512i magBits16T(const uint16_t* x, const uint16_t* b) {
  return _mm512_and_si512(_mm512_castps_si512(_mm512_sub_ps(widen16T<F16>(x), widen16T<F16>(b))), _mm512_set1_epi32(ABS));
}

inline __m512i magBits16F(bool f16, const uint16_t* x, const uint16_t* b) { return f16 ? magBits16T<true>(x, b) : magBits16T<false>(x, b); }

template <bool F16>
inline uint32_t magBitsT(uint16_t x, uint16_t b) {
  float v = widenT<F16>(x) - widenT<F16>(b);
  uint32_t u;
  memcpy(&u, &v, 4);
  return u & ABS;
}

inline uint32_t magBitsF(bool f16, uint16_t x, uint16_t b) { return f16 ? magBitsT<true>(x, b) : magBitsT<false>(x, b); }


// The exact top-k of one model's |delta| bits (NaN never counted): keep a iff a > T (a <= inf), or a == T for the
// first `ties` such elements in element order; `all` when k reaches the count of numbers (every delta kept, NaN too).
// The window pass counts the window's elements by bucket (a >> 16) and lists only the inexact ones (low 16 bits set:
// differences of BF16 numbers are mostly exact BF16 values, so buckets hold few distinct values and lists stay short;
// F16 differences are inexact more often, so their lists overflow sooner and the exact counts run: slower, the same).
struct TopK {
  int64_t k = 0;
  uint32_t lo = 0, hi = 0;  // window (a bits, inclusive) from the sample, whole buckets; none when !windowed
  bool windowed = false, overflow = false;
  uint64_t above = 0, below = 0;
  std::vector<uint32_t> counts;  // by bucket - (lo >> 16)
  std::vector<uint32_t> staged;  // window elements waiting to be counted by bucket
  size_t nstaged = 0;
  std::vector<uint32_t> list;  // inexact a bits inside the window
  size_t listed = 0, cap = 0;
  int32_t T = 0;
  int64_t ties = 0;
  bool all = false;
  bool selected = false;  // the threshold was selected among the listed inexact values
  uint64_t ge[16] = {};  // countBounds: elements at or above each bucket start of the window, NaNs, all elements
  uint64_t nans = 0, total = 0;
};

constexpr size_t STAGE = 4096;

// The sum of a vector's sixteen u32 lanes, in u64.
inline uint64_t laneSum(__m512i v) {
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(v)), _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(v, 1)))));
}

inline void flushStaged(TopK& t) {
  const uint32_t base = t.lo >> 16;
  uint32_t* c = t.counts.data();
  for (size_t i = 0; i < t.nstaged; i++) c[(t.staged[i] >> 16) - base]++;
  t.nstaged = 0;
}

// The bucket (a >> 16) holding the r-th largest (r >= 1) of a histogram with `total` entries.
uint32_t bucketAtRank(const uint32_t* h, uint64_t r) {
  uint64_t c = 0;
  for (int b = NBUCKETS - 1; b >= 0; b--) {
    c += h[b];
    if (c >= r) return static_cast<uint32_t>(b);
  }
  return 0;
}

// The window of buckets around rank k from a sample of 512 elements per 16K piece (the JS SAMPLE pass's positions).
// The magnitudes sixteen at a time, counted into four interleaved histograms (lane l into the (l & 3)-th: runs of one
// bucket do not chain their increments), summed into h over the buckets touched and zeroed again there (measured:
// 0.39-0.48 -> 0.16-0.20 ms per model of an 11.5M-element tensor).
void sampleWindow(const uint16_t* x, const uint16_t* b, int64_t n, TopK& t, std::vector<uint32_t>& h) {
  const bool f16 = inF16;
  thread_local std::vector<uint32_t> h4;  // all zero between calls
  if (h4.size() != 4 * static_cast<size_t>(NBUCKETS)) h4.assign(4 * static_cast<size_t>(NBUCKETS), 0);
  h.assign(NBUCKETS, 0);
  uint32_t* hh = h4.data();
  const __m512i inf = _mm512_set1_epi32(INF_BITS), part = _mm512_set_epi32(3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0, 3, 2, 1, 0);
  __m512i lowest = _mm512_set1_epi32(4 * NBUCKETS), highest = _mm512_setzero_si512();
  alignas(64) uint32_t lanes[16];
  uint64_t S = 0;
  for (int64_t p = 0; p * PIECE < n; p++) {
    const int64_t off = p * PIECE;
    const int len = static_cast<int>(n - off < PIECE ? n - off : PIECE);
    const int m = len < SAMPLE_BLOCK ? len : SAMPLE_BLOCK;
    const int64_t s = off + (len > m ? (p * 7919) % (len - m + 1) : 0);
    // the block AHEAD pieces on, fetched while this one is counted (the blocks are scattered: no prefetcher sees them)
    constexpr int64_t AHEAD = 4;
    if ((p + AHEAD) * PIECE + PIECE <= n) {
      const int64_t s2 = (p + AHEAD) * PIECE + ((p + AHEAD) * 7919) % (PIECE - SAMPLE_BLOCK + 1);
      for (int e = 0; e < SAMPLE_BLOCK; e += 32) {
        _mm_prefetch(reinterpret_cast<const char*>(x + s2 + e), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(b + s2 + e), _MM_HINT_T0);
      }
    }
    int j = 0;
    for (; j + 16 <= m; j += 16) {
      const __m512i a = magBits16F(f16, x + s + j, b + s + j);
      const __mmask16 ok = _mm512_cmple_epu32_mask(a, inf);  // NaN is not counted
      const __m512i idx = _mm512_add_epi32(_mm512_slli_epi32(_mm512_srli_epi32(a, 16), 2), part);
      _mm512_store_si512(lanes, idx);
      lowest = _mm512_min_epu32(lowest, idx);
      highest = _mm512_max_epu32(highest, idx);
      if (__builtin_expect(ok == 0xffff, 1)) {
        for (int l = 0; l < 16; l++) hh[lanes[l]]++;
        S += 16;
      } else {
        for (int l = 0; l < 16; l++) {
          if ((ok >> l) & 1) {
            hh[lanes[l]]++;
            S++;
          }
        }
      }
    }
    for (; j < m; j++) {
      const uint32_t a = magBitsF(f16, x[s + j], b[s + j]);
      if (a <= static_cast<uint32_t>(INF_BITS)) {
        h[a >> 16]++;
        S++;
      }
    }
  }
  const uint32_t q0 = _mm512_reduce_min_epu32(lowest) / 4, q1 = _mm512_reduce_max_epu32(highest) / 4;
  for (uint32_t q = q0; q <= q1 && q < static_cast<uint32_t>(NBUCKETS); q++) {
    h[q] += hh[4 * q] + hh[4 * q + 1] + hh[4 * q + 2] + hh[4 * q + 3];
    hh[4 * q] = hh[4 * q + 1] = hh[4 * q + 2] = hh[4 * q + 3] = 0;
  }
  if (S < 1000) return;
  const double q = static_cast<double>(t.k) / static_cast<double>(n);
  // a margin of ~6 standard deviations of the sample quantile, at least 0.5%
  double margin = 3.0 / sqrt(static_cast<double>(S));
  if (margin < 0.005) margin = 0.005;
  const double hiR = floor((q - margin) * static_cast<double>(S)), loR = ceil((q + margin) * static_cast<double>(S));
  const uint32_t hb = hiR < 1 ? (INF_BITS >> 16) : bucketAtRank(h.data(), static_cast<uint64_t>(hiR));
  const uint32_t lb = loR >= static_cast<double>(S) ? 0 : bucketAtRank(h.data(), static_cast<uint64_t>(loR));
  t.lo = lb << 16;
  t.hi = ((hb + 1) << 16) - 1;
  if (t.hi > static_cast<uint32_t>(INF_BITS)) t.hi = INF_BITS;
  t.windowed = true;
  // room for the window's expected share and then some; more means a clustered window: count exactly instead
  const double share = 2 * margin + 0.03;
  t.cap = static_cast<size_t>(share * static_cast<double>(n)) + 16384;
  if (t.cap > static_cast<size_t>(n) + 16) t.cap = static_cast<size_t>(n) + 16;
  if (t.list.size() < t.cap) t.list.resize(t.cap);
  t.counts.assign((t.hi >> 16) - (t.lo >> 16) + 1, 0);
  if (t.staged.size() < STAGE + 16) t.staged.resize(STAGE + 16);
  t.nstaged = 0;
}

// One pass over the tensor for one windowed model whose window spans NB - 1 buckets: counters of the elements at or
// above each bucket start (and of NaNs), no branch; the window's inexact values (rare) listed. 32 elements at a time:
// the high halves of two vectors of |d| bits gathered (a bucket, a >> 16, is below 2^15) and compared with each
// bucket start on 16-bit lanes, one compare and add per bound for 32 elements (measured: 0.21 -> 0.15 ns per
// element); the low halves' nonzero test with the bucket masks gives the inexact lanes, listed (in element order for
// F16 inputs, in the unpack order for BF16: resolveWindow selects among them by value). The lane counters are 16-bit
// (a call counts one region at most).
template <int NB, bool F16>
void countBoundsT(const uint16_t* x, const uint16_t* b, int64_t n, TopK& t) {
  const __m512i nan16 = _mm512_set1_epi16(static_cast<int16_t>((INF_BITS >> 16) + 1)), one16 = _mm512_set1_epi16(1);
  // u16 lane k of the result: odd (high) / even (low) halves of a0 then a1, in element order
  alignas(64) static const uint16_t HI[32] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 33, 35, 37, 39, 41, 43, 45, 47, 49, 51, 53, 55, 57, 59, 61, 63};
  alignas(64) static const uint16_t LO[32] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62};
  const __m512i hi = _mm512_load_si512(HI), lo = _mm512_load_si512(LO);
  __m512i bound[NB], acc[NB];
  for (int q = 0; q < NB; q++) {
    bound[q] = _mm512_set1_epi16(static_cast<int16_t>((t.lo >> 16) + static_cast<uint32_t>(q)));
    acc[q] = _mm512_setzero_si512();
  }
  __m512i nan = _mm512_setzero_si512();
  int64_t j = 0;
  // u16 lane counters, one count per 32 elements: a call counts at most a region (countWindows), far below the
  // 65535 * 32 elements that would wrap them (static_assert below REGION_ELEMENTS)
  for (; j + 32 <= n; j += 32) {
    // 4 KiB ahead: the hardware prefetchers stop at page boundaries (count pass 0.32-0.50 -> 0.32-0.35 s per worker)
    _mm_prefetch(reinterpret_cast<const char*>(x + j + 2048), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + j + 2048), _MM_HINT_T0);
    __m512i a0, a1;
    if constexpr (F16) {
      a0 = magBits16T<true>(x + j, b + j);
      a1 = magBits16T<true>(x + j + 16, b + j + 16);
    } else {
      // BF16: each input's 64 bytes widened by unpacking against zero (the lanes in the unpack order, the same for
      // both; the counts and the listed values do not depend on the order: 0.140 -> 0.120 ns per element)
      const __m512i xr = _mm512_loadu_si512(x + j), br = _mm512_loadu_si512(b + j), z = _mm512_setzero_si512();
      const auto mag = [](__m512i xw, __m512i bw) {
        return _mm512_and_si512(_mm512_castps_si512(_mm512_sub_ps(_mm512_castsi512_ps(xw), _mm512_castsi512_ps(bw))), _mm512_set1_epi32(ABS));
      };
      a0 = mag(_mm512_unpacklo_epi16(z, xr), _mm512_unpacklo_epi16(z, br));
      a1 = mag(_mm512_unpackhi_epi16(z, xr), _mm512_unpackhi_epi16(z, br));
    }
    const __m512i h = _mm512_permutex2var_epi16(a0, hi, a1);
    __mmask32 ge[NB];
    for (int q = 0; q < NB; q++) {
      ge[q] = _mm512_cmpge_epu16_mask(h, bound[q]);
      acc[q] = _mm512_mask_add_epi16(acc[q], ge[q], acc[q], one16);
    }
    // a NaN difference is quiet (the subtraction quiets any NaN): its high half is at least 0x7fc0, and never 0x7f80
    // (that is inf, or a NaN whose top mantissa bits are zero)
    nan = _mm512_mask_add_epi16(nan, _mm512_cmpge_epu16_mask(h, nan16), nan, one16);
    const __mmask32 inexact = _mm512_mask_test_epi16_mask(ge[0] & ~ge[NB - 1], _mm512_permutex2var_epi16(a0, lo, a1), _mm512_set1_epi16(-1));
    if (__builtin_expect(inexact != 0, 0)) {
      if (t.listed + 32 > t.cap) t.overflow = true;
      else {
        const __mmask16 m0 = static_cast<__mmask16>(inexact), m1 = static_cast<__mmask16>(inexact >> 16);
        _mm512_storeu_si512(t.list.data() + t.listed, _mm512_maskz_compress_epi32(m0, a0));
        t.listed += __builtin_popcount(m0);
        _mm512_storeu_si512(t.list.data() + t.listed, _mm512_maskz_compress_epi32(m1, a1));
        t.listed += __builtin_popcount(m1);
      }
    }
  }
  for (int q = 0; q < NB; q++) {
    t.ge[q] += laneSum(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(acc[q]))) + laneSum(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(acc[q], 1)));
  }
  t.total += static_cast<uint64_t>(j);
  t.nans += laneSum(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(nan))) + laneSum(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(nan, 1)));
  for (; j < n; j++) {
    const uint32_t a = magBitsT<F16>(x[j], b[j]);
    t.total++;
    for (int q = 0; q < NB; q++) t.ge[q] += a >= t.lo + (static_cast<uint32_t>(q) << 16);
    t.nans += a > static_cast<uint32_t>(INF_BITS);
    if (a >= t.lo && a < t.lo + (static_cast<uint32_t>(NB - 1) << 16) && (a & 0xffff) != 0) {
      if (t.listed >= t.cap) t.overflow = true;
      else t.list[t.listed++] = a;
    }
  }
}

template <int NB>
void countBounds(const uint16_t* x, const uint16_t* b, int64_t n, TopK& t) {
  if (inF16) countBoundsT<NB, true>(x, b, n, t);
  else countBoundsT<NB, false>(x, b, n, t);
}

// countBounds' totals as counts: below and above the window, and by bucket inside it (bucket q: ge[q] - ge[q + 1]).
void finishBounds(TopK& t) {
  const size_t nb = t.counts.size() + 1;
  t.below = t.total - t.ge[0];
  t.above = t.ge[nb - 1] - t.nans;
  for (size_t q = 0; q + 1 < nb; q++) t.counts[q] = static_cast<uint32_t>(t.ge[q] - t.ge[q + 1]);
}

constexpr int MAX_BOUNDS = 12;

template <int NB>
void countBoundsUpTo(int nb, const uint16_t* x, const uint16_t* b, int64_t n, TopK& t) {
  if constexpr (NB > MAX_BOUNDS) {
    (void)nb, (void)x, (void)b, (void)n, (void)t;
  } else if (nb == NB) {
    countBounds<NB>(x, b, n, t);
  } else {
    countBoundsUpTo<NB + 1>(nb, x, b, n, t);
  }
}

// Mapped inputs whose pages are given back behind the passes (MADV_DONTNEED: the page cache keeps them), so a big
// tensor's mapping never holds more than a region of each input.
struct Dropper {
  const uint16_t* in[MAX_MODELS + 1];
  int count = 0;
  bool on = false;
  // per input: the address below which its pages were given back since the pass began (a pass runs from element 0:
  // an e not above the last one starts a new pass, or follows a sample, whose pages are mapped again)
  mutable uintptr_t done[MAX_MODELS + 1] = {};
  mutable int64_t last = 0;
  // give back each input's pages below element e, in whole 2 MiB units of address: the kernel maps a file's 2 MiB
  // folios whole where the mapping's address agrees with the file offset (it places file mappings so), and giving
  // back part of one splits that mapping; the unit also keeps the calls few
  void upTo(int64_t e) const {
    if (!on) return;
    constexpr uintptr_t unit = uintptr_t{2} << 20;
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    if (e <= last) memset(done, 0, sizeof done);
    last = e;
    for (int i = 0; i < count; i++) {
      const uintptr_t lo = done[i] != 0 ? done[i] : reinterpret_cast<uintptr_t>(in[i]) & ~(page - 1);
      const uintptr_t hi = reinterpret_cast<uintptr_t>(in[i] + e) & ~(unit - 1);
      if (hi <= lo) continue;
      madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
      done[i] = hi;
    }
  }
};

constexpr int64_t REGION_ELEMENTS = 1 << 18;
static_assert(REGION_ELEMENTS + 64 <= int64_t{32} * 65535, "countBoundsT's 16-bit lane counters would wrap within a region");

// The wide windows' counts over elements [j0, j1) (every such model together, window elements staged).
void countWide(const uint16_t* const* x, const uint16_t* b, int64_t j0, int64_t j1, TopK* const* ts, int cnt) {
  const bool f16 = inF16;
  const __m512i absv = _mm512_set1_epi32(ABS), inf = _mm512_set1_epi32(INF_BITS), low = _mm512_set1_epi32(0xffff);
  int64_t j = j0;
  for (; j + 16 <= j1; j += 16) {
    const __m512 bv = widen16F(f16, b + j);
    for (int i = 0; i < cnt; i++) {
      TopK& t = *ts[i];
      const __m512i a = _mm512_and_si512(_mm512_castps_si512(_mm512_sub_ps(widen16F(f16, x[i] + j), bv)), absv);
      const __mmask16 gt = _mm512_cmpgt_epi32_mask(a, _mm512_set1_epi32(static_cast<int32_t>(t.hi)));
      const __mmask16 lt = _mm512_cmplt_epi32_mask(a, _mm512_set1_epi32(static_cast<int32_t>(t.lo)));
      t.above += __builtin_popcount(gt & _mm512_cmple_epi32_mask(a, inf));
      t.below += __builtin_popcount(lt);
      const __mmask16 in = static_cast<__mmask16>(~(gt | lt));
      if (in == 0) continue;
      _mm512_storeu_si512(t.staged.data() + t.nstaged, _mm512_maskz_compress_epi32(in, a));
      t.nstaged += __builtin_popcount(in);
      if (t.nstaged >= STAGE) flushStaged(t);
      const __mmask16 inexact = _mm512_mask_test_epi32_mask(in, a, low);
      if (inexact == 0 || t.overflow) continue;
      if (t.listed + 16 > t.cap) {
        t.overflow = true;
        continue;
      }
      _mm512_storeu_si512(t.list.data() + t.listed, _mm512_maskz_compress_epi32(inexact, a));
      t.listed += __builtin_popcount(inexact);
    }
  }
  for (; j < j1; j++) {
    for (int i = 0; i < cnt; i++) {
      TopK& t = *ts[i];
      const uint32_t a = magBitsF(f16, x[i][j], b[j]);
      if (a > t.hi) t.above += a <= static_cast<uint32_t>(INF_BITS);
      else if (a < t.lo) t.below++;
      else {
        t.counts[(a >> 16) - (t.lo >> 16)]++;
        if ((a & 0xffff) == 0 || t.overflow) continue;
        if (t.listed >= t.cap) t.overflow = true;
        else t.list[t.listed++] = a;
      }
    }
  }
  (void)inf;
}


// Elements before the first 32-byte boundary of b when every xs[i] (i < cnt) sits at the same offset from one (0:
// aligned, or the inputs disagree): kernels that start there read 32-byte vectors that never split across two
// cache lines (safetensors data is only 2-byte aligned; measured: the ties merge ~2-3% less user CPU).
int64_t alignedHead(const uint16_t* b, const uint16_t* const* xs, int cnt, int64_t n) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(b) % 32;
  bool same = at != 0 && at % 2 == 0;
  for (int i = 0; i < cnt; i++) same = same && reinterpret_cast<uintptr_t>(xs[i]) % 32 == at;
  return same ? std::min<int64_t>(n, static_cast<int64_t>((32 - at) / 2)) : 0;
}

// One pass over the tensor for every windowed model, a region at a time (the base's region stays in cache across the
// models): counts above/below the window and by bucket inside it, the window's inexact values listed. Windows of up
// to MAX_BOUNDS - 1 buckets are counted by countBounds, model by model; wider ones (clustered values) together, their
// elements staged and counted by bucket.
void countWindows(const uint16_t* const* xs, const uint16_t* b, int64_t n, TopK* const* all, int cnt, const Dropper& drop) {
  const uint16_t* x[2 * MAX_MODELS];
  TopK* ts[2 * MAX_MODELS];
  int wide = 0;
  for (int i = 0; i < cnt; i++) {
    TopK& t = *all[i];
    t.total = t.nans = 0;
    for (uint64_t& g : t.ge) g = 0;
    const int nb = static_cast<int>(t.counts.size()) + 1;
    if (nb > MAX_BOUNDS || t.hi >= static_cast<uint32_t>(INF_BITS)) {
      x[wide] = xs[i];
      ts[wide++] = &t;
    }
  }
  // a first region up to a 32-byte boundary of the inputs when they share one (see tiesCore's first piece)
  const int64_t head = alignedHead(b, xs, cnt, n);
  for (int64_t r0 = 0; r0 < n;) {
    const int64_t r1 = r0 == 0 && head > 0 ? head : n - r0 < REGION_ELEMENTS ? n : r0 + REGION_ELEMENTS;
    for (int i = 0; i < cnt; i++) {
      TopK& t = *all[i];
      const int nb = static_cast<int>(t.counts.size()) + 1;
      if (nb <= MAX_BOUNDS && t.hi < static_cast<uint32_t>(INF_BITS)) countBoundsUpTo<2>(nb, xs[i] + r0, b + r0, r1 - r0, t);
    }
    if (wide > 0) countWide(x, b, r0, r1, ts, wide);
    drop.upTo(r1);
    r0 = r1;
  }
  for (int i = 0; i < cnt; i++) {
    TopK& t = *all[i];
    const int nb = static_cast<int>(t.counts.size()) + 1;
    if (nb <= MAX_BOUNDS && t.hi < static_cast<uint32_t>(INF_BITS)) finishBounds(t);
  }
  for (int i = 0; i < wide; i++) flushStaged(*ts[i]);
}

// The threshold from the window's counts; false when the k-th largest lies outside the window (or, needing the
// inexact values of its bucket, their list overflowed).
bool resolveWindow(TopK& t) {
  uint64_t inside = 0;
  for (uint32_t c : t.counts) inside += c;
  const uint64_t count = t.above + t.below + inside, k = static_cast<uint64_t>(t.k);
  if (k >= count) {
    t.all = true;
    return true;
  }
  if (t.above >= k || t.above + inside < k) return false;
  uint64_t above = t.above;
  size_t bi = t.counts.size();
  while (bi-- > 0) {
    if (above + t.counts[bi] >= k) break;
    above += t.counts[bi];
  }
  const uint32_t bucket = (t.lo >> 16) + static_cast<uint32_t>(bi);
  const uint64_t need = k - above;
  // the bucket's inexact values (low bits set) are its largest; the exact ones all equal bucket << 16
  if (t.overflow) return false;
  uint32_t* l = t.list.data();
  size_t e = 0;
  for (size_t i = 0; i < t.listed; i++) {
    if ((l[i] >> 16) == bucket) l[e++] = l[i];
  }
  if (need > e) {
    t.T = static_cast<int32_t>(bucket << 16);
    t.ties = static_cast<int64_t>(need - e);
    return true;
  }
  std::nth_element(l, l + (need - 1), l + e, [](uint32_t p, uint32_t q) { return p > q; });
  const uint32_t T = l[need - 1];
  size_t gt = 0;
  for (size_t i = 0; i + 1 < need; i++) gt += l[i] > T;
  t.T = static_cast<int32_t>(T);
  t.ties = static_cast<int64_t>(need - gt);
  t.selected = true;
  return true;
}

// The exact threshold by two counting passes (high 16 bits, then the low 16 bits inside the boundary bucket).
void resolveExact(const uint16_t* x, const uint16_t* b, int64_t n, TopK& t, std::vector<uint32_t>& h) {
  const bool f16 = inF16;
  h.assign(NBUCKETS, 0);
  uint64_t count = 0;
  for (int64_t j = 0; j < n; j++) {
    const uint32_t a = magBitsF(f16, x[j], b[j]);
    if (a <= static_cast<uint32_t>(INF_BITS)) {
      h[a >> 16]++;
      count++;
    }
  }
  if (static_cast<uint64_t>(t.k) >= count) {
    t.all = true;
    return;
  }
  uint64_t above = 0;
  int bin = 0;
  for (int bb = NBUCKETS - 1; bb >= 0; bb--) {
    if (above + h[bb] >= static_cast<uint64_t>(t.k)) {
      bin = bb;
      break;
    }
    above += h[bb];
  }
  h.assign(NBUCKETS, 0);
  for (int64_t j = 0; j < n; j++) {
    const uint32_t a = magBitsF(f16, x[j], b[j]);
    if (static_cast<int>(a >> 16) == bin) h[a & 0xffff]++;
  }
  const uint64_t need = static_cast<uint64_t>(t.k) - above;
  uint64_t c = 0;
  for (int l = NBUCKETS - 1; l >= 0; l--) {
    if (c + h[l] >= need) {
      t.T = static_cast<int32_t>((static_cast<uint32_t>(bin) << 16) | static_cast<uint32_t>(l));
      t.ties = static_cast<int64_t>(need - c);
      return;
    }
    c += h[l];
  }
}

uint8_t* memoryOf(napi_env env, napi_callback_info info, size_t* len) {
  size_t argc = 1;
  napi_value arg;
  void* data = nullptr;
  if (napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr) != napi_ok || argc < 1 ||
      napi_get_arraybuffer_info(env, arg, &data, len) != napi_ok || *len < ARGS + 64 + 32 * MAX_MODELS) {
    napi_throw_error(env, "WK_NATIVE", "not a merge-kernel memory");
    return nullptr;
  }
  return static_cast<uint8_t*>(data);
}

// The HIGH pass of one piece for every model with a window: header i32 n, base pointer; per model i at
// ARGS + 64 + 32 i: i32 input pointer (0: skip the model), histogram slot pointer, lo, hi, above (in/out),
// below (in/out).
napi_value histWindows(napi_env env, napi_callback_info info) {
  inF16 = outF16 = false;  // the piece kernels read and write BF16
  size_t len = 0;
  uint8_t* mem = memoryOf(env, info, &len);
  if (mem == nullptr) return nullptr;
  int32_t* args = reinterpret_cast<int32_t*>(mem + ARGS);
  const int n = args[0];
  const uint32_t bp = static_cast<uint32_t>(args[2]);
  if (n < 0 || n > 16384 || bp + 2ull * n > len) {
    napi_throw_error(env, "WK_NATIVE", "histWindows: arguments out of range");
    return nullptr;
  }
  for (int i = 0; i < MAX_MODELS; i++) {
    int32_t* a = args + 16 + 8 * i;
    const uint32_t xp = static_cast<uint32_t>(a[0]), hp = static_cast<uint32_t>(a[1]);
    if (xp == 0) continue;
    if (xp + 2ull * n > len || hp + 0x100000ull + 0x20000ull > len) {
      napi_throw_error(env, "WK_NATIVE", "histWindows: input out of range");
      return nullptr;
    }
    histWindow(reinterpret_cast<const uint16_t*>(mem + xp), reinterpret_cast<const uint16_t*>(mem + bp), n, mem + hp, a[2], a[3],
               reinterpret_cast<uint32_t*>(a + 4), reinterpret_cast<uint32_t*>(a + 5));
  }
  return nullptr;
}

napi_value tiesPiece(napi_env env, napi_callback_info info) {
  inF16 = outF16 = false;  // the piece kernels read and write BF16
  size_t len = 0;
  uint8_t* mem = memoryOf(env, info, &len);
  if (mem == nullptr) return nullptr;
  int32_t* args = reinterpret_cast<int32_t*>(mem + ARGS);
  const int n = args[0], m = args[1], divide = args[4], bf16out = args[5];
  const uint32_t bp = static_cast<uint32_t>(args[2]), op = static_cast<uint32_t>(args[3]);
  double lambda;
  memcpy(&lambda, mem + ARGS + 32, 8);
  if (n < 0 || n > 16384 || m < 1 || m > MAX_MODELS || bp + 2ull * n > len || op + (bf16out ? 2ull : 4ull) * n > len) {
    napi_throw_error(env, "WK_NATIVE", "tiesPiece: arguments out of range");
    return nullptr;
  }
  const uint16_t* base = reinterpret_cast<const uint16_t*>(mem + bp);
  float* d[MAX_MODELS];
  double sc[MAX_MODELS], w[MAX_MODELS];
  for (int i = 0; i < m; i++) {
    int32_t* a = args + 16 + 8 * i;
    const uint32_t xp = static_cast<uint32_t>(a[0]);
    d[i] = reinterpret_cast<float*>(mem + MODELS + REGION * i);
    memcpy(&sc[i], mem + PARAMS + 32 * i, 8);
    memcpy(&w[i], mem + PARAMS + 32 * i + 16, 8);
    if (a[1] == 1) {
      memset(d[i], 0, 4 * static_cast<size_t>(n));
      a[4] = 0;
      continue;
    }
    if (xp + 2ull * n > len) {
      napi_throw_error(env, "WK_NATIVE", "tiesPiece: input out of range");
      return nullptr;
    }
    const uint16_t* x = reinterpret_cast<const uint16_t*>(mem + xp);
    if (a[1] == 0) {
      deltaAll(x, base, d[i], n);
      a[4] = n;
    } else {
      a[4] = deltaMag(x, base, d[i], n, a[2], &a[3]);
    }
  }
  tiesOut(d, m, n, base, reinterpret_cast<float*>(mem + op), divide, lambda, sc, w, bf16out);
  return nullptr;
}

bool typedU16(napi_env env, napi_value v, const char* what, uint16_t** data, size_t* len) {
  napi_typedarray_type type;
  void* d = nullptr;
  napi_value ab;
  size_t off = 0;
  if (napi_get_typedarray_info(env, v, &type, len, &d, &ab, &off) != napi_ok || type != napi_uint16_array) {
    napi_throw_type_error(env, "WK_NATIVE", what);
    return false;
  }
  *data = static_cast<uint16_t*>(d);
  return true;
}

double nowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// A file range mapped read-only for one call (page cache pages, no copy), or for the calls of one tensor (KeptInputs).
struct Mapped {
  void* at = nullptr;
  size_t len = 0;
};

// SIGBUS (a mapped file truncated or its disk failing while it is read) inside a mapped call returns to that call,
// which throws a JS error instead of the process dying; anywhere else the previous disposition applies.
thread_local sigjmp_buf* busJump = nullptr;
struct sigaction oldBus;

void onBus(int sig, siginfo_t* si, void* ctx) {
  if (busJump != nullptr) siglongjmp(*busJump, 1);
  if (oldBus.sa_flags & SA_SIGINFO) {
    if (oldBus.sa_sigaction != nullptr) oldBus.sa_sigaction(sig, si, ctx);
    return;
  }
  if (oldBus.sa_handler == SIG_IGN) return;
  if (oldBus.sa_handler == SIG_DFL) {
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS);
    return;
  }
  oldBus.sa_handler(sig);
}

// Once per process (workers race here): a second sigaction would save this handler as the previous one.
void installBusGuard() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = onBus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &oldBus);
  });
}

// An input: a Uint16Array of n values, or {fd, position} (n BF16 values at that byte position of an open file,
// mapped here). Throws and returns false on a bad argument or a failed mapping.
bool inputOf(napi_env env, napi_value v, size_t* n, bool haveN, const uint16_t** data, Mapped* map, bool checkSize) {
  bool isTyped = false;
  napi_is_typedarray(env, v, &isTyped);
  if (isTyped) {
    uint16_t* d = nullptr;
    size_t len = 0;
    if (!typedU16(env, v, "tiesTensor: inputs must be Uint16Arrays or {fd, position}", &d, &len)) return false;
    if (haveN && len != *n) {
      napi_throw_error(env, "WK_NATIVE", "tiesTensor: an input's length differs from the output's");
      return false;
    }
    *n = len;
    *data = d;
    return true;
  }
  napi_value fv, pv;
  int32_t fd = -1;
  double pos = -1;
  if (napi_get_named_property(env, v, "fd", &fv) != napi_ok || napi_get_value_int32(env, fv, &fd) != napi_ok ||
      napi_get_named_property(env, v, "position", &pv) != napi_ok || napi_get_value_double(env, pv, &pos) != napi_ok || fd < 0 || !(pos >= 0) ||
      pos != floor(pos) || static_cast<int64_t>(pos) % 2 != 0 || !haveN) {
    napi_throw_type_error(env, "WK_NATIVE", "tiesTensor: inputs must be Uint16Arrays or {fd, position} (an even byte position)");
    return false;
  }
  const int64_t position = static_cast<int64_t>(pos);
  struct stat st;
  if (checkSize && (fstat(fd, &st) != 0 || position + 2 * static_cast<int64_t>(*n) > st.st_size)) {
    napi_throw_error(env, "WK_NATIVE_IO", "tiesTensor: a mapped input lies past the end of its file (changed since it was opened?)");
    return false;
  }
  const int64_t page = sysconf(_SC_PAGESIZE);
  const int64_t start = position & ~(page - 1);
  map->len = static_cast<size_t>(position - start) + 2 * *n;
  if (map->len == 0) {
    *data = nullptr;
    return true;
  }
  void* at = mmap(nullptr, map->len, PROT_READ, MAP_SHARED, fd, start);
  if (at == MAP_FAILED) {
    map->len = 0;
    char msg[160];
    snprintf(msg, sizeof msg, "tiesTensor: mapping an input failed (%s)", strerror(errno));
    napi_throw_error(env, "WK_NATIVE_IO", msg);
    return false;
  }
  map->at = at;
  // no advice: the first touch of each page maps it and its neighbours (fault-around), measured cheaper here than
  // MADV_POPULATE_READ (page by page through get_user_pages) or MADV_WILLNEED

  *data = reinterpret_cast<const uint16_t*>(static_cast<uint8_t*>(at) + (position - start));
  return true;
}

void unmapAll(Mapped* maps, int count) {
  for (int i = 0; i < count; i++) {
    if (maps[i].at != nullptr) munmap(maps[i].at, maps[i].len);
    maps[i].at = nullptr;
    maps[i].len = 0;
  }
}

template <int C>
void randomNormsC(const uint16_t* const* xs, const uint16_t* b, int64_t n, const int* idx, MaskParams* mp, double* before, double* after,
                  const Dropper& drop) {
  const bool f16 = inF16;
  // lanes 0-7 (elements 16 q + 0..7) and 8-15 (16 q + 8..15) of each sum
  __m512d bl[C], bh[C], al[C], ah[C];
  for (int q = 0; q < C; q++) bl[q] = bh[q] = al[q] = ah[q] = _mm512_setzero_pd();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 bf = widen16F(f16, b + j);
    for (int q = 0; q < C; q++) {
      const int i = idx[q];
      const __m512 dv = _mm512_sub_ps(widen16F(f16, xs[i] + j), bf);
      const __mmask16 keep = maskOf(dv, mp[i], static_cast<uint32_t>(j));
      const __m512 d = _mm512_abs_ps(dv);
      const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(d)), hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(d), 1)));
      bl[q] = _mm512_add_pd(bl[q], lo);
      bh[q] = _mm512_add_pd(bh[q], hi);
      // a dropped element adds +0 (its |d| bits masked off, as the WebAssembly kernel)
      al[q] = _mm512_add_pd(al[q], _mm512_maskz_mov_pd(static_cast<__mmask8>(keep), lo));
      ah[q] = _mm512_add_pd(ah[q], _mm512_maskz_mov_pd(static_cast<__mmask8>(keep >> 8), hi));
    }
    if (((j + 16) & (REGION_ELEMENTS - 1)) == 0) drop.upTo(j + 16);
  }
  alignas(64) double bs[C][16], as[C][16];
  for (int q = 0; q < C; q++) {
    _mm512_store_pd(bs[q], bl[q]);
    _mm512_store_pd(bs[q] + 8, bh[q]);
    _mm512_store_pd(as[q], al[q]);
    _mm512_store_pd(as[q] + 8, ah[q]);
  }
  for (; j < n; j++) {
    for (int q = 0; q < C; q++) {
      const int i = idx[q];
      const float dv = widenF(f16, xs[i][j]) - widenF(f16, b[j]);
      const double v = static_cast<double>(fabsf(dv));
      bs[q][j & 15] = bs[q][j & 15] + v;
      as[q][j & 15] = as[q][j & 15] + (maskOf1(dv, mp[i], static_cast<uint32_t>(j)) ? v : 0.0);
    }
  }
  // the lanes' totals in lane order (laneTotal)
  for (int q = 0; q < C; q++) {
    double tb = bs[q][0], ta = as[q][0];
    for (int l = 1; l < 16; l++) {
      tb = tb + bs[q][l];
      ta = ta + as[q][l];
    }
    before[q] = tb;
    after[q] = ta;
  }
}

// The L1 norms of the rescaled DARE and DELLA models idx[0..cnt) over the whole tensor (l1_random, l1Of):
// before_i = sum of f64(|d|), after_i = the same over the kept elements (dropped ones add +0), each summed in
// sixteen lanes (element j in lane j & 15, each lane in element order) and the lanes then in lane order (the
// WebAssembly and JS kernels' order, gta-kernels.ts l1Lanes): up to four models at a time, 16 elements a step.
void randomNorms(const uint16_t* const* xs, const uint16_t* b, int64_t n, const int* idx, int cnt, MaskParams* r, double* before, double* after,
                 const Dropper& drop) {
  for (int q = 0; q < cnt; q += 4) {
    const int c = cnt - q < 4 ? cnt - q : 4;
    switch (c) {
      case 1: randomNormsC<1>(xs, b, n, idx + q, r, before + q, after + q, drop); break;
      case 2: randomNormsC<2>(xs, b, n, idx + q, r, before + q, after + q, drop); break;
      case 3: randomNormsC<3>(xs, b, n, idx + q, r, before + q, after + q, drop); break;
      default: randomNormsC<4>(xs, b, n, idx + q, r, before + q, after + q, drop); break;
    }
  }
}

// DELLA's keep mask of one model over the whole tensor (maskDellaInto): in each fiber (len elements from `start`,
// `inner` apart: a row of a matrix along dim 1, the whole of a vector), the elements ranked by |d| bits ascending,
// equal keys the later element first (MagnitudeRanker's order); kept iff u / 2^32 < lo + (rank / (len - 1)) * 2 * eps
// with u the element's draw (rank / (len - 1) taken as 0.5 for a fiber of one). Bit i of `bits` for element i.
void dellaMask(const uint16_t* x, const uint16_t* b, int64_t n, int64_t block, int64_t len, int64_t inner, double lo, double eps, const Draws& dr,
               uint8_t* bits) {
  const bool f16 = inF16;
  thread_local std::vector<uint32_t> keys, keys2;
  thread_local std::vector<int32_t> perm, tmp, rank;
  if (keys.size() < static_cast<size_t>(len) + 16) {
    keys.resize(len + 16);
    keys2.resize(len + 16);
    perm.resize(len + 16);
    tmp.resize(len + 16);
    rank.resize(len + 16);
  }
  const double den = static_cast<double>(len - 1);
  // three passes of 11, 11 and 9 bits (31-bit keys): any stable ascending sort gives the same ranks
  constexpr int DIGITS = 3, RADIX = 2048;
  static thread_local uint32_t countTls[DIGITS][RADIX];
  // an opaque local pointer: in a shared library each access to a thread_local calls __tls_get_addr, and the compiler
  // recomputed the address for every element of the key loop below (4.6% of DELLA's time) even from a plain local
  uint32_t (*count)[RADIX] = countTls;
  asm("" : "+r"(count));
  const __m512d lov = _mm512_set1_pd(lo), epsv = _mm512_set1_pd(eps), denv = _mm512_set1_pd(den), two = _mm512_set1_pd(2.0);
  const __m512d scale = _mm512_set1_pd(1.0 / 4294967296.0);  // u / 2^32 exactly (a power of two)
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    for (int64_t k = 0; k < inner; k++) {
      const int64_t start = b0 + k;
      memset(count, 0, sizeof countTls);
      uint32_t* ky = keys.data();
      uint32_t* ky2 = keys2.data();
      int32_t* pm = perm.data();
      int32_t* tp = tmp.data();
      // keys in reverse element order (MagnitudeRanker's start order: equal keys, the later element ranks lower)
      for (int64_t r = 0; r < len; r++) {
        const int64_t t = len - 1 - r;
        const int64_t i = start + t * inner;
        const uint32_t key = magBitsF(f16, x[i], b[i]);
        ky[r] = key;
        pm[r] = static_cast<int32_t>(t);
        count[0][key & 2047]++;
        count[1][(key >> 11) & 2047]++;
        count[2][key >> 22]++;
      }
      for (int pass = 0; pass < DIGITS; pass++) {
        const int shift = 11 * pass;
        uint32_t* c = count[pass];
        if (c[(ky[0] >> shift) & 2047] == static_cast<uint32_t>(len)) continue;  // every key has this digit
        uint32_t sum = 0;
        for (int dgt = 0; dgt < RADIX; dgt++) {
          const uint32_t v = c[dgt];
          c[dgt] = sum;
          sum += v;
        }
        for (int64_t r = 0; r < len; r++) {
          const uint32_t key = ky[r];
          const uint32_t pos = c[(key >> shift) & 2047]++;
          ky2[pos] = key;
          tp[pos] = pm[r];
        }
        std::swap(ky, ky2);
        std::swap(pm, tp);
      }
      int32_t* rk = rank.data();
      for (int64_t r = 0; r < len; r++) rk[pm[r]] = static_cast<int32_t>(r);
      int64_t t = 0;
      if (inner == 1 && len > 1 && (start & 7) == 0) {
        // 16 elements at a time, the same f64 operations in the same order: u / 2^32 < lo + ((rank / den) * 2) * eps
        for (; t + 16 <= len; t += 16) {
          const int64_t i = start + t;
          const __m512i rr = _mm512_loadu_si512(rk + t);
          __m512i u = _mm512_xor_si512(_mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(i)), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),
                                       _mm512_set1_epi32(static_cast<int32_t>(dr.k0)));
          u = drawTail16(u, dr.k1);
          __mmask16 m = 0;
          for (int h = 0; h < 2; h++) {
            const __m256i uh = h == 0 ? _mm512_castsi512_si256(u) : _mm512_extracti64x4_epi64(u, 1);
            const __m256i rh = h == 0 ? _mm512_castsi512_si256(rr) : _mm512_extracti64x4_epi64(rr, 1);
            const __m512d uf = _mm512_mul_pd(_mm512_cvtepu32_pd(uh), scale);
            const __m512d pr = _mm512_add_pd(lov, _mm512_mul_pd(_mm512_mul_pd(_mm512_div_pd(_mm512_cvtepi32_pd(rh), denv), two), epsv));
            m |= static_cast<__mmask16>(static_cast<uint32_t>(_mm512_cmp_pd_mask(uf, pr, _CMP_LT_OQ)) << (8 * h));
          }
          memcpy(bits + (i >> 3), &m, 2);
        }
      }
      for (; t < len; t++) {
        const int64_t i = start + t * inner;
        const double u = static_cast<double>(draw1(static_cast<uint32_t>(i), dr.k0, dr.k1)) / 4294967296.0;
        const double rn = len > 1 ? static_cast<double>(rk[t]) / den : 0.5;
        const bool keep = u < lo + rn * 2 * eps;
        if (keep) bits[i >> 3] |= static_cast<uint8_t>(1u << (i & 7));
        else bits[i >> 3] &= static_cast<uint8_t>(~(1u << (i & 7)));
      }
    }
  }
}

constexpr size_t ARGS_LENGTH = 152;
// args[144], [145]: the inputs' and the output's format (0 BF16, 1 F16); [146]: the kept inputs (see KeptInputs)
constexpr int IN_FORMAT_AT = 144, OUT_FORMAT_AT = 145, KEPT_AT = 146;

// A tensor's mapped inputs kept from one call of tiesTensor to the next: a call with flag 256 that maps every input
// keeps them in a free slot and names it in args[146] (1-based); a call with args[146] set reads them from there (its
// own input arguments unused); flag 512 (or an error) gives them back after the call and sets args[146] to 0. So the
// calls of one tensor (the thresholds, then the output range by range) map and fault its pages once. A few per
// thread: a worker's lanes each hold one at a time; with none free a call maps for itself, as without flag 256.
struct KeptInputs {
  bool used = false;
  int m = 0;
  size_t n = 0;
  Mapped maps[MAX_MODELS + 1];
  const uint16_t* base = nullptr;
  const uint16_t* xs[MAX_MODELS] = {};
};
constexpr int KEPT_JOBS = 8;
thread_local KeptInputs keptJobs[KEPT_JOBS];

void tiesCore(const uint16_t* base, const uint16_t* const* xs, int m, int64_t N, uint16_t* out, int64_t e0, int64_t len, double* args, const Dropper& drop,
              uint8_t* const* keepBits);

// tiesTensor(base, models, out: Uint16Array, args: Float64Array): a tensor of BF16 inputs merged by TIES into BF16
// output bits (see tiesCore), whole or a range at a time. base and each model: a Uint16Array of args[74] values, or
// {fd, position}: args[74] BF16 values at that byte position of an open file, mapped read-only for this call (no copy;
// unmapped before it returns unless kept for the tensor's next calls, see KeptInputs; a SIGBUS while reading it becomes
// a WK_NATIVE_IO error).
napi_value tiesTensor(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc < 4) {
    napi_throw_error(env, "WK_NATIVE", "tiesTensor: 4 or 5 arguments expected");
    return nullptr;
  }
  uint16_t* out = nullptr;
  size_t outLen = 0;
  if (!typedU16(env, argv[2], "tiesTensor: out must be a Uint16Array", &out, &outLen)) return nullptr;
  napi_typedarray_type type;
  size_t alen = 0, off = 0;
  void* ad = nullptr;
  napi_value ab;
  if (napi_get_typedarray_info(env, argv[3], &type, &alen, &ad, &ab, &off) != napi_ok || type != napi_float64_array || alen < ARGS_LENGTH) {
    napi_throw_type_error(env, "WK_NATIVE", "tiesTensor: args must be a Float64Array of 152 values");
    return nullptr;
  }
  double* args = static_cast<double*>(ad);
  const int m = static_cast<int>(args[0]);
  uint32_t given = 0;
  const double nd = args[74], e0d = args[72];
  inF16 = args[IN_FORMAT_AT] == 1;
  outF16 = args[OUT_FORMAT_AT] == 1;
  if (m < (args[75] == 2 ? 0 : 1) || m > MAX_MODELS || napi_get_array_length(env, argv[1], &given) != napi_ok || given != static_cast<uint32_t>(m) || !(nd >= 0) ||
      nd != floor(nd) || nd > 9e15 || !(e0d >= 0) || e0d != floor(e0d) || e0d + static_cast<double>(outLen) > nd) {
    napi_throw_error(env, "WK_NATIVE", "tiesTensor: arguments out of range");
    return nullptr;
  }
  size_t n = static_cast<size_t>(nd);
  // DELLA models (mode 6) keep their masks (bit i: element i) in caller memory across the calls of one tensor
  uint8_t* keepBits[MAX_MODELS] = {};
  for (int i = 0; i < m; i++) {
    if (static_cast<int>(args[8 + 8 * i]) != 6) continue;
    napi_value v;
    napi_typedarray_type t;
    size_t blen = 0, boff = 0;
    void* bd = nullptr;
    napi_value bab;
    if (argc < 5 || napi_get_element(env, argv[4], i, &v) != napi_ok || napi_get_typedarray_info(env, v, &t, &blen, &bd, &bab, &boff) != napi_ok ||
        t != napi_uint8_array || blen < n / 8 + 16) {
      napi_throw_type_error(env, "WK_NATIVE", "tiesTensor: a DELLA model needs a Uint8Array mask of n / 8 + 16 bytes");
      return nullptr;
    }
    keepBits[i] = static_cast<uint8_t*>(bd);
  }
  Mapped local[MAX_MODELS + 1];
  Mapped* maps = local;
  const uint16_t* base = nullptr;
  const uint16_t* xs[MAX_MODELS];
  const int flags = static_cast<int>(args[3]);
  const double jd = args[KEPT_AT];
  KeptInputs* kept = nullptr;
  if (jd != 0) {
    // the inputs a former call of this tensor kept mapped (its own input arguments are not looked at)
    const int j = static_cast<int>(jd);
    if (jd != j || j < 1 || j > KEPT_JOBS || !keptJobs[j - 1].used || keptJobs[j - 1].m != m || keptJobs[j - 1].n != n) {
      napi_throw_error(env, "WK_NATIVE", "tiesTensor: args[146] names no kept inputs of this tensor");
      return nullptr;
    }
    kept = &keptJobs[j - 1];
    maps = kept->maps;
    base = kept->base;
    for (int i = 0; i < m; i++) xs[i] = kept->xs[i];
  } else {
    // flag 8 (tests only): map without checking the file's size, so that reading past its end raises SIGBUS
    const bool checkSize = (flags & 8) == 0;
    if (!inputOf(env, argv[0], &n, true, &base, &maps[0], checkSize)) return nullptr;
    for (int i = 0; i < m; i++) {
      napi_value v;
      if (napi_get_element(env, argv[1], i, &v) != napi_ok || !inputOf(env, v, &n, true, &xs[i], &maps[i + 1], checkSize)) {
        unmapAll(maps, m + 1);
        return nullptr;
      }
    }
    // flag 256: keep the mappings for the tensor's next calls, when every input is mapped and a slot is free
    bool all = (flags & 256) != 0;
    for (int i = 0; i <= m && all; i++) all = maps[i].at != nullptr;
    for (int j = 0; j < KEPT_JOBS && all; j++) {
      if (keptJobs[j].used) continue;
      kept = &keptJobs[j];
      kept->used = true;
      kept->m = m;
      kept->n = n;
      kept->base = base;
      for (int i = 0; i <= m; i++) kept->maps[i] = maps[i];
      for (int i = 0; i < m; i++) kept->xs[i] = xs[i];
      maps = kept->maps;
      args[KEPT_AT] = j + 1;
      break;
    }
  }
  // the mappings given back after this call: a call's own, or kept ones with flag 512 (or on an error)
  const auto giveBack = [&](bool always) {
    if (kept == nullptr) {
      unmapAll(maps, m + 1);
    } else if (always || (flags & 512) != 0) {
      unmapAll(kept->maps, m + 1);
      kept->used = false;
      args[KEPT_AT] = 0;
    }
  };
  Dropper drop;
  // flag 4: give mapped pages back behind the passes (a tensor too big to keep mapped whole)
  drop.on = (flags & 4) != 0;
  if (maps[0].at != nullptr) drop.in[drop.count++] = base;
  for (int i = 0; i < m; i++) {
    if (maps[i + 1].at != nullptr) drop.in[drop.count++] = xs[i];
  }
  if (drop.count == 0) {
    tiesCore(base, xs, m, static_cast<int64_t>(n), out, static_cast<int64_t>(e0d), static_cast<int64_t>(outLen), args, drop, keepBits);
    return nullptr;
  }
  installBusGuard();
  sigjmp_buf jb;
  if (sigsetjmp(jb, 1) != 0) {
    busJump = nullptr;
    giveBack(true);
    napi_throw_error(env, "WK_NATIVE_IO", "tiesTensor: a mapped input could not be read (SIGBUS: the file was truncated or the disk failed)");
    return nullptr;
  }
  busJump = &jb;
  tiesCore(base, xs, m, static_cast<int64_t>(n), out, static_cast<int64_t>(e0d), static_cast<int64_t>(outLen), args, drop, keepBits);
  busJump = nullptr;
  giveBack(false);
  return nullptr;
}

// sum_out (src/tensor/wasm/merge-kernels.wat) of elements [0, n): out = BF16 of f32(b + ((((0 + d_0 sc_0) + d_1 sc_1) +
// ...) / z) * lambda) in f64, the division skipped when z == 1; with Raw the deltas d_i = f32(x_i - b) of the inputs
// (every delta whole: task_arithmetic), else the masked deltas held in d (dropped ones +0; the WebAssembly kernel
// subtracts 0 from each: d - 0 is d).
template <bool Raw>
void sumOut(const uint16_t* const* x, float* const* d, int m, int n, const uint16_t* b, uint16_t* o, double z, double lambda, const double* sc) {
  const bool f16 = inF16;
  const bool o16 = outF16;
  const __m512d zero = _mm512_setzero_pd(), lam = _mm512_set1_pd(lambda), zv = _mm512_set1_pd(z);
  const bool divide = z != 1.0;
  __m512d S[MAX_MODELS];
  for (int i = 0; i < m; i++) S[i] = _mm512_set1_pd(sc[i]);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 bf = widen8F(f16, b + j);
    __m512d s = zero;
    for (int i = 0; i < m; i++) {
      __m256 di;
      if constexpr (Raw) di = _mm256_sub_ps(widen8F(f16, x[i] + j), bf);
      else di = _mm256_loadu_ps(d[i] + j);
      s = _mm512_add_pd(s, _mm512_mul_pd(_mm512_cvtps_pd(di), S[i]));
    }
    if (divide) s = _mm512_div_pd(s, zv);
    const __m256 r = _mm512_cvtpd_ps(_mm512_add_pd(_mm512_cvtps_pd(bf), _mm512_mul_pd(s, lam)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + j), narrow8F(o16, r));
  }
  for (; j < n; j++) {
    const float bj = widenF(f16, b[j]);
    double s = 0;
    for (int i = 0; i < m; i++) s = s + static_cast<double>(Raw ? widenF(f16, x[i][j]) - bj : d[i][j]) * sc[i];
    if (divide) s = s / z;
    o[j] = narrow1F(o16, static_cast<float>(static_cast<double>(bj) + s * lambda));
  }
}

// linear (src/merge/methods/simple.ts LinearMerger) of elements [0, n) of the inputs x_0 .. x_{m-1} themselves (no
// base): out = BF16 of f32(((((0 + x_0 w_0) + x_1 w_1) + ...) / z), in f64 (scaleInit, scaleAdd, quotientInto).
void linearOut(const uint16_t* const* x, int m, int n, uint16_t* o, double z, const double* w) {
  const bool f16 = inF16;
  const bool o16 = outF16;
  const __m512d zero = _mm512_setzero_pd(), zv = _mm512_set1_pd(z);
  __m512d W[MAX_MODELS + 1];
  for (int i = 0; i < m; i++) W[i] = _mm512_set1_pd(w[i]);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m512d s = zero;
    for (int i = 0; i < m; i++) {
      const __m256 xf = widen8F(f16, x[i] + j);
      s = _mm512_add_pd(s, _mm512_mul_pd(_mm512_cvtps_pd(xf), W[i]));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + j), narrow8F(o16, _mm512_cvtpd_ps(_mm512_div_pd(s, zv))));
  }
  for (; j < n; j++) {
    double s = 0;
    for (int i = 0; i < m; i++) s = s + static_cast<double>(widenF(f16, x[i][j])) * w[i];
    o[j] = narrow1F(o16, static_cast<float>(s / z));
  }
}

// slerp's statistics (geo-util accumulateGram): g00 = sum of v0 v0, g01 = sum of v0 v1, g11 = sum of v1 v1 over the
// whole tensor, each product exact in f64 (of two f32) and each sum in element order (three interleaved chains).
void slerpGram(const uint16_t* v0, const uint16_t* v1, int64_t n, double* g, const Dropper& drop) {
  const bool f16 = inF16;
  alignas(64) double a[16], c[16];
  double s00 = g[0], s01 = g[1], s11 = g[2];
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 x0 = widen16F(f16, v0 + j), x1 = widen16F(f16, v1 + j);
    _mm512_store_pd(a, _mm512_cvtps_pd(_mm512_castps512_ps256(x0)));
    _mm512_store_pd(a + 8, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x0), 1))));
    _mm512_store_pd(c, _mm512_cvtps_pd(_mm512_castps512_ps256(x1)));
    _mm512_store_pd(c + 8, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x1), 1))));
    for (int l = 0; l < 16; l++) {
      s00 = s00 + a[l] * a[l];
      s01 = s01 + a[l] * c[l];
      s11 = s11 + c[l] * c[l];
    }
    if (((j + 16) & (REGION_ELEMENTS - 1)) == 0) drop.upTo(j + 16);
  }
  for (; j < n; j++) {
    const double x = widenF(f16, v0[j]), y = widenF(f16, v1[j]);
    s00 = s00 + x * x;
    s01 = s01 + x * y;
    s11 = s11 + y * y;
  }
  g[0] = s00;
  g[1] = s01;
  g[2] = s11;
}

// slerp's result (geo-util linearInto with one model and the base): out = BF16 of f32(s0 v0 + s1 v1) in f64.
void slerpOut(const uint16_t* v0, const uint16_t* v1, int n, uint16_t* o, double s0, double s1) {
  const bool f16 = inF16;
  const bool o16 = outF16;
  const __m512d a0 = _mm512_set1_pd(s0), a1 = _mm512_set1_pd(s1);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 x0 = widen8F(f16, v0 + j);
    const __m256 x1 = widen8F(f16, v1 + j);
    const __m512d r = _mm512_add_pd(_mm512_mul_pd(a0, _mm512_cvtps_pd(x0)), _mm512_mul_pd(a1, _mm512_cvtps_pd(x1)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + j), narrow8F(o16, _mm512_cvtpd_ps(r)));
  }
  for (; j < n; j++) o[j] = narrow1F(o16, static_cast<float>(s0 * static_cast<double>(widenF(f16, v0[j])) + s1 * static_cast<double>(widenF(f16, v1[j]))));
}

// model_stock's statistics (geo-util accumulateGram with the base): g[i n + j] = sum of (x_i - b)(x_j - b) in f64 for
// i <= j (differences exact in f64), each sum in element order; the chains of all pairs interleaved.
template <int M>
void stockGramM(const uint16_t* const* xs, const uint16_t* b, int64_t n, double* g, const Dropper& drop) {
  const bool f16 = inF16;
  double s[M][M] = {};
  alignas(64) double d[M][16];
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512 bf = widen16F(f16, b + j);
    const __m512d blo = _mm512_cvtps_pd(_mm512_castps512_ps256(bf)), bhi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(bf), 1)));
    for (int i = 0; i < M; i++) {
      const __m512 x = widen16F(f16, xs[i] + j);
      _mm512_store_pd(d[i], _mm512_sub_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(x)), blo));
      _mm512_store_pd(d[i] + 8, _mm512_sub_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))), bhi));
    }
    for (int l = 0; l < 16; l++) {
      for (int i = 0; i < M; i++) {
        for (int q = i; q < M; q++) s[i][q] = s[i][q] + d[i][l] * d[q][l];
      }
    }
    if (((j + 16) & (REGION_ELEMENTS - 1)) == 0) drop.upTo(j + 16);
  }
  for (; j < n; j++) {
    const double bj = widenF(f16, b[j]);
    for (int i = 0; i < M; i++) {
      for (int q = i; q < M; q++) s[i][q] = s[i][q] + (static_cast<double>(widenF(f16, xs[i][j])) - bj) * (static_cast<double>(widenF(f16, xs[q][j])) - bj);
    }
  }
  for (int i = 0; i < M; i++) {
    for (int q = 0; q < M; q++) g[i * M + q] = s[i][q];
  }
}

void stockGram(const uint16_t* const* xs, const uint16_t* b, int m, int64_t n, double* g, const Dropper& drop) {
  switch (m) {
    case 1: stockGramM<1>(xs, b, n, g, drop); break;
    case 2: stockGramM<2>(xs, b, n, g, drop); break;
    case 3: stockGramM<3>(xs, b, n, g, drop); break;
    case 4: stockGramM<4>(xs, b, n, g, drop); break;
    case 5: stockGramM<5>(xs, b, n, g, drop); break;
    case 6: stockGramM<6>(xs, b, n, g, drop); break;
    case 7: stockGramM<7>(xs, b, n, g, drop); break;
    default: stockGramM<8>(xs, b, n, g, drop); break;
  }
}

// model_stock's result (stockInto): out = BF16 of f32(t (s / n) + u b) with s = (0 + x_0) + x_1 + ... in f64.
void stockOut(const uint16_t* const* xs, const uint16_t* b, int m, int n, uint16_t* o, double t, double u) {
  const bool f16 = inF16;
  const bool o16 = outF16;
  const __m512d tv = _mm512_set1_pd(t), uv = _mm512_set1_pd(u), nv = _mm512_set1_pd(static_cast<double>(m));
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m512d sum = _mm512_setzero_pd();
    for (int i = 0; i < m; i++) {
      const __m256 x = widen8F(f16, xs[i] + j);
      sum = _mm512_add_pd(sum, _mm512_cvtps_pd(x));
    }
    const __m256 bf = widen8F(f16, b + j);
    const __m512d r = _mm512_add_pd(_mm512_mul_pd(tv, _mm512_div_pd(sum, nv)), _mm512_mul_pd(uv, _mm512_cvtps_pd(bf)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + j), narrow8F(o16, _mm512_cvtpd_ps(r)));
  }
  for (; j < n; j++) {
    double sum = 0;
    for (int i = 0; i < m; i++) sum = sum + static_cast<double>(widenF(f16, xs[i][j]));
    o[j] = narrow1F(o16, static_cast<float>(t * (sum / m) + u * static_cast<double>(widenF(f16, b[j]))));
  }
}

// The TIES merge (or a weighted sum) of a tensor of N elements, in two phases (flags 16 and 32; neither: both): (16)
// the rescaled DARE models' L1 norms, each magnitude model's exact top-k threshold and tie budget (a sampled window of buckets, one counting pass per model, a selection among
// the window's inexact values; two exact counting passes when the window misses), written back into args; (32) the
// masks and the consensus of elements [e0, e0 + len) into out, piece by piece, the tie budgets carried in args, so
// consecutive ranges from 0 give the same masks, counts and bits as the piece kernels above (and the WebAssembly ones).
// args: [144] inputs' and [145] output's format (0 BF16, 1 F16; set by tiesTensor), [0] m, [1] divide, [2] lambda, [3] flags (1: no window, 2: a window list of 16 entries, 8: no size check of
// mapped files, 64: the separate mask and consensus kernels (not tiesFused), 128: tiesFused instead of tiesFast, all
// five for tests; 4: give mapped pages
// back behind the passes; 16, 32: the phases; 256, 512: keep the mapped inputs for the next call, give them back after
// this one, see KeptInputs); [72] e0, [75] 1: a weighted sum instead of the consensus (sum_out, z
// at [1]); 2: linear over every input (the base slot holds the first model, weight at [79]; z at [1]); 3: slerp
// (see tiesCore); 4: model_stock (see tiesCore),
// [74] N; per model i at 8 + 8 i: mode (0 all, 1 none, 2 top-k, 3 threshold bits; the thresholds phase turns 2 into 0
// when k reaches the count of numbers), k or bits, sc, w; kept [+4] (the emit phase adds to it); how the threshold
// was found [+5] (0 none, 1 window counts, 3 window counts and a selection among its inexact values, 2 exact counts);
// the threshold bits [+6] and the tie budget left [+7]. Mode 5: breadcrumbs' band, [+1] keepK and at 80 + 8 i: dropK,
// and out: keepAll [+2], dropNone [+3], the drop threshold [+4], its tie budget left [+5], how it was found [+6].
// Mode 6: DELLA's mask, at [+1] epsilon and at 80 + 8 i: k0, k1, density - epsilon, rescale, out as mode 4; the mask
// itself in the fifth argument's Uint8Array for the model, geometry at [76] block, [77] fiber length, [78] stride.
// Mode 4: DARE's random mask, its stream at 80 + 8 i: k0, k1,
// thr, rescale (1: the prepare phase matches the L1 norm and sets sc = factor * w), and out: the norms before and
// after [+4, +5] and the factor [+6]. Out: [4..7] nanoseconds spent sampling, counting, resolving and merging.
void tiesCore(const uint16_t* base, const uint16_t* const* xs, int m, int64_t N, uint16_t* out, int64_t e0, int64_t len, double* args, const Dropper& drop,
              uint8_t* const* keepBits) {
  const int divide = args[1] != 0;
  const double lambda = args[2];
  const int flags = static_cast<int>(args[3]);
  if (args[75] == 4) {
    // model_stock: the deltas' Gram matrix into [80..80 + m m) (flag 16), or the result with t at [76], 1 - t at [77]
    if ((flags & 48) == 16) {
      stockGram(xs, base, m, N, args + 80, drop);
      return;
    }
    for (int64_t o = e0; o < e0 + len; o += PIECE) {
      const int n = static_cast<int>(e0 + len - o < PIECE ? e0 + len - o : PIECE);
      const uint16_t* xo[MAX_MODELS];
      for (int i = 0; i < m; i++) xo[i] = xs[i] + o;
      stockOut(xo, base + o, m, n, out + (o - e0), args[76], args[77]);
      if (((o + n) & (REGION_ELEMENTS - 1)) == 0) drop.upTo(o + n);
    }
    return;
  }
  if (args[75] == 3) {
    // slerp between the base and model 0: the Gram sums into [80..82] (flag 16), or the result s0 v0 + s1 v1 with
    // s0 at [79] and s1 at [10] (flag 32)
    if ((flags & 48) == 16) {
      args[80] = args[81] = args[82] = 0;
      slerpGram(base, xs[0], N, args + 80, drop);
      return;
    }
    for (int64_t o = e0; o < e0 + len; o += PIECE) {
      const int n = static_cast<int>(e0 + len - o < PIECE ? e0 + len - o : PIECE);
      slerpOut(base + o, xs[0] + o, n, out + (o - e0), args[79], args[10]);
      if (((o + n) & (REGION_ELEMENTS - 1)) == 0) drop.upTo(o + n);
    }
    return;
  }
  if (args[75] == 2) {
    // linear over every input (the base slot holds the first, its weight at [79]; z at [1])
    const double t3 = nowNs();
    const uint16_t* xo[MAX_MODELS + 1];
    double w[MAX_MODELS + 1];
    w[0] = args[79];
    for (int i = 0; i < m; i++) w[i + 1] = args[8 + 8 * i + 3];
    for (int64_t o = e0; o < e0 + len; o += PIECE) {
      const int n = static_cast<int>(e0 + len - o < PIECE ? e0 + len - o : PIECE);
      xo[0] = base + o;
      for (int i = 0; i < m; i++) xo[i + 1] = xs[i] + o;
      linearOut(xo, m + 1, n, out + (o - e0), args[1], w);
      if (((o + n) & (REGION_ELEMENTS - 1)) == 0) drop.upTo(o + n);
    }
    args[7] = nowNs() - t3;
    return;
  }
  const bool sum = args[75] == 1;
  Draws dr[MAX_MODELS];
  for (int i = 0; i < m; i++) {
    const double* r = args + 80 + 8 * i;
    dr[i].k0 = static_cast<uint32_t>(r[0]);
    dr[i].k1 = static_cast<uint32_t>(r[1]);
    dr[i].thr = static_cast<uint32_t>(r[2]);
  }
  const bool prepare = (flags & 48) != 32, emit = (flags & 48) != 16;
  if (prepare) {
    const double t0 = nowNs();
    thread_local std::vector<uint32_t> hist;
    thread_local TopK tops[MAX_MODELS];
    // two selections per model at most (mode 5)
    TopK* windowed[2 * MAX_MODELS];
    const uint16_t* wx[2 * MAX_MODELS];
    int nw = 0;
    // DELLA's masks first (ranks in each fiber; geometry at [76..78]), then the rescaled DARE and DELLA models' L1
    // norms (mergekit's rescaled_masked_tensor: match the L1 norm unless either is below 1e-7), their scales
    // sc = factor * w
    MaskParams nm[MAX_MODELS];
    int rescaled[MAX_MODELS];
    int nr = 0;
    for (int i = 0; i < m; i++) {
      const int md = static_cast<int>(args[8 + 8 * i]);
      if (md == 6) {
        const double* r = args + 80 + 8 * i;
        dellaMask(xs[i], base, N, static_cast<int64_t>(args[76]), static_cast<int64_t>(args[77]), static_cast<int64_t>(args[78]), r[2], args[8 + 8 * i + 1],
                  dr[i], keepBits[i]);
        drop.upTo(N);
      }
      nm[i].mode = md;
      nm[i].dr = dr[i];
      nm[i].keepBits = keepBits[i];
      if ((md == 4 || md == 6) && args[80 + 8 * i + 3] != 0) rescaled[nr++] = i;
    }
    if (nr > 0) {
      double before[MAX_MODELS], after[MAX_MODELS];
      randomNorms(xs, base, N, rescaled, nr, nm, before, after, drop);
      for (int q = 0; q < nr; q++) {
        double* r = args + 80 + 8 * rescaled[q];
        const double factor = before[q] >= 1e-7 && after[q] >= 1e-7 ? before[q] / after[q] : 1.0;
        r[4] = before[q];
        r[5] = after[q];
        r[6] = factor;
        args[8 + 8 * rescaled[q] + 2] = factor * args[8 + 8 * rescaled[q] + 3];
      }
    }
    thread_local TopK drops[MAX_MODELS];
    // each magnitude selection (mode 2's top-k; mode 5's keep and drop sets): sampled windows, then one counting pass
    auto begin = [&](TopK& t, int64_t k, const uint16_t* x) {
      t.k = k;
      t.windowed = t.overflow = t.all = t.selected = false;
      t.above = t.below = 0;
      t.listed = 0;
      t.T = 0;
      t.ties = 0;
      if (!(flags & 1) && N >= 65536) {
        sampleWindow(x, base, N, t, hist);
        drop.upTo(N);  // the sample's faults map most pages around it
      }
      if (t.windowed) {
        if (flags & 2) t.cap = 16;
        windowed[nw] = &t;
        wx[nw++] = x;
      }
    };
    for (int i = 0; i < m; i++) {
      double* a = args + 8 + 8 * i;
      a[4] = a[5] = a[6] = a[7] = 0;
      const int md = static_cast<int>(a[0]);
      if (md == 2) {
        if (static_cast<int64_t>(a[1]) <= 0) a[0] = 1;
        else begin(tops[i], static_cast<int64_t>(a[1]), xs[i]);
      } else if (md == 5) {
        double* r = args + 80 + 8 * i;
        begin(tops[i], static_cast<int64_t>(a[1]), xs[i]);
        r[3] = static_cast<int64_t>(r[0]) <= 0 ? 1 : 0;  // dropNone
        if (r[3] == 0) begin(drops[i], static_cast<int64_t>(r[0]), xs[i]);
      }
    }
    const double t1 = nowNs();
    if (nw > 0) countWindows(wx, base, N, windowed, nw, drop);
    const double t2 = nowNs();
    // a selection's threshold and tie budget; returns how it was found (1, 3: the window; 2: exact counts)
    auto resolve = [&](TopK& t, const uint16_t* x) -> int {
      if (t.windowed && resolveWindow(t)) return t.selected ? 3 : 1;
      t.all = false;
      resolveExact(x, base, N, t, hist);
      drop.upTo(N);
      return 2;
    };
    for (int i = 0; i < m; i++) {
      double* a = args + 8 + 8 * i;
      const int md = static_cast<int>(a[0]);
      if (md != 2 && md != 5) continue;
      TopK& t = tops[i];
      a[5] = resolve(t, xs[i]);
      if (t.all && md == 2) a[0] = 0;
      a[6] = t.T;
      a[7] = static_cast<double>(t.ties);
      if (md == 5) {
        double* r = args + 80 + 8 * i;
        r[2] = t.all ? 1 : 0;  // keepAll
        if (r[3] == 0) {
          TopK& q = drops[i];
          r[6] = resolve(q, xs[i]);
          // every number dropped when the drop set reaches the count (mergekit's KEEP_ALL as a threshold: bits -1)
          r[4] = q.all ? -1 : q.T;
          r[5] = q.all ? 0 : static_cast<double>(q.ties);
        }
      }
    }
    args[4] = t1 - t0;
    args[5] = t2 - t1;
    args[6] = nowNs() - t2;
  }
  if (!emit) return;
  const double t3 = nowNs();
  double sc[MAX_MODELS], w[MAX_MODELS];
  thread_local std::vector<float> dbuf;
  if (dbuf.size() < static_cast<size_t>(MAX_MODELS) * PIECE) dbuf.resize(static_cast<size_t>(MAX_MODELS) * PIECE);
  float* d[MAX_MODELS];
  int64_t kept[MAX_MODELS];
  MaskParams mp[MAX_MODELS];
  bool dense = true;
  for (int i = 0; i < m; i++) {
    const double* a = args + 8 + 8 * i;
    const double* r = args + 80 + 8 * i;
    MaskParams& p = mp[i];
    p.mode = static_cast<int>(a[0]);
    sc[i] = a[2];
    w[i] = a[3];
    d[i] = dbuf.data() + static_cast<size_t>(i) * PIECE;
    kept[i] = 0;
    if (p.mode == 3) {
      p.mode = 2;  // a threshold with no ties
      p.bits = static_cast<int32_t>(a[1]);
    } else if (p.mode == 2 || p.mode == 5) {
      p.bits = static_cast<int32_t>(a[6]);
      p.ties = static_cast<int32_t>(a[7]);
    }
    if (p.mode == 5) {
      p.keepAll = r[2] != 0;
      p.dropNone = r[3] != 0;
      p.bits2 = static_cast<int32_t>(r[4]);
      p.ties2 = static_cast<int32_t>(r[5]);
    }
    p.dr = dr[i];
    p.keepBits = keepBits[i];
    dense = dense && p.mode == 0;
  }
  const uint16_t* xo[MAX_MODELS];
  // a first piece up to a 32-byte boundary of the inputs when they share one (alignedHead)
  for (int i = 0; i < m; i++) xo[i] = xs[i] + e0;
  const int64_t head = alignedHead(base + e0, xo, m, len);
  for (int64_t o = e0; o < e0 + len;) {
    const int n = static_cast<int>(o == e0 && head > 0 ? head : e0 + len - o < PIECE ? e0 + len - o : PIECE);
    const uint32_t start = static_cast<uint32_t>(o);
    for (int i = 0; i < m; i++) xo[i] = xs[i] + o;
    if (sum && dense) {
      // every delta whole: the sum reads the inputs themselves (z at [1])
      sumOut<true>(xo, d, m, n, base + o, out + (o - e0), args[1], lambda, sc);
      for (int i = 0; i < m; i++) kept[i] += n;
    } else if (!sum && m <= 4 && !(flags & 64)) {
      // fused: the masked deltas stay in registers (flag 64, for tests: the separate kernels below)
      bool topOnly = true, rand = true, band = true;
      for (int i = 0; i < m; i++) {
        topOnly = topOnly && mp[i].mode <= 2;
        rand = rand && mp[i].mode == 4;
        band = band && mp[i].mode == 5;
      }
      fusedKernel(m, topOnly, rand ? LEAN_RAND : band ? LEAN_BAND : LEAN_TOP, inF16, outF16, sc, (flags & 128) != 0)(xo, base + o, n, out + (o - e0), mp, kept, divide, lambda, sc, w, start);
    } else {
      for (int i = 0; i < m; i++) kept[i] += deltaMasked(xo[i], base + o, d[i], n, start, mp[i]);
      if (sum) sumOut<false>(xo, d, m, n, base + o, out + (o - e0), args[1], lambda, sc);
      else tiesOut(d, m, n, base + o, reinterpret_cast<float*>(out + (o - e0)), divide, lambda, sc, w, 1);
    }
    if ((o + n) / REGION_ELEMENTS > o / REGION_ELEMENTS) drop.upTo(o + n);
    o += n;
  }
  for (int i = 0; i < m; i++) {
    args[8 + 8 * i + 4] += static_cast<double>(kept[i]);
    const int md = static_cast<int>(args[8 + 8 * i]);
    if (md == 2 || md == 5) args[8 + 8 * i + 7] = mp[i].ties;
    if (md == 5) args[80 + 8 * i + 5] = mp[i].ties2;
  }
  args[7] = nowNs() - t3;
}

}  // namespace
#endif

// Asks the kernel to back the 2 MiB-aligned interior of a (fresh, untouched) memory with transparent huge pages:
// hundreds of faults instead of hundreds of thousands for an executor workspace, and fewer TLB misses when the
// kernels stream through it. Returns the bytes advised (0 when the kernel refuses; harmless either way).
napi_value adviseHuge(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg;
  void* data = nullptr;
  size_t len = 0;
  double advised = 0;
  if (napi_get_cb_info(env, info, &argc, &arg, nullptr, nullptr) == napi_ok && argc >= 1 &&
      napi_get_arraybuffer_info(env, arg, &data, &len) == napi_ok && data != nullptr) {
    const uintptr_t huge = 2u << 20;
    const uintptr_t start = (reinterpret_cast<uintptr_t>(data) + huge - 1) & ~(huge - 1);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + len) & ~(huge - 1);
    if (end > start && madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE) == 0) advised = static_cast<double>(end - start);
  }
  napi_value r;
  napi_create_double(env, advised, &r);
  return r;
}

// The layout version of the arguments above: src/tensor/native-kernels.ts NATIVE_ABI must equal it, so that a stale
// build is never used with a newer caller.
constexpr int32_t WK_ABI = 16;

// native/dense.cc: the dense f32 kernels of the SVD merges.
void registerDense(napi_env env, napi_value exports);

NAPI_MODULE_INIT() {
#ifdef WK_NATIVE
  // compiled for AVX-512 whatever the build machine: export nothing on a CPU without it (the loader then keeps the
  // WebAssembly kernels) instead of dying on the first instruction
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512vl") ||
      !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("bmi2") || !__builtin_cpu_supports("popcnt") || !__builtin_cpu_supports("f16c")) {
    return exports;
  }
  napi_value f;
  napi_create_int32(env, WK_ABI, &f);
  napi_set_named_property(env, exports, "abi", f);
  napi_create_function(env, "tiesPiece", NAPI_AUTO_LENGTH, tiesPiece, nullptr, &f);
  napi_set_named_property(env, exports, "tiesPiece", f);
  napi_create_function(env, "histWindows", NAPI_AUTO_LENGTH, histWindows, nullptr, &f);
  napi_set_named_property(env, exports, "histWindows", f);
  napi_create_function(env, "tiesTensor", NAPI_AUTO_LENGTH, tiesTensor, nullptr, &f);
  napi_set_named_property(env, exports, "tiesTensor", f);
  napi_create_function(env, "adviseHuge", NAPI_AUTO_LENGTH, adviseHuge, nullptr, &f);
  napi_set_named_property(env, exports, "adviseHuge", f);
  registerDense(env, exports);
#endif
  return exports;
}
