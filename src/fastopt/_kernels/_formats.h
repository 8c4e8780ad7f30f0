/* The storage formats of fastopt's arrays: the one place that knows how a format is loaded and stored.
 *
 * A rule's loop only ever sees float32 or float64 values. An array stored in a 16-bit format (bfloat16,
 * float16) is staged: a block of it is widened into a float32 scratch buffer in L1, the rule runs on the
 * scratch, and what the rule wrote is rounded back (fastopt/_kernels/_util.pxd, ``staged_chunk``). The
 * conversions below are exact where they can be (widening) and round to nearest even otherwise, as
 * torch's c10::BFloat16 and c10::Half do, so a finite value gets torch's bits; every ISA variant runs the
 * same integer and float operations (compiled with -ffp-contract=off), so it gets the same bits too.
 *
 * NumPy twin: fastopt/reference/_formats.py (the same integer sequences in uint32 arithmetic).
 */
#ifndef FASTOPT_FORMATS_H
#define FASTOPT_FORMATS_H

#include <stdint.h>
#include <math.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/* The formats (fastopt._kernels._runtime.FORMATS names them, in this order). The last two are a
   parameter's with a float32 master: FO_SPLIT, a bfloat16 array (the high halves) and its low halves
   (int16) that together are the float32 master; FO_MASTER, a float32 master array rounded into the
   16-bit parameter at every store. */
enum { FO_F32 = 0, FO_F64 = 1, FO_BF16 = 2, FO_F16 = 3, FO_SPLIT = 4, FO_MASTER = 5, FO_Q8 = 6, FO_Q4 = 7 };

static inline uint32_t fo_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float fo_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* bfloat16: the high half of a float32. Widening is exact. Rounding: to nearest, ties to even; a NaN
   becomes 0x7FC0 (c10::BFloat16's scalar rule: its payload and sign are not kept); a finite value may
   round to +-inf, as in torch. */
static inline float fo_bf16_to_f32(uint16_t h) { return fo_float((uint32_t)h << 16); }
static inline uint16_t fo_f32_to_bf16(float f) {
    uint32_t u = fo_bits(f);
    uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)(f != f ? 0x7FC0u : rounded);
}

/* float16 (IEEE binary16): the branch-free conversions of Marat Dukhan's FP16 library (MIT; the same
   code as c10::detail::fp16_ieee_to_fp32_value / fp16_ieee_from_fp32_value), exact widening and
   round-to-nearest-even narrowing through the float unit, subnormals included; a NaN becomes 0x7E00
   with its sign (payload not kept). */
