// Optional native kernels of the GTA merge engine (AVX-512): the TIES piece step of src/merge/methods/gta-core.ts
// (magnitude masks fused with the BF16 delta, then the sign consensus) on the merge-kernel module's memory, with
// exactly the IEEE operations of the WebAssembly kernels (src/tensor/wasm/merge-kernels.wat: delta_mag, delta_all,
// ties_out) in the same order, so the bits are identical (test/merge/gta-native.test.ts). Built at install by
// scripts/build-native.mjs for AVX-512 (whatever the build machine's CPU) with -ffp-contract=off (no fused
// multiply-adds); on a CPU without AVX-512 the module exports no kernels and the WebAssembly ones run
// (src/plan/native.ts).
//
// Layout read from the memory (byte offsets, all inside the module's fixed regions, see merge-kernels.wat):
//   ARGS = 657408: i32 n, m, base pointer, output pointer, divide, bf16 output; f64 lambda at ARGS + 32;
//                  per model i at ARGS + 64 + 32 i: i32 input pointer, mode (0 all, 1 none, 2 magnitude), bits,
//                  ties (in: the tie budget; out: what is left), kept (out)
//   655360 + 32 i: sc_i (f64, twice), w_i (f64, twice), as setParams writes them
//   131072 + 65536 i: model i's masked delta (written here, as the wasm kernels do)
// Inputs (base and models) are BF16 bits; the output is f32, or its BF16 bits (round to nearest even, as narrow_bf16).

#include <node_api.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__) && defined(__BMI2__)
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

inline float widen(uint16_t u) {
  uint32_t v = static_cast<uint32_t>(u) << 16;
  float f;
  memcpy(&f, &v, 4);
  return f;
}

inline __m512 widen16(const uint16_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

// d = f32(x - b) kept iff bits < |d| bits <= inf bits (signed compares, as the wasm kernel), or |d| bits == bits
// while ties last (element order); a dropped delta becomes +0. Returns how many were kept; *ties is updated.
int deltaMag(const uint16_t* x, const uint16_t* b, float* d, int n, int32_t bits, int32_t* ties) {
  const __m512i bv = _mm512_set1_epi32(bits), absv = _mm512_set1_epi32(ABS), inf = _mm512_set1_epi32(INF_BITS);
  int kept = 0;
  int32_t t = *ties;
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512i dv = _mm512_castps_si512(_mm512_sub_ps(widen16(x + j), widen16(b + j)));
    const __m512i a = _mm512_and_si512(dv, absv);
    __mmask16 keep = _mm512_cmpgt_epi32_mask(a, bv) & _mm512_cmple_epi32_mask(a, inf);
    if (t > 0) {
      // ties (|d| bits == bits) are kept while the budget lasts, in lane (= element) order: the first `take` of them
      const uint32_t eq = _mm512_cmpeq_epi32_mask(a, bv);
      const int32_t c = __builtin_popcount(eq);
      const int32_t take = c < t ? c : t;
      keep |= static_cast<__mmask16>(_pdep_u32((1u << take) - 1u, eq));
      t -= take;
    }
    _mm512_storeu_si512(d + j, _mm512_maskz_mov_epi32(keep, dv));
    kept += __builtin_popcount(keep);
  }
  for (; j < n; j++) {
    float v = widen(x[j]) - widen(b[j]);
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
  int j = 0;
  for (; j + 16 <= n; j += 16) _mm512_storeu_ps(d + j, _mm512_sub_ps(widen16(x + j), widen16(b + j)));
  for (; j < n; j++) d[j] = widen(x[j]) - widen(b[j]);
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

inline __m128i bf16Of8(__m256 f) {
  const __m256i u = _mm256_castps_si256(f);
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1))), 16);
  const __m256i quiet = _mm256_srli_epi32(_mm256_or_si256(u, _mm256_set1_epi32(0x00400000)), 16);
  const __mmask8 nan = _mm256_cmp_ps_mask(f, f, _CMP_UNORD_Q);
  return _mm256_cvtepi32_epi16(_mm256_mask_blend_epi32(nan, rounded, quiet));
}

// With bf16out, o receives BF16 bits (as uint16_t) of the f32 results instead of the f32 values.
void tiesOut(float* const* d, int m, int n, const uint16_t* b, float* o, int divide, double lambda, const double* sc, const double* w, int bf16out) {
  const __m512d zero = _mm512_setzero_pd(), one = _mm512_set1_pd(1.0), lam = _mm512_set1_pd(lambda);
  __m512d S[MAX_MODELS], W[MAX_MODELS];
  for (int i = 0; i < m; i++) {
    S[i] = _mm512_set1_pd(sc[i]);
    W[i] = _mm512_set1_pd(w[i]);
  }
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    __m512d v[MAX_MODELS];
    __m512d s = zero;
    for (int i = 0; i < m; i++) {
      v[i] = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(d[i] + j)), S[i]);
      s = _mm512_add_pd(s, v[i]);
    }
    const __mmask8 ge = _mm512_cmp_pd_mask(s, zero, _CMP_GE_OQ);
    __m512d mm = zero, z = zero;
    for (int i = 0; i < m; i++) {
      const __mmask8 a = (ge & _mm512_cmp_pd_mask(v[i], zero, _CMP_GT_OQ)) | (static_cast<__mmask8>(~ge) & _mm512_cmp_pd_mask(v[i], zero, _CMP_LT_OQ));
      mm = _mm512_add_pd(mm, _mm512_maskz_mov_pd(a, v[i]));
      z = _mm512_add_pd(z, _mm512_maskz_mov_pd(a, W[i]));
    }
    if (divide) mm = _mm512_div_pd(mm, _mm512_mask_blend_pd(_mm512_cmp_pd_mask(z, zero, _CMP_EQ_OQ), z, one));
    const __m256 bv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + j))), 16));
    const __m256 r = _mm512_cvtpd_ps(_mm512_add_pd(_mm512_cvtps_pd(bv), _mm512_mul_pd(mm, lam)));
    if (bf16out) _mm_storeu_si128(reinterpret_cast<__m128i*>(reinterpret_cast<uint16_t*>(o) + j), bf16Of8(r));
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
    const float r = static_cast<float>(static_cast<double>(widen(b[j])) + mm * lambda);
    if (bf16out) reinterpret_cast<uint16_t*>(o)[j] = bf16Of(r);
    else o[j] = r;
  }
}

// Windowed high-bits counts of d = f32(x - b) (BF16 inputs) for a top-k whose threshold is known to lie in the bins
// [lo >> 16, hi >> 16]: elements with |d| bits in [lo, hi] are counted by bin (u32 at h + 4 * (bits >> 16), or 1M
// further when the low 16 bits are nonzero: delta_hist_inexact's layout); the others are only counted, as above
// (hi < |d| bits <= inf bits) or below (|d| bits < lo); NaNs are not counted at all.
void histWindow(const uint16_t* x, const uint16_t* b, int n, uint8_t* h, int32_t lo, int32_t hi, uint32_t* above, uint32_t* below) {
  const __m512i absv = _mm512_set1_epi32(ABS), inf = _mm512_set1_epi32(INF_BITS);
  const __m512i lov = _mm512_set1_epi32(lo), hiv = _mm512_set1_epi32(hi);
  uint32_t up = 0, down = 0;
  static thread_local uint32_t list[16384 + 16];
  int listed = 0;
  int j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512i a = _mm512_and_si512(_mm512_castps_si512(_mm512_sub_ps(widen16(x + j), widen16(b + j))), absv);
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
    float v = widen(x[j]) - widen(b[j]);
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
constexpr int32_t WK_ABI = 4;

NAPI_MODULE_INIT() {
#ifdef WK_NATIVE
  // compiled for AVX-512 whatever the build machine: export nothing on a CPU without it (the loader then keeps the
  // WebAssembly kernels) instead of dying on the first instruction
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") || !__builtin_cpu_supports("avx512vl") ||
      !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("bmi2") || !__builtin_cpu_supports("popcnt")) {
    return exports;
  }
  napi_value f;
  napi_create_int32(env, WK_ABI, &f);
  napi_set_named_property(env, exports, "abi", f);
  napi_create_function(env, "tiesPiece", NAPI_AUTO_LENGTH, tiesPiece, nullptr, &f);
  napi_set_named_property(env, exports, "tiesPiece", f);
  napi_create_function(env, "histWindows", NAPI_AUTO_LENGTH, histWindows, nullptr, &f);
  napi_set_named_property(env, exports, "histWindows", f);
  napi_create_function(env, "adviseHuge", NAPI_AUTO_LENGTH, adviseHuge, nullptr, &f);
  napi_set_named_property(env, exports, "adviseHuge", f);
#endif
  return exports;
}