static inline float fo_f16_to_f32(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const float normalized = fo_float((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
    const float denormalized = fo_float((two_w >> 17) | (126u << 23)) - 0.5f;
    return fo_float(sign | (two_w < (1u << 27) ? fo_bits(denormalized) : fo_bits(normalized)));
}
static inline uint16_t fo_f32_to_f16(float f) {
    float base = (fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t w = fo_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = fo_float((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = fo_bits(base);
    const uint32_t nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

/* The 16-bit storage types a rule's loop is generated for (_util.pxd's ``store``): distinct types, so
   that one fused loop specializes per format; each element's bits are a bfloat16 or a binary16. */
typedef struct { uint16_t bits; } fo_bf16;
typedef struct { uint16_t bits; } fo_f16;
typedef struct { uint16_t bits; } fo_bf16sr;  /* bfloat16 stored with stochastic rounding */

/* A hyperparameter as torch's fused kernels for 16-bit parameters meet it where they write
   ``scalar_t(value)`` (FusedAdagradKernel.cpp): rounded to float, then to the parameter's format. */
static inline double fo_round_scalar(double x, int format) {
    if (format == FO_BF16) return fo_bf16_to_f32(fo_f32_to_bf16((float)x));
    if (format == FO_F16) return fo_f16_to_f32(fo_f32_to_f16((float)x));
    return x;
}

/* A counter-based hash (murmur3's finalizer over key ^ i * golden ratio): the random bits of stochastic
   rounding, a function of (key, element) only, so they do not depend on blocks or threads. */
static inline uint32_t fo_hash(uint32_t key, uint32_t i) {
    uint32_t h = key ^ (i * 0x9E3779B9u);
    h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
    return h;
}

/* bfloat16, stochastic: up with probability (u & 0xFFFF) / 65536 (torchao's _fp32_to_bf16_sr), from 16
   random bits of element i (< 2^32) of the array whose stream is `key`; NaN as to nearest. */
static inline uint16_t fo_f32_to_bf16_sr(float f, uint32_t key, uint32_t i) {
    uint32_t r = fo_hash(key, i) >> 16;
    return (uint16_t)(f != f ? 0x7FC0u : (fo_bits(f) + r) >> 16);
}

/* fo_f32_to_bf16_sr over elements [first, first + n) of an array (past 2^32 elements, the stream key
   mixes in the high half of the index). */
static void fo_narrow_sr(const float* src, uint16_t* d, Py_ssize_t n, uint32_t key, Py_ssize_t first) {
    uint32_t k = (first >> 32) ? fo_hash(key, (uint32_t)((uint64_t)first >> 32)) : key;
    uint32_t base = (uint32_t)first;  /* blocks never cross a multiple of 2^32 elements */
    Py_ssize_t i;
    for (i = 0; i < n; i++) d[i] = fo_f32_to_bf16_sr(src[i], k, base + (uint32_t)i);
}

/* Split masters: a float32 value u is the bfloat16 h = u rounded to nearest (ties away from zero) and the
   int16 l = u - (h << 16), exactly; NaN is 0x7FC0 and 0. */
static void fo_join(const uint16_t* hi, const uint16_t* lo, float* dst, Py_ssize_t n) {
    Py_ssize_t i;
    for (i = 0; i < n; i++) dst[i] = fo_float(((uint32_t)hi[i] << 16) + (uint32_t)(int32_t)(int16_t)lo[i]);
}

static void fo_split(const float* src, uint16_t* hi, uint16_t* lo, Py_ssize_t n) {
    Py_ssize_t i;
    for (i = 0; i < n; i++) {
        uint32_t u = fo_bits(src[i]);
        uint32_t h = (u + 0x8000u) >> 16;
        int nan = src[i] != src[i];
        hi[i] = (uint16_t)(nan ? 0x7FC0u : h);
        lo[i] = (uint16_t)(nan ? 0u : u - (h << 16));
    }
}

/* Whole blocks (the loops the staging runs; each vectorizes). */
static void fo_widen(int format, const void* src, float* dst, Py_ssize_t n) {
    const uint16_t* s = (const uint16_t*)src;
    Py_ssize_t i;
    if (format == FO_BF16) { for (i = 0; i < n; i++) dst[i] = fo_bf16_to_f32(s[i]); }
    else { for (i = 0; i < n; i++) dst[i] = fo_f16_to_f32(s[i]); }
}

static void fo_narrow(int format, const float* src, void* dst, Py_ssize_t n) {
    uint16_t* d = (uint16_t*)dst;
    Py_ssize_t i;
    if (format == FO_BF16) { for (i = 0; i < n; i++) d[i] = fo_f32_to_bf16(src[i]); }
    else { for (i = 0; i < n; i++) d[i] = fo_f32_to_f16(src[i]); }
}

/* Quantized state (q8, q4): blocks of `block` elements (256, 128), each a float32 absmax and one code per
   element (q8: a byte; q4: a nibble, the even element in the high one), a code c standing for
   qmap[c] * absmax (bitsandbytes' and torchao's blockwise dynamic quantization). A value x of a block
   is coded as the nearest entry of the sorted qmap to x * (1 / absmax), ties up: the number of
   midpoints between neighbouring entries that are <= x (NaN: code 0). `lut` finds it with one load and
   two integer compares. The float32s whose top 16 bits are k form an interval, ordered by their low 16
   bits u (reversed for negative ones: u = 0xFFFF - low bits); lut[k] holds the code of its first float32
   (u = 0) in its low 8 bits, and the u at which each of the (at most two) midpoints inside it is
   reached, t1 in bits 8-31 and t2 in bits 32-63 (0x10000: none): the code of x is
   code + (u >= t1) + (u >= t2). fo_qtable_init checks that no interval holds more midpoints and that
   the last float32 of each interval gets its code. (Intervals of NaNs get code 0 but one: +inf's,
   whose NaNs (signalling: arithmetic never makes them) get +inf's code.) */
typedef struct {
    float qmap[256];
    float mid[256];          /* mid[c] = (qmap[c] + qmap[c + 1]) / 2; +inf from the last code on */
    uint64_t lut[65536];
    int32_t ncodes, bits, block;
} fo_qtable;

/* The number of midpoints <= x (x NaN: none): the code of x by its definition, for fo_qtable_init. */
static int fo_code_ref(const fo_qtable* t, float x) {
    int lo = 0, hi = t->ncodes - 1;  /* mid[0 .. ncodes-2] ascend */
    if (x != x) return 0;
    while (lo < hi) {
        int m = (lo + hi) / 2;
        if (t->mid[m] <= x) lo = m + 1; else hi = m;
    }
    return lo;
}

/* 0, or -1 if an interval holds more than two midpoints (the map is too dense for two compares) or its
   last float32 would not get its code. */
static int fo_qtable_init(fo_qtable* t, const float* qmap, int ncodes, int bits, int block) {
    int c, k, j;
    t->ncodes = ncodes; t->bits = bits; t->block = block;
    for (c = 0; c < 256; c++) t->qmap[c] = c < ncodes ? qmap[c] : 0.0f;
    for (c = 0; c < 256; c++) t->mid[c] = c < ncodes - 1 ? (qmap[c] + qmap[c + 1]) * 0.5f : INFINITY;
    for (k = 0; k < 65536; k++) {
        uint32_t neg = k & 0x8000 ? 0xFFFFu : 0u, top = (uint32_t)k << 16;
        float first = fo_float(top | neg), last = fo_float(top | (neg ^ 0xFFFFu));
        int code = fo_code_ref(t, first), end = fo_code_ref(t, last);
        uint32_t th[2] = {0x10000u, 0x10000u};
        if (first != first || last != last) end = code;  /* an interval of NaNs (or +inf's: see above) */
        if (end < code || end - code > 2) return -1;
        for (j = 0; j < end - code; j++) {
            uint32_t b = fo_bits(t->mid[code + j]);
            if ((b >> 16) != (uint32_t)k) return -1;
            th[j] = (b & 0xFFFFu) ^ neg;
        }
        t->lut[k] = (uint64_t)code | ((uint64_t)th[0] << 8) | ((uint64_t)th[1] << 32);
    }
    return 0;
}

static inline int fo_code(const fo_qtable* t, float x) {
    uint32_t b = fo_bits(x);
    uint64_t e = t->lut[b >> 16];
    uint32_t u = (b & 0xFFFFu) ^ ((uint32_t)((int32_t)b >> 31) & 0xFFFFu);
    return (int)(e & 0xFFu) + (u >= ((uint32_t)e >> 8)) + (u >= (uint32_t)(e >> 32));
}

/* 8-bit codes of 16 values at a time (AVX-512): fo_code lane by lane, the lut's entries gathered.
   Returns how many values were done. (An AVX2 version, right on the CPU, gave wrong codes under qemu
   7.2's AVX2 emulation, depending on the code around it, so the emulated CI runs could not check it:
   AVX2 codes by fo_code.) */
static inline Py_ssize_t fo_code8_vec(const fo_qtable* t, const float* src, float inv, uint8_t* c, Py_ssize_t m) {
    Py_ssize_t i = 0;
#if defined(__AVX512F__)
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i low8 = _mm512_set1_epi32(0xFF), low16 = _mm512_set1_epi32(0xFFFF), one = _mm512_set1_epi32(1);
    for (; i + 16 <= m; i += 16) {
        __m512i b = _mm512_castps_si512(_mm512_mul_ps(_mm512_loadu_ps(src + i), vinv));
        __m512i k = _mm512_srli_epi32(b, 16);
        __m512i e0 = _mm512_i32gather_epi64(_mm512_castsi512_si256(k), (const void*)t->lut, 8);
        __m512i e1 = _mm512_i32gather_epi64(_mm512_extracti64x4_epi64(k, 1), (const void*)t->lut, 8);
        __m512i lo = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(e0)), _mm512_cvtepi64_epi32(e1), 1);
        __m512i hi = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_srli_epi64(e0, 32))),
                                        _mm512_cvtepi64_epi32(_mm512_srli_epi64(e1, 32)), 1);
        __m512i u = _mm512_xor_si512(_mm512_and_si512(b, low16), _mm512_and_si512(_mm512_srai_epi32(b, 31), low16));
        __m512i code = _mm512_and_si512(lo, low8);
        code = _mm512_mask_add_epi32(code, _mm512_cmpge_epu32_mask(u, _mm512_srli_epi32(lo, 8)), code, one);
        code = _mm512_mask_add_epi32(code, _mm512_cmpge_epu32_mask(u, hi), code, one);
        _mm_storeu_si128((__m128i*)(c + i), _mm512_cvtepi32_epi8(code));
    }
#else
    (void)t; (void)src; (void)inv; (void)c; (void)m;
#endif
    return i;
}

/* The NaN-propagating maximum of |src[i]| over the first multiple of 16 of m values, 16 lanes at a time
   (as fo_quantize's scalar lanes: a maximum does not depend on the order); `lanes` gets the 16 lane
   maxima. Returns how many values were done. */
static inline Py_ssize_t fo_absmax_vec(const float* src, Py_ssize_t m, float* lanes) {
    Py_ssize_t i = 0;
#if defined(__AVX512F__)
    __m512 acc = _mm512_loadu_ps(lanes);
    for (; i + 16 <= m; i += 16) {
        __m512 v = _mm512_abs_ps(_mm512_loadu_ps(src + i));
        __mmask16 keep = _mm512_cmp_ps_mask(acc, v, _CMP_GE_OQ) | _mm512_cmp_ps_mask(acc, acc, _CMP_UNORD_Q);
        acc = _mm512_mask_blend_ps(keep, v, acc);
    }
    _mm512_storeu_ps(lanes, acc);
#else
    (void)src; (void)m; (void)lanes;
#endif
    return i;
}

/* qmap[codes[i]] * a for 16 codes at a time (AVX-512); returns how many were done. */
static inline Py_ssize_t fo_decode8_vec(const fo_qtable* t, const uint8_t* c, float a, float* dst, Py_ssize_t m) {
    Py_ssize_t i = 0;
#if defined(__AVX512F__)
    const __m512 va = _mm512_set1_ps(a);
    for (; i + 16 <= m; i += 16) {
        __m512i code = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(c + i)));
        _mm512_storeu_ps(dst + i, _mm512_mul_ps(_mm512_i32gather_ps(code, t->qmap, 4), va));
    }
#else
    (void)t; (void)c; (void)a; (void)dst; (void)m;
#endif
    return i;
}

/* Dequantize elements [first, first + n) of a quantized array (first: a multiple of its block). */
static void fo_dequantize(const fo_qtable* t, const uint8_t* codes, const float* absmax, float* dst,
                          Py_ssize_t first, Py_ssize_t n) {
    Py_ssize_t i, j;
    for (j = 0; j < n; j += t->block) {
        Py_ssize_t m = n - j < t->block ? n - j : t->block;
        float a = absmax[(first + j) / t->block];
        if (t->bits == 8) {
            const uint8_t* c = codes + first + j;
            for (i = fo_decode8_vec(t, c, a, dst + j, m); i < m; i++) dst[j + i] = t->qmap[c[i]] * a;
        } else {  /* (scalar: unpacking the nibbles to bytes for the vector decode gave wrong codes under
                     qemu 7.2's AVX2 emulation, though right on the CPU) */
            for (i = 0; i < m; i++) {
                Py_ssize_t e = first + j + i;
                int c = (codes[e >> 1] >> ((e & 1) ? 0 : 4)) & 0xF;
                dst[j + i] = t->qmap[c] * a;
            }
        }
    }
}

/* Quantize float32 values into elements [first, first + n) (first: a multiple of the block; n: whole
   blocks but at the array's end): per block its absmax (NaN if any element is: the block then reads
   back as NaN), then each code. */
static void fo_quantize(const fo_qtable* t, const float* src, uint8_t* codes, float* absmax,
                        Py_ssize_t first, Py_ssize_t n) {
    Py_ssize_t i, j;
    for (j = 0; j < n; j += t->block) {
        Py_ssize_t m = n - j < t->block ? n - j : t->block;
        float a, inv;
        float lanes[16] = {0};  /* 16 independent maxima (no chain from element to element: it vectorizes);
                                   a maximum does not depend on the order, NaN propagates from any lane */
        for (i = fo_absmax_vec(src + j, m, lanes); i + 16 <= m; i += 16) {
            int l;
            for (l = 0; l < 16; l++) {
                float v = fabsf(src[j + i + l]);
                lanes[l] = (lanes[l] >= v) | (lanes[l] != lanes[l]) ? lanes[l] : v;
            }
        }
        for (; i < m; i++) {
            float v = fabsf(src[j + i]);
            lanes[0] = (lanes[0] >= v) | (lanes[0] != lanes[0]) ? lanes[0] : v;
        }
        a = lanes[0];
        for (i = 1; i < 16; i++) a = (a >= lanes[i]) | (a != a) ? a : lanes[i];
        absmax[(first + j) / t->block] = a;
        inv = a == 0.0f ? 0.0f : 1.0f / a;
        if (t->bits == 8) {
            uint8_t* c = codes + first + j;
            for (i = fo_code8_vec(t, src + j, inv, c, m); i < m; i++) c[i] = (uint8_t)fo_code(t, src[j + i] * inv);
        } else {
            /* (scalar: packing vector-made codes into nibbles, a loop gcc vectorizes, gave wrong
               bytes under qemu 7.2's AVX2 emulation, though right on the CPU) */
            for (i = 0; i < m; i += 2) {
                Py_ssize_t e = first + j + i;
                int hi = fo_code(t, src[j + i] * inv);
                int lo = i + 1 < m ? fo_code(t, src[j + i + 1] * inv) : 0;
                codes[e >> 1] = (uint8_t)((hi << 4) | lo);
            }
        }
    }
}

/* Store float32 values into a 16-bit array: to nearest, or stochastically (bfloat16; `key`: the
   array's stream, `first`: the element index of src[0] in the array). */
static void fo_store16(int format, const float* src, void* dst, Py_ssize_t n, int stochastic, uint32_t key,
                       Py_ssize_t first) {
    if (stochastic && format == FO_BF16) fo_narrow_sr(src, (uint16_t*)dst, n, key, first);
    else fo_narrow(format, src, dst, n);
}

/* The bytes of one element of each format (a master's: its float32 master's). */
static inline Py_ssize_t fo_itemsize(int format) {
    return format == FO_F64 ? 8 : ((format == FO_F32 || format == FO_MASTER) ? 4 : 2);
}

#endif /* FASTOPT_FORMATS_H */
